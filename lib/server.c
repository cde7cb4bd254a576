/* server.c: a request's life on libmicrohttpd (epoll, internal thread pool):
 * headers → framing checked → route match → body (capped) → auth → handler →
 * response queued → completion (metrics, access log, arena freed); the handler's
 * view of it (souk_req_*, souk_reply_*, souk_problem*) and suspend/resume. The
 * service main (service.c) sets it up and runs the listeners; slow clients are
 * server_conn.c's business. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log_int.h"
#include "metrics_int.h"
#include "server_int.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/problem.h"
#include "souk/realip.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define REQUEST_ID_MAX   64
#define DROP_MAX_FACTOR  4  /* an oversized streamed body is drained up to 4x the cap */
#define MAX_RESP_HEADERS 24 /* the gateway passes on upstream headers and adds CORS, RateLimit */

enum req_state {
    REQ_NEW,       /* headers seen, body may follow */
    REQ_SUSPENDED, /* handler waiting elsewhere */
    REQ_READY,     /* response set, to be queued */
    REQ_QUEUED,
};

struct resp_header {
    const char *name, *value;
};

struct souk_req {
    struct MHD_Connection *conn;
    const struct souk__listener *via;
    const char *method, *path;
    int route; /* index into the full table, or the "other" series */
    struct souk_param params[SOUK_MAX_PARAMS];
    size_t nparams;
    struct souk_arena arena;
    uint64_t t0;

    char *body;
    size_t body_len, body_cap, body_max;
    bool too_large;
    size_t dropped; /* body bytes read past the cap */
    json_t *json;

    struct souk_identity who;
    char request_id[REQUEST_ID_MAX + 1];
    struct souk_span span; /* the server span; its traceparent is ours, to pass on */
    char client[INET6_ADDRSTRLEN];

    _Atomic int state;
    int status;
    char *resp;
    size_t resp_len;
    bool resp_owned; /* resp is malloc'd and ours to hand to MHD */
    const char *content_type;
    struct resp_header headers[MAX_RESP_HEADERS];
    size_t nheaders;

    /* a request made without HTTP (the section at the end): conn and via are NULL */
    const struct souk__synth *synth;
    json_t *resp_json; /* a synthesized request's JSON answer, kept unrendered */
};

struct souk__server souk__srv;

bool souk_server_draining(void) { return atomic_load(&souk__srv.draining); }

/* ---- handler accessors ---- */

const char *souk_req_method(struct souk_req *r) { return r->method; }
const char *souk_req_path(struct souk_req *r) { return r->path; }
const char *souk_req_id(struct souk_req *r) { return r->request_id; }
const char *souk_req_traceparent(struct souk_req *r) { return r->span.traceparent; }
const char *souk_req_client_addr(struct souk_req *r) { return r->client; }
int souk_req_status(struct souk_req *r) { return r->status; }
struct souk_arena *souk_req_arena(struct souk_req *r) { return &r->arena; }
const struct souk_identity *souk_req_identity(struct souk_req *r) { return &r->who; }
struct souk_db *souk_req_db(struct souk_req *r)
{
    SOUK_UNUSED(r);
    return souk_db_thread();
}
void *souk_req_alloc(struct souk_req *r, size_t n) { return souk_arena_alloc(&r->arena, n); }

char *souk_req_printf(struct souk_req *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = souk_arena_vprintf(&r->arena, fmt, ap);
    va_end(ap);
    return s;
}

const char *souk_req_param(struct souk_req *r, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < r->nparams; i++) {
        struct souk_param *p = &r->params[i];
        if (strncmp(p->name, name, nlen) == 0 && p->name[nlen] == '}')
            return p->value;
    }
    return NULL;
}

/* A synthesized request's query parameter (exact name) or header (any case). */
static const char *synth_lookup(const struct souk__kv *kv, size_t n, const char *name, bool nocase)
{
    for (size_t i = 0; i < n; i++)
        if ((nocase ? strcasecmp(kv[i].key, name) : strcmp(kv[i].key, name)) == 0)
            return kv[i].value;
    return NULL;
}

