/* keys.c: the token signing keys. Each key is an RSA-2048 private JWK in its own
 * file SOUK_VAR/keys/<kid>.jwk (directory 0700, files 0600; a file readable by
 * others is refused). The newest key signs; an older key stays published in the
 * JWKS until every token it signed has expired, then its file is deleted. A key
 * older than SOUK_KEY_ROTATE_SECONDS is replaced by a fresh one. The directory is
 * re-read when it changes, so an operator (or a test) can drop a key in. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <rhonabwy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/auth.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define KEYS_MAX       16
#define KEY_FILE_MAX   16384
#define KEY_BITS       2048
#define KID_MAX        64
#define RECHECK_MS     1000           /* look at the directory at most this often */
#define PUBLISH_GRACE  120            /* seconds a retired key outlives its last token */
#define CREATED_MEMBER "souk_created" /* our own member: when the key was made */

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

/* Load one key file into k. 0, or a negative code (the file is skipped, logged). */
static int load_key(const char *path, struct key *k)
{
    int rc = SOUK_EINVAL;
    json_t *j = NULL;
    const char *why = "unreadable";
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
    why = "not an RSA private JWK with a valid kid";
    const char *kid = json_string_value(json_object_get(j, "kid"));
    if (kid == NULL || !kid_ok(kid) || json_object_get(j, "d") == NULL)
        goto out;
    json_t *created = json_object_get(j, CREATED_MEMBER);
    k->created = json_is_integer(created) ? json_integer_value(created) : (int64_t)st.st_mtime;
    json_object_del(j, CREATED_MEMBER);
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    unsigned int bits = 0;
    if (r_jwk_init(&k->priv) != RHN_OK)
        goto out;
    if (r_jwk_import_from_json_t(k->priv, j) != RHN_OK ||
        (r_jwk_key_type(k->priv, &bits, 0) & (R_KEY_TYPE_RSA | R_KEY_TYPE_PRIVATE)) !=
            (R_KEY_TYPE_RSA | R_KEY_TYPE_PRIVATE) ||
        bits < KEY_BITS) {
        why = "not an RSA private key of at least 2048 bits";
        r_jwk_free(k->priv);
        k->priv = NULL;
        goto out;
    }
    k->pub =
        json_pack("{s:s,s:s,s:s,s:s,s:O,s:O}", "kty", "RSA", "kid", k->kid, "use", "sig", "alg",
                  SOUK_AUTH_ALG, "n", json_object_get(j, "n"), "e", json_object_get(j, "e"));
    rc = k->pub != NULL ? 0 : SOUK_EINVAL;
    if (rc != 0) {
        r_jwk_free(k->priv);
        k->priv = NULL;
    }
out:
    if (rc != 0)
        souk_error("signing key skipped", "{s:s,s:s}", "file", path, "why", why);
    json_decref(j);
    return rc;
}

static int by_created(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    return x->created < y->created ? -1 : x->created > y->created ? 1 : strcmp(x->kid, y->kid);
}

/* Re-read the directory; choose the signer; publish, and delete what is retired. */
static void load_dir(int64_t now)
{
    clear_keys();
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[PATH_MAX + 512];
    while ((e = readdir(d)) != NULL && nkeys < KEYS_MAX) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".jwk") != 0)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (load_key(path, &keys[nkeys]) == 0)
            nkeys++;
    }
    closedir(d);
    qsort(keys, nkeys, sizeof(keys[0]), by_created);
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
        if (snprintf(path, sizeof(path), "%s/%s.jwk", dir, keys[i].kid) < (int)sizeof(path) &&
            unlink(path) == 0)
            souk_info("retired signing key deleted", "{s:s}", "kid", keys[i].kid);
    }
    jwks = json_pack("{s:o}", "keys", list);
}

static int write_key(json_t *priv, const char *kid)
{
    char tmp[PATH_MAX + 512], path[PATH_MAX + 512];
    char *text = json_dumps(priv, JSON_COMPACT);
    int rc = SOUK_EIO, fd = -1;
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, kid) >= (int)sizeof(tmp) ||
        snprintf(path, sizeof(path), "%s/%s.jwk", dir, kid) >= (int)sizeof(path))
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || text == NULL)
        goto out;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0)
        goto out;
    rc = rename(tmp, path) == 0 ? 0 : SOUK_EIO;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        souk_error("cannot write signing key", "{s:s,s:s}", "file", path, "error", strerror(errno));
        unlink(tmp);
    }
    free(text);
    return rc;
}

static int generate_key(int64_t now)
{
    char kid[SOUK_ID_MAX];
    souk_id_new(kid, "key");
    jwk_t *priv = NULL, *pub = NULL;
    json_t *j = NULL;
    int rc = SOUK_EIO;
    if (r_jwk_init(&priv) != RHN_OK || r_jwk_init(&pub) != RHN_OK ||
        r_jwk_generate_key_pair(priv, pub, R_KEY_TYPE_RSA, KEY_BITS, kid) != RHN_OK)
        goto out;
    j = r_jwk_export_to_json_t(priv);
    if (j == NULL)
        goto out;
    json_object_set_new(j, "alg", json_string(SOUK_AUTH_ALG));
    json_object_set_new(j, "use", json_string("sig"));
    json_object_set_new(j, CREATED_MEMBER, json_integer(now));
    rc = write_key(j, kid);
    if (rc == 0)
        souk_info("signing key created", "{s:s}", "kid", kid);
out:
    json_decref(j);
    r_jwk_free(priv);
    r_jwk_free(pub);
    return rc;
}

/* With lock held: reload when the directory changed, rotate when the key is old. */
static void refresh_locked(bool force)
{
    int64_t now_ms = souk_wall_ms(), now = now_ms / 1000;
    if (!force && now_ms - last_check_ms < RECHECK_MS)
        return;
    last_check_ms = now_ms;
    struct stat st;
    bool changed = stat(dir, &st) == 0 && (st.st_mtim.tv_sec != dir_mtime.tv_sec ||
                                           st.st_mtim.tv_nsec != dir_mtime.tv_nsec);
    if (changed || force || jwks == NULL) {
        dir_mtime = st.st_mtim;
        load_dir(now);
    }
    if (active < 0 || now - keys[active].created >= cfg_key_rotate) {
        if (generate_key(now) == 0 && stat(dir, &st) == 0) {
            dir_mtime = st.st_mtim;
            load_dir(now);
        }
    }
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
    refresh_locked(true);
    int rc = active >= 0 ? 0 : SOUK_EIO;
    if (rc == 0)
        souk_info("signing keys loaded", "{s:s,s:i,s:s}", "dir", dir, "keys", (int)nkeys, "active",
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

json_t *keys_jwks(void)
{
    pthread_mutex_lock(&lock);
    refresh_locked(false);
    json_t *out = jwks != NULL ? json_deep_copy(jwks) : NULL;
    pthread_mutex_unlock(&lock);
    return out;
}

char *keys_sign(json_t *claims)
{
    char kid[KID_MAX];
    jwk_t *key = NULL;
    pthread_mutex_lock(&lock);
    refresh_locked(false);
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
