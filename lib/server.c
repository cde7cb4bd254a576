/* server.c: the HTTP server on libmicrohttpd (epoll, internal thread pool).
 * One request's life: headers → framing checked → route match → body (capped) →
 * auth → handler → response queued → completion (metrics, access log, arena freed).
 * Also the built-in /healthz, /readyz and /metrics, the admin listener, TLS,
 * problem+json, and souk_main(). Slow clients are server_conn.c's business. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pthread.h>
#include <strings.h>
#include <unistd.h>

#include "server_int.h"
#include "souk/auth.h"
#include "souk/events.h"
#include "souk/grpc.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/realip.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define REQUEST_ID_MAX    64
#define TRACEPARENT_LEN   55
#define DROP_MAX_FACTOR   4    /* an oversized streamed body is drained up to 4x the cap */
#define MAX_RESP_HEADERS  24   /* the gateway passes on upstream headers and adds CORS, RateLimit */
#define ADMIN_PORT_OFFSET 1100 /* SOUK_ADMIN_LISTEN=auto: loopback, public port + this */
#define ADMIN_MAX_CONNS   64   /* the admin listener serves probes and scrapes */
#define TLS_FILE_MAX      1048576 /* a PEM certificate chain or key */
#define TLS_PRIORITIES    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* A listening daemon: the public one (the service's routes; TLS when configured) or
 * the admin one (/healthz, /readyz, /metrics only). */
struct listener {
    struct MHD_Daemon *daemon;
    const struct souk_router *router;
    size_t route_base; /* router index + route_base = index into routes[] */
    bool tls;
};

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
    const struct listener *via;
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
    char trace_id[33];
    char traceparent[TRACEPARENT_LEN + 1]; /* ours, to pass on */
    char client[INET6_ADDRSTRLEN];

    _Atomic int state;
    int status;
    char *resp;
    size_t resp_len;
    bool resp_owned; /* resp is malloc'd and ours to hand to MHD */
    const char *content_type;
    struct resp_header headers[MAX_RESP_HEADERS];
    size_t nheaders;
};

/* ---- server state ---- */

static const struct souk_service *service;
static struct souk_route *routes; /* the service's, then the built-ins */
static size_t nroutes;
static struct souk_router *router;
static atomic_bool draining;
static atomic_bool started;
static _Atomic long inflight;

static struct listener public_l, admin_l;
static char admin_addr[300];     /* resolved SOUK_ADMIN_LISTEN; "" for none */
static char *tls_cert, *tls_key; /* PEM, read at start */
static char hsts[64];            /* the Strict-Transport-Security value; "" for none */

static const char *cfg_listen, *cfg_db;
static int64_t cfg_threads, cfg_max_conns, cfg_conn_timeout, cfg_max_body, cfg_drain_seconds;
static int64_t cfg_max_per_ip, cfg_header_timeout, cfg_hsts_max_age;
static const char *cfg_log_level, *cfg_trusted_proxies, *cfg_admin_listen, *cfg_tls_cert,
    *cfg_tls_key;
static bool cfg_access_log;
static struct souk_realip *trusted_proxies; /* whose X-Forwarded-For is believed */

