/* auth.c: route access checks. Verifies RS256 access JWTs against the issuer's
 * JWKS (SOUK_JWKS_URL: fetched and cached; refetched when old or on an unknown
 * kid, at most once per few seconds even before the first set has loaded; the last
 * good set kept while refetching fails), checks every claim, caches verified tokens
 * by hash, and obtains this service's own client-credentials token for calls to
 * peers. Refuses to start with a committed placeholder secret. */
#include <pthread.h>
#include <rhonabwy.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth_int.h"
#include "client_int.h"
#include "server_int.h"
#include "souk/auth.h"
#include "souk/backoff.h"
#include "souk/client.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define LEEWAY                30   /* seconds of clock skew tolerated on exp/nbf/iat */
#define JWKS_FIRST_RETRY_MS   250  /* no key set yet: the first retries come sooner */
#define JWKS_LOCAL_REFETCH_MS 1000 /* users' own keys: in-process, cheap */
#define JWKS_TIMEOUT_MS       2000
#define CACHE_SLOTS           4096 /* verified-token cache, direct-mapped by token hash */
#define RENEW_BEFORE          60   /* renew our service token this long before it expires */
#define URL_MAX               1024

/* Defaults stand when souk_auth_init() is not called (unit tests): the table's. */
static const char *issuer = "souk", *audience = "souk";
static const char *jwks_url = "", *token_url = "", *client_id = "", *client_secret = "";
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int64_t cfg_max_age_ms = 300000, cfg_refetch_ms = 5000;
static const struct souk_conf auth_config[] = {
    {"SOUK_TOKEN_ISSUER", SOUK_CONF_STR, "souk", 1, 256, &issuer,
     "iss of access tokens: the issuer signs with it, every service requires it"},
    {"SOUK_TOKEN_AUDIENCE", SOUK_CONF_STR, "souk", 1, 256, &audience,
     "aud of access tokens: the issuer signs with it, every service requires it"},
    {"SOUK_JWKS_URL", SOUK_CONF_STR, "", 0, 4096, &jwks_url,
     "the issuer's key set (JWKS), URLs comma-separated; empty: no token verifies "
     "(but at the issuer, which has its keys)"},
    {"SOUK_TOKEN_URL", SOUK_CONF_STR, "", 0, 4096, &token_url,
     "the issuer's OAuth token endpoint, URLs comma-separated: this service's own "
     "client-credentials token; empty: none"},
    {"SOUK_CLIENT_ID", SOUK_CONF_STR, "", 0, 128, &client_id,
     "this service's OAuth client id (for its own token)"},
    {"SOUK_CLIENT_SECRET", SOUK_CONF_SECRET, "", 0, 1024, &client_secret,
     "this service's OAuth client secret"},
    {"SOUK_JWKS_MAX_AGE_MS", SOUK_CONF_INT, "300000", 1000, 86400000, &cfg_max_age_ms,
     "a key set this old is refetched on next use (and kept while that fails)"},
    {"SOUK_JWKS_REFETCH_MS", SOUK_CONF_INT, "5000", 100, 3600000, &cfg_refetch_ms,
     "at most one key-set fetch per this, also before the first has loaded"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
static struct souk_metric *m_fetch_failures, *m_stale;

static void load_settings(void) { r_global_init(); }

const char *souk_auth_issuer(void)
{
    pthread_once(&once, load_settings);
    return issuer;
}

const char *souk_auth_audience(void)
{
    pthread_once(&once, load_settings);
    return audience;
}

/* ---- the JWKS ---- */

static json_t *(*local_jwks)(void);
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;  /* guards jwks, fetched_ms */
static pthread_mutex_t fetch_lock = PTHREAD_MUTEX_INITIALIZER; /* one fetch at a time */
static jwks_t *jwks;                                           /* the last good set */
static int64_t fetched_ms;
static int64_t next_try_ms; /* no fetch before this (fetch_lock) */
static int failures;        /* consecutive failed fetches (fetch_lock) */
static atomic_bool last_failed;

void souk_auth_set_local_jwks(json_t *(*get)(void)) { local_jwks = get; }

static json_t *fetch_remote(void)
{
    char url[URL_MAX];
    if (jwks_url[0] == '\0' || souk_client_pick(jwks_url, url, sizeof(url)) == NULL)
        return NULL;
    struct souk_call call = {.method = "GET",
                             .url = url,
                             .timeout_ms = JWKS_TIMEOUT_MS,
                             .retries = 1,
                             .peers = jwks_url};
    struct souk_response res;
    json_t *out = NULL;
    if (souk_client_do(&call, &res) == 0 && res.status == 200 && json_is_object(res.json))
        out = json_incref(res.json);
    else
        souk_warn("cannot fetch the JWKS", "{s:s,s:i}", "url", url, "status", res.status);
    souk_response_free(&res);
    return out;
}

/* Fetch the key set again, unless the last attempt was too recent: every attempt,
 * also before the first set has loaded, waits out the gap after the one before, so
 * a users outage costs it one fetch per gap, not one per request. Before any set
 * has loaded the gap grows from JWKS_FIRST_RETRY_MS to SOUK_JWKS_REFETCH_MS. A
 * failed fetch keeps the last good set (stale-if-error). wait: queue behind a fetch
 * under way (the caller has no key to use); else go on without one. */
static void refresh_jwks(bool wait)
{
    if (wait)
        pthread_mutex_lock(&fetch_lock);
    else if (pthread_mutex_trylock(&fetch_lock) != 0)
        return;
    int64_t now = souk_wall_ms();
    /* the in-process set is asked again for every unknown kid: it is cheap, and a key
     * another replica just made must verify here as soon as this replica has loaded it */
    if (now < next_try_ms && !(wait && local_jwks != NULL))
        goto out;
    json_t *j = local_jwks != NULL ? local_jwks() : fetch_remote();
    jwks_t *fresh = NULL;
    if (j == NULL || r_jwks_init(&fresh) != RHN_OK ||
        r_jwks_import_from_json_t(fresh, j) != RHN_OK || r_jwks_size(fresh) == 0) {
        r_jwks_free(fresh); /* keep what we had: a blip at users must not lock everyone out */
        json_decref(j);
        pthread_mutex_lock(&keys_lock);
        bool have = jwks != NULL;
        pthread_mutex_unlock(&keys_lock);
        failures++;
        struct souk_backoff first = {JWKS_FIRST_RETRY_MS, cfg_refetch_ms};
        int64_t gap = have ? cfg_refetch_ms : souk_backoff_ms(&first, failures);
        next_try_ms = now + gap;
        atomic_store(&last_failed, true);
        if (m_fetch_failures != NULL)
            souk_metric_add(m_fetch_failures, 1.0);
        souk_warn("key set not refreshed", "{s:b,s:i,s:I}", "have_keys", have, "failures", failures,
                  "next_try_ms", (json_int_t)gap);
        goto out;
    }
    json_decref(j);
    pthread_mutex_lock(&keys_lock);
    r_jwks_free(jwks);
    jwks = fresh;
    fetched_ms = now;
    pthread_mutex_unlock(&keys_lock);
    failures = 0;
    next_try_ms = now + (local_jwks != NULL ? JWKS_LOCAL_REFETCH_MS : cfg_refetch_ms);
    atomic_store(&last_failed, false);
out:
    pthread_mutex_unlock(&fetch_lock);
}

/* A copy of the key named kid (caller frees), or NULL; *have_keys tells whether
 * any key set is loaded at all, *stale whether it is older than the max age. */
static jwk_t *lookup(const char *kid, bool *have_keys, bool *stale)
{
    pthread_mutex_lock(&keys_lock);
    jwk_t *k = jwks != NULL ? r_jwks_get_by_kid(jwks, kid) : NULL;
    jwk_t *copy = k != NULL ? r_jwk_copy(k) : NULL;
    r_jwk_free(k);
    *have_keys = jwks != NULL;
    *stale = souk_wall_ms() - fetched_ms > cfg_max_age_ms;
    pthread_mutex_unlock(&keys_lock);
    return copy;
}

/* The key named kid, or NULL with *rc: SOUK_EAUTH when a current key set lacks it,
 * SOUK_EUNAVAIL when no set could be had to tell (a users outage is not a reason to
 * call a token invalid). */
static jwk_t *find_key(const char *kid, int *rc)
{
    bool have_keys, stale;
    jwk_t *k = lookup(kid, &have_keys, &stale);
    if (k != NULL && !stale)
        return k;
    if (k != NULL) {
        /* old: try for a newer set, but never wait for one; a key from the last good
         * set still verifies its tokens while users cannot be reached */
        refresh_jwks(false);
        r_jwk_free(k);
        k = lookup(kid, &have_keys, &stale);
        if (k != NULL && stale && m_stale != NULL)
            souk_metric_add(m_stale, 1.0);
        *rc = SOUK_EAUTH; /* when k is NULL: a newer set came without it */
        return k;
    }
    refresh_jwks(true); /* an unknown kid: a rotated key, or none loaded yet */
    k = lookup(kid, &have_keys, &stale);
    if (k == NULL)
        *rc = have_keys && !atomic_load(&last_failed) ? SOUK_EAUTH : SOUK_EUNAVAIL;
    return k;
}

/* ---- the verified-token cache ---- */

struct cached {
    unsigned char hash[crypto_generichash_BYTES];
    bool used;
    struct souk_identity who;
};
/* An entry (~450 bytes) is allocated when its slot is first filled: a table of
 * entries would leave a page resident for nearly every token ever seen, 1.8 MB per
 * service under many users; this costs 32 KB plus the tokens actually cached. */
static struct cached **cache;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(const unsigned char *h)
{
    return ((size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16) % CACHE_SLOTS;
}

static bool cache_get(const unsigned char *h, struct souk_identity *who, int64_t now)
{
    bool hit = false;
    pthread_mutex_lock(&cache_lock);
    struct cached *c = cache != NULL ? cache[slot_of(h)] : NULL;
    if (c != NULL && c->used && memcmp(c->hash, h, sizeof(c->hash)) == 0) {
        if (c->who.expires + LEEWAY > now) {
            *who = c->who;
            hit = true;
        } else {
            c->used = false;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

static void cache_put(const unsigned char *h, const struct souk_identity *who)
{
    pthread_mutex_lock(&cache_lock);
    if (cache == NULL)
        cache = souk_xcalloc(CACHE_SLOTS, sizeof(*cache));
    struct cached **slot = &cache[slot_of(h)];
    if (*slot == NULL)
        *slot = souk_xmalloc(sizeof(**slot));
    struct cached *c = *slot;
    memcpy(c->hash, h, sizeof(c->hash));
    c->who = *who;
    c->used = true;
    pthread_mutex_unlock(&cache_lock);
}

/* ---- verification ---- */

static bool aud_ok(json_t *aud)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), audience) == 0) return true;
    return false;
}

static bool copy_str(char *dst, size_t cap, json_t *v, bool required)
{
    if (v == NULL && !required) {
        dst[0] = '\0';
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap || json_string_length(v) == 0)
        return false;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* Check the claims; fill who. NULL when fine, else why not. */
static const char *check_claims(json_t *c, struct souk_identity *who, int64_t now)
{
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf"),
           *iat = json_object_get(c, "iat");
    if (!json_is_string(json_object_get(c, "iss")) ||
        strcmp(json_string_value(json_object_get(c, "iss")), issuer) != 0)
        return "wrong issuer";
    if (!aud_ok(json_object_get(c, "aud")))
        return "wrong audience";
    if (!json_is_integer(exp) || !json_is_integer(iat) || (nbf != NULL && !json_is_integer(nbf)))
        return "exp and iat are required integers";
    if (json_integer_value(exp) + LEEWAY <= now)
        return "token expired";
    if ((nbf != NULL && json_integer_value(nbf) > now + LEEWAY) ||
        json_integer_value(iat) > now + LEEWAY)
        return "token not yet valid";
    if (!copy_str(who->sub, sizeof(who->sub), json_object_get(c, "sub"), true) ||
        !copy_str(who->token_id, sizeof(who->token_id), json_object_get(c, "jti"), true) ||
        !copy_str(who->scope, sizeof(who->scope), json_object_get(c, "scope"), false))
        return "sub, jti or scope malformed";
    if (json_object_get(c, "scope") == NULL || json_string_length(json_object_get(c, "scope")) == 0)
        who->scope[0] = '\0';
    json_t *roles = json_object_get(c, "roles");
    if (roles != NULL && !json_is_array(roles))
        return "roles must be an array";
    size_t i;
    json_t *v;
    json_array_foreach(roles, i,
                       v) if (json_is_string(v) && strcmp(json_string_value(v), "admin") == 0)
        who->admin = true;
    /* RFC 9068: a client-credentials token's subject is the client itself */
    const char *cid = json_string_value(json_object_get(c, "client_id"));
    who->service = roles == NULL && cid != NULL && strcmp(cid, who->sub) == 0;
    who->expires = json_integer_value(exp);
    who->authenticated = true;
    return NULL;
}

int souk_auth_verify(const char *token, struct souk_identity *who, char *why, size_t whycap)
{
    pthread_once(&once, load_settings);
    memset(who, 0, sizeof(*who));
    const char *fail = "malformed token";
    int rc = SOUK_EAUTH;
    jwt_t *jwt = NULL;
    jwk_t *key = NULL;
    json_t *claims = NULL;
    size_t len = strlen(token);
    int64_t now = souk_wall_ms() / 1000;
    unsigned char h[crypto_generichash_BYTES];
    if (len == 0 || len > SOUK_AUTH_TOKEN_MAX)
        goto out;
    crypto_generichash(h, sizeof(h), (const unsigned char *)token, len, NULL, 0);
    if (cache_get(h, who, now)) {
        rc = 0;
        goto out;
    }
    /* R_PARSE_NONE: no unsigned tokens, no keys or key URLs taken from the header */
    if (r_jwt_init(&jwt) != RHN_OK ||
        r_jwt_advanced_parsen(jwt, token, len, R_PARSE_NONE, R_FLAG_IGNORE_REMOTE) != RHN_OK ||
        r_jwt_get_type(jwt) != R_JWT_TYPE_SIGN)
        goto out;
    fail = "algorithm not allowed";
    if (r_jwt_get_sign_alg(jwt) != R_JWA_ALG_RS256)
        goto out;
    const char *typ = r_jwt_get_header_str_value(jwt, "typ");
    fail = "typ must be at+jwt";
    if (typ == NULL ||
        (strcasecmp(typ, SOUK_AUTH_TYP) != 0 && strcasecmp(typ, "application/at+jwt") != 0))
        goto out;
    const char *kid = r_jwt_get_header_str_value(jwt, "kid");
    fail = "kid missing";
    if (kid == NULL || kid[0] == '\0' || strlen(kid) > 128)
        goto out;
    key = find_key(kid, &rc);
    if (key == NULL) {
        fail = rc == SOUK_EAUTH ? "unknown signing key" : "signing keys unavailable";
        goto out;
    }
    const char *kalg = r_jwk_get_property_str(key, "alg");
    fail = "signing key is not an RS256 RSA key";
    if ((r_jwk_key_type(key, NULL, 0) & R_KEY_TYPE_RSA) == 0 ||
        (kalg != NULL && strcmp(kalg, SOUK_AUTH_ALG) != 0))
        goto out;
    fail = "bad signature";
    if (r_jwt_verify_signature(jwt, key, R_FLAG_IGNORE_REMOTE) != RHN_OK)
        goto out;
    claims = r_jwt_get_full_claims_json_t(jwt);
    fail = claims != NULL ? check_claims(claims, who, now) : "no claims";
    if (fail != NULL)
        goto out;
    cache_put(h, who);
    rc = 0;
out:
    if (rc != 0) {
        memset(who, 0, sizeof(*who));
        if (why != NULL)
            snprintf(why, whycap, "%s", fail);
    }
    json_decref(claims);
    r_jwk_free(key);
    r_jwt_free(jwt);
    return rc;
}

/* ---- our own service token ---- */

static pthread_mutex_t token_lock = PTHREAD_MUTEX_INITIALIZER;
static char service_token[SOUK_AUTH_TOKEN_MAX + 1];
static int64_t service_token_exp;

/* application/x-www-form-urlencoded value */
static size_t form_escape(char *out, size_t cap, size_t len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0' && len + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c)) {
            out[len++] = (char)c;
        } else {
            out[len++] = '%';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 15];
        }
    }
    out[len] = '\0';
    return len;
}