const char *souk_req_query(struct souk_req *r, const char *name)
{
    if (r->synth != NULL)
        return synth_lookup(r->synth->query, r->synth->nquery, name, false);
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_enc {
    struct souk_arena *a;
    char *buf;
    size_t len, cap;
};

static void query_room(struct query_enc *q, size_t n)
{
    if (q->len + n <= q->cap)
        return;
    size_t cap = q->cap * 2 + n + 64;
    char *nb = souk_arena_alloc(q->a, cap);
    if (q->len > 0)
        memcpy(nb, q->buf, q->len);
    q->buf = nb;
    q->cap = cap;
}

/* Append s percent-encoded: every byte but RFC 3986 unreserved characters. */
static void query_put(struct query_enc *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        query_room(q, 3);
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            q->buf[q->len++] = (char)c;
        } else {
            q->buf[q->len++] = '%';
            q->buf[q->len++] = hex[c >> 4];
            q->buf[q->len++] = hex[c & 15];
        }
    }
}

static void query_char(struct query_enc *q, char c)
{
    query_room(q, 1);
    q->buf[q->len++] = c;
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    SOUK_UNUSED(kind);
    struct query_enc *q = cls;
    if (q->len > 0)
        query_char(q, '&');
    query_put(q, key);
    if (value != NULL) {
        query_char(q, '=');
        query_put(q, value);
    }
    return MHD_YES;
}

const char *souk_req_query_string(struct souk_req *r)
{
    struct query_enc q = {&r->arena, NULL, 0, 0};
    if (r->synth != NULL) {
        for (size_t i = 0; i < r->synth->nquery; i++)
            query_arg(&q, MHD_GET_ARGUMENT_KIND, r->synth->query[i].key, r->synth->query[i].value);
    } else {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
    }
    if (q.len == 0)
        return "";
    query_char(&q, '\0');
    return q.buf;
}

const char *souk_req_header(struct souk_req *r, const char *name)
{
    if (r->synth != NULL)
        return synth_lookup(r->synth->headers, r->synth->nheaders, name, true);
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *souk_req_body(struct souk_req *r, size_t *len)
{
    if (r->synth != NULL && r->body == NULL && r->json != NULL) { /* rendered when asked */
        r->body = souk_json_dump(r->json, &r->body_len);
        r->body_cap = r->body_len + 1;
    }
    if (len != NULL)
        *len = r->body_len;
    return r->body ? r->body : "";
}

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return true; /* lenient: curl -d without a type is common */
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ')
        n--;
    return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

json_t *souk_req_json(struct souk_req *r)
{
    if (r->json != NULL)
        return r->json;
    if (!is_json_type(souk_req_header(r, "Content-Type"))) {
        souk_problem(r, 415, "unsupported_media_type", "send the body as application/json");
        return NULL;
    }
    if (r->body_len == 0) {
        souk_problem(r, 400, "malformed_json", "a JSON object body is required");
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        souk_problem(r, 400, "malformed_json", "line %d, column %d: %s", err.line, err.column,
                     err.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        souk_problem(r, 400, "malformed_json", "the body must be a JSON object");
        return NULL;
    }
    r->json = v;
    return v;
}

/* ---- responses ---- */

static void set_body(struct souk_req *r, const char *type, char *body, size_t len, bool owned)
{
    if (r->resp_owned)
        free(r->resp);
    if (r->resp_json != NULL) {
        json_decref(r->resp_json);
        r->resp_json = NULL;
    }
    r->content_type = type;
    r->resp = body;
    r->resp_len = len;
    r->resp_owned = owned;
}

void souk_reply_json(struct souk_req *r, json_t *body)
{
    if (r->synth != NULL) { /* the caller encodes it its own way */
        set_body(r, "application/json", NULL, 0, false);
        json_decref(r->resp_json);
        r->resp_json = body;
        return;
    }
    size_t len;
    char *s = souk_json_dump(body, &len);
    json_decref(body);
    set_body(r, "application/json", s, len, true);
}

void souk_reply_raw(struct souk_req *r, const char *content_type, char *body, size_t len, bool take)
{
    if (!take) {
        char *copy = souk_xmalloc(len + 1);
        memcpy(copy, body, len);
        copy[len] = '\0';
        body = copy;
    }
    set_body(r, content_type, body, len, true);
}

void souk_reply_header(struct souk_req *r, const char *name, const char *value)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            r->headers[i].value = souk_arena_strdup(&r->arena, value);
            return;
        }
    }
    if (r->nheaders == MAX_RESP_HEADERS) {
        souk_warn("too many response headers", "{s:s}", "name", name);
        return;
    }
    r->headers[r->nheaders].name = name;
    r->headers[r->nheaders].value = souk_arena_strdup(&r->arena, value);
    r->nheaders++;
}

