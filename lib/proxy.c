/* proxy.c: the gateway's reverse proxy on N curl-multi event loops (SOUK_PROXY_THREADS,
 * default 1). Pool threads only prepare a job (in the request's arena) and queue it on a
 * loop, round robin. Each loop drives its own curl multi with the multi_socket API on
 * its own epoll instance, so one ready socket costs one transfer's work (not a pass
 * over every transfer in flight). Upstream state (health, breakers, outstanding
 * counts) is shared by the loops under one short lock. Bodies pass through as bytes:
 * nothing is parsed or re-encoded. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "souk/breaker.h"
#include "souk/buf.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/proxy.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define MAX_INSTANCES     32 /* one bit each in a job's tried mask */
#define MAX_UPSTREAMS     16
#define BASE_MAX          256
#define HEADER_VALUE_MAX  8192 /* one forwarded header; longer ones are refused */
#define PASS_HEADERS_MAX  12   /* upstream response headers passed on */
#define HEALTH_TIMEOUT_MS 1000
#define WARM_PROBE_MS     100 /* at start: re-probe instances not yet seen up this often */
#define POLL_MAX_MS       1000
#define LOOPS_MAX         64
#define EVENTS_MAX        64        /* epoll events taken per wakeup */
#define RESOLVE_SOON_MS   1000      /* a failed connection re-resolves at most this often */
#define RESOLVE_START_MS  3000      /* start waits this long at most for the first lookups */
#define EASY_FREE_MAX     256       /* idle easy handles kept per loop */
#define REG_FDS_MAX       (1 << 20) /* sockets whose epoll state a loop remembers */
#define REG_IN            0x01      /* in reg[fd]: registered for EPOLLIN */
#define REG_OUT           0x02      /* ... for EPOLLOUT */
#define REGISTERED        0x04      /* in our epoll set */
#define REG_IDLE          0x08      /* registered, but curl is done with it: a pooled connection */

enum kind { JOB, HEALTH };

struct instance {
    enum kind kind; /* first: CURLOPT_PRIVATE points here for health checks */
    struct souk_upstream *up;
    char base[BASE_MAX]; /* "http://127.0.0.1:8082" */
    size_t base_len;
    const char *label;   /* "127.0.0.1:8082", for metrics and logs */
    char host[BASE_MAX]; /* "127.0.0.1", "::1", "catalog" */
    int port;
    /* where to connect (state_lock): the literal address, or the host name's last good
     * resolution (resolver thread); one that failed is moved last */
    bool named; /* host is a name: resolved at start, then again and again */
    union souk_proxy_addr addr[SOUK_PROXY_ADDRS_MAX];
    size_t naddr;
    uint64_t resolve_at, resolved_ns; /* resolve_lock: the next lookup, the last one's start */
    bool resolve_failing;             /* resolver thread's: the last lookup failed */
    CURL *health;
    struct curl_slist *probe_to; /* a named instance's probe: its addresses (CURLOPT_RESOLVE) */
    bool health_busy;
    bool healthy; /* last probe answered 200, or no connection error since */
    bool slow;    /* unhealthy only because its probe timed out (not refused, not 503) */
    bool seen_up; /* a probe has answered 200 since start */
    char probe_url[BASE_MAX + 32]; /* its /readyz, on conf.probe_port_offset's port */
    int outstanding;
    struct souk_breaker breaker;
    bool available; /* healthy and breaker not open: mirrored for other threads */
};

struct souk_upstream {
    char name[32];
    struct instance inst[MAX_INSTANCES];
    size_t n;
    size_t rr; /* round-robin start among equals */
    _Atomic size_t available;
};

struct pass_header {
    char *name, *value;
};

struct loop;

struct job {
    enum kind kind;
    struct job *next;
    struct loop *lp; /* the loop that runs this job's transfers */
    struct souk_req *r;
    struct souk_upstream *up;
    struct instance *inst;
    CURL *easy;
    struct curl_slist *headers; /* arena nodes: never freed by curl */
    const char *method, *pathq;
    const char *body;
    size_t body_len;
    bool retryable; /* idempotent: may be sent twice */
    int attempts;
    uint32_t tried;
    uint64_t t0;
    /* the response of the current attempt */
    long status;
    struct souk_buf body_in; /* capped by SOUK_UPSTREAM_MAX_RESPONSE */
    bool too_big;
    char *content_type;
    struct pass_header pass[PASS_HEADERS_MAX];
    size_t npass;
    struct souk_span span; /* the client span of the whole exchange, retries included */
};

/* One event loop: a thread, its curl multi (and so its own keep-alive pool), its
 * epoll set, its queue of jobs from the pool threads and its idle easy handles. */
struct loop {
    CURLM *multi;
    int epfd;
    int wakefd; /* eventfd: a job was queued while the loop slept */
    pthread_t thread;
    bool started;
    atomic_bool asleep; /* the loop is (about to be) in epoll_wait */
    pthread_mutex_t queue_lock;
    struct job *queue_head, **queue_tail;
    bool timer_set; /* curl asked for a timeout call at timer_at */
    uint64_t timer_at;
    CURL *easy_free[EASY_FREE_MAX]; /* idle handles with only the constant options set */
    size_t neasy_free;
    /* Each socket's epoll state, by number (REG_*). A pooled connection stays in the
     * epoll set between its transfers, so reusing it costs no epoll_ctl. */
    uint8_t *reg;
    size_t nreg;
};

static struct souk_proxy_conf conf;
static struct souk_upstream *upstreams[MAX_UPSTREAMS];
static size_t nupstreams;
static struct loop loops[LOOPS_MAX];
static size_t nloops;
static atomic_size_t next_loop; /* round robin over the loops */
static atomic_bool stopping;
static atomic_bool running;
static uint64_t started_ns;
static atomic_bool warm; /* every upstream had an instance seen up (or the wait ended) */
/* Every upstream's instance state (healthy, breaker, outstanding): held only for a
 * pick or a bookkeeping step, never across a curl call or a resume. */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;

static struct souk_metric *m_requests, *m_duration, *m_retries, *m_up;

/* ---- upstream declarations ---- */

/* in->label's host and port ("127.0.0.1:8082", "[::1]:8082", "catalog"): an address
 * literal becomes in->addr at once; a name is left to the resolver (in->named). 0, or
 * -1 for an empty host, an unclosed bracket or a port out of range. */
static int parse_host(struct instance *in, int default_port)
{
    const char *lab = in->label, *hs = lab, *he, *port = NULL;
    size_t hl = strcspn(lab, "/");
    if (hl > 0 && lab[0] == '[') {
        const char *rb = memchr(lab, ']', hl);
        if (rb == NULL || (rb + 1 < lab + hl && rb[1] != ':'))
            return -1;
        hs = lab + 1;
        he = rb;
        port = rb + 1 < lab + hl ? rb + 2 : NULL;
    } else {
        const char *colon = memchr(lab, ':', hl);
        he = colon != NULL ? colon : lab + hl;
        port = colon != NULL ? colon + 1 : NULL;
    }
    char *end = NULL;
    long p = port != NULL ? strtol(port, &end, 10) : default_port;
    if (he == hs || p < 1 || p > 65535 || (port != NULL && end != lab + hl))
        return -1;
    in->port = (int)p;
    snprintf(in->host, sizeof(in->host), "%.*s", (int)(he - hs), hs);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", in->port);
    if (getaddrinfo(in->host, ps, &hints, &res) != 0 || res == NULL) { /* a name, no lookup */
        in->named = true;
        return 0;
    }
    if (res->ai_addrlen <= sizeof(in->addr[0])) {
        memcpy(&in->addr[0], res->ai_addr, res->ai_addrlen);
        in->naddr = 1;
    }
    freeaddrinfo(res);
    return in->naddr == 1 ? 0 : -1;
}