int souk_auth_service_token(char *out, size_t cap)
{
    pthread_once(&once, load_settings);
    if (client_id[0] == '\0' || client_secret[0] == '\0' || token_url[0] == '\0')
        return SOUK_EUNAVAIL;
    int rc = 0;
    pthread_mutex_lock(&token_lock);
    int64_t now = souk_wall_ms() / 1000;
    if (service_token[0] != '\0' && service_token_exp - RENEW_BEFORE > now)
        goto copy;
    char url[URL_MAX], body[1024];
    souk_client_pick(token_url, url, sizeof(url));
    size_t n = (size_t)snprintf(body, sizeof(body), "grant_type=client_credentials&client_id=");
    n = form_escape(body, sizeof(body), n, client_id);
    n += (size_t)snprintf(body + n, sizeof(body) - n, "&client_secret=");
    form_escape(body, sizeof(body), n, client_secret);
    struct souk_call call = {.method = "POST",
                             .url = url,
                             .raw_body = body,
                             .raw_type = "application/x-www-form-urlencoded",
                             .timeout_ms = JWKS_TIMEOUT_MS,
                             .retries = 1,
                             .peers = token_url};
    struct souk_response res;
    rc = souk_client_do(&call, &res);
    sodium_memzero(body, sizeof(body));
    json_t *tok = json_object_get(res.json, "access_token"),
           *ttl = json_object_get(res.json, "expires_in");
    if (rc == 0 && (res.status != 200 || !json_is_string(tok) ||
                    json_string_length(tok) > SOUK_AUTH_TOKEN_MAX || !json_is_integer(ttl))) {
        souk_warn("service token refused", "{s:i}", "status", res.status);
        rc = res.status == 401 || res.status == 400 ? SOUK_EAUTH : SOUK_EUNAVAIL;
    }
    if (rc == 0) {
        memcpy(service_token, json_string_value(tok), json_string_length(tok) + 1);
        service_token_exp = now + json_integer_value(ttl);
    }
    souk_response_free(&res);
copy:
    if (rc == 0 && strlen(service_token) >= cap)
        rc = SOUK_ETOOBIG;
    if (rc == 0)
        memcpy(out, service_token, strlen(service_token) + 1);
    pthread_mutex_unlock(&token_lock);
    return rc;
}