static void reply_problem(struct souk_req *r, int status, json_t *p)
{
    if (r->synth != NULL) {
        set_body(r, "application/problem+json", NULL, 0, false);
        r->resp_json = p;
        r->status = status;
        return;
    }
    size_t len;
    char *s = souk_json_dump(p, &len);
    json_decref(p);
    set_body(r, "application/problem+json", s, len, true);
    r->status = status;
}

int souk_problem(struct souk_req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = souk_problem_vjson(status, code, NULL, fmt, ap);
    va_end(ap);
    reply_problem(r, status, p);
    return status;
}

int souk_problem_with(struct souk_req *r, int status, const char *code, json_t *extra,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = souk_problem_vjson(status, code, extra, fmt, ap);
    va_end(ap);
    reply_problem(r, status, p);
    return status;
}

int souk_problem_check(struct souk_req *r, struct souk_check *c)
{
    json_t *p = souk_problem_json(400, "validation_failed", "the request has invalid fields");
    json_object_set_new(p, "errors", c->errors ? c->errors : json_array());
    c->errors = NULL;
    reply_problem(r, 400, p);
    return 400;
}

/* ---- request ids and trace context ---- */

static bool valid_request_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n == REQUEST_ID_MAX || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                     (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0;
}

/* Append s to dst (len bytes, cap its size) as snprintf would, cut to fit: the new
 * length. Per request, where printf's cost shows. */
static size_t cut_copy(char *dst, size_t len, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1 - len);
    memcpy(dst + len, s, n);
    dst[len + n] = '\0';
    return len + n;
}

/* The request's server span (docs/tracing.md): a child of the caller's traceparent
 * when it is well formed, else a new trace; its span id is the one passed on. The
 * kit's own routes (probes, metrics, the event feed's long polls, the trace route)
 * are plumbing: their context passes on unsampled and nothing of them is recorded. */
static void trace_begin(struct souk_req *r)
{
    const char *route = r->route >= 0 ? souk__srv.routes[r->route].pattern : NULL;
    char name[SOUK_SPAN_NAME_MAX], path[SOUK_SPAN_VALUE_MAX];
    /* named only once it is known to record: one that does not (sampled out, a kit
     * route) would have its name formatted for nothing */
    souk_span_start_from(&r->span, SOUK_SPAN_SERVER, NULL, souk_req_header(r, "traceparent"));
    if (r->route >= 0 && (size_t)r->route >= souk__srv.kit_routes_from)
        souk_span_mute(&r->span);
    if (!souk_span_recording(&r->span))
        return;
    size_t n = cut_copy(name, 0, sizeof(name), r->method); /* "GET /api/v1/products/{id}" */
    if (route != NULL) {
        n = cut_copy(name, n, sizeof(name), " ");
        cut_copy(name, n, sizeof(name), route);
    }
    souk_span_set_name(&r->span, name);
    cut_copy(path, 0, sizeof(path), r->path);
    souk__redact_digits(path); /* as in the access log: a URL may carry what it should not */
    souk_span_set_str(&r->span, "http.request.method", r->method);
    souk_span_set_str(&r->span, "url.path", path);
    souk_span_set_str(&r->span, "url.scheme", r->via->tls ? "https" : "http");
    if (route != NULL)
        souk_span_set_str(&r->span, "http.route", route);
    souk_span_set_str(&r->span, "client.address", r->client);
    souk_span_set_str(&r->span, "user_agent.original", souk_req_header(r, "User-Agent"));
}

static void trace_end(struct souk_req *r)
{
    struct souk_span *s = &r->span;
    if (souk_span_recording(s)) {
        char code[16];
        souk_span_set_int(s, "http.response.status_code", r->status);
        if (r->status >= 500) { /* semconv: a server's 4xx is the client's error */
            snprintf(code, sizeof(code), "%d", r->status);
            souk_span_set_str(s, "error.type", code);
            souk_span_set_status(s, SOUK_SPAN_ERROR, NULL);
        }
    }
    souk_span_end(s);
}

