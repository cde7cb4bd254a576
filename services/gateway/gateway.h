/* gateway.h: the parts of the API gateway shared between its files: rate limits
 * and CORS at the edge (edge.c), the storefront's static files (static.c). */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/server.h"

/* Token-bucket limiters, one per kind of key. */
enum limit_kind { LIMIT_IP, LIMIT_USER, LIMIT_TOKEN, LIMIT_KINDS };

struct edge_conf {
    int64_t rate[LIMIT_KINDS];  /* tokens per second; 0 disables that limiter */
    int64_t burst[LIMIT_KINDS]; /* bucket size */
    int64_t slots;              /* buckets kept per limiter (memory bound) */
    const char *cors_origins;   /* comma-separated origins, "*" for any, "" for none */
};

int edge_init(const struct edge_conf *c);
/* Take a token for the client address (and the user, when authenticated; and the
 * token endpoint's stricter bucket when strict). Sets RateLimit and
 * RateLimit-Policy headers. Returns 0 to go on, or 429 with the problem and
 * Retry-After set. */
int edge_rate_limit(struct souk_req *r, bool strict);
/* CORS headers for an allowed Origin on an ordinary response. */
void edge_cors(struct souk_req *r);
/* OPTIONS: a CORS preflight (or a plain OPTIONS) answered by the gateway. */
int edge_preflight(struct souk_req *r);

/* The storefront: files under web_dir, or index.html for client-side routes.
 * Returns 0 or a SOUK_E* code when web_dir cannot be resolved (then every static
 * request is a 404). */
int static_init(const char *web_dir);
int static_serve(struct souk_req *r);

#endif
