/* oauth.c: the OAuth 2.0 endpoints (RFC 6749, 7009): the token endpoint with the
 * password, refresh_token and client_credentials grants (form-encoded or JSON),
 * revocation, the JWKS and the discovery document. Refresh tokens are opaque,
 * stored as a hash, rotated on every use; presenting a rotated one revokes its
 * whole family. Failed logins are throttled per client address, per account from
 * one address, and slowed (never locked) per account. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "souk/auth.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define PARAM_MAX     FORM_PARAM_MAX
#define REFRESH_BYTES 32 /* 256 random bits */
#define HASH_HEX      (crypto_generichash_BYTES * 2 + 1)
#define ADDR_MAX      64
#define WEB_CLIENT    "souk-web"
#define PURGE_ODDS    64 /* purge stale throttle rows on 1 failure in N */

/* ---- errors ---- */

/* RFC 6749 §5.2 error body, carried inside our problem document. */
static int oauth_error(struct souk_req *r, int status, const char *error, const char *detail)
{
    json_t *p = souk_problem_json(status, error, detail);
    json_object_set_new(p, "error", json_string(error));
    json_object_set_new(p, "error_description", json_string(detail));
    souk_reply_header(r, "Cache-Control", "no-store");
    souk_reply_json(r, p);
    return status;
}

/* ---- request parameters: form-encoded or JSON, both into a JSON object ---- */

static bool is_form(const char *ct)
{
    static const char form[] = "application/x-www-form-urlencoded";
    return ct != NULL && strncasecmp(ct, form, sizeof(form) - 1) == 0 &&
           (ct[sizeof(form) - 1] == '\0' || ct[sizeof(form) - 1] == ';' ||
            ct[sizeof(form) - 1] == ' ');
}

/* The parameters as an object of strings owned by the request (borrowed), or
 * NULL with the error response set. A parameter sent twice is refused (§3.2). */
static json_t *params(struct souk_req *r, json_t **owned, int *status)
{
    *owned = NULL;
    *status = 400;
    if (!is_form(souk_req_header(r, "Content-Type"))) {
        json_t *j = souk_req_json(r);
        if (j == NULL) {
            *status = souk_req_status(r);
            return NULL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (!json_is_string(v) || json_string_length(v) > PARAM_MAX) {
                oauth_error(r, 400, "invalid_request",
                            "every parameter must be a string of at most 4096 bytes");
                return NULL;
            }
        }
        return j;
    }
    size_t len;
    const char *body = souk_req_body(r, &len);
    const char *why = NULL;
    *owned = oauth_form_parse(souk_req_arena(r), body, len, &why);
    if (*owned == NULL)
        oauth_error(r, 400, "invalid_request", why);
    return *owned;
}