/* Every X-Forwarded-For line of a request, joined with "," in order (RFC 9110
 * §5.3), in its arena; bounded by the server's header memory limit. */
struct xff_lines {
    struct souk_req *r;
    char *joined;
};

static enum MHD_Result gather_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    SOUK_UNUSED(kind);
    struct xff_lines *x = cls;
    if (key != NULL && value != NULL && strcasecmp(key, "X-Forwarded-For") == 0)
        x->joined = x->joined ? souk_req_printf(x->r, "%s,%s", x->joined, value)
                              : souk_arena_strdup(&x->r->arena, value);
    return MHD_YES;
}

void souk__server_peer(struct MHD_Connection *c, char peer[INET6_ADDRSTRLEN])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(peer, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, INET6_ADDRSTRLEN);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, INET6_ADDRSTRLEN);
}

/* The client's address: the TCP peer, or, when the peer is a trusted proxy
 * (SOUK_TRUSTED_PROXIES), the client it vouches for in X-Forwarded-For. */
static void client_address(struct souk_req *r)
{
    /* the guard worked the peer out when the connection opened: a peer that is no
     * trusted proxy is the client, and nothing of the request can change that */
    const char *known;
    if (souk__conn_peer(r->conn, &known)) {
        strcpy(r->client, known);
        return;
    }
    char peer[INET6_ADDRSTRLEN];
    strcpy(r->client, "-");
    souk__server_peer(r->conn, peer);
    if (strcmp(peer, "-") == 0)
        return;
    struct xff_lines x = {r, NULL};
    if (souk_realip_trusted(souk__srv.trusted_proxies, peer))
        MHD_get_connection_values(r->conn, MHD_HEADER_KIND, gather_xff, &x);
    souk_realip_resolve(souk__srv.trusted_proxies, peer, x.joined, r->client, sizeof(r->client));
}

/* ---- the request life cycle ---- */

static void dispatch(struct souk_req *r)
{
    if (r->route == -404) {
        r->route = (int)souk__srv.nroutes;
        souk_problem(r, 404, "not_found", "no route for %s", r->path);
        atomic_store(&r->state, REQ_READY);
        return;
    }
    if (r->route == -405) {
        char allow[128];
        souk_router_allow(r->via->router, r->path, allow, sizeof(allow));
        r->route = (int)souk__srv.nroutes;
        souk_reply_header(r, "Allow", allow);
        souk_problem(r, 405, "method_not_allowed", "%s is not allowed here; use %s", r->method,
                     allow);
        atomic_store(&r->state, REQ_READY);
        return;
    }
    const struct souk_route *route = &souk__srv.routes[r->route];
    souk__log_set_context(r->request_id, r->span.traceparent);
    struct souk_span *prev = souk_trace_enter(&r->span);
    int status = souk__server_check_access(r, route, &r->who);
    if (status == 0)
        status = route->handler(r);
    souk_trace_leave(prev);
    souk__log_set_context(NULL, NULL);
    if (status == SOUK_SUSPEND)
        return;
    if (status < 100 || status > 599) {
        souk_error("handler returned a bad status", "{s:s,s:i}", "route", route->pattern, "status",
                   status);
        souk_problem(r, 500, "internal", "internal error");
        atomic_store(&r->state, REQ_READY);
        return;
    }
    r->status = status;
    if (r->resp == NULL && status >= 400)
        souk_problem(r, status, "error", "%s", souk_status_title(status));
    atomic_store(&r->state, REQ_READY);
}

void souk_req_resume(struct souk_req *r, int status)
{
    if (status < 100 || status > 599) {
        souk_problem(r, 500, "internal", "internal error");
        status = 500;
    }
    r->status = status;
    if (r->synth != NULL) {
        atomic_store(&r->state, REQ_READY);
        r->synth->resumed(r, r->synth->arg);
        return;
    }
    if (atomic_exchange(&r->state, REQ_READY) == REQ_SUSPENDED)
        MHD_resume_connection(r->conn);
}

