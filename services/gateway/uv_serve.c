/* uv_serve.c: the gateway's public data path on libuv (SOUK_GATEWAY_ENGINE=uv): one
 * loop per SOUK_THREADS, each with its own SO_REUSEPORT listener and its own keep-alive
 * upstream pool, so a request is read, checked (auth, limits, CORS: edge.c), sent
 * upstream and answered on one thread. Instances, balancing, breakers, health and the
 * addresses to connect to (host names resolved there, IPv4 and IPv6) are lib/proxy.c's
 * (souk_proxy_pick/report/address_failed); framing is http-parser's (uv_http.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "gateway.h"
#include "souk/auth.h"
#include "souk/buf.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/proxy.h"
#include "souk/realip.h"
#include "souk/souk.h"
#include "souk/trace.h"
#include "uv_http.h"

#define LOOPS_MAX        64
#define UPSTREAMS_MAX    16
#define INSTANCES_MAX    32
#define READ_BUF         65536
#define REST_MAX         65536 /* pipelined bytes held while a request is answered */
#define FIELD_MAX        8192  /* one upstream response header's name or value */
#define PASS_MAX         32768 /* upstream response headers passed on, bytes */
#define REQUEST_ID_MAX   64    /* a client's X-Request-Id kept when it is this short (kit's) */
#define PEER_SLOTS       4096  /* per-address connection counts */
#define TICK_MS          500   /* deadline sweeps */
#define CONTENT_TYPE_MAX 256
#define LINGER_S         2 /* reading after an answer that closes the connection */

/* Text into the buffers without a cap of their own (the answer, the upstream head):
 * every piece put there is capped where it comes from. */
static void put(struct souk_buf *b, const void *s, size_t n) { souk_buf_put(b, s, n); }
#define PUTS(b, s) put((b), (s), strlen(s))

static void putf(struct souk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct souk_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

struct loop;
struct upconn;

/* A client connection and the one request it has in flight. */
struct conn {
    uv_tcp_t tcp;
    struct loop *lp;
    struct conn *prev, *next; /* the loop's list, for the deadline sweep */
    struct gw_request q;
    char peer[INET_ADDRSTRLEN];
    char client[64];      /* the kit's client address (trusted proxies resolved) */
    uint64_t deadline_ns; /* close when passed; 0 while a request is being answered */
    bool busy;            /* a request is being answered: read bytes wait in rest */
    bool closing, stopped, close_after, counted, lingering;
    bool working, free_pending; /* the trace view runs on libuv's thread pool */
    char trace_id[80];
    uv_shutdown_t shut;
    struct souk_buf rest; /* capped REST_MAX + READ_BUF: reading stops past REST_MAX */
    /* the request being answered */
    uint64_t t0;
    long route;
    const struct gw_target *target;
    char path[GW_URL_MAX + 2];
    const char *query;
    char rid[REQUEST_ID_MAX + 1];
    struct souk_span span, cspan; /* the server span, the upstream exchange's */
    bool spanning;                /* span started for this request */
    struct edge_headers eh;
    struct souk_identity who;
    struct souk_buf uphead; /* what goes upstream: the head (the body is q.body) */
    struct upconn *up;
    struct souk_proxy_target t;
    unsigned tried;
    int attempts;
    bool retryable, stale_retried, head_only;
    uint64_t attempt_t0;
    struct souk_buf out; /* the answer */
    int status;
    size_t body_bytes;
    uv_write_t wr;
};

/* A connection to an upstream instance: one exchange at a time, then back to the
 * loop's pool for its instance. */
struct upconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t wr;
    struct loop *lp;
    struct conn *c;
    struct upconn *next_idle;
    int up_id, index;
    size_t ai;                  /* the address of c->t connected to (while connecting) */
    union souk_proxy_addr addr; /* ...and a copy: pooled, used while the name has it */
    int handles;                /* open libuv handles; freed at 0 */
    http_parser p;
    bool fresh, got_bytes, done, in_value, idle, closing;
    bool extra;                               /* bytes came after the answer: not reused */
    bool writing;                             /* a uv_write of the request is pending */
    struct souk_buf field, value, pass, body; /* FIELD_MAX, FIELD_MAX, PASS_MAX, max_response */
    char content_type[CONTENT_TYPE_MAX];
    bool has_type;
};

struct loop {
    uv_loop_t uv;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t tick;
    pthread_t thread;
    bool started;
    int fd;
    struct conn *conns;
    atomic_long inflight;
    struct upconn *idle[UPSTREAMS_MAX][INSTANCES_MAX];
    size_t nidle, idle_max;
    time_t date_at;
    char date[40];
    char rbuf[READ_BUF];
};

static struct souk_serve srv;
static const struct souk_route *routes;
static const struct gw_target *targets;
static size_t nroutes;
static struct souk_router *router;
static struct souk_upstream *const *ups;
static size_t nups;
static struct loop loops[LOOPS_MAX];
static size_t nloops;
static atomic_bool draining, stopping;
static http_parser_settings res_settings;

/* ---- the per-address connection cap (SOUK_MAX_CONNECTIONS_PER_IP), across loops:
 * taken at accept and given back at close, never per request ---- */

struct peer_slot {
    char addr[INET_ADDRSTRLEN];
    int n;
};
static struct peer_slot peers[PEER_SLOTS];
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long nconns;