static const struct souk_conf kit_config[] = {
    {"SOUK_LISTEN", SOUK_CONF_ADDR, NULL, 0, 0, &cfg_listen, "host:port to listen on"},
    {"SOUK_DB", SOUK_CONF_STR, NULL, 1, 4096, &cfg_db, "sqlite:PATH or postgres://…"},
    {"SOUK_THREADS", SOUK_CONF_INT, "2", 1, 256, &cfg_threads, "HTTP worker threads"},
    {"SOUK_MAX_CONNECTIONS", SOUK_CONF_INT, "4096", 1, 1000000, &cfg_max_conns, "open connections"},
    /* default per service in load_config(): 128 at the edge, 0 inside */
    {"SOUK_MAX_CONNECTIONS_PER_IP", SOUK_CONF_INT, "0", 0, 1000000, &cfg_max_per_ip,
     "open connections one client address may hold; 0 no cap"},
    {"SOUK_CONN_TIMEOUT", SOUK_CONF_INT, "60", 1, 3600, &cfg_conn_timeout,
     "seconds a connection may sit idle"},
    {"SOUK_HEADER_TIMEOUT", SOUK_CONF_INT, "10", 1, 3600, &cfg_header_timeout,
     "seconds to send a request's headers, from connect (after an answer: idle time too)"},
    /* default per service in load_config(): "auto" at the edge, "" inside */
    {"SOUK_ADMIN_LISTEN", SOUK_CONF_STR, "", 0, 255, &cfg_admin_listen,
     "host:port for /metrics, /healthz, /readyz; auto: 127.0.0.1, SOUK_LISTEN's port + 1100; "
     "empty or off: none"},
    {"SOUK_TLS_CERT", SOUK_CONF_STR, "", 0, 4096, &cfg_tls_cert,
     "PEM certificate chain file: HTTPS on SOUK_LISTEN (with SOUK_TLS_KEY)"},
    {"SOUK_TLS_KEY", SOUK_CONF_STR, "", 0, 4096, &cfg_tls_key, "PEM private key file"},
    {"SOUK_HSTS_MAX_AGE", SOUK_CONF_INT, "31536000", 0, 63072000, &cfg_hsts_max_age,
     "Strict-Transport-Security max-age under TLS; 0 no header"},
    {"SOUK_MAX_BODY", SOUK_CONF_INT, "65536", 256, 16777216, &cfg_max_body, "request body bytes"},
    {"SOUK_DRAIN_SECONDS", SOUK_CONF_INT, "10", 0, 300, &cfg_drain_seconds,
     "drain time on SIGTERM"},
    {"SOUK_LOG_LEVEL", SOUK_CONF_STR, "info", 1, 8, &cfg_log_level, "debug|info|warn|error"},
    {"SOUK_ACCESS_LOG", SOUK_CONF_BOOL, "true", 0, 0, &cfg_access_log, "log every request"},
    {"SOUK_TRUSTED_PROXIES", SOUK_CONF_STR, "", 0, 4096, &cfg_trusted_proxies,
     "addresses/CIDRs whose X-Forwarded-For is believed"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

bool souk_server_draining(void) { return atomic_load(&draining); }

/* ---- handler accessors ---- */

const char *souk_req_method(struct souk_req *r) { return r->method; }
const char *souk_req_path(struct souk_req *r) { return r->path; }
const char *souk_req_id(struct souk_req *r) { return r->request_id; }
const char *souk_req_traceparent(struct souk_req *r) { return r->traceparent; }
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

const char *souk_req_query(struct souk_req *r, const char *name)
{
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
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
    if (q.len == 0)
        return "";
    query_char(&q, '\0');
    return q.buf;
}

const char *souk_req_header(struct souk_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *souk_req_body(struct souk_req *r, size_t *len)
{
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
    r->content_type = type;
    r->resp = body;
    r->resp_len = len;
    r->resp_owned = owned;
}

void souk_reply_json(struct souk_req *r, json_t *body)
{
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

const char *souk_status_title(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return status < 500 ? "Client Error" : "Server Error";
}

json_t *souk_problem_json(int status, const char *code, const char *detail)
{
    char type[128];
    snprintf(type, sizeof(type), "urn:souk:problem:%s", code);
    json_t *p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", souk_status_title(status),
                          "status", status, "code", code);
    if (detail != NULL && *detail != '\0') {
        json_t *d = json_string(detail);
        json_object_set_new(p, "detail", d ? d : json_string("(detail was not UTF-8)"));
    }
    return p;
}

static void reply_problem(struct souk_req *r, int status, json_t *p)
{
    size_t len;
    char *s = souk_json_dump(p, &len);
    json_decref(p);
    set_body(r, "application/problem+json", s, len, true);
    r->status = status;
}

int souk_problem(struct souk_req *r, int status, const char *code, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    reply_problem(r, status, souk_problem_json(status, code, detail));
    return status;
}

int souk_problem_with(struct souk_req *r, int status, const char *code, json_t *extra,
                      const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_t *p = souk_problem_json(status, code, detail);
    if (json_is_object(extra))
        json_object_update_missing(p, extra);
    json_decref(extra);
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

/* Accept a W3C traceparent "00-<32 hex trace>-<16 hex parent>-<2 hex flags>" and keep
 * its trace id; otherwise start a trace. Either way pass on our own span id. */
static void trace_context(struct souk_req *r)
{
    char flags[3] = "01";
    unsigned char rnd[16];
    if (!souk_trace_parse(souk_req_header(r, "traceparent"), r->trace_id, flags)) {
        souk_random(rnd, 16);
        sodium_bin2hex(r->trace_id, sizeof(r->trace_id), rnd, 16);
    }
    r->trace_id[32] = '\0';
    char span[17];
    souk_random(rnd, 8);
    sodium_bin2hex(span, sizeof(span), rnd, 8);
    snprintf(r->traceparent, sizeof(r->traceparent), "00-%s-%s-%s", r->trace_id, span, flags);
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

/* The client's address: the TCP peer, or, when the peer is a trusted proxy
 * (SOUK_TRUSTED_PROXIES), the client it vouches for in X-Forwarded-For. */
static void client_address(struct souk_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char peer[INET6_ADDRSTRLEN] = "-";
    strcpy(r->client, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, peer, sizeof(peer));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, peer, sizeof(peer));
    struct xff_lines x = {r, NULL};
    if (souk_realip_trusted(trusted_proxies, peer))
        MHD_get_connection_values(r->conn, MHD_HEADER_KIND, gather_xff, &x);
    souk_realip_resolve(trusted_proxies, peer, x.joined, r->client, sizeof(r->client));
}

/* ---- built-in routes ---- */

static int healthz(struct souk_req *r)
{
    souk_reply_raw(r, "application/json", "{\"status\":\"ok\"}", 15, false);
    return 200;
}

static int readyz(struct souk_req *r)
{
    if (!atomic_load(&started) || atomic_load(&draining))
        return souk_problem(r, 503, "not_ready", atomic_load(&draining) ? "draining" : "starting");
    if (service->ready != NULL && !service->ready())
        return souk_problem(r, 503, "not_ready", "a dependency is not reachable");
    struct souk_db *db = souk_db_thread();
    if (db == NULL || souk_db_ping(db) != 0)
        return souk_problem(r, 503, "not_ready", "database unavailable");
    souk_reply_raw(r, "application/json", "{\"status\":\"ready\"}", 18, false);
    return 200;
}

static int metrics(struct souk_req *r)
{
    size_t len;
    char *text = souk_metrics_render(&len);
    souk_reply_raw(r, "text/plain; version=0.0.4; charset=utf-8", text, len, true);
    return 200;
}

/* /metrics last: the public listener leaves it out when it lives on the admin one. */
static const struct souk_route builtin_routes[] = {
    {"GET", "/healthz", healthz, SOUK_PUBLIC, NULL, 0},
    {"GET", "/readyz", readyz, SOUK_PUBLIC, NULL, 0},
    {"GET", "/metrics", metrics, SOUK_PUBLIC, NULL, 0},
};

/* ---- the request life cycle ---- */

static void dispatch(struct souk_req *r)
{
    if (r->route == -404) {
        r->route = (int)nroutes;
        souk_problem(r, 404, "not_found", "no route for %s", r->path);
        atomic_store(&r->state, REQ_READY);
        return;
    }
    if (r->route == -405) {
        char allow[128];
        souk_router_allow(r->via->router, r->path, allow, sizeof(allow));
        r->route = (int)nroutes;
        souk_reply_header(r, "Allow", allow);
        souk_problem(r, 405, "method_not_allowed", "%s is not allowed here; use %s", r->method,
                     allow);
        atomic_store(&r->state, REQ_READY);
        return;
    }
    const struct souk_route *route = &routes[r->route];
    souk__log_set_context(r->request_id, r->traceparent);
    int status = souk_auth_check(r, route, &r->who);
    if (status == 0) {
        status = route->handler(r);
        if (status == SOUK_SUSPEND) {
            souk__log_set_context(NULL, NULL);
            return;
        }
    }
    souk__log_set_context(NULL, NULL);
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
    if (r->via->tls && hsts[0] != '\0')
        MHD_add_response_header(resp, "Strict-Transport-Security", hsts);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    atomic_store(&r->state, REQ_QUEUED);
    return ret;
}

static struct souk_req *req_new(struct MHD_Connection *c, const struct listener *via,
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
    r->body_max = (r->route >= 0 && routes[r->route].max_body) ? routes[r->route].max_body
                                                               : (size_t)cfg_max_body;
    const char *rid = souk_req_header(r, "X-Request-Id");
    if (rid != NULL && valid_request_id(rid)) {
        strcpy(r->request_id, rid);
    } else {
        char id[SOUK_ID_MAX];
        strcpy(r->request_id, souk_id_new(id, "req"));
    }
    trace_context(r);
    client_address(r);
    r->status = 200;
    atomic_fetch_add(&inflight, 1);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
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
        .route = r->route >= 0 && (size_t)r->route < nroutes ? routes[r->route].pattern : NULL,
        .request_id = r->request_id,
        .traceparent = r->traceparent,
        .client = r->client,
        .status = r->status,
        .bytes = r->resp_len,
        .duration_ns = (uint64_t)(secs * 1e9),
    };
    souk__log_access(&a);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
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
    size_t series = r->route >= 0 ? (size_t)r->route : nroutes;
    souk__metrics_http_observe(series, r->method, r->status, secs);
    if (cfg_access_log)
        access_log(r, secs);
    if (r->resp_owned)
        free(r->resp);
    json_decref(r->json);
    free(r->body);
    souk_arena_free(&r->arena);
    free(r);
    atomic_fetch_sub(&inflight, 1);
}

/* ---- start and stop ---- */

static int listen_address(const char *addr, struct sockaddr_in *sa)
{
    char host[256];
    uint16_t port;
    if (souk_config_split_addr(addr, host, sizeof(host), &port) != 0)
        return SOUK_EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        strcpy(host, "127.0.0.1");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : SOUK_EINVAL;
}

static int build_routes(const struct souk_service *svc)
{
    size_t n = 0, ne = 0;
    const struct souk_route *ev = souk__events_routes();
    while (svc->routes != NULL && svc->routes[n].method != NULL)
        n++;
    while (ev != NULL && ev[ne].method != NULL)
        ne++;
    nroutes = n + ne + SOUK_ARRAY_LEN(builtin_routes);
    routes = souk_xcalloc(nroutes + 1, sizeof(*routes));
    if (n > 0)
        memcpy(routes, svc->routes, n * sizeof(*routes));
    if (ne > 0)
        memcpy(routes + n, ev, ne * sizeof(*routes));
    memcpy(routes + n + ne, builtin_routes, sizeof(builtin_routes));
    router = souk_router_new(routes);
    if (router == NULL)
        return SOUK_EINVAL;
    const char **names = souk_xcalloc(nroutes + 1, sizeof(*names));
    for (size_t i = 0; i < nroutes; i++)
        names[i] = routes[i].pattern;
    names[nroutes] = "other"; /* unmatched paths and methods */
    souk__metrics_http_init(names, nroutes + 1);
    free(names);
    return 0;
}

static int load_config(const struct souk_service *svc)
{
    char err[512];
    char db_default[4096];
    const char *var = getenv("SOUK_VAR");
    snprintf(db_default, sizeof(db_default), "sqlite:%s/db/%s.db", var ? var : "var", svc->name);
    struct souk_conf table[SOUK_ARRAY_LEN(kit_config)];
    memcpy(table, kit_config, sizeof(kit_config));
    for (size_t i = 0; table[i].name != NULL; i++) {
        if (strcmp(table[i].name, "SOUK_LISTEN") == 0)
            table[i].def = svc->listen;
        else if (strcmp(table[i].name, "SOUK_DB") == 0)
            table[i].def = db_default;
        else if (strcmp(table[i].name, "SOUK_MAX_CONNECTIONS_PER_IP") == 0)
            table[i].def = svc->edge ? "128" : "0";
        else if (strcmp(table[i].name, "SOUK_ADMIN_LISTEN") == 0)
            table[i].def = svc->edge ? "auto" : "";
    }
    if (souk_config_load(table, err, sizeof(err)) != 0 ||
        (svc->config != NULL && souk_config_load(svc->config, err, sizeof(err)) != 0)) {
        fprintf(stderr, "%s: configuration error: %s\n", svc->name, err);
        return SOUK_EINVAL;
    }
    if (souk_db_configure("SOUK_DB", cfg_db, err, sizeof(err)) != 0 ||
        souk_realip_parse(cfg_trusted_proxies, &trusted_proxies, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: configuration error: %s\n", svc->name, err);
        return SOUK_EINVAL;
    }
    if (cfg_db == db_default) /* the default lives on our stack: keep a copy */
        cfg_db = souk_xstrdup(db_default);
    enum souk_log_level level;
    if (souk_log_level_parse(cfg_log_level, &level) != 0) {
        fprintf(stderr,
                "%s: configuration error: SOUK_LOG_LEVEL=\"%s\": expected debug, info, "
                "warn or error\n",
                svc->name, cfg_log_level);
        return SOUK_EINVAL;
    }
    souk_log_init(svc->name, level);
    return 0;
}

static int open_database(const struct souk_service *svc)
{
    souk_db_set_default(cfg_db);
    struct souk_db *db = souk_db_thread();
    if (db == NULL)
        return SOUK_EDB;
    int rc = souk_db_migrate(db, svc->migrations);
    return rc != 0 ? rc : souk__events_init(svc, db);
}

/* ---- listeners: the public one (TLS when configured) and the admin one ---- */

/* SOUK_ADMIN_LISTEN into admin_addr ("" for none). 0, or -1 after a message. */
static int resolve_admin(const struct souk_service *svc)
{
    char host[256];
    uint16_t port;
    struct sockaddr_in sa;
    admin_addr[0] = '\0';
    if (cfg_admin_listen[0] == '\0' || strcmp(cfg_admin_listen, "off") == 0)
        return 0;
    if (strcmp(cfg_admin_listen, "auto") == 0) {
        if (souk_config_split_addr(cfg_listen, host, sizeof(host), &port) != 0 || port == 0 ||
            port > 65535 - ADMIN_PORT_OFFSET) {
            fprintf(stderr,
                    "%s: SOUK_ADMIN_LISTEN=auto needs a SOUK_LISTEN port from 1 to %d; "
                    "set SOUK_ADMIN_LISTEN to host:port, or off\n",
                    svc->name, 65535 - ADMIN_PORT_OFFSET);
            return -1;
        }
        snprintf(admin_addr, sizeof(admin_addr), "127.0.0.1:%u",
                 (unsigned)port + ADMIN_PORT_OFFSET);
        return 0;
    }
    if (listen_address(cfg_admin_listen, &sa) != 0) {
        fprintf(stderr, "%s: SOUK_ADMIN_LISTEN=\"%s\": expected an IPv4 host:port, auto or off\n",
                svc->name, cfg_admin_listen);
        return -1;
    }
    snprintf(admin_addr, sizeof(admin_addr), "%s", cfg_admin_listen);
    return 0;
}

/* A whole PEM file, NUL-terminated and malloc'd, or NULL after a message. */
static char *read_pem(const char *svc, const char *var, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        goto fail;
    buf = souk_xmalloc(TLS_FILE_MAX + 1);
    len = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f))
        goto fail;
    fclose(f);
    f = NULL;
    if (len == 0 || len > TLS_FILE_MAX) {
        fprintf(stderr, "%s: %s=%s: %s\n", svc, var, path,
                len == 0 ? "the file is empty" : "the file is over 1 MiB");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
fail:
    fprintf(stderr, "%s: %s=%s: cannot read: %s\n", svc, var, path, strerror(errno));
    if (f != NULL)
        fclose(f);
    free(buf);
    return NULL;
}

/* SOUK_TLS_CERT and SOUK_TLS_KEY: both or neither. 0, or -1 after a message. */
static int load_tls(const struct souk_service *svc)
{
    bool cert = cfg_tls_cert[0] != '\0', key = cfg_tls_key[0] != '\0';
    if (!cert && !key)
        return 0;
    if (!cert || !key) {
        fprintf(stderr, "%s: %s is set but %s is not: TLS needs a certificate and its key\n",
                svc->name, cert ? "SOUK_TLS_CERT" : "SOUK_TLS_KEY",
                cert ? "SOUK_TLS_KEY" : "SOUK_TLS_CERT");
        return -1;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        fprintf(stderr, "%s: SOUK_TLS_CERT is set but libmicrohttpd has no TLS support\n",
                svc->name);
        return -1;
    }
    tls_cert = read_pem(svc->name, "SOUK_TLS_CERT", cfg_tls_cert);
    tls_key = tls_cert != NULL ? read_pem(svc->name, "SOUK_TLS_KEY", cfg_tls_key) : NULL;
    if (tls_key == NULL)
        return -1;
    if (cfg_hsts_max_age > 0)
        snprintf(hsts, sizeof(hsts), "max-age=%lld", (long long)cfg_hsts_max_age);
    public_l.tls = true;
    return 0;
}

/* The admin listener's router has the built-ins; the public one everything but
 * /metrics where that is private: at the edge, or when an admin listener is set. */
static int listener_routes(const struct souk_service *svc)
{
    static struct souk_route *public_table;
    admin_l.route_base = nroutes - SOUK_ARRAY_LEN(builtin_routes);
    admin_l.router = souk_router_new(routes + admin_l.route_base);
    public_l.router = router;
    if (svc->edge || admin_addr[0] != '\0') {
        public_table = souk_xcalloc(nroutes, sizeof(*public_table));
        memcpy(public_table, routes, (nroutes - 1) * sizeof(*public_table)); /* NULL-ended */
        public_l.router = souk_router_new(public_table);
    }
    return admin_l.router != NULL && public_l.router != NULL ? 0 : SOUK_EINVAL;
}

/* libmicrohttpd's own messages (refused connections, failed TLS handshakes…) as log
 * lines, at most MHD_LOG_PER_SECOND of them: refusing a flood of connections must not
 * turn into a flood of log lines. */
#define MHD_LOG_PER_SECOND 10
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static _Atomic uint64_t second;
    static _Atomic int in_second;
    static _Atomic long dropped;
    SOUK_UNUSED(cls);
    uint64_t now = souk_now_ns() / 1000000000u;
    if (atomic_exchange(&second, now) != now)
        atomic_store(&in_second, 0);
    if (atomic_fetch_add(&in_second, 1) >= MHD_LOG_PER_SECOND) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    souk_warn("libmicrohttpd", "{s:s,s:I}", "error", msg, "suppressed",
              (json_int_t)atomic_exchange(&dropped, 0));
}

#define OPT(o, v, p) ((struct MHD_OptionItem){(o), (intptr_t)(v), (p)})

static int start_public(const struct sockaddr_in *sa)
{
    struct MHD_OptionItem o[16];
    size_t n = 0;
    o[n++] = OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL); /* first, to catch all */
    o[n++] = OPT(MHD_OPTION_SOCK_ADDR, 0, (void *)sa);
    o[n++] = OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg_threads, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_LIMIT, cfg_max_conns, NULL);
    o[n++] = OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg_max_per_ip, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg_conn_timeout, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL);
    o[n++] = OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
    o[n++] = OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL);
    o[n++] = OPT(MHD_OPTION_NOTIFY_CONNECTION, souk__conn_notify, NULL);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (public_l.tls) {
        flags |= MHD_USE_TLS;
        o[n++] = OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key);
        o[n++] = OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert);
        o[n++] = OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES);
    }
    o[n++] = OPT(MHD_OPTION_END, 0, NULL);
    public_l.daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &public_l,
                                       MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (public_l.daemon != NULL)
        return 0;
    if (public_l.tls)
        fprintf(stderr,
                "%s: cannot serve TLS on %s: is SOUK_TLS_CERT a PEM certificate chain and "
                "SOUK_TLS_KEY its private key? (%s)\n",
                service->name, cfg_listen, strerror(errno));
    souk_error("cannot listen", "{s:s,s:s}", "addr", cfg_listen, "error", strerror(errno));
    return SOUK_EIO;
}

