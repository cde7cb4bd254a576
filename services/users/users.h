/* users.h: what the users service's files share: handlers main.c routes to, the
 * signing keys, password hashing, service clients, and rendering a user. */
#ifndef USERS_H
#define USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/server.h"

/* Configuration (main.c's table). */
extern int64_t cfg_access_ttl;        /* seconds an access token lives */
extern int64_t cfg_refresh_ttl;       /* seconds a refresh token lives */
extern int64_t cfg_key_rotate;        /* seconds before the signing key is replaced */
extern int64_t cfg_hash_concurrency;  /* argon2id hashes at once */
extern int64_t cfg_login_window;      /* seconds of the throttling window */
extern int64_t cfg_login_max_account; /* failed logins per account per window */
extern int64_t cfg_login_max_addr;    /* failed logins per client address per window */
extern const char *cfg_clients_file;  /* SOUK_CLIENTS_FILE */
extern const char *cfg_public_url;    /* base URL in the discovery document */

#define EMAIL_MAX    254
#define NAME_MAX_LEN 100
#define PASSWORD_MIN 10
#define PASSWORD_MAX 128
#define USER_COLUMNS "id, email, name, role, created_at, updated_at"

/* accounts.c */
int users_register(struct souk_req *r);
int users_me_get(struct souk_req *r);
int users_me_patch(struct souk_req *r);
int users_admin_list(struct souk_req *r);
int users_admin_patch(struct souk_req *r);
int users_internal_get(struct souk_req *r);
/* The user row as JSON (USER_COLUMNS), or NULL when there is none. */
json_t *users_load(struct souk_db *db, const char *id);
/* Lower-case a syntactically valid email into out; false when it is not one. */
bool users_email_norm(const char *email, char *out, size_t cap);

/* addresses.c */
int addresses_list(struct souk_req *r);
int addresses_create(struct souk_req *r);
int addresses_delete(struct souk_req *r);
int addresses_internal_get(struct souk_req *r);

/* oauth.c */
int oauth_token(struct souk_req *r);
int oauth_revoke(struct souk_req *r);
int oauth_jwks(struct souk_req *r);
int oauth_discovery(struct souk_req *r);

/* clients.c: the public storefront client and the service clients. */
struct oauth_client {
    const char *id;
    const char *scope; /* space-separated scopes it may be granted */
    bool confidential; /* authenticates with a secret */
};
int clients_load(void);
/* The client named id, or NULL. */
const struct oauth_client *clients_find(const char *id);
/* Does secret match the client's? Constant time. */
bool clients_check_secret(const struct oauth_client *c, const char *secret);

/* keys.c: RS256 signing keys under SOUK_VAR/keys (one private JWK per file, 0600). */
int keys_init(void);
void keys_free(void);
/* A new reference to the public JWKS; NULL when no key is loaded. */
json_t *keys_jwks(void);
/* Sign claims as an at+jwt with the current key; malloc'd compact JWS or NULL. */
char *keys_sign(json_t *claims);

/* password.c: argon2id at or above OWASP's minimum, at most N hashes at once. */
int password_init(void);
/* Hash into out (crypto_pwhash_STRBYTES). 0, SOUK_EBUSY (no slot in time) or SOUK_ENOMEM. */
int password_hash(const char *password, char *out);
/* 0 when it matches, SOUK_EAUTH when not, SOUK_EBUSY when no slot came in time. */
int password_verify(const char *hash, const char *password);
/* Burn the same time as a verify, so an unknown account answers as slowly as a known one. */
void password_dummy_verify(const char *password);
/* NULL when acceptable, else why not. */
const char *password_weakness(const char *password, const char *email);

/* seed.c */
int users_seed(struct souk_db *db);

#endif