static const char *param(json_t *p, const char *name)
{
    const char *v = json_string_value(json_object_get(p, name));
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* ---- client authentication (§2.3): HTTP Basic, client_secret_post, or public ---- */

static const struct oauth_client *authenticate_client(struct souk_req *r, json_t *p, int *status)
{
    const char *auth = souk_req_header(r, "Authorization");
    const char *id = param(p, "client_id"), *secret = param(p, "client_secret");
    char *basic_id = NULL;
    if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0) {
        unsigned char raw[600];
        size_t n = 0;
        const char *b64 = auth + 6;
        if (strlen(b64) > 800 || sodium_base642bin(raw, sizeof(raw) - 1, b64, strlen(b64), NULL, &n,
                                                   NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
            goto bad;
        raw[n] = '\0';
        char *colon = memchr(raw, ':', n);
        if (colon == NULL || secret != NULL)
            goto bad;
        /* RFC 6749 §2.3.1: both halves are form-encoded */
        basic_id =
            oauth_form_decode(souk_req_arena(r), (const char *)raw, (size_t)(colon - (char *)raw));
        secret =
            oauth_form_decode(souk_req_arena(r), colon + 1, n - (size_t)(colon + 1 - (char *)raw));
        if (basic_id == NULL || secret == NULL || (id != NULL && strcmp(id, basic_id) != 0))
            goto bad;
        id = basic_id;
    }
    if (id == NULL)
        id = WEB_CLIENT;
    const struct oauth_client *c = clients_find(id);
    if (c == NULL)
        goto bad;
    if (c->confidential ? !clients_check_secret(c, secret) : secret != NULL)
        goto bad;
    return c;
bad:
    if (auth != NULL && strncasecmp(auth, "Basic ", 6) == 0)
        souk_reply_header(r, "WWW-Authenticate", "Basic realm=\"souk\"");
    *status = oauth_error(r, 401, "invalid_client", "client authentication failed");
    return NULL;
}

/* ---- tokens ---- */

static void token_hash(const char *token, char out[HASH_HEX])
{
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(out, HASH_HEX, h, sizeof(h));
}

/* A signed access token for sub; roles NULL for a service. malloc'd or NULL. */
static char *access_token(const char *sub, const char *client_id, const char *scope,
                          const char *role)
{
    int64_t now = souk_wall_ms() / 1000;
    unsigned char rnd[16];
    char jti[40];
    randombytes_buf(rnd, sizeof(rnd));
    souk_b64url_enc(rnd, sizeof(rnd), jti, sizeof(jti));
    json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "iss", souk_auth_issuer(),
                               "aud", souk_auth_audience(), "sub", sub, "iat", (json_int_t)now,
                               "nbf", (json_int_t)now, "exp", (json_int_t)(now + cfg_access_ttl),
                               "jti", jti, "client_id", client_id, "scope", scope);
    if (role != NULL)
        json_object_set_new(claims, "roles", json_pack("[s]", role));
    char *tok = keys_sign(claims);
    json_decref(claims);
    return tok;
}

/* Store a new refresh token of family for user; its opaque text into out. */
static int new_refresh(struct souk_db *db, const char *family, const char *user_id,
                       const char *client_id, const char *scope, char *out, size_t cap)
{
    unsigned char rnd[REFRESH_BYTES];
    char hash[HASH_HEX];
    randombytes_buf(rnd, sizeof(rnd));
    souk_b64url_enc(rnd, sizeof(rnd), out, cap);
    token_hash(out, hash);
    int64_t now = souk_wall_ms() / 1000;
    int rc =
        souk_db_run(db,
                    "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, scope,"
                    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    "sssssii", hash, family, user_id, client_id, scope, now, now + cfg_refresh_ttl);
    return rc < 0 ? rc : 0;
}

static const char *user_scope(const char *role)
{
    return strcmp(role, "admin") == 0 ? "user admin" : "user";
}

/* Answer with an access token (and refresh token when given). */
static int token_reply(struct souk_req *r, char *access, const char *refresh, const char *scope)
{
    if (access == NULL)
        return souk_problem(r, 500, "internal", "cannot sign a token");
    json_t *body = json_pack("{s:s,s:s,s:I,s:s}", "access_token", access, "token_type", "Bearer",
                             "expires_in", (json_int_t)cfg_access_ttl, "scope", scope);
    free(access);
    if (refresh != NULL)
        json_object_set_new(body, "refresh_token", json_string(refresh));
    souk_reply_header(r, "Cache-Control", "no-store");
    souk_reply_header(r, "Pragma", "no-cache");
    souk_reply_json(r, body);
    return 200;
}

/* ---- login throttling (OWASP authentication cheat sheet) ----
 * Attempts are counted in a fixed window (SOUK_LOGIN_WINDOW) under three keys, the
 * address being the real client's (X-Forwarded-For from a trusted proxy, kit):
 *   addr:<ip>          from one address: past SOUK_LOGIN_MAX_FAILURES_ADDR, 429
 *   pair:<ip> <email>  one account from one address: past SOUK_LOGIN_MAX_FAILURES, 429
 *   acct:<email>       one account from anywhere: never a lock; past
 *                      SOUK_LOGIN_DELAY_AFTER each attempt first waits 1 s, doubling
 *                      per failure up to SOUK_LOGIN_DELAY_MAX_MS
 * so a stranger locks out only their own address and can slow an account, never
 * lock its owner out. An attempt is counted before its password is checked and the
 * count taken back when it succeeds: parallel guesses cannot slip past the limits,
 * and when the count cannot be written nothing is checked (503). */

int64_t login_delay_ms(int64_t failures, int64_t after, int64_t max_ms)
{
    if (failures < after || max_ms <= 0)
        return 0;
    int64_t steps = failures - after;
    int64_t d = steps >= 20 ? max_ms : (int64_t)1000 << steps;
    return d < max_ms ? d : max_ms;
}

/* Count one attempt under key; *count gets the attempts in the window so far
 * (this one included) and *left the seconds until the window ends. */
static int count_attempt(struct souk_db *db, const char *key, int64_t now, int64_t *count,
                         int64_t *left)
{
    int rc =
        souk_db_run(db,
                    "INSERT INTO login_failures (key, window_start, failures) VALUES (?1, ?2, 1)"
                    " ON CONFLICT (key) DO UPDATE SET"
                    " failures = CASE WHEN login_failures.window_start + ?3 <= ?2 THEN 1"
                    " ELSE login_failures.failures + 1 END,"
                    " window_start = CASE WHEN login_failures.window_start + ?3 <= ?2 THEN ?2"
                    " ELSE login_failures.window_start END",
                    "sii", key, now, cfg_login_window);
    struct souk_stmt *st =
        rc < 0
            ? NULL
            : souk_db_query(db, "SELECT window_start, failures FROM login_failures WHERE key = ?",
                            "s", key);
    if (st == NULL)
        return rc < 0 ? rc : SOUK_EDB;
    rc = souk_stmt_step(st);
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    *left = souk_stmt_int(st, 0) + cfg_login_window - now;
    *count = souk_stmt_int(st, 1);
    souk_stmt_done(st);
    return 0;
}

/* The attempt's keys, counted in one transaction. 0, or a negative code. */
struct attempt {
    char addr[ADDR_MAX + 8], pair[ADDR_MAX + EMAIL_MAX + 8], acct[EMAIL_MAX + 8];
    int64_t n_addr, n_pair, n_acct, left_addr, left_pair, left_acct;
};

static int count_login(struct souk_db *db, struct attempt *a, bool account, int64_t now)
{
    /* each upsert is atomic and holds its row to the commit, and the count read after
     * it is this attempt's: row locks are enough, and parallel guesses queue */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc == 0)
        rc = count_attempt(db, a->addr, now, &a->n_addr, &a->left_addr);
    if (rc == 0 && account)
        rc = count_attempt(db, a->pair, now, &a->n_pair, &a->left_pair);
    if (rc == 0 && account)
        rc = count_attempt(db, a->acct, now, &a->n_acct, &a->left_acct);
    if (rc == 0 && randombytes_uniform(PURGE_ODDS) == 0)
        rc = souk_db_run(db, "DELETE FROM login_failures WHERE window_start + ? <= ?", "ii",
                         cfg_login_window, now) < 0
                 ? SOUK_EDB
                 : 0;
    if (rc == 0)
        rc = souk_db_commit(db);
    if (rc != 0)
        souk_db_rollback(db);
    return rc;
}