struct souk_upstream *souk_upstream_new(const char *name, const char *urls)
{
    if (nupstreams == MAX_UPSTREAMS || urls == NULL)
        return NULL;
    struct souk_upstream *u = souk_xcalloc(1, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    const char *p = urls;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        while (len > 0 && p[len - 1] == '/')
            len--;
        bool http = len > 7 && strncmp(p, "http://", 7) == 0;
        bool https = len > 8 && strncmp(p, "https://", 8) == 0;
        if (u->n == MAX_INSTANCES || len >= BASE_MAX || !(http || https)) {
            char shown[BASE_MAX * 2];
            souk_error("bad upstream url", "{s:s,s:s}", "upstream", name, "urls",
                       souk_config_redact_url(urls, shown, sizeof(shown)));
            free(u);
            return NULL;
        }
        struct instance *in = &u->inst[u->n++];
        in->kind = HEALTH;
        in->up = u;
        memcpy(in->base, p, len);
        in->base[len] = '\0';
        in->base_len = len;
        in->label = in->base + (http ? 7 : 8);
        if (parse_host(in, http ? 80 : 443) != 0) {
            char shown[BASE_MAX * 2];
            souk_error("bad upstream url", "{s:s,s:s}", "upstream", name, "urls",
                       souk_config_redact_url(urls, shown, sizeof(shown)));
            free(u);
            return NULL;
        }
        in->healthy = true; /* until a probe or a request says otherwise */
        in->available = true;
        p += strcspn(p, ",");
    }
    if (u->n == 0) {
        souk_error("empty upstream url list", "{s:s}", "upstream", name);
        free(u);
        return NULL;
    }
    u->available = u->n;
    upstreams[nupstreams++] = u;
    return u;
}

const char *souk_upstream_name(const struct souk_upstream *u) { return u->name; }
size_t souk_upstream_instances(const struct souk_upstream *u) { return u->n; }
size_t souk_upstream_available(const struct souk_upstream *u) { return atomic_load(&u->available); }

/* ---- instance state (loop threads, under state_lock) ---- */

static void publish(struct souk_upstream *u, uint64_t now)
{
    size_t n = 0, slow = 0;
    for (size_t i = 0; i < u->n; i++) {
        struct instance *in = &u->inst[i];
        in->available = in->healthy && !souk_breaker_is_open(&in->breaker, now);
        n += in->available;
        slow += !in->healthy && in->slow && !souk_breaker_is_open(&in->breaker, now);
    }
    atomic_store(&u->available, n > 0 ? n : slow); /* pick()'s panic when none is healthy */
}

static bool eligible(const struct instance *in, uint64_t now)
{
    return in->healthy && souk_breaker_ready(&in->breaker, now);
}

/* Least outstanding requests among eligible instances not tried yet; ties go round
 * robin so equal instances share the load. */
static struct instance *pick(struct souk_upstream *u, uint32_t tried, uint64_t now)
{
    struct instance *best = NULL;
    size_t start = u->rr++;
    for (size_t k = 0; k < u->n; k++) {
        size_t i = (start + k) % u->n;
        struct instance *in = &u->inst[i];
        if ((tried & (1u << i)) || !eligible(in, now))
            continue;
        if (best == NULL || in->outstanding < best->outstanding)
            best = in;
    }
    /* Panic (Envoy's panic threshold at its strictest): when no instance is
     * eligible, one whose only fault is a probe that timed out still takes the
     * request. A slow instance is not a dead one: under overload its probe waits
     * behind its requests, and ejecting the last instance turns slow answers into
     * 503s for everyone. A refused connection, a lost one, a 503 from /readyz
     * (starting, draining) or an open breaker still keep it out. */
    for (size_t k = 0; best == NULL && k < u->n; k++) {
        struct instance *in = &u->inst[(start + k) % u->n];
        if (!(tried & (1u << ((start + k) % u->n))) && !in->healthy && in->slow &&
            souk_breaker_ready(&in->breaker, now))
            best = in;
    }
    if (best != NULL)
        souk_breaker_allow(&best->breaker, now); /* an open one's trial: this request */
    return best;
}

static void breaker_report(struct instance *in, enum souk_breaker_outcome outcome, uint64_t now)
{
    if (souk_breaker_report(&in->breaker, outcome, now))
        souk_warn("upstream breaker open", "{s:s,s:s,s:i}", "upstream", in->up->name, "instance",
                  in->label, "failures", in->breaker.failures);
}

/* slow: the failure was a probe's timeout alone (see pick()'s panic). */
static void set_healthy(struct instance *in, bool ok, bool slow, const char *why)
{
    in->slow = !ok && slow;
    if (in->healthy == ok)
        return;
    in->healthy = ok;
    if (ok)
        souk_breaker_retry_now(&in->breaker); /* back: let a trial request through at once */
    souk_metric_set(m_up, ok ? 1 : 0, in->up->name, in->label);
    if (ok)
        souk_info("upstream instance up", "{s:s,s:s}", "upstream", in->up->name, "instance",
                  in->label);
    else
        souk_warn("upstream instance down", "{s:s,s:s,s:s}", "upstream", in->up->name, "instance",
                  in->label, "why", why);
}

/* ---- the pool thread's side: prepare and queue ---- */

static struct curl_slist *add_header(struct souk_req *r, struct curl_slist *list, const char *name,
                                     const char *value)
{
    struct curl_slist *node = souk_req_alloc(r, sizeof(*node));
    node->data = souk_req_printf(r, "%s: %s", name, value);
    node->next = list;
    return node;
}

static const char *const forwarded[] = {
    "Authorization",   "Content-Type",      "Accept",
    "Accept-Language", "Idempotency-Key",   "If-Match",
    "If-None-Match",   "If-Modified-Since", "User-Agent",
};

/* Percent-encode the decoded path back (RFC 3986 pchar and "/" stay). Refuses "."
 * and ".." segments so no upstream ever resolves a path the router did not see. */
