/* auth.h: who is calling. Verifies RS256 access JWTs against the issuer's key set
 * (DESIGN §7) and obtains this service's own client-credentials token. Once
 * souk_auth_init() has run, the server checks every route's bearer token with
 * souk_auth_verify() and the client sends souk_auth_service_token() on calls that
 * ask for it. */
#ifndef SOUK_AUTH_H
#define SOUK_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "souk/server.h"

/* The one signature algorithm issued and accepted; anything else is refused. */
#define SOUK_AUTH_ALG "RS256"
/* The JOSE "typ" header of an access token (RFC 9068). */
#define SOUK_AUTH_TYP "at+jwt"
/* Longest bearer token looked at; longer ones are refused unparsed. */
#define SOUK_AUTH_TOKEN_MAX 8192

/* Load settings (SOUK_TOKEN_ISSUER, SOUK_TOKEN_AUDIENCE, SOUK_JWKS_URL,
 * SOUK_TOKEN_URL, SOUK_CLIENT_ID/SECRET, SOUK_JWKS_MAX_AGE_MS, SOUK_JWKS_REFETCH_MS:
 * a table, printed by `<service> --help`; the kit names no issuer); called once by
 * souk_main() before serving. Returns SOUK_EINVAL (logged) on a bad value or when
 * SOUK_CLIENT_SECRET is a committed placeholder: the service must not start. */
int souk_auth_init(void);

/* Is secret one of the committed placeholders (deploy/k8s/secrets.env,
 * "placeholder-…-replace-with-gen-secrets") rather than a secret? Whoever reads a
 * secret refuses these at start, pointing at deploy/gen-secrets. */
bool souk_auth_placeholder_secret(const char *secret);
void souk_auth_shutdown(void);

/* The issuer ("iss") and audience ("aud") every token carries; the issuer (users)
 * signs with these and every verifier requires them. Environment
 * SOUK_TOKEN_ISSUER (default "souk") and SOUK_TOKEN_AUDIENCE ("souk"). */
const char *souk_auth_issuer(void);
const char *souk_auth_audience(void);

/* Verify one access token (without "Bearer ") and fill who. Returns 0,
 * SOUK_EAUTH when the token is invalid (why names the reason, for logs and the
 * error_description), or SOUK_EUNAVAIL when no keys could be had to check it: none
 * loaded yet, or an unknown kid while the key set cannot be refetched. A key from
 * the last good set keeps verifying past SOUK_JWKS_MAX_AGE_MS while refetching
 * fails (counted in souk_auth_jwks_stale_total). */
int souk_auth_verify(const char *token, struct souk_identity *who, char *why, size_t whycap);

/* For the users service, which verifies with its own keys in-process: jwks
 * returns a new reference to the current public JWKS ({"keys":[…]}) or NULL. It is
 * called on every token whose kid the loaded set lacks, so it must bound its own
 * work. Call before souk_main(); other services fetch the key set at SOUK_JWKS_URL. */
void souk_auth_set_local_jwks(json_t *(*jwks)(void));

/* This service's client-credentials access token (obtained from the issuer's
 * token endpoint SOUK_TOKEN_URL with SOUK_CLIENT_ID/SOUK_CLIENT_SECRET, cached and
 * renewed before it expires) copied into out. Returns 0 or a negative code
 * (SOUK_EUNAVAIL when any of the three is empty). */
int souk_auth_service_token(char *out, size_t cap);

#endif