/* A success takes its attempt back and clears the pair: the owner's own address
 * starts afresh. Not fatal when it fails: the attempt stays counted, no more. */
static void uncount_login(struct souk_db *db, const struct attempt *a, bool account)
{
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc == 0)
        rc = souk_db_run(db,
                         "UPDATE login_failures SET failures = failures - 1"
                         " WHERE key IN (?, ?) AND failures > 0",
                         "ss", a->addr, account ? a->acct : a->addr);
    if (rc >= 0 && account)
        rc = souk_db_run(db, "DELETE FROM login_failures WHERE key = ?", "s", a->pair);
    if (rc >= 0)
        rc = souk_db_commit(db);
    if (rc < 0) {
        souk_db_rollback(db);
        souk_warn("cannot take back a successful login's attempt", "{s:s}", "error",
                  souk_strerror(rc));
    }
}

/* ---- grants ---- */

/* A login waiting for its hash check: what the worker needs, in the request's arena. */
struct login {
    struct hash_job job;
    struct souk_req *r;
    struct attempt a;
    bool account; /* the username is a well-formed email: pair and acct were counted */
    char id[SOUK_ID_MAX], role[16], hash[crypto_pwhash_STRBYTES];
    char *password; /* a copy, wiped after the check */
    const char *client_id;
};

