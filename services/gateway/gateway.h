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
/* Take a token for the client address (and the user, when authenticated; and the
 * stricter bucket of the token endpoint or of sign-up, by policy). The address is
 * the kit's: the TCP peer, or the client a trusted proxy (SOUK_TRUSTED_PROXIES)
 * names. Sets RateLimit and RateLimit-Policy headers. Returns 0 to go on, or 429
 * with the problem and Retry-After set. */
int edge_rate_limit(struct souk_req *r, enum edge_policy policy);
/* CORS headers for an allowed Origin on an ordinary response. */
void edge_cors(struct souk_req *r);
/* OPTIONS: a CORS preflight (or a plain OPTIONS) answered by the gateway. */
int edge_preflight(struct souk_req *r);

/* The storefront: files under web_dir, or index.html for client-side routes.
 * Returns 0 or a SOUK_E* code when web_dir cannot be resolved (then every static
 * request is a 404). */
int static_init(const char *web_dir);
int static_serve(struct souk_req *r);

/* GET /api/v1/admin/traces/{id}: one trace from every service's ring (traces.c).
 * traces_init gives the upstreams' names and SOUK_<NAME>_URL lists, kept by
 * reference. */
void traces_init(const char *const *up_names, const char *const *up_urls, size_t n);
int traces_serve(struct souk_req *r);

#endif