long souk_proxy_encode_path(const char *path, const char *query, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, q = strlen(query);
    for (const char *p = path; *p; p++) {
        if (*p == '/' && p[1] == '.' &&
            (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
            return -1;
        if (o + 4 > cap)
            return -1;
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~!$&'()*+,;=:@/", c) != NULL) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (q > 0) {
        if (o + q + 2 > cap)
            return -1;
        out[o++] = '?';
        memcpy(out + o, query, q);
        o += q;
    }
    if (o + 1 > cap)
        return -1;
    out[o] = '\0';
    return (long)o;
}

static char *encode_path(struct souk_req *r, const char *path, const char *query)
{
    size_t cap = strlen(path) * 3 + strlen(query) + 2;
    char *out = souk_req_alloc(r, cap);
    return souk_proxy_encode_path(path, query, out, cap) < 0 ? NULL : out;
}

static void wake(struct loop *lp)
{
    uint64_t one = 1;
    if (write(lp->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        souk_warn("proxy wakeup failed", "{s:s}", "error", strerror(errno));
}

/* ---- the exchange's span (docs/tracing.md): a child of the request's ---- */

static void span_begin(struct job *j)
{
    const struct souk_span *cur = souk_trace_current(); /* the request's server span */
    struct souk_span_ctx ctx;
    if (cur != NULL)
        souk_span_start(&j->span, SOUK_SPAN_CLIENT, j->method, &cur->ctx, false);
    else
        souk_span_start(&j->span, SOUK_SPAN_CLIENT, j->method,
                        souk_trace_ctx_parse(souk_req_traceparent(j->r), &ctx) ? &ctx : NULL,
                        false);
    souk_span_set_str(&j->span, "http.request.method", j->method);
    souk_span_set_str(&j->span, "souk.upstream", j->up->name);
}

/* At the answer: the instance that gave it, the status or what went wrong. */
static void span_end(struct job *j, int status, const char *error)
{
    struct souk_span *s = &j->span;
    if (souk_span_recording(s)) {
        if (j->inst != NULL) {
            const char *colon = strrchr(j->inst->label, ':');
            char host[BASE_MAX];
            snprintf(host, sizeof(host), "%.*s",
                     (int)(colon ? (size_t)(colon - j->inst->label) : strlen(j->inst->label)),
                     j->inst->label);
            souk_span_set_str(s, "server.address", host);
            if (colon != NULL)
                souk_span_set_int(s, "server.port", strtol(colon + 1, NULL, 10));
            souk_span_set_str(s, "url.full", j->inst->base); /* the path is the request's */
        }
        if (j->attempts > 1)
            souk_span_set_int(s, "http.request.resend_count", j->attempts - 1);
        if (error == NULL)
            souk_span_set_int(s, "http.response.status_code", status);
        if (error != NULL || status >= 400) {
            char code[16];
            snprintf(code, sizeof(code), "%d", status);
            souk_span_set_str(s, "error.type", error ? error : code);
            souk_span_set_status(s, SOUK_SPAN_ERROR, error);
        }
    }
    souk_span_end(s);
}

static bool idempotent(const char *method, bool has_key)
{
    return has_key || strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

int souk_proxy_forward(struct souk_req *r, struct souk_upstream *u)
{
    if (!running)
        return souk_problem(r, 503, "no_upstream", "the proxy is not running");
    struct job *j = souk_req_alloc(r, sizeof(*j));
    memset(j, 0, sizeof(*j));
    j->kind = JOB;
    souk_buf_init(&j->body_in, conf.max_response);
    j->r = r;
    j->up = u;
    j->method = souk_req_method(r);
    j->pathq = encode_path(r, souk_req_path(r), souk_req_query_string(r));
    if (j->pathq == NULL)
        return souk_problem(r, 404, "not_found", "no route for %s", souk_req_path(r));
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < SOUK_ARRAY_LEN(forwarded); i++) {
        const char *v = souk_req_header(r, forwarded[i]);
        if (v == NULL)
            continue;
        if (strlen(v) > HEADER_VALUE_MAX)
            return souk_problem(r, 431, "header_too_large", "the %s header is too large",
                                forwarded[i]);
        h = add_header(r, h, forwarded[i], v);
    }
    h = add_header(r, h, "X-Request-Id", souk_req_id(r));
    span_begin(j);
    h = add_header(r, h, "traceparent", j->span.traceparent);
    /* One address, the client's as the kit resolved it: the peer, or the client a
     * proxy the gateway trusts (SOUK_TRUSTED_PROXIES) names. What a client sent as
     * X-Forwarded-For itself is never passed on, so it cannot pose as another. */
    h = add_header(r, h, "X-Forwarded-For", souk_req_client_addr(r));
    /* no "Expect: 100-continue" round trip; curl adds an Accept unless told not to */
    h = add_header(r, h, "Expect", "");
    if (souk_req_header(r, "Accept") == NULL)
        h = add_header(r, h, "Accept", "");
    j->headers = h;
    j->body = souk_req_body(r, &j->body_len);
    j->retryable = idempotent(j->method, souk_req_header(r, "Idempotency-Key") != NULL);
    j->t0 = souk_now_ns();

    struct loop *lp = j->lp = &loops[atomic_fetch_add(&next_loop, 1) % nloops];
    pthread_mutex_lock(&lp->queue_lock);
    *lp->queue_tail = j;
    lp->queue_tail = &j->next;
    pthread_mutex_unlock(&lp->queue_lock);
    /* a busy loop takes the queue on its next turn: wake it only when it sleeps */
    if (atomic_exchange(&lp->asleep, false))
        wake(lp);
    return SOUK_SUSPEND;
}

/* ---- the loop threads' side ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg);
static size_t on_header(char *data, size_t size, size_t n, void *arg);

/* CURLOPT_CLOSESOCKETFUNCTION: the socket's number forgets its epoll state (closing
 * it takes it out of the set), so a new socket given that number is added afresh. */
static int on_close(void *clientp, curl_socket_t s)
{
    struct loop *lp = clientp;
    if (s >= 0 && (size_t)s < lp->nreg)
        lp->reg[s] = 0;
    return close(s);
}

/* Options every proxied transfer shares, set once per handle (not after each
 * request: curl_easy_reset and setting them again showed in the profile). */
static void easy_constants(CURL *e, struct loop *lp)
{
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, lp);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, conf.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conf.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
}

static CURL *easy_get(struct loop *lp)
{
    if (lp->neasy_free > 0)
        return lp->easy_free[--lp->neasy_free];
    CURL *e = curl_easy_init();
    if (e == NULL)
        souk_oom();
    easy_constants(e, lp);
    return e;
}

/* Back to the loop's free list. A handle that carried anything but a plain GET is
 * reset first, so a handle taken from the list needs only the per-request options. */
static void easy_put(struct loop *lp, CURL *e, bool plain)
{
    if (lp->neasy_free == EASY_FREE_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    if (!plain) {
        curl_easy_reset(e);
        easy_constants(e, lp);
    }
    lp->easy_free[lp->neasy_free++] = e;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (souk_buf_put(&j->body_in, data, len) != 0) {
        j->too_big = true;
        return 0; /* aborts the transfer */
    }
    return len;
}

bool souk_proxy_hop_header(const char *name, size_t n)
{
    static const char *const skip[] = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "date",
        "server",
        "x-request-id",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "content-type",
        "ratelimit",
        "ratelimit-policy",
        "vary",
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(skip); i++)
        if (strlen(skip[i]) == n && strncasecmp(name, skip[i], n) == 0)
            return true;
    return (n > 7 && strncasecmp(name, "x-souk-", 7) == 0) ||
           (n > 15 && strncasecmp(name, "access-control-", 15) == 0);
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        j->npass = 0; /* a new response (after a 100 Continue): start over */
        j->content_type = NULL;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct souk_req *r = j->r;
    if (nlen == 12 && strncasecmp(data, "content-type", 12) == 0) {
        j->content_type = souk_arena_strndup(souk_req_arena(r), v, (size_t)(end - v));
    } else if (nlen == 14 && strncasecmp(data, "content-length", 14) == 0) {
        size_t want = strtoull(v, NULL, 10);
        if (want > 0)
            souk_buf_reserve(&j->body_in, want); /* one allocation; over the cap: on_body refuses */
    } else if (!souk_proxy_hop_header(data, nlen) && j->npass < PASS_HEADERS_MAX) {
        j->pass[j->npass].name = souk_arena_strndup(souk_req_arena(r), data, nlen);
        j->pass[j->npass].value = souk_arena_strndup(souk_req_arena(r), v, (size_t)(end - v));
        j->npass++;
    }
    return len;
}

static void answer(struct job *j, int status, const char *error)
{
    span_end(j, status, error);
    struct souk_req *r = j->r;
    j->r = NULL;
    souk_req_resume(r, status); /* r may be gone after this */
}

static void fail(struct job *j, int status, const char *code, const char *detail)
{
    souk_buf_free(&j->body_in);
    souk_problem(j->r, status, code, "%s: %s", j->up->name, detail);
    answer(j, status, code);
}

static void launch(struct job *j, struct instance *in);

static const char *status_label(long status);

/* The end of an attempt on in, whoever made it (curl here, the gateway's own data
 * path through souk_proxy_report): metrics, the breaker, passive ejection. */
static void account(struct instance *in, enum souk_proxy_outcome o, int status, const char *why,
                    uint64_t duration_ns, uint64_t now)
{
    souk_metric_observe(m_duration, (double)duration_ns / 1e9, in->up->name, in->label);
    souk_metric_inc(m_requests, in->up->name, in->label,
                    o == SOUK_PROXY_ANSWERED ? status_label(status) : "error");
    pthread_mutex_lock(&state_lock);
    in->outstanding--;
    if (o == SOUK_PROXY_ANSWERED) {
        bool was_closed = in->breaker.state == SOUK_BREAKER_CLOSED;
        breaker_report(in, status >= 500 ? SOUK_BREAKER_FAILED : SOUK_BREAKER_OK, now);
        if (status >= 500 || !was_closed)
            publish(in->up, now);
    } else if (o != SOUK_PROXY_TOO_BIG) {
        if (o == SOUK_PROXY_REFUSED || o == SOUK_PROXY_LOST)
            set_healthy(in, false, false, why); /* passive ejection */
        breaker_report(in, o == SOUK_PROXY_REFUSED ? SOUK_BREAKER_REFUSED : SOUK_BREAKER_FAILED,
                       now);
        publish(in->up, now);
    }
    pthread_mutex_unlock(&state_lock);
}

bool souk_proxy_pick(struct souk_upstream *u, unsigned tried, struct souk_proxy_target *t)
{
    pthread_mutex_lock(&state_lock);
    struct instance *in = pick(u, (uint32_t)tried, souk_now_ns());
    if (in != NULL) {
        in->outstanding++;
        t->naddr = in->naddr; /* under the lock: the resolver may be replacing them */
        memcpy(t->addr, in->addr, in->naddr * sizeof(in->addr[0]));
    }
    pthread_mutex_unlock(&state_lock);
    if (in == NULL)
        return false;
    t->index = (int)(in - u->inst);
    t->host = in->host;
    t->port = in->port;
    t->hostport = in->label;
    t->https = strncmp(in->base, "https://", 8) == 0;
    return true;
}

void souk_proxy_report(struct souk_upstream *u, int index, enum souk_proxy_outcome o, int status,
                       uint64_t duration_ns)
{
    static const char *const why[] = {
        [SOUK_PROXY_REFUSED] = "connection refused",
        [SOUK_PROXY_LOST] = "connection lost",
    };
    if (index < 0 || (size_t)index >= u->n)
        return;
    account(&u->inst[index], o, status, o < SOUK_ARRAY_LEN(why) && why[o] ? why[o] : "error",
            duration_ns, souk_now_ns());
}

void souk_proxy_count_retry(struct souk_upstream *u) { souk_metric_inc(m_retries, u->name); }

/* ---- host names: a thread of its own resolves them (getaddrinfo blocks), never a loop
 * or a request ---- */

static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resolve_cond; /* on CLOCK_MONOTONIC: a lookup is due, or stop */
static pthread_t resolver;
static atomic_bool resolver_started; /* read by the loops (souk_proxy_address_failed) */
static bool first_pass_done;

static socklen_t addr_len(const union souk_proxy_addr *a)
{
    return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in4);
}

static bool addr_equal(const union souk_proxy_addr *a, const union souk_proxy_addr *b)
{
    return a->sa.sa_family == b->sa.sa_family && memcmp(a, b, addr_len(a)) == 0;
}

/* "10.0.0.7:8082 [fd00::7]:8082" for the log */
static void addrs_text(const union souk_proxy_addr *a, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        char ip[INET6_ADDRSTRLEN] = "?";
        bool v6 = a[i].sa.sa_family == AF_INET6;
        inet_ntop(a[i].sa.sa_family, v6 ? (const void *)&a[i].in6.sin6_addr : &a[i].in4.sin_addr,
                  ip, sizeof(ip));
        int port = ntohs(v6 ? a[i].in6.sin6_port : a[i].in4.sin_port);
        int k = snprintf(out + o, cap - o, "%s%s%s%s:%d", i ? " " : "", v6 ? "[" : "", ip,
                         v6 ? "]" : "", port);
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

/* One lookup of in's host name (blocking: the resolver thread's). A new answer
 * replaces the addresses (the order kept when it is the same set), a failure keeps
 * the last good one; changes are logged, a failing name once per streak. */
static void resolve(struct instance *in)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", in->port);
    int rc = getaddrinfo(in->host, port, &hints, &res);
    union souk_proxy_addr got[SOUK_PROXY_ADDRS_MAX];
    size_t n = 0;
    for (struct addrinfo *ai = rc == 0 ? res : NULL; ai != NULL && n < SOUK_PROXY_ADDRS_MAX;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(got[0]))
            continue;
        memset(&got[n], 0, sizeof(got[n]));
        memcpy(&got[n], ai->ai_addr, ai->ai_addrlen);
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = addr_equal(&got[k], &got[n]);
        n += !dup;
    }
    if (res != NULL)
        freeaddrinfo(res);
    if (n == 0) {
        pthread_mutex_lock(&state_lock);
        bool kept = in->naddr > 0;
        pthread_mutex_unlock(&state_lock);
        if (!in->resolve_failing)
            souk_warn("upstream host does not resolve", "{s:s,s:s,s:s,s:s,s:s}", "upstream",
                      in->up->name, "instance", in->label, "host", in->host, "error",
                      rc != 0 ? gai_strerror(rc) : "no IPv4 or IPv6 address", "addresses",
                      kept ? "the last good ones, kept"
                           : "none yet: 503 no_upstream until it resolves");
        in->resolve_failing = true;
        return;
    }
    pthread_mutex_lock(&state_lock);
    bool same = n == in->naddr;
    for (size_t i = 0; i < n && same; i++) {
        bool found = false;
        for (size_t k = 0; k < in->naddr && !found; k++)
            found = addr_equal(&got[i], &in->addr[k]);
        same = found;
    }
    if (!same) {
        memcpy(in->addr, got, n * sizeof(got[0]));
        in->naddr = n;
    }
    pthread_mutex_unlock(&state_lock);
    if (!same || in->resolve_failing) {
        char text[SOUK_PROXY_ADDRS_MAX * (INET6_ADDRSTRLEN + 10)];
        addrs_text(got, n, text, sizeof(text));
        souk_info("upstream host resolved", "{s:s,s:s,s:s,s:s,s:b}", "upstream", in->up->name,
                  "instance", in->label, "host", in->host, "addresses", text, "changed", !same);
    }
    in->resolve_failing = false;
}

static void *resolve_loop(void *arg)
{
    SOUK_UNUSED(arg);
    uint64_t every =
        (uint64_t)(conf.resolve_interval_ms > 0 ? conf.resolve_interval_ms : 10000) * 1000000u;
    pthread_mutex_lock(&resolve_lock);
    while (!atomic_load(&stopping)) {
        uint64_t next = UINT64_MAX;
        for (size_t u = 0; u < nupstreams; u++) {
            for (size_t i = 0; i < upstreams[u]->n; i++) {
                struct instance *in = &upstreams[u]->inst[i];
                if (!in->named)
                    continue;
                uint64_t now = souk_now_ns();
                if (in->resolve_at <= now) {
                    in->resolved_ns = now;
                    in->resolve_at = now + every;
                    pthread_mutex_unlock(&resolve_lock);
                    resolve(in);
                    pthread_mutex_lock(&resolve_lock);
                }
                if (in->resolve_at < next)
                    next = in->resolve_at;
            }
        }
        if (!first_pass_done) {
            first_pass_done = true;
            pthread_cond_broadcast(&resolve_cond);
        }
        if (atomic_load(&stopping))
            break;
        struct timespec ts = {.tv_sec = (time_t)(next / 1000000000u),
                              .tv_nsec = (long)(next % 1000000000u)};
        pthread_cond_timedwait(&resolve_cond, &resolve_lock, &ts);
    }
    pthread_mutex_unlock(&resolve_lock);
    return NULL;
}

/* Start the resolver when an instance is named, and wait a little for its first pass,
 * so that requests find addresses from the start; a slow resolver delays nothing
 * more than RESOLVE_START_MS (its instances answer 503 meanwhile). */
static int resolver_start(void)
{
    bool any = false;
    for (size_t u = 0; u < nupstreams && !any; u++)
        for (size_t i = 0; i < upstreams[u]->n && !any; i++)
            any = upstreams[u]->inst[i].named;
    if (!any)
        return 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&resolve_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&resolver, NULL, resolve_loop, NULL) != 0)
        return SOUK_EIO;
    resolver_started = true;
    uint64_t until = souk_now_ns() + (uint64_t)RESOLVE_START_MS * 1000000u;
    struct timespec ts = {.tv_sec = (time_t)(until / 1000000000u),
                          .tv_nsec = (long)(until % 1000000000u)};
    pthread_mutex_lock(&resolve_lock);
    while (!first_pass_done)
        if (pthread_cond_timedwait(&resolve_cond, &resolve_lock, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&resolve_lock);
    return 0;
}

