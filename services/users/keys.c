/* keys.c: the token signing keys. Each key is an RSA-2048 private JWK in a row of
 * users' database (signing_keys), so every users replica signs with the same set and
 * publishes the same JWKS. The newest key signs; an older key stays published until
 * every token it signed has expired, then its row is deleted. A key older than
 * SOUK_KEY_ROTATE_SECONDS is replaced by a fresh one, made by one replica (the others
 * load it within a second). An operator rotates at once by dropping a private JWK file
 * into SOUK_VAR/keys (directory 0700, file 0600; a file readable by others is
 * refused): it is imported into the table, then deleted. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <rhonabwy.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/auth.h"
#include "souk/db.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define KEYS_MAX          16
#define KEY_FILE_MAX      16384
#define KEY_BITS          2048
#define KID_MAX           64
#define RECHECK_MS        1000           /* look at the table and directory at most this often */
#define VERIFY_RECHECK_MS 100            /* …or this often for a token of a kid not loaded */
#define PUBLISH_GRACE     120            /* seconds a retired key outlives its last token */
#define CREATED_MEMBER    "souk_created" /* our own member: when the key was made */

struct key {
    char kid[KID_MAX];
    int64_t created; /* unix seconds */
    jwk_t *priv;
    json_t *pub;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct key keys[KEYS_MAX];
static size_t nkeys;
static int active = -1;
static json_t *jwks; /* the published set */
static char dir[PATH_MAX];
static struct timespec dir_mtime;
static int64_t last_check_ms;

static void clear_keys(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        r_jwk_free(keys[i].priv);
        json_decref(keys[i].pub);
    }
    nkeys = 0;
    active = -1;
    json_decref(jwks);
    jwks = NULL;
}

static bool kid_ok(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n >= KID_MAX)
        return false;
    for (const char *p = kid; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

/* Parse one private JWK (with its CREATED_MEMBER, or created_default) into k. 0, or
 * SOUK_EINVAL with *why set. */
static int parse_key(json_t *j, int64_t created_default, struct key *k, const char **why)
{
    *why = "not an RSA private JWK with a valid kid";
    const char *kid = json_string_value(json_object_get(j, "kid"));
    if (!json_is_object(j) || kid == NULL || !kid_ok(kid) || json_object_get(j, "d") == NULL)
        return SOUK_EINVAL;
    json_t *created = json_object_get(j, CREATED_MEMBER);
    k->created = json_is_integer(created) ? json_integer_value(created) : created_default;
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    json_t *bare = json_deep_copy(j);
    json_object_del(bare, CREATED_MEMBER);
    unsigned int bits = 0;
    int rc = SOUK_EINVAL;
    k->priv = NULL;
    k->pub = NULL;
    if (bare == NULL || r_jwk_init(&k->priv) != RHN_OK)
        goto out;
    if (r_jwk_import_from_json_t(k->priv, bare) != RHN_OK ||
        (r_jwk_key_type(k->priv, &bits, 0) & (R_KEY_TYPE_RSA | R_KEY_TYPE_PRIVATE)) !=
            (R_KEY_TYPE_RSA | R_KEY_TYPE_PRIVATE) ||
        bits < KEY_BITS) {
        *why = "not an RSA private key of at least 2048 bits";
        goto out;
    }
    k->pub =
        json_pack("{s:s,s:s,s:s,s:s,s:O,s:O}", "kty", "RSA", "kid", k->kid, "use", "sig", "alg",
                  SOUK_AUTH_ALG, "n", json_object_get(bare, "n"), "e", json_object_get(bare, "e"));
    rc = k->pub != NULL ? 0 : SOUK_EINVAL;
out:
    if (rc != 0) {
        r_jwk_free(k->priv);
        k->priv = NULL;
    }
    json_decref(bare);
    return rc;
}

/* Read one key file an operator dropped in: its JSON into *out (with CREATED_MEMBER
 * set, from the file's time when it had none), checked by parse_key. 0, or a
 * negative code (the file is left alone, logged). */
static int read_key_file(const char *path, json_t **out)
{
    int rc = SOUK_EINVAL;
    json_t *j = NULL;
    const char *why = "unreadable";
    struct key k = {0};
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX)
        goto out;
    why = "readable by group or others (chmod 600)";
    if ((st.st_mode & 077) != 0)
        goto out;
    why = "not a JSON object";
    json_error_t err;
    j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j))
        goto out;
    rc = parse_key(j, (int64_t)st.st_mtime, &k, &why);
    if (rc == 0)
        json_object_set_new(j, CREATED_MEMBER, json_integer(k.created));