/* On a hashing worker: check the password, then issue the tokens. */
static int finish_login(struct login *l)
{
    struct souk_req *r = l->r;
    int rc = password_verify_now(l->id[0] ? l->hash : NULL, l->password);
    sodium_memzero(l->password, strlen(l->password));
    if (rc != 0) /* already counted */
        return oauth_error(r, 400, "invalid_grant", "wrong email or password");
    struct souk_db *db = souk_db_thread();
    if (db == NULL)
        return souk_handler_db_error(r, SOUK_EUNAVAIL, "cannot sign in");
    uncount_login(db, &l->a, l->account);
    char family[SOUK_ID_MAX], refresh[64];
    const char *scope = user_scope(l->role);
    souk_id_new(family, "rtf");
    rc = new_refresh(db, family, l->id, l->client_id, scope, refresh, sizeof(refresh));
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot store the refresh token");
    souk_info("login", "{s:s}", "user_id", l->id);
    return token_reply(r, access_token(l->id, l->client_id, scope, l->role), refresh, scope);
}

static void run_login(struct hash_job *job)
{
    struct login *l = (struct login *)job;
    souk_req_resume(l->r, finish_login(l));
}

static int grant_password(struct souk_req *r, json_t *p, const struct oauth_client *c)
{
    if (c->confidential)
        return oauth_error(r, 400, "unauthorized_client",
                           "this client may not use the password grant");
    const char *username = param(p, "username"), *password = param(p, "password");
    if (username == NULL || password == NULL)
        return oauth_error(r, 400, "invalid_request", "username and password are required");
    if (strlen(password) > PASSWORD_MAX)
        return oauth_error(r, 400, "invalid_grant", "wrong email or password");
    struct login *l = souk_req_alloc(r, sizeof(*l));
    memset(l, 0, sizeof(*l));
    char norm[EMAIL_MAX + 1];
    const char *ip = souk_req_client_addr(r);
    l->account = users_email_norm(username, norm, sizeof(norm));
    snprintf(l->a.addr, sizeof(l->a.addr), "addr:%s", ip);
    snprintf(l->a.pair, sizeof(l->a.pair), "pair:%s %s", ip, l->account ? norm : "-");
    snprintf(l->a.acct, sizeof(l->a.acct), "acct:%s", l->account ? norm : "-");
    struct souk_db *db = souk_req_db(r);
    int64_t now = souk_wall_ms() / 1000;
    int rc = count_login(db, &l->a, l->account, now);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot count the login attempt");
    int64_t retry = 0;
    if (l->a.n_addr > cfg_login_max_addr)
        retry = l->a.left_addr;
    if (l->account && l->a.n_pair > cfg_login_max_account && l->a.left_pair > retry)
        retry = l->a.left_pair;
    if (retry > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)retry);
        souk_reply_header(r, "Retry-After", ra);
        souk_warn("login throttled", "{s:s,s:s}", "addr", ip, "limit",
                  l->a.n_addr > cfg_login_max_addr ? "address" : "account from this address");
        return souk_problem(r, 429, "too_many_attempts",
                            "too many failed logins; retry in %s seconds", ra);
    }
    struct souk_stmt *st =
        l->account
            ? souk_db_query(db, "SELECT id, role, password_hash FROM users WHERE email_norm = ?",
                            "s", norm)
            : NULL;
    rc = st != NULL ? souk_stmt_step(st) : l->account ? SOUK_EDB : SOUK_DONE;
    if (rc == SOUK_ROW) {
        snprintf(l->id, sizeof(l->id), "%s", souk_stmt_text(st, 0));
        snprintf(l->role, sizeof(l->role), "%s", souk_stmt_text(st, 1));
        snprintf(l->hash, sizeof(l->hash), "%s", souk_stmt_text(st, 2));
        souk_stmt_done(st);
    } else if (rc < 0) {
        return souk_handler_db_error(r, rc, "cannot read the account");
    }
    l->r = r;
    l->client_id = c->id;
    l->password = souk_arena_strdup(souk_req_arena(r), password);
    l->job.run = run_login;
    l->job.kind = HASH_LOGIN;
    /* the attempts before this one decide its delay */
    l->job.not_before_ms = souk_wall_ms() + login_delay_ms(l->a.n_acct - 1, cfg_login_delay_after,
                                                           cfg_login_delay_max);
    if (password_submit(&l->job) != 0) {
        sodium_memzero(l->password, strlen(l->password));
        souk_reply_header(r, "Retry-After", "1");
        return souk_problem(r, 503, "busy", "too many logins at once; retry shortly");
    }
    return SOUK_SUSPEND; /* run_login answers */
}

