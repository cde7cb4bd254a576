/* gateway.h: the parts of the API gateway shared between its files: rate limits
 * and CORS at the edge (edge.c), the storefront's static files (static.c). */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/server.h"

/* Token-bucket limiters, one per kind of key: every request per client address and
 * per user; the token endpoint and sign-up each also per client address, stricter. */
enum limit_kind { LIMIT_IP, LIMIT_USER, LIMIT_TOKEN, LIMIT_SIGNUP, LIMIT_KINDS };

/* Which stricter bucket a route also takes from, besides the address's and user's. */
enum edge_policy { EDGE_PLAIN, EDGE_TOKEN, EDGE_SIGNUP };

struct edge_conf {
    int64_t rate[LIMIT_KINDS];   /* tokens per period; 0 disables that limiter */
    int64_t period[LIMIT_KINDS]; /* seconds the rate is per; 0 means 1 */
    int64_t burst[LIMIT_KINDS];  /* bucket size */
    int64_t slots;               /* buckets kept per limiter (memory bound) */
    const char *cors_origins;    /* comma-separated origins, "*" for any, "" for none */
};

int edge_init(const struct edge_conf *c);

/* What the edge looks at in a request, so that both engines (the kit's server and
 * the libuv one, SOUK_GATEWAY_ENGINE) share one implementation. Borrowed. */
struct edge_view {
    const char *addr;   /* the kit's client address: the peer, or whom a trusted proxy names */
    const char *user;   /* the authenticated user's sub, or NULL */
    const char *origin; /* Origin, or NULL */
    bool cors_request;  /* Access-Control-Request-Method was sent */
};

/* Headers the edge adds to an answer; a value points at buf, a constant, or the
 * view's origin. */
#define EDGE_HEADERS_MAX 12
#define EDGE_VALUE_MAX   96
struct edge_headers {
    size_t n;
    struct {
        const char *name, *value;
        char buf[EDGE_VALUE_MAX];
    } h[EDGE_HEADERS_MAX];
};

/* Take a token for the client address (and the user, when authenticated; and the
 * stricter bucket of the token endpoint or of sign-up, by policy). Adds RateLimit and
 * RateLimit-Policy. Returns 0 to go on, or 429 with Retry-After and CORS added and
 * detail set (the problem's, code rate_limited). */
int edge_limit(const struct edge_view *v, enum edge_policy policy, struct edge_headers *out,
               char *detail, size_t cap);
/* CORS headers for an allowed Origin on an ordinary response. */
void edge_cors_headers(const struct edge_view *v, struct edge_headers *out);
/* OPTIONS: 204 with the preflight's (or a plain OPTIONS's Allow) headers, or 403 with
 * detail set (code cors_origin_denied). */
int edge_preflight_headers(const struct edge_view *v, struct edge_headers *out, char *detail,
                           size_t cap);

/* The same on the kit's server: edge_rate_limit returns 0 or 429 with the problem
 * set on r; edge_cors sets r's CORS headers; edge_preflight answers OPTIONS. */
int edge_rate_limit(struct souk_req *r, enum edge_policy policy);
void edge_cors(struct souk_req *r);
int edge_preflight(struct souk_req *r);

/* The libuv engine (uv_serve.c, SOUK_GATEWAY_ENGINE=uv): what each route of the
 * gateway's table does, by the route's index, so the route policy (auth, methods)
 * stays that one table's. */
enum gw_kind { GW_PREFLIGHT, GW_TRACES, GW_FORWARD, GW_STATIC };
struct gw_target {
    enum gw_kind kind;
    int up_id; /* GW_FORWARD: the index of its upstream in ups */
    enum edge_policy policy;
};
struct souk_upstream;
/* Serve s->listen on s->threads loops until uv_serve_drain(): routes and targets (n
 * each, kept by reference), ups (nu, the upstreams by up_id). 0 or a SOUK_E* code. */
int uv_serve_start(const struct souk_serve *s, const struct souk_route *routes,
                   const struct gw_target *targets, size_t n, struct souk_upstream *const *ups,
                   size_t nu);
/* Accept no more; wait for what is in flight until deadline_ns; stop the loops. */
void uv_serve_drain(uint64_t deadline_ns);

/* The storefront: files under web_dir, or index.html for client-side routes.
 * Returns 0 or a SOUK_E* code when web_dir cannot be resolved (then every static
 * request is a 404). */
int static_init(const char *web_dir);
int static_serve(struct souk_req *r);
/* The same answer for either engine: status 200 (body, malloc'd: the caller's), 304,
 * or 404/500 with the problem's code and detail; headers (security, validators) on
 * every answer. inm/ims: If-None-Match and If-Modified-Since, or NULL. */
struct static_answer {
    int status;
    const char *code; /* a problem's, or NULL */
    char detail[256];
    const char *type;
    char *body;
    size_t len;
    struct edge_headers headers;
};
int static_answer(const char *method, const char *path, const char *inm, const char *ims,
                  struct static_answer *a);

/* GET /api/v1/admin/traces/{id}: one trace from every service's ring (traces.c).
 * traces_init gives the upstreams' names and SOUK_<NAME>_URL lists, kept by
 * reference. */
void traces_init(const char *const *up_names, const char *const *up_urls, size_t n);
int traces_serve(struct souk_req *r);
/* The same for either engine: 200 with *doc (the caller's), or 400 with c's errors
 * (a malformed id). parent passes its request id and traceparent on; may be NULL.
 * Blocks on every instance's answer (PEER_TIMEOUT_MS each): never on an event loop. */
int traces_answer(const char *id, struct souk_req *parent, json_t **doc, struct souk_check *c);

#endif