out:
    r_jwk_free(k.priv);
    json_decref(k.pub);
    if (rc != 0) {
        souk_error("signing key file skipped", "{s:s,s:s}", "file", path, "why", why);
        json_decref(j);
        j = NULL;
    }
    *out = j;
    return rc;
}

/* Add a key (private JWK with CREATED_MEMBER) to the table, unless its kid is there. */
static int store_key(struct souk_db *db, json_t *j)
{
    json_t *bare = json_deep_copy(j);
    json_object_del(bare, CREATED_MEMBER);
    char *text = json_dumps(bare, JSON_COMPACT);
    json_decref(bare);
    if (text == NULL)
        return SOUK_ENOMEM;
    int rc = souk_db_run(db,
                         "INSERT INTO signing_keys (kid, created, jwk) VALUES (?, ?, ?)"
                         " ON CONFLICT (kid) DO NOTHING",
                         "sis", json_string_value(json_object_get(j, "kid")),
                         (int64_t)json_integer_value(json_object_get(j, CREATED_MEMBER)), text);
    sodium_memzero(text, strlen(text));
    free(text);
    return rc < 0 ? rc : 0;
}

/* Import the key files in the drop directory into the table; each one stored is
 * deleted (the table is the one copy). */
static void import_dir(struct souk_db *db)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[PATH_MAX + 512];
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".jwk") != 0)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        json_t *j;
        if (read_key_file(path, &j) != 0)
            continue;
        int rc = store_key(db, j);
        if (rc == 0 && unlink(path) == 0)
            souk_info("signing key imported", "{s:s,s:s}", "kid",
                      json_string_value(json_object_get(j, "kid")), "file", path);
        else if (rc != 0)
            souk_error("cannot import a signing key", "{s:s,s:s}", "file", path, "error",
                       souk_strerror(rc));
        json_decref(j);
    }
    closedir(d);
}

/* Does the table hold exactly the keys loaded (kid and created, in order)? 1 yes, 0
 * no, or a negative code. */
static int table_unchanged(struct souk_db *db)
{
    struct souk_stmt *st =
        souk_db_query(db, "SELECT kid, created FROM signing_keys ORDER BY created, kid", "");
    if (st == NULL)
        return souk_db_last_error(db);
    size_t i = 0;
    int rc, same = 1;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        if (i >= nkeys || strcmp(keys[i].kid, souk_stmt_text(st, 0)) != 0 ||
            keys[i].created != souk_stmt_int(st, 1))
            same = 0;
        i++;
    }
    souk_stmt_done(st);
    return rc < 0 ? rc : same && i == nkeys;
}

/* Choose the signer (the newest key not made for later); publish the keys; delete
 * the rows of those retired. */
static void choose(struct souk_db *db, int64_t now)
{
    active = -1;
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].created <= now)
            active = (int)i;
    if (active < 0 && nkeys > 0)
        active = 0;
    json_t *list = json_array();
    for (size_t i = 0; i < nkeys; i++) {
        /* a key retired before the longest-lived token it signed could expire stays */
        bool retired =
            (int)i < active && keys[i + 1].created + cfg_access_ttl + PUBLISH_GRACE < now;
        if (!retired) {
            json_array_append(list, keys[i].pub);
            continue;
        }
        if (souk_db_run(db, "DELETE FROM signing_keys WHERE kid = ?", "s", keys[i].kid) > 0)
            souk_info("retired signing key deleted", "{s:s}", "kid", keys[i].kid);
    }
    json_decref(jwks);
    jwks = json_pack("{s:o}", "keys", list);
}

