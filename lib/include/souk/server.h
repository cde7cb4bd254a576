/* server.h: the HTTP server a service is made of. A service declares its routes as
 * a table (method, pattern with {params}, handler, who may call it) in a struct
 * souk_service, which souk_main() (service.h) runs. A handler returns the HTTP status
 * and sets the body with souk_reply_*() or souk_problem(); request-scoped memory
 * comes from souk_req_alloc(). */
#ifndef SOUK_SERVER_H
#define SOUK_SERVER_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/arena.h"
#include "souk/config.h"
#include "souk/db.h"
#include "souk/json.h"
#include "souk/problem.h"

struct souk_req;
struct souk_subscription;
struct souk_grpc_service;

typedef int (*souk_handler)(struct souk_req *r);

/* Who may call a route. */
enum souk_auth {
    SOUK_PUBLIC = 0,    /* anyone */
    SOUK_USER,          /* a valid user access token */
    SOUK_ADMIN,         /* a user token with the admin role */
    SOUK_SERVICE,       /* a service token carrying the route's scope */
    SOUK_OPTIONAL_USER, /* anyone; the identity is filled in when a valid token is sent */
};

struct souk_route {
    const char *method;  /* "GET"; NULL ends the table. GET routes answer HEAD too. */
    const char *pattern; /* "/api/v1/products/{id}": literal segments and {name} */
    souk_handler handler;
    enum souk_auth auth;
    const char *scope; /* for SOUK_SERVICE: the scope required, e.g. "catalog:reserve" */
    size_t max_body;   /* 0: SOUK_MAX_BODY */
};

/* The caller, as established by auth. */
#define SOUK_SUB_MAX 64
struct souk_identity {
    bool authenticated;
    bool admin;
    bool service;           /* a client-credentials token */
    char sub[SOUK_SUB_MAX]; /* usr_… or the client id */
    char scope[256];        /* space-separated scopes */
    char token_id[64];      /* jti */
    long long expires;      /* exp, seconds since the epoch */
};

/* What souk_main() hands a service that serves its public listener itself
 * (struct souk_service's serve: the gateway's libuv engine). Borrowed for the life of
 * the process. */
struct souk_realip;
struct souk_serve {
    const char *listen;                        /* SOUK_LISTEN, "127.0.0.1:8080" */
    int threads;                               /* SOUK_THREADS */
    bool tls;                                  /* SOUK_TLS_CERT/KEY set: HTTPS wanted */
    long max_conns;                            /* SOUK_MAX_CONNECTIONS */
    long max_per_ip;                           /* SOUK_MAX_CONNECTIONS_PER_IP; 0: no cap */
    long header_timeout_s;                     /* SOUK_HEADER_TIMEOUT */
    long idle_timeout_s;                       /* SOUK_CONN_TIMEOUT */
    size_t max_body;                           /* SOUK_MAX_BODY */
    bool access_log;                           /* SOUK_ACCESS_LOG */
    const struct souk_realip *trusted_proxies; /* SOUK_TRUSTED_PROXIES */
    /* /readyz's verdict: NULL when ready, else why not ("starting", "draining"…) */
    const char *(*not_ready)(void);
};

struct souk_service {
    const char *name;   /* "catalog" */
    const char *listen; /* default SOUK_LISTEN, "127.0.0.1:8082" */
    const struct souk_route *routes;
    const struct souk_migration *migrations; /* usually service_migrations */
    const struct souk_conf *config;          /* service variables, loaded after the kit's */
    int (*start)(void); /* after migrations, before serving: start workers; 0 or error */
    void (*stop)(void); /* after draining */
    int (*seed)(struct souk_db *db); /* `<binary> seed`: demo data; 0 or error */
    bool (*ready)(void);             /* extra readiness for /readyz (NULL: always) */
    bool publishes;                  /* has an outbox: serves /internal/v1/events, runs the relay */
    /* Faces clients directly (the gateway): /metrics never on the public listener,
     * an admin listener on loopback by default (SOUK_ADMIN_LISTEN=auto), and a cap on
     * connections per client address by default (SOUK_MAX_CONNECTIONS_PER_IP=128). */
    bool edge;
    const struct souk_subscription *subscriptions; /* events consumed; NULL-ended */
    const struct souk_grpc_service *grpc; /* RPCs served beside HTTP (souk/grpc.h); NULL: none */
    /* Serve the public listener without the kit's HTTP server (NULL: the kit's). Called
     * after start, in place of it: 1 when the service serves it, 0 to leave it to the
     * kit, SOUK_EINVAL for a refused configuration (exit 2), another code to fail (1).
     * serve_drain stops accepting and returns once what is in flight is answered or
     * at deadline_ns; the admin and probe listeners stay the kit's either way. */
    int (*serve)(const struct souk_serve *s);
    void (*serve_drain)(uint64_t deadline_ns);
};

/* ---- inside a handler ---- */