static enum MHD_Result queue(struct souk_req *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->resp_len, r->resp ? r->resp : "",
        r->resp_owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    r->resp_owned = false; /* MHD frees it now */
    if (r->content_type != NULL)
        MHD_add_response_header(resp, "Content-Type", r->content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->request_id);
    for (size_t i = 0; i < r->nheaders; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    if (r->via->tls && souk__srv.hsts[0] != '\0')
        MHD_add_response_header(resp, "Strict-Transport-Security", souk__srv.hsts);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    atomic_store(&r->state, REQ_QUEUED);
    return ret;
}

static struct souk_req *req_new(struct MHD_Connection *c, const struct souk__listener *via,
                                const char *url, const char *method)
{
    struct souk_req *r = souk_xcalloc(1, sizeof(*r));
    r->conn = c;
    r->via = via;
    r->method = method;
    r->t0 = souk_now_ns();
    souk_arena_init(&r->arena);
    r->path = souk_arena_strdup(&r->arena, url);
    r->route = souk_router_match(via->router, method, r->path, r->params, &r->nparams);
    if (r->route >= 0)
        r->route += (int)via->route_base;
    /* parameter values point into path: terminate them in a copy of their own */
    for (size_t i = 0; i < r->nparams; i++)
        r->params[i].value = souk_arena_strndup(&r->arena, r->params[i].value, r->params[i].len);
    const struct souk_route *route = r->route >= 0 ? &souk__srv.routes[r->route] : NULL;
    r->body_max = route != NULL && route->max_body ? route->max_body : souk__srv.max_body;
    const char *rid = souk_req_header(r, "X-Request-Id");
    if (rid != NULL && valid_request_id(rid)) {
        strcpy(r->request_id, rid);
    } else {
        char id[SOUK_ID_MAX];
        strcpy(r->request_id, souk_id_new(id, "req"));
    }
    client_address(r);
    trace_begin(r);
    r->status = 200;
    atomic_fetch_add(&souk__srv.inflight, 1);
    return r;
}

static void append_body(struct souk_req *r, const char *data, size_t n)
{
    if (r->too_large || r->body_len + n > r->body_max) {
        r->too_large = true;
        r->dropped += n;
        return;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap * 2 : 1024;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        if (cap > r->body_max + 1)
            cap = r->body_max + 1;
        r->body = souk_xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* ---- request framing (RFC 9112 §6.3) ---- */

struct framing {
    const char *content_length; /* the first one */
    bool lengths_differ;
    size_t te_headers, codings, chunked;
    bool chunked_last;
};

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    SOUK_UNUSED(kind);
    struct framing *f = cls;
    if (value == NULL)
        value = "";
    if (strcasecmp(key, "Content-Length") == 0) {
        if (f->content_length == NULL)
            f->content_length = value;
        else if (strcmp(f->content_length, value) != 0)
            f->lengths_differ = true;
        return MHD_YES;
    }
    if (strcasecmp(key, "Transfer-Encoding") != 0)
        return MHD_YES;
    f->te_headers++;
    /* a comma-separated list of codings; empty elements do not count (RFC 9110 §5.6.1) */
    for (const char *p = value; *p != '\0';) {
        size_t n = strcspn(p, ",");
        const char *b = p, *e = p + n;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            bool chunked = e - b == 7 && strncasecmp(b, "chunked", 7) == 0;
            f->codings++;
            f->chunked += chunked;
            f->chunked_last = chunked;
        }
        p += n + (p[n] == ',');
    }
    return MHD_YES;
}

/* Refuse a body whose length cannot be known for sure before reading any of it:
 * libmicrohttpd takes the first Content-Length and reads a body of any transfer
 * coding but "chunked" until the connection closes, so these would be misread or
 * hang. Returns 0, or the status of the problem set. */
static int check_framing(struct souk_req *r, const char *version)
{
    struct framing f = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, framing_header, &f);
    if (f.lengths_differ)
        return souk_problem(r, 400, "bad_framing",
                            "Content-Length is sent more than once with different values");
    if (f.te_headers == 0)
        return 0;
    if (strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
        return souk_problem(r, 400, "bad_framing", "%s has no Transfer-Encoding", version);
    if (f.content_length != NULL)
        return souk_problem(r, 400, "bad_framing",
                            "Transfer-Encoding and Content-Length must not come together");
    if (!f.chunked_last || f.chunked != 1)
        return souk_problem(r, 400, "bad_framing",
                            "chunked must be the final transfer coding, and only once");
    if (f.codings > 1)
        return souk_problem(r, 501, "unsupported_transfer_coding",
                            "only the chunked transfer coding is supported");
    const char *te = souk_req_header(r, "Transfer-Encoding"); /* what MHD reads by */
    if (te == NULL || strcasecmp(te, "chunked") != 0)
        return souk_problem(r, 400, "bad_framing", "send Transfer-Encoding: chunked once");
    return 0;
}

/* The first call carries the headers only. What must not be read is refused at once:
 * MHD accepts a response only before the upload starts or after it ends, and closes
 * the connection after an early one, so the guard lingers for the answer to arrive. */
static enum MHD_Result on_headers(struct souk_req *r, const char *version)
{
    souk__conn_headers_done(r->conn);
    if (check_framing(r, version) == 0) {
        const char *cl = souk_req_header(r, "Content-Length");
        if (cl == NULL || strtoull(cl, NULL, 10) <= r->body_max)
            return MHD_YES; /* answer on a later call */
        souk_problem(r, 413, "body_too_large", "the request body exceeds %zu bytes", r->body_max);
    }
    souk_reply_header(r, "Connection", "close");
    souk__conn_linger(r->conn);
    return queue(r);
}

enum MHD_Result souk__server_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version, const char *upload,
                                        size_t *upload_size, void **con_cls)
{
    struct souk_req *r = *con_cls;
    if (r == NULL) {
        r = *con_cls = req_new(c, cls, url, method);
        return on_headers(r, version);
    }
    if (*upload_size != 0) {
        append_body(r, upload, *upload_size); /* past the cap: read and dropped */
        *upload_size = 0;
        /* ...but not forever: a stream far past the cap loses its connection */
        return r->dropped > DROP_MAX_FACTOR * r->body_max ? MHD_NO : MHD_YES;
    }
    switch (atomic_load(&r->state)) {
    case REQ_NEW:
        if (r->too_large) {
            souk_problem(r, 413, "body_too_large", "the request body exceeds %zu bytes",
                         r->body_max);
            return queue(r);
        }
        dispatch(r);
        if (atomic_load(&r->state) == REQ_NEW) {
            /* The handler is waiting elsewhere. Suspend first, then publish the state:
             * a resume racing with us either finds SUSPENDED (and resumes MHD) or has
             * already set READY (and we resume ourselves). */
            MHD_suspend_connection(c);
            int expect = REQ_NEW;
            if (!atomic_compare_exchange_strong(&r->state, &expect, REQ_SUSPENDED))
                MHD_resume_connection(c);
            return MHD_YES;
        }
        return queue(r);
    case REQ_READY:
        return queue(r);
    default:
        return MHD_YES;
    }
}