/* Load the table's keys when they changed, then choose(). On a database error the
 * keys loaded before stay (a failed look is not a rotation). */
static int load_table(struct souk_db *db, int64_t now)
{
    int rc = table_unchanged(db);
    if (rc != 0) {
        if (rc > 0)
            choose(db, now);
        return rc < 0 ? rc : 0;
    }
    struct souk_stmt *st =
        souk_db_query(db, "SELECT kid, created, jwk FROM signing_keys ORDER BY created, kid", "");
    if (st == NULL)
        return souk_db_last_error(db);
    struct key fresh[KEYS_MAX];
    size_t n = 0;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW && n < KEYS_MAX) {
        const char *why = "not JSON";
        json_t *j = json_loads(souk_stmt_text(st, 2), JSON_REJECT_DUPLICATES, NULL);
        if (j != NULL && parse_key(j, souk_stmt_int(st, 1), &fresh[n], &why) == 0) {
            fresh[n].created = souk_stmt_int(st, 1);
            n++;
        } else {
            souk_error("signing key row skipped", "{s:s,s:s}", "kid", souk_stmt_text(st, 0), "why",
                       why);
        }
        json_decref(j);
    }
    souk_stmt_done(st);
    if (rc < 0) { /* the keys loaded before stay */
        for (size_t i = 0; i < n; i++) {
            r_jwk_free(fresh[i].priv);
            json_decref(fresh[i].pub);
        }
        return rc;
    }
    clear_keys();
    memcpy(keys, fresh, n * sizeof(fresh[0]));
    nkeys = n;
    choose(db, now);
    return 0;
}

struct rotation {
    json_t *key; /* the new key, private JWK with CREATED_MEMBER */
    int64_t now;
    bool stored;
};

/* In a serializable transaction: store the new key only if no other replica made a
 * fresh one meanwhile (two replicas rotating together: one transaction fails and is
 * run again, and then finds the other's key). */
static int rotate_tx(struct souk_db *db, void *arg)
{
    struct rotation *rot = arg;
    int64_t newest = 0;
    int rc = souk_db_int(db, &newest, "SELECT coalesce(max(created), 0) FROM signing_keys", "");
    if (rc < 0)
        return rc;
    rot->stored = false;
    if (rc == 1 && rot->now - newest < cfg_key_rotate) /* a clock ahead of ours: its key is fresh */
        return 0;
    rc = store_key(db, rot->key);
    rot->stored = rc == 0;
    return rc;
}

static int generate_key(struct souk_db *db, int64_t now)
{
    char kid[SOUK_ID_MAX];
    souk_id_new(kid, "key");
    jwk_t *priv = NULL, *pub = NULL;
    struct rotation rot = {NULL, now, false};
    int rc = SOUK_EIO;
    if (r_jwk_init(&priv) != RHN_OK || r_jwk_init(&pub) != RHN_OK ||
        r_jwk_generate_key_pair(priv, pub, R_KEY_TYPE_RSA, KEY_BITS, kid) != RHN_OK)
        goto out;
    rot.key = r_jwk_export_to_json_t(priv);
    if (rot.key == NULL)
        goto out;
    json_object_set_new(rot.key, "alg", json_string(SOUK_AUTH_ALG));
    json_object_set_new(rot.key, "use", json_string("sig"));
    json_object_set_new(rot.key, CREATED_MEMBER, json_integer(now));
    rc = souk_db_tx(db, rotate_tx, &rot);
    if (rc >= 0 && rot.stored)
        souk_info("signing key created", "{s:s}", "kid", kid);
    if (rc < 0)
        souk_error("cannot store a new signing key", "{s:s}", "error", souk_strerror(rc));
out:
    json_decref(rot.key);
    r_jwk_free(priv);
    r_jwk_free(pub);
    return rc < 0 ? rc : 0;
}