/* Stop asking; a lookup under way is left to finish (or to the process's exit: one may
 * block for seconds, longer than a drain should wait). */
static void resolver_stop(void)
{
    if (!resolver_started)
        return;
    pthread_mutex_lock(&resolve_lock);
    pthread_cond_broadcast(&resolve_cond);
    pthread_mutex_unlock(&resolve_lock);
    pthread_detach(resolver);
    resolver_started = false;
}

void souk_proxy_address_failed(struct souk_upstream *u, int index, const struct sockaddr *addr)
{
    if (index < 0 || (size_t)index >= u->n)
        return;
    struct instance *in = &u->inst[index];
    if (addr != NULL) {
        union souk_proxy_addr a;
        memset(&a, 0, sizeof(a));
        memcpy(&a, addr, addr->sa_family == AF_INET6 ? sizeof(a.in6) : sizeof(a.in4));
        pthread_mutex_lock(&state_lock);
        for (size_t i = 0; i + 1 < in->naddr; i++) {
            if (addr_equal(&in->addr[i], &a)) { /* to the end, the others keep their order */
                memmove(&in->addr[i], &in->addr[i + 1], (in->naddr - i - 1) * sizeof(a));
                in->addr[in->naddr - 1] = a;
                break;
            }
        }
        pthread_mutex_unlock(&state_lock);
    }
    if (!in->named || !resolver_started)
        return;
    pthread_mutex_lock(&resolve_lock);
    uint64_t soon = in->resolved_ns + (uint64_t)RESOLVE_SOON_MS * 1000000u;
    if (soon < in->resolve_at) {
        in->resolve_at = soon;
        pthread_cond_broadcast(&resolve_cond);
    }
    pthread_mutex_unlock(&resolve_lock);
}