static int grant_refresh(struct souk_req *r, json_t *p, const struct oauth_client *c)
{
    const char *token = param(p, "refresh_token");
    if (token == NULL || strlen(token) > 128)
        return oauth_error(r, 400, "invalid_request", "refresh_token is required");
    char hash[HASH_HEX], family[SOUK_ID_MAX] = "", user_id[SOUK_ID_MAX] = "", refresh[64];
    char role[16] = "", client[64] = "";
    token_hash(token, hash);
    struct souk_db *db = souk_req_db(r);
    int64_t now = souk_wall_ms() / 1000;
    const char *fail = NULL;
    bool reused = false;
    /* the token's row is locked as it is read: a second use of it waits for the first
     * and then finds it used (reuse: the family is revoked), as SQLite's write lock has it */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot read the refresh token");
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT t.family_id, t.user_id, t.client_id, t.expires_at, t.used_at IS NOT NULL,"
        " t.revoked_at IS NOT NULL, u.role FROM refresh_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ?" SOUK_IF_PG(" FOR UPDATE OF t"),
        "s", hash);
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0) { /* not "unknown": we could not look */
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot read the refresh token");
    }
    if (rc != SOUK_ROW) {
        fail = "unknown refresh token";
        goto out;
    }
    snprintf(family, sizeof(family), "%s", souk_stmt_text(st, 0));
    snprintf(user_id, sizeof(user_id), "%s", souk_stmt_text(st, 1));
    snprintf(client, sizeof(client), "%s", souk_stmt_text(st, 2));
    int64_t expires = souk_stmt_int(st, 3);
    bool used = souk_stmt_int(st, 4), revoked = souk_stmt_int(st, 5);
    snprintf(role, sizeof(role), "%s", souk_stmt_text(st, 6));
    souk_stmt_done(st);
    if (revoked) {
        fail = "refresh token revoked";
    } else if (used) {
        /* a rotated token came back: someone holds a copy. End the whole session
         * (and if that cannot be written, say so: the copy must not stay usable). */
        rc = souk_db_run(db,
                         "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ?"
                         " AND revoked_at IS NULL",
                         "is", now, family);
        if (rc < 0) {
            souk_db_rollback(db);
            return souk_handler_db_error(r, rc, "cannot revoke the session");
        }
        reused = true;
        fail = "refresh token reused; the session is revoked";
    } else if (expires <= now) {
        fail = "refresh token expired";
    } else if (strcmp(client, c->id) != 0) {
        fail = "refresh token was issued to another client";
    } else {
        rc = souk_db_run(
            db, "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
            "is", now, hash);
        if (rc == 1)
            rc =
                new_refresh(db, family, user_id, c->id, user_scope(role), refresh, sizeof(refresh));
        else if (rc == 0) /* used by another request since we read it */
            rc = SOUK_ECONFLICT;
        if (rc != 0) {
            souk_db_rollback(db);
            return souk_handler_db_error(r, rc, "cannot rotate the refresh token");
        }
    }
out:
    rc = fail == NULL || reused ? souk_db_commit(db) : 0;
    if (rc != 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot rotate the refresh token");
    }
    if (fail != NULL && !reused)
        souk_db_rollback(db);
    if (reused)
        souk_warn("refresh token reuse: family revoked", "{s:s,s:s}", "user_id", user_id, "family",
                  family);
    if (fail != NULL)
        return oauth_error(r, 400, "invalid_grant", fail);
    const char *scope = user_scope(role);
    return token_reply(r, access_token(user_id, c->id, scope, role), refresh, scope);
}

/* Is every scope in want among have? */
static bool scope_subset(const char *want, const char *have)
{
    const char *p = want;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        bool found = false;
        for (const char *h = have; *h != '\0' && !found;) {
            while (*h == ' ')
                h++;
            size_t m = strcspn(h, " ");
            found = m == n && strncmp(h, p, n) == 0;
            h += m;
        }
        if (!found)
            return false;
        p += n;
    }
    return true;
}

