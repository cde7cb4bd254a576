/* auth.h: who is calling. The server asks souk_auth_check() before a route's
 * handler runs; it verifies the bearer token the route needs and fills the
 * identity, or answers 401/403 itself. */
#ifndef SOUK_AUTH_H
#define SOUK_AUTH_H

#include "souk/server.h"

/* Load keys or JWKS settings from config; called once by souk_main(). */
int souk_auth_init(const char *service);
void souk_auth_shutdown(void);

/* Check r's credentials against what route requires. Returns 0 to go on, or an
 * HTTP status with the problem already set. */
int souk_auth_check(struct souk_req *r, const struct souk_route *route,
                    struct souk_identity *who);


/* This service's client-credentials access token (obtained from the users
 * service with SOUK_CLIENT_ID/SOUK_CLIENT_SECRET, cached and renewed before it
 * expires) copied into out. Returns 0 or a negative code. */
int souk_auth_service_token(char *out, size_t cap);

#endif