const struct souk_proxy_conf *souk_proxy_config(void) { return &conf; }

/* The instance for the next attempt, counted as outstanding; NULL when none. */
static struct instance *take_instance(struct job *j, uint64_t now)
{
    pthread_mutex_lock(&state_lock);
    struct instance *in = pick(j->up, j->tried, now);
    if (in != NULL)
        in->outstanding++;
    pthread_mutex_unlock(&state_lock);
    return in;
}

static void start_attempt(struct job *j, uint64_t now)
{
    struct instance *in = take_instance(j, now);
    if (in == NULL)
        fail(j, 503, "no_upstream", "no healthy instance");
    else
        launch(j, in);
}

/* Another attempt on another instance, if the rules allow one. */
static bool retry(struct job *j, uint64_t now)
{
    if (j->attempts > conf.retries)
        return false;
    struct instance *in = take_instance(j, now);
    if (in == NULL)
        return false;
    souk_metric_inc(m_retries, j->up->name);
    souk_span_add_event(&j->span, "retry");
    launch(j, in);
    return true;
}

static bool plain_get(const struct job *j) { return strcmp(j->method, "GET") == 0; }

static void launch(struct job *j, struct instance *in)
{
    j->inst = in;
    j->tried |= 1u << (in - j->up->inst);
    j->attempts++;
    j->status = 0;
    souk_buf_reset(&j->body_in);
    j->npass = 0;
    j->content_type = NULL;
    j->too_big = false;

    CURL *e = j->easy = easy_get(j->lp);
    size_t plen = strlen(j->pathq);
    char *url = souk_req_alloc(j->r, in->base_len + plen + 1);
    memcpy(url, in->base, in->base_len);
    memcpy(url + in->base_len, j->pathq, plen + 1);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    if (strcmp(j->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!plain_get(j)) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, j->method);
        if (j->body_len > 0 || strcmp(j->method, "POST") == 0 || strcmp(j->method, "PUT") == 0 ||
            strcmp(j->method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        }
    }
    if (curl_multi_add_handle(j->lp->multi, e) != CURLM_OK) {
        pthread_mutex_lock(&state_lock);
        in->outstanding--;
        pthread_mutex_unlock(&state_lock);
        easy_put(j->lp, e, plain_get(j));
        j->easy = NULL;
        fail(j, 502, "bad_gateway", "cannot start the upstream call");
    }
}