/* With lock held: import dropped files, reload when the table changed, rotate when
 * the signer is old. */
static void refresh_locked(bool force, int64_t gap_ms)
{
    int64_t now_ms = souk_wall_ms(), now = now_ms / 1000;
    if (!force && now_ms - last_check_ms < gap_ms)
        return;
    last_check_ms = now_ms;
    struct souk_db *db = souk_db_thread();
    if (db == NULL)
        return;
    struct stat st;
    if (stat(dir, &st) == 0 && (force || st.st_mtim.tv_sec != dir_mtime.tv_sec ||
                                st.st_mtim.tv_nsec != dir_mtime.tv_nsec)) {
        dir_mtime = st.st_mtim;
        import_dir(db);
    }
    int rc = load_table(db, now);
    if (rc == 0 && (active < 0 || now - keys[active].created >= cfg_key_rotate) &&
        generate_key(db, now) == 0)
        rc = load_table(db, now);
    if (rc < 0)
        souk_warn("cannot read the signing keys; the loaded ones stay", "{s:s}", "error",
                  souk_strerror(rc));
}

int keys_init(void)
{
    const char *var = souk_config_value("SOUK_VAR");
    snprintf(dir, sizeof(dir), "%s/keys", var != NULL && var[0] != '\0' ? var : "var");
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", var != NULL && var[0] != '\0' ? var : "var");
    mkdir(parent, 0755);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        souk_error("cannot create the key directory", "{s:s,s:s}", "dir", dir, "error",
                   strerror(errno));
        return SOUK_EIO;
    }
    chmod(dir, 0700);
    pthread_mutex_lock(&lock);
    refresh_locked(true, 0);
    int rc = active >= 0 ? 0 : SOUK_EIO;
    if (rc == 0)
        souk_info("signing keys loaded", "{s:i,s:s}", "keys", (int)nkeys, "active",
                  keys[active].kid);
    pthread_mutex_unlock(&lock);
    return rc;
}

void keys_free(void)
{
    pthread_mutex_lock(&lock);
    clear_keys();
    pthread_mutex_unlock(&lock);
}

static json_t *jwks_copy(int64_t gap_ms)
{
    pthread_mutex_lock(&lock);
    refresh_locked(false, gap_ms);
    json_t *out = jwks != NULL ? json_deep_copy(jwks) : NULL;
    pthread_mutex_unlock(&lock);
    return out;
}

json_t *keys_jwks(void) { return jwks_copy(RECHECK_MS); }

/* For the token check: asked on a kid not loaded, so it looks at the table sooner, to
 * know a key another replica made a moment ago. */
json_t *keys_verify_jwks(void) { return jwks_copy(VERIFY_RECHECK_MS); }

char *keys_sign(json_t *claims)
{
    char kid[KID_MAX];
    jwk_t *key = NULL;
    pthread_mutex_lock(&lock);
    refresh_locked(false, RECHECK_MS);
    if (active >= 0) {
        key = r_jwk_copy(keys[active].priv); /* sign outside the lock on our own copy */
        snprintf(kid, sizeof(kid), "%s", keys[active].kid);
    }
    pthread_mutex_unlock(&lock);
    if (key == NULL)
        return NULL;
    char *out = NULL;
    jwt_t *jwt = NULL;
    if (r_jwt_init(&jwt) != RHN_OK)
        goto out;
    if (r_jwt_set_header_str_value(jwt, "typ", SOUK_AUTH_TYP) != RHN_OK ||
        r_jwt_set_header_str_value(jwt, "kid", kid) != RHN_OK ||
        r_jwt_set_full_claims_json_t(jwt, claims) != RHN_OK ||
        r_jwt_set_sign_alg(jwt, R_JWA_ALG_RS256) != RHN_OK)
        goto out;
    char *s = r_jwt_serialize_signed(jwt, key, 0);
    if (s != NULL) {
        out = souk_xstrdup(s);
        r_free(s);
    }
out:
    r_jwt_free(jwt);
    r_jwk_free(key);
    return out;
}