static int start_admin(void)
{
    struct sockaddr_in sa;
    if (admin_addr[0] == '\0')
        return 0;
    listen_address(admin_addr, &sa); /* checked by resolve_admin() */
    struct MHD_OptionItem o[] = {
        OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL),
        OPT(MHD_OPTION_SOCK_ADDR, 0, &sa),
        OPT(MHD_OPTION_CONNECTION_LIMIT, ADMIN_MAX_CONNS, NULL),
        OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg_conn_timeout, NULL),
        OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, 32768, NULL),
        OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL),
        OPT(MHD_OPTION_END, 0, NULL),
    };
    admin_l.daemon =
        MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                         on_request, &admin_l, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (admin_l.daemon == NULL) {
        souk_error("cannot listen", "{s:s,s:s,s:s}", "addr", admin_addr, "listener", "admin",
                   "error", strerror(errno));
        return SOUK_EIO;
    }
    if (sa.sin_port == 0) { /* port 0: say which one the kernel chose */
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(admin_l.daemon, MHD_DAEMON_INFO_BIND_PORT);
        char *colon = strrchr(admin_addr, ':');
        if (di != NULL && colon != NULL)
            snprintf(colon + 1, sizeof(admin_addr) - (size_t)(colon + 1 - admin_addr), "%u",
                     (unsigned)di->port);
    }
    return 0;
}