static void access_log(struct souk_req *r, double secs)
{
    struct souk__access a = {
        .method = r->method,
        .path = r->path,
        .route = r->route >= 0 && (size_t)r->route < souk__srv.nroutes
                     ? souk__srv.routes[r->route].pattern
                     : NULL,
        .request_id = r->request_id,
        .traceparent = r->span.traceparent,
        .client = r->client,
        .status = r->status,
        .bytes = r->resp_len,
        .duration_ns = (uint64_t)(secs * 1e9),
    };
    souk__log_access(&a);
}

void souk__server_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
    SOUK_UNUSED(cls);
    souk__conn_request_done(c);
    struct souk_req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    double secs = (double)(souk_now_ns() - r->t0) / 1e9;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && atomic_load(&r->state) != REQ_QUEUED)
        r->status = 499; /* the client went away first */
    size_t series = r->route >= 0 ? (size_t)r->route : souk__srv.nroutes;
    souk__metrics_http_observe(series, r->method, r->status, secs);
    if (souk__srv.access_log)
        access_log(r, secs);
    trace_end(r);
    if (r->resp_owned)
        free(r->resp);
    json_decref(r->json);
    free(r->body);
    souk_arena_free(&r->arena);
    free(r);
    atomic_fetch_sub(&souk__srv.inflight, 1);
}

/* ---- requests made without HTTP (the gRPC bridge: grpc_bridge.c) ----
 * The same route, access decision already taken by the caller, handler and
 * problem documents as a request from libmicrohttpd; only the transport differs.
 * No HTTP metrics or access line: the caller counts and logs its own calls. */