static bool peer_take(const char *addr)
{
    if (srv.max_per_ip <= 0)
        return true;
    uint64_t h = 1469598103934665603ull;
    for (const char *s = addr; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    bool ok = false;
    pthread_mutex_lock(&peers_lock);
    for (size_t k = 0; k < PEER_SLOTS; k++) {
        struct peer_slot *p = &peers[(h + k) % PEER_SLOTS];
        if (p->n > 0 && strcmp(p->addr, addr) != 0)
            continue;
        if (p->n == 0)
            snprintf(p->addr, sizeof(p->addr), "%s", addr);
        ok = p->n < srv.max_per_ip;
        if (ok)
            p->n++;
        break;
    }
    pthread_mutex_unlock(&peers_lock);
    return ok;
}

static void peer_give(const char *addr)
{
    if (srv.max_per_ip <= 0)
        return;
    uint64_t h = 1469598103934665603ull;
    for (const char *s = addr; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    pthread_mutex_lock(&peers_lock);
    for (size_t k = 0; k < PEER_SLOTS; k++) {
        struct peer_slot *p = &peers[(h + k) % PEER_SLOTS];
        if (p->n > 0 && strcmp(p->addr, addr) == 0) {
            p->n--;
            break;
        }
    }
    pthread_mutex_unlock(&peers_lock);
}

/* ---- connections ---- */

static void alloc_cb(uv_handle_t *h, size_t want, uv_buf_t *b)
{
    SOUK_UNUSED(want);
    struct loop *lp = h->loop->data;
    b->base = lp->rbuf; /* consumed before the next read */
    b->len = sizeof(lp->rbuf);
}

static void conn_free(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->working) { /* freed when the work is done */
        c->free_pending = true;
        return;
    }
    gw_request_free(&c->q);
    souk_buf_free(&c->rest);
    souk_buf_free(&c->uphead);
    souk_buf_free(&c->out);
    free(c);
}

static void up_detach(struct upconn *u);

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->up != NULL)
        up_detach(c->up); /* the exchange goes on; its answer goes nowhere */
    if (c->busy)
        atomic_fetch_sub(&c->lp->inflight, 1);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->lp->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->counted) {
        peer_give(c->peer);
        atomic_fetch_sub(&nconns, 1);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_free);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);
static void feed(struct conn *c, const char *data, size_t n);

static uint64_t secs_ns(long s) { return (uint64_t)s * 1000000000u; }

static void shut_done(uv_shutdown_t *sh, int status)
{
    SOUK_UNUSED(status);
    struct conn *c = sh->data;
    if (!c->closing)
        c->deadline_ns = souk_now_ns() + secs_ns(LINGER_S);
}

/* The answer is out: the next request's deadline starts, pipelined bytes go on. An
 * answer that ends the connection shuts our side down and reads what the client still
 * sends for a while (LINGER_S), so the close sends no reset that would destroy the
 * answer before the client has read it. */
static void request_over(struct conn *c)
{
    if (c->close_after) {
        if (c->lingering)
            return;
        c->lingering = true;
        c->busy = false;
        atomic_fetch_sub(&c->lp->inflight, 1);
        c->deadline_ns = souk_now_ns() + secs_ns(LINGER_S);
        c->shut.data = c;
        if (c->stopped)
            uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, client_read);
        if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shut_done) != 0)
            conn_close(c);
        return;
    }
    c->busy = false;
    atomic_fetch_sub(&c->lp->inflight, 1);
    souk_buf_reset(&c->out);
    c->deadline_ns = souk_now_ns() + secs_ns(srv.idle_timeout_s + srv.header_timeout_s);
    gw_request_next(&c->q);
    if (c->rest.len > 0) {
        size_t len;
        char *r = souk_buf_take(&c->rest, &len);
        feed(c, r, len);
        free(r);
        if (c->closing)
            return;
    }
    if (c->stopped && !c->busy) {
        c->stopped = false;
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, client_read);
    }
}

static void written(uv_write_t *wr, int status)
{
    struct conn *c = wr->data;
    if (c->closing)
        return;
    if (status != 0)
        conn_close(c);
    else
        request_over(c);
}

/* Write c->out: uv_try_write first (a write queued with uv_write costs an epoll_ctl
 * even when it completes at once). */
static void flush(struct conn *c)
{
    uv_buf_t b = uv_buf_init(c->out.p, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->out.len) {
        request_over(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n > 0) {
        b.base += n;
        b.len -= (size_t)n;
    }
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, written) != 0)
        conn_close(c);
}

/* The end of a request: its metrics and access line, its spans, then the answer
 * (head + body in c->out, body_bytes of it the body). */
static void finish(struct conn *c)
{
    souk_span_set_int(&c->span, "http.response.status_code", c->status);
    if (c->status >= 500) {
        char code[16];
        snprintf(code, sizeof(code), "%d", c->status);
        souk_span_set_str(&c->span, "error.type", code);
        souk_span_set_status(&c->span, SOUK_SPAN_ERROR, NULL);
    }
    souk_span_end(&c->span);
    c->spanning = false;
    struct souk_request_done d = {.method = c->q.method ? c->q.method : "-",
                                  .path = c->path[0] ? c->path : "-",
                                  .route = c->route,
                                  .request_id = c->rid[0] ? c->rid : "-",
                                  .traceparent = c->span.traceparent,
                                  .client = c->client[0] ? c->client : "-",
                                  .status = c->status,
                                  .bytes = c->body_bytes,
                                  .duration_ns = souk_now_ns() - c->t0};
    souk_request_done(&d);
    flush(c);
}