static void usage(const char *name)
{
    fprintf(stderr,
            "usage: %s [serve|migrate|seed]\n"
            "  serve    run the service (default)\n"
            "  migrate  apply database migrations and exit\n"
            "  seed     apply migrations, load demo data and exit\n",
            name);
}

static void drain(void)
{
    atomic_store(&draining, true);
    souk_info("draining", "{s:I}", "inflight", (json_int_t)atomic_load(&inflight));
    MHD_quiesce_daemon(public_l.daemon);
    souk__grpc_drain_begin(); /* gRPC drains beside HTTP, within the same deadline */
    uint64_t deadline = souk_now_ns() + (uint64_t)cfg_drain_seconds * 1000000000u;
    while (atomic_load(&inflight) > 0 && souk_now_ns() < deadline)
        usleep(10000);
    souk__grpc_drain_end(deadline);
    long left = atomic_load(&inflight);
    if (left > 0) {
        /* a handler still holds a suspended connection: MHD cannot stop cleanly */
        souk_warn("drain deadline passed", "{s:I}", "inflight", (json_int_t)left);
        souk__log_flush();
        souk__events_stop();
        if (service->stop != NULL)
            service->stop();
        return;
    }
    MHD_stop_daemon(public_l.daemon);
    public_l.daemon = NULL;
    if (admin_l.daemon != NULL) /* kept answering /readyz "draining" until now */
        MHD_stop_daemon(admin_l.daemon);
    admin_l.daemon = NULL;
    souk__conn_stop();
    souk__events_stop();
    if (service->stop != NULL)
        service->stop();
    souk_db_stop_checkpointer();
    souk__log_flush();
}