int souk__server_route_find(const char *method, const char *path)
{
    struct souk_param params[SOUK_MAX_PARAMS];
    size_t n = 0;
    return souk__srv.router == NULL ? -404
                                    : souk_router_match(souk__srv.router, method, path, params, &n);
}

const struct souk_route *souk__server_route_at(int idx)
{
    return idx >= 0 && (size_t)idx < souk__srv.nroutes ? &souk__srv.routes[idx] : NULL;
}

int souk__server_synth_run(const struct souk__synth *s, struct souk_req **out)
{
    struct souk_req *r = souk_xcalloc(1, sizeof(*r));
    *out = r;
    r->synth = s;
    r->method = s->method;
    r->t0 = souk_now_ns();
    souk_arena_init(&r->arena);
    r->path = souk_arena_strdup(&r->arena, s->path);
    r->route = souk_router_match(souk__srv.router, s->method, r->path, r->params, &r->nparams);
    for (size_t i = 0; i < r->nparams; i++)
        r->params[i].value = souk_arena_strndup(&r->arena, r->params[i].value, r->params[i].len);
    r->json = json_incref(s->body);
    r->who = *s->who;
    snprintf(r->request_id, sizeof(r->request_id), "%s", s->request_id);
    /* The call's server span is the RPC's (grpc_server.c), current while this runs: the
     * request carries its context, records nothing of its own and is never ended. */
    souk_trace_ctx_parse(s->traceparent, &r->span.ctx);
    snprintf(r->span.traceparent, sizeof(r->span.traceparent), "%s", s->traceparent);
    r->span.ended = true;
    snprintf(r->client, sizeof(r->client), "%s", s->client);
    r->status = 200;
    atomic_fetch_add(&souk__srv.inflight, 1);
    if (r->route < 0) { /* the bridge's table names a route the service does not have */
        souk_error("no route for a bridged call", "{s:s,s:s}", "method", s->method, "path",
                   s->path);
        return souk_problem(r, r->route == -405 ? 405 : 404, "not_found", "no route for %s",
                            r->path);
    }
    const struct souk_route *route = &souk__srv.routes[r->route];
    souk__log_set_context(r->request_id, r->span.traceparent);
    int status = route->handler(r);
    souk__log_set_context(NULL, NULL);
    if (status == SOUK_SUSPEND) /* s->resumed gets it; r may be gone already */
        return SOUK_SUSPEND;
    if (status < 100 || status > 599) {
        souk_error("handler returned a bad status", "{s:s,s:i}", "route", route->pattern, "status",
                   status);
        return souk_problem(r, 500, "internal", "internal error");
    }
    r->status = status;
    if (r->resp == NULL && r->resp_json == NULL && status >= 400)
        souk_problem(r, status, "error", "%s", souk_status_title(status));
    return status;
}

void souk__server_synth_answer(struct souk_req *r, struct souk__answer *a)
{
    a->status = r->status;
    a->json = r->resp_json;
    a->body = r->resp;
    a->len = r->resp_len;
    a->content_type = r->content_type;
}

void souk__server_synth_free(struct souk_req *r)
{
    if (r == NULL)
        return;
    if (r->resp_owned)
        free(r->resp);
    json_decref(r->resp_json);
    json_decref(r->json);
    free(r->body);
    souk_arena_free(&r->arena);
    free(r);
    atomic_fetch_sub(&souk__srv.inflight, 1);
}

void souk_request_done(const struct souk_request_done *d)
{
    size_t series = d->route >= 0 && (size_t)d->route < souk__srv.nroutes ? (size_t)d->route
                                                                          : souk__srv.nroutes;
    souk__metrics_http_observe(series, d->method, d->status, (double)d->duration_ns / 1e9);
    if (!souk__srv.access_log)
        return;
    struct souk__access a = {.method = d->method,
                             .path = d->path,
                             .route = d->route >= 0 && (size_t)d->route < souk__srv.nroutes
                                          ? souk__srv.routes[d->route].pattern
                                          : NULL,
                             .request_id = d->request_id,
                             .traceparent = d->traceparent,
                             .client = d->client,
                             .status = d->status,
                             .bytes = d->bytes,
                             .duration_ns = d->duration_ns};
    souk__log_access(&a);
}