/* ---- life cycle ---- */

void souk__auth_print_config(FILE *out) { souk_config_print_table(out, auth_config); }

bool souk_auth_placeholder_secret(const char *secret)
{
    /* what deploy/k8s/secrets.env commits: "placeholder-users-replace-with-gen-secrets" */
    return secret != NULL &&
           (strncasecmp(secret, "placeholder", 11) == 0 || strstr(secret, "replace-with") != NULL);
}

int souk_auth_init(void)
{
    char err[256];
    pthread_once(&once, load_settings);
    if (souk_config_load(auth_config, err, sizeof(err)) != 0) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    if (souk_auth_placeholder_secret(client_secret)) {
        souk_error("SOUK_CLIENT_SECRET is a committed placeholder, not a secret: make real ones "
                   "with deploy/gen-secrets (deploy/README.md)",
                   "{s:s}", "variable", "SOUK_CLIENT_SECRET");
        return SOUK_EINVAL;
    }
    m_fetch_failures = souk_metric_counter(
        "souk_auth_jwks_fetch_failures_total",
        "Key-set fetches that failed (the last good set, if any, stays in use).", NULL);
    m_stale = souk_metric_counter(
        "souk_auth_jwks_stale_total",
        "Tokens verified with a key set past SOUK_JWKS_MAX_AGE_MS: refetching it failed.", NULL);
    if (local_jwks == NULL && jwks_url[0] == '\0')
        souk_warn("SOUK_JWKS_URL not set: tokens cannot be verified", NULL);
    /* the layers below (server, client) reach auth only through these */
    souk__server_set_verifier(souk_auth_verify);
    souk__client_set_token_source(souk_auth_service_token);
    return 0;
}

void souk_auth_shutdown(void)
{
    pthread_mutex_lock(&keys_lock);
    r_jwks_free(jwks);
    jwks = NULL;
    pthread_mutex_unlock(&keys_lock);
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; cache != NULL && i < CACHE_SLOTS; i++)
        free(cache[i]);
    free(cache);
    cache = NULL;
    pthread_mutex_unlock(&cache_lock);
}