static const char *status_label(long status)
{
    static const char *const codes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    return status >= 100 && status < 600 ? codes[status / 100 - 1] : "error";
}

static void finish_job(struct loop *lp, struct job *j, CURLcode rc, uint64_t now)
{
    struct instance *in = j->inst;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->status);
    curl_multi_remove_handle(lp->multi, j->easy);
    easy_put(lp, j->easy, plain_get(j));
    j->easy = NULL;
    uint64_t took = now - j->t0;
    j->t0 = now;

    if (rc == CURLE_OK) {
        bool gateway_error = j->status == 502 || j->status == 503 || j->status == 504;
        account(in, SOUK_PROXY_ANSWERED, (int)j->status, NULL, took, now);
        if (gateway_error && j->retryable && retry(j, now))
            return;
        struct souk_req *r = j->r;
        for (size_t i = 0; i < j->npass; i++)
            souk_reply_header(r, j->pass[i].name, j->pass[i].value);
        if (j->body_in.len > 0 || j->content_type != NULL) {
            size_t len;
            char *body = souk_buf_take(&j->body_in, &len);
            souk_reply_raw(r, j->content_type ? j->content_type : "application/octet-stream", body,
                           len, true);
        }
        souk_buf_free(&j->body_in); /* an empty final answer after a retried attempt */
        answer(j, (int)j->status, NULL);
        return;
    }

    bool never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
    bool conn_lost = rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
    enum souk_proxy_outcome o = j->too_big                       ? SOUK_PROXY_TOO_BIG
                                : never_sent                     ? SOUK_PROXY_REFUSED
                                : conn_lost                      ? SOUK_PROXY_LOST
                                : rc == CURLE_OPERATION_TIMEDOUT ? SOUK_PROXY_TIMEOUT
                                                                 : SOUK_PROXY_FAILED;
    account(in, o, 0, curl_easy_strerror(rc), took, now);
    if (j->too_big) {
        fail(j, 502, "bad_gateway", "the upstream response is too large");
        return;
    }
    if ((never_sent || j->retryable) && retry(j, now))
        return;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        fail(j, 504, "upstream_timeout", "the upstream did not answer in time");
    else if (never_sent)
        fail(j, 503, "no_upstream", "no instance is reachable");
    else
        fail(j, 502, "bad_gateway", curl_easy_strerror(rc));
}