const char *souk_req_method(struct souk_req *r);
const char *souk_req_path(struct souk_req *r);
/* A path parameter by name ("id"), never NULL for a name in the pattern. */
const char *souk_req_param(struct souk_req *r, const char *name);
/* A query parameter (decoded) or NULL; an empty value is "". */
const char *souk_req_query(struct souk_req *r, const char *name);
/* The query string rebuilt from the decoded parameters, percent-encoded again
 * ("q=red%20shoes&page_size=5"), or "" when there is none. Owned by the request.
 * The gateway forwards this: what it routed on is exactly what the upstream sees. */
const char *souk_req_query_string(struct souk_req *r);
const char *souk_req_header(struct souk_req *r, const char *name);
/* The raw body (NUL-terminated) and its length. */
const char *souk_req_body(struct souk_req *r, size_t *len);
/* The body parsed as a JSON object. On a missing or malformed body or a non-object
 * it sets a 400 problem and returns NULL: the handler returns souk_req_status(r).
 * Owned by the request. */
json_t *souk_req_json(struct souk_req *r);
const struct souk_identity *souk_req_identity(struct souk_req *r);
const char *souk_req_id(struct souk_req *r);          /* X-Request-Id */
const char *souk_req_traceparent(struct souk_req *r); /* to pass on to peers */
/* The client's address ("198.51.100.7"): the TCP peer, or, when the peer is one of
 * SOUK_TRUSTED_PROXIES, the client it names in X-Forwarded-For (souk/realip.h). */
const char *souk_req_client_addr(struct souk_req *r);
int souk_req_status(struct souk_req *r); /* the status set so far */

void *souk_req_alloc(struct souk_req *r, size_t n);
char *souk_req_printf(struct souk_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct souk_arena *souk_req_arena(struct souk_req *r);
/* The calling thread's database connection (same as souk_db_thread()). */
struct souk_db *souk_req_db(struct souk_req *r);

/* Responses. reply_json takes the reference to body; the handler returns the status. */
void souk_reply_json(struct souk_req *r, json_t *body);
/* A pre-rendered body; copied unless the server may take it (take = true: malloc'd). */
void souk_reply_raw(struct souk_req *r, const char *content_type, char *body, size_t len,
                    bool take);
void souk_reply_header(struct souk_req *r, const char *name, const char *value);

/* RFC 9457 problem+json: sets the response and returns status, so a handler can
 * `return souk_problem(r, 404, "not_found", "no product %s", id);`. code is the stable
 * machine string. */
int souk_problem(struct souk_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with extension members (RFC 9457 §3.2) from the object extra, which is
 * taken: souk_problem_with(r, 409, "out_of_stock", json_pack("{s:o}", "items", list), …). */
int souk_problem_with(struct souk_req *r, int status, const char *code, json_t *extra,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 400 "validation_failed" with the check's errors; takes them. */
int souk_problem_check(struct souk_req *r, struct souk_check *c);

/* ---- waiting without holding a thread ---- */

/* Return SOUK_SUSPEND from a handler after arranging for another thread to call
 * souk_req_resume(r, status) once the answer is ready (body set with souk_reply_*
 * before resuming). Until then the connection holds no pool thread. */
#define SOUK_SUSPEND 0
void souk_req_resume(struct souk_req *r, int status);

/* Is the server draining (SIGTERM received)? Long waits should end early. */
bool souk_server_draining(void);

/* ---- routing, exposed for unit tests and the gateway ---- */

/* ---- for a service that parses its requests itself (struct souk_service's serve) ---- */

/* The access decision the server makes for a route needing need (and scope, for
 * SOUK_SERVICE), given the Authorization value (NULL: absent): 0 with who filled, or
 * the status (401, 403, 503) with *code, the WWW-Authenticate value (401 and 403;
 * "" for 503, which takes Retry-After: 5) and the detail set. */
int souk_access_decide(enum souk_auth need, const char *scope, const char *authorization,
                       struct souk_identity *who, const char **code, char *challenge,
                       size_t challenge_cap, char *detail, size_t detail_cap);
/* A request answered outside the kit's HTTP server: the http_requests_total and
 * duration series of its route and the kit's ECS access line (when SOUK_ACCESS_LOG). */
struct souk_request_done {
    const char *method, *path; /* the decoded path */
    long route;                /* index in the service's routes, or -1: unmatched */
    const char *request_id, *traceparent, *client;
    int status;
    size_t bytes; /* the response body */
    uint64_t duration_ns;
};
void souk_request_done(const struct souk_request_done *d);

#define SOUK_MAX_PARAMS 8
struct souk_param {
    const char *name;
    const char *value;
    size_t len;
};
struct souk_router;

/* Build a router over routes (kept by reference). NULL on a malformed pattern (logged). */
struct souk_router *souk_router_new(const struct souk_route *routes);
void souk_router_free(struct souk_router *rt);
/* Match method and path. Returns the route index (>= 0), or -404 when no pattern
 * matches the path, or -405 when one does but not for this method. Parameter values
 * point into path (not NUL-terminated: see len). */
int souk_router_match(const struct souk_router *rt, const char *method, const char *path,
                      struct souk_param *params, size_t *nparams);
size_t souk_router_count(const struct souk_router *rt);
/* "GET, HEAD" style list of the methods allowed for path, into buf. */
void souk_router_allow(const struct souk_router *rt, const char *path, char *buf, size_t cap);

#endif