static int grant_client_credentials(struct souk_req *r, json_t *p, const struct oauth_client *c)
{
    if (!c->confidential)
        return oauth_error(r, 400, "unauthorized_client",
                           "a public client has no credentials of its own");
    const char *scope = param(p, "scope");
    if (scope == NULL)
        scope = c->scope;
    else if (strlen(scope) > 255 || !scope_subset(scope, c->scope))
        return oauth_error(r, 400, "invalid_scope", "scope not allowed for this client");
    return token_reply(r, access_token(c->id, c->id, scope, NULL), NULL, scope);
}

int oauth_token(struct souk_req *r)
{
    json_t *owned;
    int status = 0;
    json_t *p = params(r, &owned, &status);
    if (p == NULL)
        goto out;
    const struct oauth_client *c = authenticate_client(r, p, &status);
    if (c == NULL)
        goto out;
    const char *grant = param(p, "grant_type");
    if (grant == NULL)
        status = oauth_error(r, 400, "invalid_request", "grant_type is required");
    else if (strcmp(grant, "password") == 0)
        status = grant_password(r, p, c);
    else if (strcmp(grant, "refresh_token") == 0)
        status = grant_refresh(r, p, c);
    else if (strcmp(grant, "client_credentials") == 0)
        status = grant_client_credentials(r, p, c);
    else
        status = oauth_error(r, 400, "unsupported_grant_type",
                             "grant_type must be password, refresh_token or client_credentials");
out:
    json_decref(owned);
    return status;
}

/* RFC 7009: revoke a refresh token (and its family). Unknown tokens succeed too;
 * access tokens are short-lived JWTs and simply expire. */
int oauth_revoke(struct souk_req *r)
{
    json_t *owned;
    int status = 0;
    json_t *p = params(r, &owned, &status);
    if (p == NULL)
        goto out;
    const struct oauth_client *c = authenticate_client(r, p, &status);
    if (c == NULL)
        goto out;
    const char *token = param(p, "token");
    if (token == NULL) {
        status = oauth_error(r, 400, "invalid_request", "token is required");
        goto out;
    }
    if (strlen(token) <= 128) {
        char hash[HASH_HEX];
        token_hash(token, hash);
        int n = souk_db_run(
            souk_req_db(r),
            "UPDATE refresh_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND family_id ="
            " (SELECT family_id FROM refresh_tokens WHERE token_hash = ? AND client_id = ?)",
            "iss", souk_wall_ms() / 1000, hash, c->id);
        if (n < 0) {
            status = souk_handler_db_error(r, n, "cannot revoke the token");
            goto out;
        }
    }
    souk_reply_header(r, "Cache-Control", "no-store");
    souk_reply_json(r, json_object());
    status = 200;
out:
    json_decref(owned);
    return status;
}

int oauth_jwks(struct souk_req *r)
{
    json_t *j = keys_jwks();
    if (j == NULL)
        return souk_problem(r, 503, "no_keys", "no signing key is loaded");
    souk_reply_header(r, "Cache-Control", "public, max-age=60");
    souk_reply_json(r, j);
    return 200;
}

int oauth_discovery(struct souk_req *r)
{
    const char *base = cfg_public_url;
    json_t *d = json_pack(
        "{s:s,s:s,s:s,s:s,s:[sss],s:[ss],s:[s],s:[s],s:[s],s:[s]}", "issuer", souk_auth_issuer(),
        "jwks_uri", souk_req_printf(r, "%s/.well-known/jwks.json", base), "token_endpoint",
        souk_req_printf(r, "%s/oauth/token", base), "revocation_endpoint",
        souk_req_printf(r, "%s/oauth/revoke", base), "grant_types_supported", "password",
        "refresh_token", "client_credentials", "token_endpoint_auth_methods_supported",
        "client_secret_basic", "client_secret_post", "id_token_signing_alg_values_supported",
        SOUK_AUTH_ALG, "response_types_supported", "token", "subject_types_supported", "public",
        "token_endpoint_auth_signing_alg_values_supported", SOUK_AUTH_ALG);
    json_object_set_new(d, "userinfo_endpoint",
                        json_string(souk_req_printf(r, "%s/api/v1/users/me", base)));
    souk_reply_header(r, "Cache-Control", "public, max-age=300");
    souk_reply_json(r, d);
    return 200;
}