static void finish_health(struct loop *lp, struct instance *in, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(in->health, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(lp->multi, in->health);
    in->health_busy = false;
    bool ok = rc == CURLE_OK && status == 200;
    pthread_mutex_lock(&state_lock);
    set_healthy(in, ok, rc == CURLE_OPERATION_TIMEDOUT,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "readyz not 200");
    in->seen_up = in->seen_up || ok;
    publish(in->up, souk_now_ns());
    pthread_mutex_unlock(&state_lock);
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    SOUK_UNUSED(data);
    SOUK_UNUSED(arg);
    return size * n;
}

/* A named instance's probe goes to the addresses the resolver found, in its order,
 * where requests go, not through curl's own look-up and its minute-long cache: a
 * Service that moved is probed, and so seen up again, at its new address as soon as
 * the resolver has it. */
static void probe_target(struct instance *in)
{
    int port = in->port + conf.probe_port_offset;
    char entry[2 * BASE_MAX + SOUK_PROXY_ADDRS_MAX * (INET6_ADDRSTRLEN + 3)];
    int n = snprintf(entry, sizeof(entry), "%s:%d:", in->host, port);
    size_t o = n > 0 ? (size_t)n : 0, naddr = 0;
    pthread_mutex_lock(&state_lock);
    for (size_t i = 0; i < in->naddr && o < sizeof(entry); i++, naddr++) {
        char ip[INET6_ADDRSTRLEN] = "";
        bool v6 = in->addr[i].sa.sa_family == AF_INET6;
        inet_ntop(in->addr[i].sa.sa_family,
                  v6 ? (const void *)&in->addr[i].in6.sin6_addr : &in->addr[i].in4.sin_addr, ip,
                  sizeof(ip));
        n = snprintf(entry + o, sizeof(entry) - o, "%s%s%s%s", i ? "," : "", v6 ? "[" : "", ip,
                     v6 ? "]" : "");
        o += n > 0 ? (size_t)n : 0;
    }
    pthread_mutex_unlock(&state_lock);
    char drop[BASE_MAX + 16]; /* the entry set before, replaced */
    snprintf(drop, sizeof(drop), "-%s:%d", in->host, port);
    curl_slist_free_all(in->probe_to);
    in->probe_to = curl_slist_append(NULL, drop);
    if (naddr > 0 && o < sizeof(entry) && in->probe_to != NULL)
        in->probe_to = curl_slist_append(in->probe_to, entry);
    curl_easy_setopt(in->health, CURLOPT_RESOLVE, in->probe_to);
}

/* Health probes run on the first loop only; unseen_only probes just the instances
 * no probe has found up yet (the quick rounds at start). */
static void probe_all(struct loop *lp, bool unseen_only)
{
    for (size_t u = 0; u < nupstreams; u++) {
        for (size_t i = 0; i < upstreams[u]->n; i++) {
            struct instance *in = &upstreams[u]->inst[i];
            if (in->health_busy || (unseen_only && in->seen_up))
                continue;
            if (in->health == NULL) {
                in->health = curl_easy_init();
                if (in->health == NULL)
                    souk_oom();
                curl_easy_setopt(in->health, CURLOPT_URL, in->probe_url);
                curl_easy_setopt(in->health, CURLOPT_PRIVATE, in);
                curl_easy_setopt(in->health, CURLOPT_CLOSESOCKETFUNCTION, on_close);
                curl_easy_setopt(in->health, CURLOPT_CLOSESOCKETDATA, lp);
                curl_easy_setopt(in->health, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(in->health, CURLOPT_TIMEOUT_MS, (long)HEALTH_TIMEOUT_MS);
                curl_easy_setopt(in->health, CURLOPT_WRITEFUNCTION, discard);
            }
            if (in->named)
                probe_target(in);
            if (curl_multi_add_handle(lp->multi, in->health) == CURLM_OK)
                in->health_busy = true;
        }
    }
}

/* Start-up readiness: true once every upstream has had an instance answer a probe
 * (so a route works the moment /readyz says so), or once conf.ready_wait_ms has
 * passed (then the upstreams still unseen are logged, and their routes answer 503
 * until they come). It latches: an upstream that fails later takes down only its
 * own routes, never the gateway's readiness, which would take every route out of a
 * load balancer's rotation for one service's fault. */
static bool check_warm(uint64_t now)
{
    if (atomic_load(&warm))
        return true;
    bool all = true;
    pthread_mutex_lock(&state_lock);
    for (size_t u = 0; u < nupstreams; u++) {
        bool seen = false;
        for (size_t i = 0; i < upstreams[u]->n; i++)
            seen = seen || upstreams[u]->inst[i].seen_up;
        all = all && seen;
    }
    pthread_mutex_unlock(&state_lock);
    bool waited = now - started_ns >= (uint64_t)conf.ready_wait_ms * 1000000u;
    if (!all && !waited)
        return false;
    if (!atomic_exchange(&warm, true)) {
        if (all) {
            souk_info("every upstream is up", "{s:f}", "after_s", (double)(now - started_ns) / 1e9);
        } else {
            for (size_t u = 0; u < nupstreams; u++) {
                bool seen = false;
                for (size_t i = 0; i < upstreams[u]->n; i++)
                    seen = seen || upstreams[u]->inst[i].seen_up;
                if (!seen)
                    souk_warn("upstream not up after the start-up wait: ready without it",
                              "{s:s,s:I}", "upstream", upstreams[u]->name, "wait_ms",
                              (json_int_t)conf.ready_wait_ms);
            }
        }
    }
    return true;
}

bool souk_proxy_ready(void) { return atomic_load(&running) && check_warm(souk_now_ns()); }

static void take_queue(struct loop *lp, uint64_t now)
{
    pthread_mutex_lock(&lp->queue_lock);
    struct job *j = lp->queue_head;
    lp->queue_head = NULL;
    lp->queue_tail = &lp->queue_head;
    pthread_mutex_unlock(&lp->queue_lock);
    while (j != NULL) {
        struct job *next = j->next;
        if (atomic_load(&stopping))
            fail(j, 503, "no_upstream", "the gateway is stopping");
        else
            start_attempt(j, now);
        j = next;
    }
}

/* curl's CURLMOPT_SOCKETFUNCTION: keep the loop's epoll set in step with what each
 * socket waits for. lp->reg remembers what is registered, so an unchanged interest
 * costs no system call; and a socket curl is done with (CURL_POLL_REMOVE: its
 * connection goes back to the pool) stays registered for reading, marked idle, so
 * the next transfer on it re-arms it for free. An idle socket that becomes readable
 * (the peer closed it) is taken out in loop(); one curl closes leaves the epoll set
 * with it and its record is cleared (on_close), so a new socket with its number is
 * added afresh. Without this the pool cost two epoll_ctl per proxied request. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    SOUK_UNUSED(e);
    SOUK_UNUSED(socketp);
    struct loop *lp = userp;
    bool tracked = s >= 0 && (size_t)s < lp->nreg;
    uint8_t have = tracked ? lp->reg[s] : 0;
    if (what == CURL_POLL_REMOVE) {
        if (tracked && have == (REGISTERED | REG_IN)) {
            lp->reg[s] = REGISTERED | REG_IN | REG_IDLE; /* kept: a readable one is seen */
            return 0;
        }
        if (!tracked || (have & REGISTERED))
            epoll_ctl(lp->epfd, EPOLL_CTL_DEL, s, NULL);
        if (tracked)
            lp->reg[s] = 0;
        return 0;
    }
    uint8_t want = ((what & CURL_POLL_IN) ? REG_IN : 0) | ((what & CURL_POLL_OUT) ? REG_OUT : 0);
    if (tracked && (have & ~REG_IDLE) == (want | REGISTERED)) {
        lp->reg[s] = want | REGISTERED;
        return 0;
    }
    struct epoll_event ev = {.events = ((want & REG_IN) ? EPOLLIN : 0u) |
                                       ((want & REG_OUT) ? EPOLLOUT : 0u),
                             .data.fd = s};
    int op = (have & REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(lp->epfd, op, s, &ev) != 0) {
        /* our record was stale (a socket number reused): the other operation fits */
        int again = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(lp->epfd, again, s, &ev) != 0) {
            souk_error("epoll_ctl failed", "{s:s}", "error", strerror(errno));
            return -1;
        }
    }
    if (tracked)
        lp->reg[s] = want | REGISTERED;
    return 0;
}

/* curl's CURLMOPT_TIMERFUNCTION: when to call it with CURL_SOCKET_TIMEOUT. */
static int on_timer(CURLM *m, long ms, void *userp)
{
    SOUK_UNUSED(m);
    struct loop *lp = userp;
    lp->timer_set = ms >= 0;
    lp->timer_at = ms > 0 ? souk_now_ns() + (uint64_t)ms * 1000000u : 0; /* 0: due now */
    return 0;
}

static void reap(struct loop *lp)
{
    CURLMsg *msg;
    int left;
    uint64_t now = souk_now_ns();
    while ((msg = curl_multi_info_read(lp->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
        CURLcode rc = msg->data.result;
        if (*(enum kind *)priv == HEALTH)
            finish_health(lp, priv, rc);
        else
            finish_job(lp, priv, rc, now);
    }
}

static long ms_until(uint64_t at, uint64_t now)
{
    return at <= now ? 0 : (long)((at - now + 999999u) / 1000000u);
}

static void *loop(void *arg)
{
    struct loop *lp = arg;
    bool first = lp == &loops[0];
    long tick_ms = conf.health_interval_ms > 0 ? conf.health_interval_ms : POLL_MAX_MS;
    uint64_t next_tick = 0, next_warm = 0;
    struct epoll_event evs[EVENTS_MAX];
    int still;
    while (!atomic_load(&stopping)) {
        uint64_t now = souk_now_ns();
        take_queue(lp, now);
        /* until every upstream was seen up, the unseen instances are probed every
         * WARM_PROBE_MS: a service that became ready is routed to at once */
        bool warming = first && conf.health_interval_ms > 0 && !check_warm(now);
        if (first && now >= next_tick) {
            if (conf.health_interval_ms > 0)
                probe_all(lp, false);
            pthread_mutex_lock(&state_lock); /* breakers reopen with time */
            for (size_t u = 0; u < nupstreams; u++)
                publish(upstreams[u], now);
            pthread_mutex_unlock(&state_lock);
            next_tick = now + (uint64_t)tick_ms * 1000000u;
            next_warm = now + WARM_PROBE_MS * 1000000u;
        } else if (warming && now >= next_warm) {
            probe_all(lp, true);
            next_warm = now + WARM_PROBE_MS * 1000000u;
        }
        if (lp->timer_set && now >= lp->timer_at) {
            lp->timer_set = false;
            curl_multi_socket_action(lp->multi, CURL_SOCKET_TIMEOUT, 0, &still);
            reap(lp);
            now = souk_now_ns();
        }
        long wait = POLL_MAX_MS;
        if (lp->timer_set && ms_until(lp->timer_at, now) < wait)
            wait = ms_until(lp->timer_at, now);
        if (first && ms_until(next_tick, now) < wait)
            wait = ms_until(next_tick, now);
        if (warming && ms_until(next_warm, now) < wait)
            wait = ms_until(next_warm, now);
        /* Announce the sleep, then look at the queue once more: a job queued before
         * the announcement is seen here, one queued after it wakes us. */
        atomic_store(&lp->asleep, true);
        pthread_mutex_lock(&lp->queue_lock);
        if (lp->queue_head != NULL)
            wait = 0;
        pthread_mutex_unlock(&lp->queue_lock);
        int n = epoll_wait(lp->epfd, evs, EVENTS_MAX, (int)wait);
        atomic_store(&lp->asleep, false);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lp->wakefd)
                continue; /* the queue is taken at the top of the loop */
            if ((size_t)fd < lp->nreg && (lp->reg[fd] & REG_IDLE)) {
                /* a pooled connection the peer closed (or wrote to out of turn): out of
                 * the set, or it would wake us until curl reuses or drops it; curl's
                 * liveness check before reuse finds it dead */
                epoll_ctl(lp->epfd, EPOLL_CTL_DEL, fd, NULL);
                lp->reg[fd] = 0;
                continue;
            }
            uint32_t e = evs[i].events;
            int flags = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                        ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                        ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(lp->multi, fd, flags, &still);
        }
        reap(lp);
    }
    return NULL;
}

