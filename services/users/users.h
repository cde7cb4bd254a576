/* users.h: what the users service's files share: handlers main.c routes to, the
 * signing keys, password hashing, service clients, and rendering a user. */
#ifndef USERS_H
#define USERS_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/server.h"

/* Configuration (main.c's table). */
extern int64_t cfg_access_ttl;         /* seconds an access token lives */
extern int64_t cfg_refresh_ttl;        /* seconds a refresh token lives */
extern int64_t cfg_key_rotate;         /* seconds before the signing key is replaced */
extern int64_t cfg_hash_concurrency;   /* argon2id hashes at once (worker threads) */
extern int64_t cfg_hash_queue;         /* jobs waiting per kind before 503 */
extern int64_t cfg_login_window;       /* seconds of the throttling window */
extern int64_t cfg_login_max_account;  /* failed logins per (account, address) per window */
extern int64_t cfg_login_max_addr;     /* failed logins per client address per window */
extern int64_t cfg_login_delay_after;  /* failures of an account, from anywhere, before delays */
extern int64_t cfg_login_delay_max;    /* the longest delay, ms */
extern const char *cfg_clients_file;   /* SOUK_CLIENTS_FILE */
extern const char *cfg_public_url;     /* base URL in the discovery document */
extern const char *cfg_admin_email;    /* `users seed`: the admin account ("": the default) */
extern const char *cfg_admin_password; /* `users seed`: its password ("": generated) */

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
/* The user row as JSON (USER_COLUMNS) into *out: 1, or 0 when there is none, or a
 * negative code when the database failed (then *out is NULL too). */
int users_load(struct souk_db *db, const char *id, json_t **out);
/* Lower-case a syntactically valid email into out; false when it is not one. */
bool users_email_norm(const char *email, char *out, size_t cap);

/* addresses.c */
int addresses_list(struct souk_req *r);
int addresses_create(struct souk_req *r);
int addresses_delete(struct souk_req *r);
int addresses_internal_get(struct souk_req *r);

/* oauth.c */
int oauth_token(struct souk_req *r);
/* How long an attempt on an account waits before its password is checked, given
 * the account's failures (from anywhere) in the window: 0 below after, then 1 s
 * doubling per failure, never more than max_ms. */
int64_t login_delay_ms(int64_t failures, int64_t after, int64_t max_ms);
int oauth_revoke(struct souk_req *r);
int oauth_jwks(struct souk_req *r);
int oauth_discovery(struct souk_req *r);

/* form.c: an application/x-www-form-urlencoded body as a new JSON object of
 * strings (decoded keys and values, from memory in a), or NULL with why set: a
 * bad percent-escape or %00, more than FORM_PARAMS_MAX parameters, a value over
 * FORM_PARAM_MAX bytes, a repeated key (RFC 6749 §3.2), or text that is not UTF-8. */
#define FORM_PARAMS_MAX 16
#define FORM_PARAM_MAX  4096
struct souk_arena;
/* Percent-decode s[0..n) ('+' is a space) into a NUL-terminated string from a;
 * NULL when malformed (a bad escape, or %00, which would cut the value short). */
char *oauth_form_decode(struct souk_arena *a, const char *s, size_t n);
json_t *oauth_form_parse(struct souk_arena *a, const char *body, size_t len, const char **why);

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

/* keys.c: RS256 signing keys in the database (signing_keys); key files dropped in
 * SOUK_VAR/keys (0600) are imported. */
int keys_init(void);
void keys_free(void);
/* A new reference to the public JWKS; NULL when no key is loaded. */
json_t *keys_jwks(void);
/* The same for verifying tokens: looks at the table at most every 100 ms. */
json_t *keys_verify_jwks(void);
/* Sign claims as an at+jwt with the current key; malloc'd compact JWS or NULL. */
char *keys_sign(json_t *claims);

/* password.c: argon2id at or above OWASP's minimum on SOUK_HASH_CONCURRENCY
 * dedicated threads, fed by bounded queues (SOUK_HASH_QUEUE each): logins first,
 * then sign-ups. A handler queues a job and returns SOUK_SUSPEND; the job's run()
 * hashes on a worker, finishes the request and resumes it. */
enum hash_kind { HASH_LOGIN, HASH_DELAYED, HASH_SIGNUP, HASH_KINDS };
struct hash_job {
    void (*run)(struct hash_job *job); /* on a hashing worker */
    enum hash_kind kind;               /* HASH_LOGIN or HASH_SIGNUP */
    int64_t not_before_ms;             /* a login waits until then (wall ms) first */
    struct hash_job *next;             /* the queue's */
};
/* Start the workers (serving only) and make the dummy hash. */
int password_init(void);
/* Let the workers finish what is queued, delays cut short, and join them. */
void password_stop(void);
/* Queue job: 0 (the handler returns SOUK_SUSPEND and job->run resumes the request),
 * or SOUK_EBUSY at once when its queue is full (answer 503 with Retry-After). */
int password_submit(struct hash_job *job);
/* On the calling thread: into out (crypto_pwhash_STRBYTES); 0 or SOUK_ENOMEM. */
int password_hash_now(const char *password, char *out);
/* On the calling thread: 0 when it matches, SOUK_EAUTH when not. hash NULL or ""
 * (no such account) burns the time of a real check against a dummy hash, so an
 * unknown account answers as slowly as a known one. */
int password_verify_now(const char *hash, const char *password);
/* NULL when acceptable, else why not. */
const char *password_weakness(const char *password, const char *email);

/* seed.c */
int users_seed(struct souk_db *db);

#endif