int souk_main(int argc, char **argv, const struct souk_service *svc)
{
    service = svc;
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "seed") != 0) {
        usage(argv[0]);
        return strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ? 0 : 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium failed to initialise\n", svc->name);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* databases, keys and logs we create are ours alone */
    if (load_config(svc) != 0)
        return 2;
    if (open_database(svc) != 0) {
        souk_error("database not ready", NULL);
        return 1;
    }
    if (build_routes(svc) != 0)
        return 1;
    if (strcmp(cmd, "migrate") == 0)
        return 0;
    if (strcmp(cmd, "seed") == 0) {
        int rc = svc->seed != NULL ? svc->seed(souk_db_thread()) : 0;
        if (rc != 0)
            souk_error("seed failed", "{s:s}", "error", souk_strerror(rc));
        return rc == 0 ? 0 : 1;
    }

    struct sockaddr_in sa;
    if (listen_address(cfg_listen, &sa) != 0) {
        fprintf(stderr, "%s: SOUK_LISTEN=\"%s\": expected an IPv4 host:port\n", svc->name,
                cfg_listen);
        return 2;
    }
    if (resolve_admin(svc) != 0 || load_tls(svc) != 0)
        return 2;
    if (listener_routes(svc) != 0)
        return 1;
    /* SIGTERM and SIGINT are taken by sigwait() below, in this thread only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (souk_auth_init(svc->name) != 0 || souk_db_start_checkpointer() != 0)
        return 1;
    if ((svc->start != NULL && svc->start() != 0) || souk__events_start() != 0) {
        souk_error("start failed", NULL);
        return 1;
    }
    if (souk__conn_start(cfg_header_timeout, cfg_conn_timeout) != 0 || start_public(&sa) != 0)
        return 1;
    if (start_admin() != 0) {
        MHD_stop_daemon(public_l.daemon);
        return 1;
    }
    if (souk__grpc_start(svc) != 0) /* SOUK_GRPC_LISTEN, when the service has RPCs */
        return 1;
    atomic_store(&started, true);
    char db_shown[512]; /* a database URL may carry a password */
    souk_info("listening", "{s:s,s:s,s:b,s:I,s:s}", "addr", cfg_listen, "admin",
              admin_addr[0] != '\0' ? admin_addr : "off", "tls", public_l.tls, "threads",
              (json_int_t)cfg_threads, "db",
              souk_config_redact_url(cfg_db, db_shown, sizeof(db_shown)));

    int sig = 0;
    sigwait(&sigs, &sig);
    souk_info("signal received", "{s:i}", "signal", sig);
    drain();
    souk_info("stopped", NULL);
    return 0;
}