static int loop_init(struct loop *lp)
{
    pthread_mutex_init(&lp->queue_lock, NULL);
    lp->queue_tail = &lp->queue_head;
    lp->multi = curl_multi_init();
    if (lp->multi == NULL)
        return SOUK_ENOMEM;
    struct rlimit nofile;
    lp->nreg = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < REG_FDS_MAX
                   ? (size_t)nofile.rlim_cur
                   : REG_FDS_MAX;
    lp->reg = souk_xcalloc(lp->nreg, 1); /* untouched pages cost nothing */
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->epfd < 0 || lp->wakefd < 0)
        return SOUK_EIO;
    /* edge-triggered: every write is an event, so the counter is never read back
     * (one system call less per wakeup; 2^64 writes would be needed to fill it) */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = lp->wakefd};
    if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->wakefd, &ev) != 0)
        return SOUK_EIO;
    /* the keep-alive pool is split between the loops */
    long conns = (long)(conf.max_connections / nloops);
    curl_multi_setopt(lp->multi, CURLMOPT_MAXCONNECTS, conns > 0 ? conns : 1L);
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(lp->multi, CURLMOPT_SOCKETDATA, lp);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(lp->multi, CURLMOPT_TIMERDATA, lp);
    return 0;
}

/* An instance's /readyz: on its own base URL, or, with a probe port offset, plain
 * HTTP on its host at its port + the offset (the services' probe listener, served
 * by a thread of its own: docs/server.md). -1 when the port would be out of range. */
static int probe_url(struct instance *in)
{
    if (conf.probe_port_offset == 0) {
        memcpy(in->probe_url, in->base, in->base_len); /* base_len < BASE_MAX */
        memcpy(in->probe_url + in->base_len, "/readyz", sizeof("/readyz"));
        return 0;
    }
    long port = in->port + conf.probe_port_offset;
    if (port < 1 || port > 65535)
        return -1;
    bool v6 = strchr(in->host, ':') != NULL; /* an IPv6 literal goes in brackets */
    char url[sizeof(in->probe_url)];
    snprintf(url, sizeof(url), "http://%s%s%s:%ld/readyz", v6 ? "[" : "", in->host, v6 ? "]" : "",
             port);
    memcpy(in->probe_url, url, sizeof(url));
    return 0;
}

int souk_proxy_start(const struct souk_proxy_conf *c)
{
    conf = *c;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return SOUK_EIO;
    started_ns = souk_now_ns();
    /* without probes nothing would ever be seen up: ready at once, as before */
    atomic_store(&warm, conf.health_interval_ms <= 0);
    nloops = conf.threads > 0 ? conf.threads : 1;
    if (nloops > LOOPS_MAX)
        nloops = LOOPS_MAX;
    m_requests = souk_metric_counter("souk_proxy_upstream_requests_total",
                                     "Upstream attempts by upstream, instance and status class.",
                                     "upstream,instance,code");
    m_duration = souk_metric_histogram("souk_proxy_upstream_duration_seconds",
                                       "Upstream attempt durations.", "upstream,instance");
    m_retries = souk_metric_counter("souk_proxy_upstream_retries_total",
                                    "Requests retried on another instance.", "upstream");
    m_up =
        souk_metric_gauge("souk_proxy_upstream_up",
                          "1 when the instance's last health probe passed.", "upstream,instance");
    for (size_t u = 0; u < nupstreams; u++) {
        for (size_t i = 0; i < upstreams[u]->n; i++) {
            struct instance *in = &upstreams[u]->inst[i];
            souk_breaker_init(&in->breaker, conf.breaker_failures, conf.breaker_open_ms);
            if (probe_url(in) != 0) {
                souk_error("probe port out of range", "{s:s,s:s,s:I}", "upstream",
                           upstreams[u]->name, "instance", in->label, "offset",
                           (json_int_t)conf.probe_port_offset);
                return SOUK_EINVAL;
            }
            souk_metric_set(m_up, 1, upstreams[u]->name, in->label);
        }
    }
    for (size_t i = 0; i < nloops; i++) {
        int rc = loop_init(&loops[i]);
        if (rc != 0)
            return rc;
    }
    int rc = resolver_start();
    if (rc != 0)
        return rc;
    running = true;
    for (size_t i = 0; i < nloops; i++) {
        if (pthread_create(&loops[i].thread, NULL, loop, &loops[i]) != 0) {
            souk_proxy_stop();
            return SOUK_EIO;
        }
        loops[i].started = true;
    }
    souk_info("proxy started", "{s:i}", "loops", (int)nloops);
    return 0;
}

void souk_proxy_stop(void)
{
    if (!running)
        return;
    atomic_store(&stopping, true);
    resolver_stop();
    for (size_t i = 0; i < nloops; i++) {
        if (loops[i].started) {
            wake(&loops[i]); /* unconditionally: the loop may be between checks */
            pthread_join(loops[i].thread, NULL);
        }
    }
    running = false;
    for (size_t i = 0; i < nloops; i++)
        take_queue(&loops[i], souk_now_ns()); /* answers 503 to anything queued meanwhile */
    /* transfers still in flight belong to requests the drain gave up on */
    for (size_t u = 0; u < nupstreams; u++) {
        for (size_t i = 0; i < upstreams[u]->n; i++) {
            struct instance *in = &upstreams[u]->inst[i];
            if (in->health != NULL) {
                curl_multi_remove_handle(loops[0].multi, in->health);
                curl_easy_cleanup(in->health);
                in->health = NULL;
                curl_slist_free_all(in->probe_to);
                in->probe_to = NULL;
            }
        }
    }
    for (size_t i = 0; i < nloops; i++)
        while (loops[i].neasy_free > 0)
            curl_easy_cleanup(loops[i].easy_free[--loops[i].neasy_free]);
}