/* The Date header's value, made once a second per loop. */
static const char *http_date(struct loop *lp)
{
    time_t now = time(NULL);
    if (now != lp->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(lp->date, sizeof(lp->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        lp->date_at = now;
    }
    return lp->date;
}

/* The head of an answer the gateway makes itself: status line, X-Request-Id, the
 * edge's headers, then extra (already "Name: value\r\n" lines), Content-Length. */
static void answer(struct conn *c, int status, const char *type, const char *body, size_t len,
                   const char *extra)
{
    souk_buf_reset(&c->out);
    c->status = status;
    putf(&c->out, "HTTP/1.1 %d %s\r\n", status, souk_status_title(status));
    if (type != NULL)
        putf(&c->out, "Content-Type: %s\r\n", type);
    if (c->rid[0] != '\0')
        putf(&c->out, "X-Request-Id: %s\r\n", c->rid);
    for (size_t i = 0; i < c->eh.n; i++) {
        PUTS(&c->out, c->eh.h[i].name);
        put(&c->out, ": ", 2);
        PUTS(&c->out, c->eh.h[i].value);
        put(&c->out, "\r\n", 2);
    }
    if (extra != NULL)
        PUTS(&c->out, extra);
    if (c->close_after)
        PUTS(&c->out, "Connection: close\r\n");
    put(&c->out, "Date: ", 6);
    PUTS(&c->out, http_date(c->lp));
    put(&c->out, "\r\n", 2);
    if (status == 204 || status == 304) /* no body, and no length for one (RFC 9110 §8.6) */
        len = 0;
    else
        putf(&c->out, "Content-Length: %zu\r\n", len);
    put(&c->out, "\r\n", 2);
    if (!c->head_only && len > 0)
        put(&c->out, body, len);
    c->body_bytes = c->head_only ? 0 : len;
    finish(c);
}

static void problem(struct conn *c, int status, const char *code, const char *extra,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void problem(struct conn *c, int status, const char *code, const char *extra,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = souk_problem_vjson(status, code, NULL, fmt, ap);
    va_end(ap);
    size_t len;
    char *s = souk_json_dump(p, &len);
    json_decref(p);
    answer(c, status, "application/problem+json", s, len, extra);
    free(s);
}

/* ---- upstream connections ---- */

static void up_handle_closed(uv_handle_t *h)
{
    struct upconn *u = h->data;
    if (--u->handles > 0)
        return;
    souk_buf_free(&u->field);
    souk_buf_free(&u->value);
    souk_buf_free(&u->pass);
    souk_buf_free(&u->body);
    free(u);
}

static void up_close(struct upconn *u)
{
    if (u->closing)
        return;
    u->closing = true;
    if (u->idle) { /* out of its pool */
        struct upconn **pp = &u->lp->idle[u->up_id][u->index];
        for (; *pp != NULL; pp = &(*pp)->next_idle)
            if (*pp == u) {
                *pp = u->next_idle;
                u->lp->nidle--;
                break;
            }
        u->idle = false;
    }
    uv_close((uv_handle_t *)&u->timer, up_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
}

/* The client went away mid-exchange: the connection cannot be trusted for the next
 * request (half an answer may still come): closed, and the attempt reported. */
static void up_detach(struct upconn *u)
{
    struct conn *c = u->c;
    u->c = NULL;
    if (c != NULL) {
        c->up = NULL;
        souk_proxy_report(ups[u->up_id], u->index, SOUK_PROXY_ANSWERED, 499,
                          souk_now_ns() - c->attempt_t0);
        souk_span_end(&c->cspan);
    }
    up_close(u);
}

static void up_release(struct upconn *u, bool keep)
{
    struct loop *lp = u->lp;
    u->c = NULL;
    uv_timer_stop(&u->timer);
    if (keep && !atomic_load(&stopping) && lp->nidle < lp->idle_max) {
        u->idle = true;
        u->next_idle = lp->idle[u->up_id][u->index];
        lp->idle[u->up_id][u->index] = u;
        lp->nidle++;
        return; /* still reading: an upstream's close while idle is seen */
    }
    up_close(u);
}

static void attempt(struct conn *c);
static void respond(struct conn *c, struct upconn *u);

static bool retry_allowed(struct conn *c) { return c->attempts <= souk_proxy_config()->retries; }

/* Another instance, when the rules allow: a request never sent always, others
 * when idempotent. False when no other instance takes it. */
static bool retry(struct conn *c, bool never_sent)
{
    if (!(never_sent || c->retryable) || !retry_allowed(c))
        return false;
    if (!souk_proxy_pick(ups[c->target->up_id], c->tried, &c->t))
        return false;
    souk_proxy_count_retry(ups[c->target->up_id]);
    souk_span_add_event(&c->cspan, "retry");
    attempt(c);
    return true;
}

static void exchange_failed(struct conn *c, int status, const char *code, const char *detail)
{
    souk_span_set_str(&c->cspan, "error.type", code);
    souk_span_set_status(&c->cspan, SOUK_SPAN_ERROR, code);
    souk_span_end(&c->cspan);
    problem(c, status, code, NULL, "%s: %s", souk_upstream_name(ups[c->target->up_id]), detail);
}

/* An attempt ended without an answer. stale: on a pooled connection before any byte
 * came back (the upstream closed it meanwhile): sent again on a new connection to the
 * same instance, once, without counting against it. */
static void up_failed(struct upconn *u, enum souk_proxy_outcome o)
{
    struct conn *c = u->c;
    bool stale = !u->fresh && !u->got_bytes && o == SOUK_PROXY_LOST;
    u->c = NULL;
    up_close(u);
    if (c == NULL)
        return;
    c->up = NULL;
    if (stale && !c->stale_retried && c->retryable) {
        c->stale_retried = true;
        c->attempts--; /* the same attempt, on a new connection */
        attempt(c);
        return;
    }
    souk_proxy_report(ups[c->target->up_id], c->t.index, o, 0, souk_now_ns() - c->attempt_t0);
    if (retry(c, o == SOUK_PROXY_REFUSED))
        return;
    switch (o) {
    case SOUK_PROXY_TIMEOUT:
        exchange_failed(c, 504, "upstream_timeout", "the upstream did not answer in time");
        break;
    case SOUK_PROXY_REFUSED:
        exchange_failed(c, 503, "no_upstream", "no instance is reachable");
        break;
    case SOUK_PROXY_TOO_BIG:
        exchange_failed(c, 502, "bad_gateway", "the upstream response is too large");
        break;
    default:
        exchange_failed(c, 502, "bad_gateway", "the upstream connection failed");
        break;
    }
}

static void up_timeout(uv_timer_t *t) { up_failed(t->data, SOUK_PROXY_TIMEOUT); }

static void up_header_done(struct upconn *u)
{
    if (u->field.len == 0)
        return;
    if (u->field.len == 12 && strncasecmp(u->field.p, "content-type", 12) == 0) {
        snprintf(u->content_type, sizeof(u->content_type), "%.*s", (int)u->value.len, u->value.p);
        u->has_type = true;
    } else if (!souk_proxy_hop_header(u->field.p, u->field.len) &&
               u->pass.len + u->field.len + u->value.len + 4 <= PASS_MAX) {
        put(&u->pass, u->field.p, u->field.len);
        put(&u->pass, ": ", 2);
        put(&u->pass, u->value.p, u->value.len);
        put(&u->pass, "\r\n", 2);
    }
    souk_buf_reset(&u->field);
    souk_buf_reset(&u->value);
    u->in_value = false;
}

static struct upconn *up_of(http_parser *p) { return p->data; }

static int rs_begin(http_parser *p)
{
    struct upconn *u = up_of(p);
    souk_buf_reset(&u->field);
    souk_buf_reset(&u->value);
    souk_buf_reset(&u->pass);
    souk_buf_reset(&u->body);
    u->in_value = u->done = u->has_type = false;
    return 0;
}

static int rs_field(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = up_of(p);
    if (u->in_value)
        up_header_done(u);
    return souk_buf_put(&u->field, at, n) != 0;
}

static int rs_value(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = up_of(p);
    u->in_value = true;
    return souk_buf_put(&u->value, at, n) != 0;
}

static int rs_headers(http_parser *p)
{
    struct upconn *u = up_of(p);
    up_header_done(u);
    if (p->status_code / 100 == 1)
        return 0; /* an interim answer (100 Continue): its headers are not the answer's */
    if (u->c != NULL && u->c->head_only)
        return 1; /* HEAD: no body follows, whatever Content-Length says */
    return 0;
}

static int rs_body(http_parser *p, const char *at, size_t n)
{
    struct upconn *u = up_of(p);
    return souk_buf_put(&u->body, at, n) != 0;
}

static int rs_complete(http_parser *p)
{
    struct upconn *u = up_of(p);
    if (p->status_code / 100 == 1) { /* 1xx: the real answer follows */
        souk_buf_reset(&u->pass);
        u->has_type = false;
        return 0;
    }
    u->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct upconn *u = s->data;
    if (n == 0)
        return;
    if (u->c == NULL) { /* idle: closed by the upstream, or bytes out of turn */
        up_close(u);
        return;
    }
    if (n < 0) {
        /* an answer delimited by the close */
        if (n == UV_EOF && u->got_bytes) {
            http_parser_execute(&u->p, &res_settings, NULL, 0);
            if (u->done) {
                respond(u->c, u);
                return;
            }
        }
        up_failed(u, SOUK_PROXY_LOST);
        return;
    }
    u->got_bytes = true;
    size_t used = http_parser_execute(&u->p, &res_settings, b->base, (size_t)n);
    if (u->done) {
        u->extra = used != (size_t)n;
        respond(u->c, u);
        return;
    }
    if (HTTP_PARSER_ERRNO(&u->p) != HPE_OK)
        up_failed(u, u->body.len + (size_t)n > souk_proxy_config()->max_response
                         ? SOUK_PROXY_TOO_BIG
                         : SOUK_PROXY_FAILED);
}

static void up_written(uv_write_t *wr, int status)
{
    struct upconn *u = wr->data;
    u->writing = false;
    if (status != 0 && !u->closing && u->c != NULL)
        up_failed(u, SOUK_PROXY_LOST);
}

static void up_send(struct upconn *u)
{
    struct conn *c = u->c;
    http_parser_init(&u->p, HTTP_RESPONSE);
    u->p.data = u;
    u->got_bytes = u->done = u->extra = false;
    uv_timer_start(&u->timer, up_timeout, (uint64_t)souk_proxy_config()->timeout_ms, 0);
    uv_buf_t bufs[2] = {uv_buf_init(c->uphead.p, (unsigned)c->uphead.len),
                        uv_buf_init(c->q.body.p, (unsigned)c->q.body.len)};
    unsigned nb = c->q.body.len > 0 ? 2 : 1;
    int n = uv_try_write((uv_stream_t *)&u->tcp, bufs, nb);
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == c->uphead.len + c->q.body.len)
        return;
    if (n < 0 && n != UV_EAGAIN) {
        up_failed(u, SOUK_PROXY_LOST);
        return;
    }
    unsigned first = 0;
    for (unsigned i = 0; i < nb; i++) { /* what is left of the two buffers */
        size_t take = done < bufs[i].len ? done : bufs[i].len;
        bufs[i].base += take;
        bufs[i].len -= take;
        done -= take;
        if (bufs[i].len == 0 && first == i)
            first = i + 1;
    }
    u->wr.data = u;
    u->writing = true;
    if (uv_write(&u->wr, (uv_stream_t *)&u->tcp, bufs + first, nb - first, up_written) != 0) {
        u->writing = false;
        up_failed(u, SOUK_PROXY_LOST);
    }
}

static void connect_to(struct conn *c, size_t ai);

static void up_connected(uv_connect_t *cr, int status)
{
    struct upconn *u = cr->data;
    if (u->closing)
        return;
    if (status != 0) {
        struct conn *c = u->c;
        if (c != NULL) /* this address goes last, and a host name is looked up again */
            souk_proxy_address_failed(ups[u->up_id], u->index, &c->t.addr[u->ai].sa);
        if (c != NULL && status != UV_ETIMEDOUT && u->ai + 1 < c->t.naddr) {
            size_t next = u->ai + 1; /* the name's next address (::1 refused, 127.0.0.1 next) */
            u->c = NULL;
            c->up = NULL;
            up_close(u);
            connect_to(c, next);
            return;
        }
        up_failed(u, status == UV_ETIMEDOUT ? SOUK_PROXY_TIMEOUT : SOUK_PROXY_REFUSED);
        return;
    }
    uv_tcp_nodelay(&u->tcp, 1);
    uv_read_start((uv_stream_t *)&u->tcp, alloc_cb, up_read);
    if (u->c != NULL)
        up_send(u);
    else
        up_release(u, true);
}

static void connect_timeout(uv_timer_t *t)
{
    struct upconn *u = t->data;
    if (u->c != NULL)
        souk_proxy_address_failed(ups[u->up_id], u->index, &u->c->t.addr[u->ai].sa);
    up_failed(u, SOUK_PROXY_REFUSED); /* never sent: another instance may take it */
}

/* A new connection to c->t's instance, at its address ai (IPv4 or IPv6). */
static void connect_to(struct conn *c, size_t ai)
{
    struct loop *lp = c->lp;
    struct upconn *u = souk_xcalloc(1, sizeof(*u));
    u->lp = lp;
    souk_buf_init(&u->field, FIELD_MAX);
    souk_buf_init(&u->value, FIELD_MAX);
    souk_buf_init(&u->pass, PASS_MAX);
    souk_buf_init(&u->body, souk_proxy_config()->max_response);
    u->c = c;
    u->up_id = c->target->up_id;
    u->index = c->t.index;
    u->ai = ai;
    u->addr = c->t.addr[ai];
    u->fresh = true;
    c->up = u;
    uv_tcp_init(&lp->uv, &u->tcp);
    uv_timer_init(&lp->uv, &u->timer);
    u->handles = 2;
    u->tcp.data = u->timer.data = u->connect.data = u;
    uv_timer_start(&u->timer, connect_timeout, (uint64_t)souk_proxy_config()->connect_timeout_ms,
                   0);
    if (uv_tcp_connect(&u->connect, &u->tcp, &c->t.addr[ai].sa, up_connected) != 0)
        up_failed(u, SOUK_PROXY_REFUSED);
}

/* Is a among t's addresses? (Copies of the proxy's zero-filled ones: bytewise.) */
static bool addr_current(const struct souk_proxy_target *t, const union souk_proxy_addr *a)
{
    for (size_t i = 0; i < t->naddr; i++)
        if (memcmp(&t->addr[i], a, sizeof(*a)) == 0)
            return true;
    return false;
}

/* One attempt on c->t's instance: a pooled connection, or a new one. */
static void attempt(struct conn *c)
{
    struct loop *lp = c->lp;
    int up_id = c->target->up_id, idx = c->t.index;
    c->tried |= 1u << idx;
    c->attempts++;
    c->attempt_t0 = souk_now_ns();
    struct upconn *u = NULL;
    while (!c->stale_retried && (u = lp->idle[up_id][idx]) != NULL) {
        lp->idle[up_id][idx] = u->next_idle;
        lp->nidle--;
        u->idle = false;
        if (addr_current(&c->t, &u->addr))
            break;
        up_close(u); /* to an address its host name no longer has (a Service moved) */
        u = NULL;
    }
    if (u != NULL) {
        u->fresh = false;
        u->c = c;
        c->up = u;
        up_send(u);
        return;
    }
    if (c->t.https) { /* main.c refuses this configuration: never reached */
        souk_proxy_report(ups[up_id], idx, SOUK_PROXY_FAILED, 0, 0);
        exchange_failed(c, 502, "bad_gateway", "the libuv engine reaches only http:// upstreams");
        return;
    }
    if (c->t.naddr == 0) { /* a host name not resolved yet: as a refused connection */
        souk_proxy_address_failed(ups[up_id], idx, NULL);
        souk_proxy_report(ups[up_id], idx, SOUK_PROXY_REFUSED, 0, 0);
        if (retry(c, true))
            return;
        exchange_failed(c, 503, "no_upstream", "the instance's host name does not resolve yet");
        return;
    }
    connect_to(c, 0);
}

/* The upstream's answer, as the client's: status, its end-to-end headers, ours. */
static void respond(struct conn *c, struct upconn *u)
{
    int status = u->p.status_code;
    /* an answer before the whole request was sent: the connection is not reusable */
    bool keep = http_should_keep_alive(&u->p) != 0 && !u->extra && !u->writing;
    http_parser_pause(&u->p, 0);
    u->c = NULL;
    c->up = NULL;
    souk_proxy_report(ups[c->target->up_id], c->t.index, SOUK_PROXY_ANSWERED, status,
                      souk_now_ns() - c->attempt_t0);
    bool gateway_error = status == 502 || status == 503 || status == 504;
    if (gateway_error && c->retryable && retry_allowed(c) &&
        souk_proxy_pick(ups[c->target->up_id], c->tried, &c->t)) {
        up_release(u, keep);
        souk_proxy_count_retry(ups[c->target->up_id]);
        souk_span_add_event(&c->cspan, "retry");
        attempt(c);
        return;
    }
    souk_span_set_int(&c->cspan, "http.response.status_code", status);
    if (status >= 400) {
        char code[16];
        snprintf(code, sizeof(code), "%d", status);
        souk_span_set_str(&c->cspan, "error.type", code);
        souk_span_set_status(&c->cspan, SOUK_SPAN_ERROR, NULL);
    }
    if (c->attempts > 1)
        souk_span_set_int(&c->cspan, "http.request.resend_count", c->attempts - 1);
    souk_span_end(&c->cspan);
    char *extra = souk_buf_take(&u->pass, NULL); /* NUL-terminated for answer() */
    const char *type = u->has_type       ? u->content_type
                       : u->body.len > 0 ? "application/octet-stream"
                                         : NULL;
    size_t len;
    char *body = souk_buf_take(&u->body, &len);
    up_release(u, keep);
    answer(c, status, type, body, len, extra);
    free(extra);
    free(body);
}

/* ---- the request ---- */

static const char *const forwarded[] = {
    "Authorization",   "Content-Type",      "Accept",
    "Accept-Language", "Idempotency-Key",   "If-Match",
    "If-None-Match",   "If-Modified-Since", "User-Agent",
};

static bool idempotent(const char *method, bool has_key)
{
    return has_key || strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

static bool valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (n == REQUEST_ID_MAX ||
            !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return n > 0;
}

static void forward(struct conn *c)
{
    struct gw_request *q = &c->q;
    char pathq[GW_URL_MAX * 3 + 16];
    if (souk_proxy_encode_path(c->path, c->query, pathq, sizeof(pathq)) < 0) {
        problem(c, 404, "not_found", NULL, "no route for %s", c->path);
        return;
    }
    for (size_t i = 0; i < SOUK_ARRAY_LEN(forwarded); i++) {
        const char *v = gw_request_header(q, forwarded[i]);
        if (v != NULL && strlen(v) > FIELD_MAX) { /* lib/proxy.c's HEADER_VALUE_MAX */
            problem(c, 431, "header_too_large", NULL, "the %s header is too large", forwarded[i]);
            return;
        }
    }
    if (!souk_proxy_pick(ups[c->target->up_id], 0, &c->t)) {
        problem(c, 503, "no_upstream", NULL, "%s: no healthy instance",
                souk_upstream_name(ups[c->target->up_id]));
        return;
    }
    struct souk_buf *h = &c->uphead;
    souk_buf_reset(h);
    putf(h, "%s ", q->method);
    PUTS(h, pathq);
    putf(h, " HTTP/1.1\r\nHost: %s\r\n", c->t.hostport);
    for (size_t i = 0; i < SOUK_ARRAY_LEN(forwarded); i++) {
        const char *v = gw_request_header(q, forwarded[i]);
        if (v == NULL)
            continue;
        PUTS(h, forwarded[i]);
        put(h, ": ", 2);
        PUTS(h, v);
        put(h, "\r\n", 2);
    }
    souk_span_start(&c->cspan, SOUK_SPAN_CLIENT, q->method, &c->span.ctx, false);
    souk_span_set_str(&c->cspan, "http.request.method", q->method);
    souk_span_set_str(&c->cspan, "souk.upstream", souk_upstream_name(ups[c->target->up_id]));
    putf(h, "X-Request-Id: %s\r\ntraceparent: %s\r\nX-Forwarded-For: %s\r\n", c->rid,
         c->cspan.traceparent, c->client);
    bool has_body = q->body.len > 0 || strcmp(q->method, "POST") == 0 ||
                    strcmp(q->method, "PUT") == 0 || strcmp(q->method, "PATCH") == 0;
    if (has_body)
        putf(h, "Content-Length: %zu\r\n", q->body.len);
    put(h, "\r\n", 2);
    c->retryable = idempotent(q->method, gw_request_header(q, "Idempotency-Key") != NULL);
    c->tried = 0;
    c->attempts = 0;
    c->attempt_t0 = 0;
    c->stale_retried = false;
    attempt(c);
}

static void builtin(struct conn *c)
{
    if (strcmp(c->path, "/healthz") == 0) {
        answer(c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
        return;
    }
    const char *why = srv.not_ready();
    if (why == NULL && atomic_load(&draining))
        why = "draining";
    if (why != NULL)
        problem(c, 503, "not_ready", NULL, "%s", why);
    else
        answer(c, 200, "application/json", "{\"status\":\"ready\"}", 18, NULL);
}

/* ---- the admin's trace view: blocking calls to every instance, on the thread pool ---- */

struct trace_job {
    uv_work_t w;
    struct conn *c;
    int status;
    json_t *doc;
    struct souk_check chk;
};

static void trace_work(uv_work_t *w)
{
    struct trace_job *j = w->data;
    j->status = traces_answer(j->c->trace_id, NULL, &j->doc, &j->chk);
}

static void trace_done(uv_work_t *w, int status)
{
    SOUK_UNUSED(status);
    struct trace_job *j = w->data;
    struct conn *c = j->c;
    c->working = false;
    if (c->free_pending) {
        c->free_pending = false;
        conn_free((uv_handle_t *)&c->tcp);
    } else if (j->status == 200) {
        size_t len;
        char *body = souk_json_dump(j->doc, &len);
        answer(c, 200, "application/json", body, len, NULL);
        free(body);
    } else {
        json_t *p = souk_problem_json(400, "validation_failed", "the request has invalid fields");
        json_object_set_new(p, "errors", j->chk.errors ? j->chk.errors : json_array());
        j->chk.errors = NULL;
        size_t len;
        char *body = souk_json_dump(p, &len);
        json_decref(p);
        answer(c, 400, "application/problem+json", body, len, NULL);
        free(body);
    }
    json_decref(j->doc);
    json_decref(j->chk.errors);
    free(j);
}

static void admin_trace(struct conn *c)
{
    struct trace_job *j = souk_xcalloc(1, sizeof(*j));
    j->c = c;
    j->w.data = j;
    c->working = true;
    if (uv_queue_work(&c->lp->uv, &j->w, trace_work, trace_done) != 0) {
        c->working = false;
        free(j);
        problem(c, 503, "unavailable", NULL, "the trace view cannot run now");
    }
}

static void storefront(struct conn *c)
{
    struct static_answer a;
    static_answer(c->q.method, c->path, gw_request_header(&c->q, "If-None-Match"),
                  gw_request_header(&c->q, "If-Modified-Since"), &a);
    for (size_t i = 0; i < a.headers.n && c->eh.n < EDGE_HEADERS_MAX; i++)
        c->eh.h[c->eh.n++] = a.headers.h[i];
    /* values in a's buffers: point them at the copies */
    for (size_t i = 0; i < c->eh.n; i++)
        for (size_t k = 0; k < a.headers.n; k++)
            if (c->eh.h[i].value == a.headers.h[k].buf)
                c->eh.h[i].value = c->eh.h[i].buf;
    if (a.code != NULL)
        problem(c, a.status, a.code, NULL, "%s", a.detail);
    else
        answer(c, a.status, a.type, a.body, a.status == 304 ? 0 : a.len, NULL);
    free(a.body);
}

static void handle(struct conn *c)
{
    struct gw_request *q = &c->q;
    c->head_only = strcmp(q->method, "HEAD") == 0;
    if (c->route == -2) {
        builtin(c);
        return;
    }
    if (c->route < 0) {
        if (c->route == -405) {
            char allow[128], line[160];
            souk_router_allow(router, c->path, allow, sizeof(allow));
            snprintf(line, sizeof(line), "Allow: %s\r\n", allow);
            problem(c, 405, "method_not_allowed", line, "%s is not allowed here; use %s", q->method,
                    allow);
        } else {
            problem(c, 404, "not_found", NULL, "no route for %s", c->path);
        }
        return; /* c may be on its next request already */
    }
    const struct souk_route *rt = &routes[c->route];
    const char *code = NULL;
    char challenge[384], detail[256];
    int st = souk_access_decide(rt->auth, rt->scope, gw_request_header(q, "Authorization"), &c->who,
                                &code, challenge, sizeof(challenge), detail, sizeof(detail));
    if (st != 0) {
        char line[420];
        if (st == 503)
            snprintf(line, sizeof(line), "Retry-After: 5\r\n");
        else
            snprintf(line, sizeof(line), "WWW-Authenticate: %s\r\n", challenge);
        problem(c, st, code, line, "%s", detail);
        return;
    }
    struct edge_view v = {
        .addr = c->client,
        .user = c->who.authenticated && c->who.sub[0] ? c->who.sub : NULL,
        .origin = gw_request_header(q, "Origin"),
        .cors_request = gw_request_header(q, "Access-Control-Request-Method") != NULL,
    };
    c->eh.n = 0;
    if (c->target->kind == GW_PREFLIGHT) {
        st = edge_preflight_headers(&v, &c->eh, detail, sizeof(detail));
        if (st == 403)
            problem(c, 403, "cors_origin_denied", NULL, "%s", detail);
        else
            answer(c, st, NULL, NULL, 0, NULL);
        return;
    }
    st = edge_limit(&v, c->target->policy, &c->eh, detail, sizeof(detail));
    if (st != 0) {
        problem(c, st, "rate_limited", NULL, "%s", detail);
        return;
    }
    if (c->target->kind == GW_FORWARD) {
        edge_cors_headers(&v, &c->eh);
        forward(c);
        return;
    }
    if (c->target->kind == GW_STATIC) {
        storefront(c);
        return;
    }
    edge_cors_headers(&v, &c->eh);
    admin_trace(c);
}

/* The headers are in: route the request, so its body is capped by its route's
 * max_body, and say "100 Continue" when the client waits for it. */
static long on_head(struct gw_request *q, void *arg)
{
    struct conn *c = arg;
    c->busy = true;
    atomic_fetch_add(&c->lp->inflight, 1);
    c->deadline_ns = souk_now_ns() + secs_ns(srv.idle_timeout_s); /* for the body */
    c->t0 = souk_now_ns();
    c->path[0] = '\0';
    c->query = "";
    c->rid[0] = '\0';
    c->route = -1;
    c->eh.n = 0;
    memset(&c->who, 0, sizeof(c->who));
    const char *rid = gw_request_header(q, "X-Request-Id");
    if (rid != NULL && valid_request_id(rid)) {
        snprintf(c->rid, sizeof(c->rid), "%s", rid);
    } else {
        char id[SOUK_ID_MAX];
        snprintf(c->rid, sizeof(c->rid), "%s", souk_id_new(id, "req"));
    }
    const char *xff = gw_request_header(q, "X-Forwarded-For");
    souk_realip_resolve(srv.trusted_proxies, c->peer, xff, c->client, sizeof(c->client));
    int st = gw_split_target(q->url, c->path, sizeof(c->path), &c->query);
    if (st != 0)
        return -st;
    struct souk_param params[SOUK_MAX_PARAMS];
    size_t np = 0;
    bool probe = (strcmp(c->path, "/healthz") == 0 || strcmp(c->path, "/readyz") == 0) &&
                 (strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0);
    int r = probe ? -2 : souk_router_match(router, q->method, c->path, params, &np);
    c->route = r;
    c->target = r >= 0 ? &targets[r] : NULL;
    c->trace_id[0] = '\0';
    for (size_t i = 0; i < np; i++)                 /* the trace view's {id} */
        if (strncmp(params[i].name, "id}", 3) == 0) /* names point into the pattern */
            snprintf(c->trace_id, sizeof(c->trace_id), "%.*s", (int)params[i].len, params[i].value);
    char name[SOUK_SPAN_NAME_MAX];
    snprintf(name, sizeof(name), r >= 0 ? "%s %s" : "%s", q->method,
             r >= 0 ? routes[r].pattern : "");
    souk_span_start_from(&c->span, SOUK_SPAN_SERVER, name, gw_request_header(q, "traceparent"));
    c->spanning = true;
    if (probe)
        souk_span_mute(&c->span);
    if (souk_span_recording(&c->span)) {
        souk_span_set_str(&c->span, "http.request.method", q->method);
        souk_span_set_str(&c->span, "url.scheme", "http");
        if (r >= 0)
            souk_span_set_str(&c->span, "http.route", routes[r].pattern);
        souk_span_set_str(&c->span, "client.address", c->client);
    }
    size_t cap = r >= 0 && routes[r].max_body ? routes[r].max_body : srv.max_body;
    if (q->p.content_length != ULLONG_MAX && q->p.content_length > cap)
        return -413;
    bool body_coming =
        (q->p.content_length != ULLONG_MAX && q->p.content_length > 0) || (q->p.flags & F_CHUNKED);
    if (q->expect_continue && body_coming) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1); /* 25 bytes on an idle socket */
    }
    return (long)cap;
}

static void refuse(struct conn *c, int status)
{
    if (!c->busy) {
        c->busy = true;
        atomic_fetch_add(&c->lp->inflight, 1);
        c->t0 = souk_now_ns();
    }
    c->close_after = true;
    c->deadline_ns = 0;
    c->route = c->route >= 0 ? c->route : -1;
    c->eh.n = 0;
    if (!c->spanning) {
        souk_span_start_from(&c->span, SOUK_SPAN_SERVER, c->q.method ? c->q.method : "-", NULL);
        c->spanning = true;
    }
    switch (status) {
    case 413:
        problem(c, 413, "body_too_large", NULL, "the request body exceeds %zu bytes",
                c->q.body.max ? c->q.body.max : srv.max_body);
        break;
    case 414:
        problem(c, 414, "uri_too_long", NULL, "the request target is too long");
        break;
    case 431:
        problem(c, 431, "header_too_large", NULL, "the request headers are too large");
        break;
    case 501:
        problem(c, 501, "unsupported_transfer_coding", NULL,
                "only the chunked transfer coding is supported");
        break;
    default:
        if (c->q.bad_framing)
            problem(c, 400, "bad_framing", NULL,
                    "the body's length is ambiguous (RFC 9112 §6.3): one Content-Length, or "
                    "Transfer-Encoding: chunked alone in HTTP/1.1");
        else
            problem(c, 400, "bad_request", NULL, "the request is malformed (%s)",
                    http_errno_name(HTTP_PARSER_ERRNO(&c->q.p)));
        break;
    }
}

static void feed(struct conn *c, const char *data, size_t n)
{
    size_t used = gw_request_feed(&c->q, data, n);
    if (c->q.state == GW_ERROR) {
        refuse(c, c->q.error);
        return;
    }
    if (c->q.state != GW_DONE)
        return;
    if (used < n && souk_buf_put(&c->rest, data + used, n - used) != 0) {
        conn_close(c); /* cannot happen: reading stops at REST_MAX */
        return;
    }
    c->deadline_ns = 0;
    if (!c->q.keep_alive || atomic_load(&draining))
        c->close_after = true;
    handle(c);
}

static void client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (c->lingering)
        return; /* read and dropped until the client closes, or LINGER_S */
    if (c->busy && c->q.state != GW_READING) { /* pipelined: after the answer */
        if (souk_buf_put(&c->rest, b->base, (size_t)n) != 0) {
            conn_close(c); /* cannot happen: reading stops at REST_MAX */
            return;
        }
        if (c->rest.len > REST_MAX) {
            uv_read_stop(s); /* enough held: the kernel buffers the rest */
            c->stopped = true;
        }
        return;
    }
    feed(c, b->base, (size_t)n);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct loop *lp = server->loop->data;
    if (status != 0)
        return;
    struct conn *c = souk_xcalloc(1, sizeof(*c));
    c->lp = lp;
    souk_buf_init(&c->rest, REST_MAX + READ_BUF);
    souk_buf_init(&c->uphead, SIZE_MAX);
    souk_buf_init(&c->out, SIZE_MAX);
    uv_tcp_init(&lp->uv, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_free);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
    else
        snprintf(c->peer, sizeof(c->peer), "-");
    if (atomic_fetch_add(&nconns, 1) >= srv.max_conns || !peer_take(c->peer)) {
        atomic_fetch_sub(&nconns, 1); /* refused as the kit's server does: closed at once */
        uv_close((uv_handle_t *)&c->tcp, conn_free);
        return;
    }
    c->counted = true;
    c->next = lp->conns;
    if (lp->conns != NULL)
        lp->conns->prev = c;
    lp->conns = c;
    uv_tcp_nodelay(&c->tcp, 1);
    gw_request_init(&c->q, on_head, c);
    c->deadline_ns = souk_now_ns() + secs_ns(srv.header_timeout_s);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, client_read);
}

/* ---- the loops ---- */

static void sweep(uv_timer_t *t)
{
    struct loop *lp = t->data;
    uint64_t now = souk_now_ns();
    for (struct conn *c = lp->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->deadline_ns != 0 && now > c->deadline_ns && !c->closing)
            conn_close(c); /* headers (or a body) too slow, or idle too long */
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    SOUK_UNUSED(arg);
    if (uv_is_closing(h))
        return;
    struct loop *lp = h->loop->data;
    if (h == (uv_handle_t *)&lp->listener || h == (uv_handle_t *)&lp->tick ||
        h == (uv_handle_t *)&lp->wake)
        uv_close(h, NULL); /* the rest are connections, closed with their memory */
}

static void on_wake(uv_async_t *a)
{
    struct loop *lp = a->data;
    if (!uv_is_closing((uv_handle_t *)&lp->listener))
        uv_close((uv_handle_t *)&lp->listener, NULL); /* draining: accept no more */
    if (!atomic_load(&stopping))
        return;
    for (struct conn *c = lp->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    for (size_t u = 0; u < UPSTREAMS_MAX; u++)
        for (size_t i = 0; i < INSTANCES_MAX; i++)
            while (lp->idle[u][i] != NULL)
                up_close(lp->idle[u][i]);
    uv_walk(&lp->uv, close_walk, NULL);
}

static void *run(void *arg)
{
    struct loop *lp = arg;
    uv_run(&lp->uv, UV_RUN_DEFAULT);
    return NULL;
}

static int open_listener(const char *host, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0)
        return -1;
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int uv_serve_start(const struct souk_serve *s, const struct souk_route *rt,
                   const struct gw_target *tg, size_t n, struct souk_upstream *const *u, size_t nu)
{
    srv = *s;
    routes = rt;
    targets = tg;
    nroutes = n;
    ups = u;
    nups = nu;
    if (nups > UPSTREAMS_MAX)
        return SOUK_EINVAL;
    router = souk_router_new(routes);
    if (router == NULL)
        return SOUK_EINVAL;
    res_settings = (http_parser_settings){.on_message_begin = rs_begin,
                                          .on_header_field = rs_field,
                                          .on_header_value = rs_value,
                                          .on_headers_complete = rs_headers,
                                          .on_body = rs_body,
                                          .on_message_complete = rs_complete};
    char host[256];
    uint16_t port = 0;
    if (souk_config_split_addr(s->listen, host, sizeof(host), &port) != 0)
        return SOUK_EINVAL;
    nloops = s->threads > 0 ? (size_t)s->threads : 1;
    if (nloops > LOOPS_MAX)
        nloops = LOOPS_MAX;
    size_t pool = souk_proxy_config()->max_connections / nloops;
    int rc = 0;
    for (size_t i = 0; i < nloops; i++) {
        struct loop *lp = &loops[i];
        lp->fd = open_listener(host, port);
        if (lp->fd < 0) {
            souk_error("cannot listen", "{s:s,s:s,s:s}", "addr", s->listen, "engine", "uv", "error",
                       strerror(errno));
            rc = SOUK_EIO;
            goto out;
        }
        uv_loop_init(&lp->uv);
        lp->uv.data = lp;
        lp->idle_max = pool > 0 ? pool : 1;
        uv_tcp_init(&lp->uv, &lp->listener);
        lp->listener.data = lp;
        uv_async_init(&lp->uv, &lp->wake, on_wake);
        lp->wake.data = lp;
        uv_timer_init(&lp->uv, &lp->tick);
        lp->tick.data = lp;
        uv_timer_start(&lp->tick, sweep, TICK_MS, TICK_MS);
        if (uv_tcp_open(&lp->listener, lp->fd) != 0 ||
            uv_listen((uv_stream_t *)&lp->listener, 1024, on_connection) != 0) {
            souk_error("cannot listen", "{s:s,s:s}", "addr", s->listen, "engine", "uv");
            rc = SOUK_EIO;
            goto out;
        }
    }
    for (size_t i = 0; i < nloops; i++) {
        if (pthread_create(&loops[i].thread, NULL, run, &loops[i]) != 0) {
            rc = SOUK_EIO;
            goto out;
        }
        loops[i].started = true;
    }
    souk_info("public listener on libuv", "{s:s,s:i}", "addr", s->listen, "loops", (int)nloops);
out:
    return rc;
}

void uv_serve_drain(uint64_t deadline_ns)
{
    atomic_store(&draining, true);
    for (size_t i = 0; i < nloops; i++)
        if (loops[i].started)
            uv_async_send(&loops[i].wake);
    for (;;) {
        long inflight = 0;
        for (size_t i = 0; i < nloops; i++)
            inflight += atomic_load(&loops[i].inflight);
        if (inflight == 0 || souk_now_ns() >= deadline_ns)
            break;
        usleep(10000);
    }
    atomic_store(&stopping, true);
    for (size_t i = 0; i < nloops; i++) {
        if (!loops[i].started)
            continue;
        uv_async_send(&loops[i].wake);
        pthread_join(loops[i].thread, NULL);
        loops[i].started = false;
    }
}
