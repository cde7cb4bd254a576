/* page.c: keyset pages for every list (page.h): page_size and page_token read the
 * same way everywhere, tokens sealed with the service's page secret and bound to
 * their list and query, the page loop and its {"items","next_page_token"} reply. */
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/handler.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"

#define BIND_BYTES 8  /* names the list and query: enough to tell them apart */
#define TAG_BYTES  16 /* the MAC: crypto_generichash_BYTES_MIN */
#define HEAD_BYTES (1 + BIND_BYTES)
#define RAW_MAX    ((SOUK_PAGE_TOKEN_MAX - 1) / 4 * 3) /* bytes a token can decode to */
#define SECRET_HEX (SOUK_PAGE_SECRET_BYTES * 2 + 1)

/* ---- the token ---- */

/* BIND_BYTES naming (list, query) under secret; NUL-separated so no two splits
 * of the same text collide. */
static void bind_tag(const unsigned char *secret, const char *list, const char *query,
                     unsigned char out[BIND_BYTES])
{
    static const char domain[] = "souk page bind";
    unsigned char h[crypto_generichash_BYTES_MIN];
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, SOUK_PAGE_SECRET_BYTES, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)domain, sizeof(domain));
    crypto_generichash_update(&st, (const unsigned char *)list, strlen(list) + 1);
    crypto_generichash_update(&st, (const unsigned char *)query, strlen(query));
    crypto_generichash_final(&st, h, sizeof(h));
    memcpy(out, h, BIND_BYTES);
}

/* The MAC over a token's bytes before it. */
static void mac(const unsigned char *secret, const unsigned char *raw, size_t n,
                unsigned char out[TAG_BYTES])
{
    static const char domain[] = "souk page tag";
    crypto_generichash_state st;
    crypto_generichash_init(&st, secret, SOUK_PAGE_SECRET_BYTES, TAG_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)domain, sizeof(domain));
    crypto_generichash_update(&st, raw, n);
    crypto_generichash_final(&st, out, TAG_BYTES);
}

/* Is key an array of 1 to SOUK_PAGE_POS_MAX strings, integers and reals? */
static bool key_valid(const json_t *key)
{
    size_t n = json_array_size(key);
    if (!json_is_array(key) || n == 0 || n > SOUK_PAGE_POS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(key, i);
        if (!json_is_string(v) && !json_is_integer(v) && !json_is_real(v))
            return false;
    }
    return true;
}

static int seal_bound(const unsigned char *secret, const unsigned char bind[BIND_BYTES],
                      const json_t *key, char *out, size_t cap)
{
    if (!key_valid(key))
        return SOUK_EINVAL;
    unsigned char raw[RAW_MAX];
    size_t n = json_dumpb(key, (char *)raw + HEAD_BYTES, sizeof(raw) - HEAD_BYTES - TAG_BYTES,
                          JSON_COMPACT);
    if (n == 0 || HEAD_BYTES + n + TAG_BYTES > sizeof(raw))
        return SOUK_ETOOBIG;
    raw[0] = SOUK_PAGE_VERSION;
    memcpy(raw + 1, bind, BIND_BYTES);
    n += HEAD_BYTES;
    mac(secret, raw, n, raw + n);
    n += TAG_BYTES;
    if ((n + 2) / 3 * 4 >= cap) /* the encoding and its NUL */
        return SOUK_ETOOBIG;
    souk_b64url_enc(raw, n, out, cap);
    return 0;
}

static int open_bound(const unsigned char *secret, const unsigned char bind[BIND_BYTES],
                      const char *token, json_t **key)
{
    unsigned char raw[RAW_MAX], tag[TAG_BYTES];
    *key = NULL;
    long n = strlen(token) < SOUK_PAGE_TOKEN_MAX ? souk_b64url_dec(token, raw, sizeof(raw)) : -1;
    if (n < HEAD_BYTES + 2 + TAG_BYTES || raw[0] != SOUK_PAGE_VERSION)
        return SOUK_EINVAL;
    if (sodium_memcmp(raw + 1, bind, BIND_BYTES) != 0)
        return SOUK_ECONFLICT;
    size_t body = (size_t)n - TAG_BYTES;
    mac(secret, raw, body, tag);
    if (sodium_memcmp(tag, raw + body, TAG_BYTES) != 0)
        return SOUK_EINVAL;
    json_t *k = json_loadb((const char *)raw + HEAD_BYTES, body - HEAD_BYTES, 0, NULL);
    if (!key_valid(k)) { /* sealed by us, so only a bug or another format gets here */
        json_decref(k);
        return SOUK_EINVAL;
    }
    *key = k;
    return 0;
}

int souk_page_seal(const unsigned char secret[SOUK_PAGE_SECRET_BYTES], const char *list,
                   const char *query, const json_t *key, char *out, size_t cap)
{
    unsigned char bind[BIND_BYTES];
    bind_tag(secret, list, query, bind);
    return seal_bound(secret, bind, key, out, cap);
}

int souk_page_open(const unsigned char secret[SOUK_PAGE_SECRET_BYTES], const char *list,
                   const char *query, const char *token, json_t **key)
{
    unsigned char bind[BIND_BYTES];
    bind_tag(secret, list, query, bind);
    return open_bound(secret, bind, token, key);
}

/* ---- the secret ---- */

int souk_page_secret(struct souk_db *db, unsigned char out[SOUK_PAGE_SECRET_BYTES])
{
    unsigned char fresh[SOUK_PAGE_SECRET_BYTES];
    char hex[SECRET_HEX];
    souk_random(fresh, sizeof(fresh));
    sodium_bin2hex(hex, sizeof(hex), fresh, sizeof(fresh));
    sodium_memzero(fresh, sizeof(fresh));
    /* plain SQL both SQLite and PostgreSQL take; the first replica to store wins
     * (souk_db_schema: replicas creating the table at once would race on PostgreSQL) */
    int rc = souk_db_schema(db, "CREATE TABLE IF NOT EXISTS souk_page_secret ("
                                " id INTEGER PRIMARY KEY, secret TEXT NOT NULL)");
    if (rc == 0)
        rc = souk_db_run(db,
                         "INSERT INTO souk_page_secret (id, secret) VALUES (1, ?)"
                         " ON CONFLICT (id) DO NOTHING",
                         "s", hex);
    sodium_memzero(hex, sizeof(hex));
    if (rc < 0)
        return rc;
    struct souk_stmt *st =
        souk_db_query(db, "SELECT secret FROM souk_page_secret WHERE id = 1", "");
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    const char *stored = souk_stmt_text(st, 0);
    size_t got = 0;
    rc = stored != NULL &&
                 sodium_hex2bin(out, SOUK_PAGE_SECRET_BYTES, stored, strlen(stored), NULL, &got,
                                NULL) == 0 &&
                 got == SOUK_PAGE_SECRET_BYTES
             ? 0
             : SOUK_EDB;
    souk_stmt_done(st);
    if (rc != 0)
        souk_error("the stored page secret is not 32 bytes of hex", NULL);
    return rc;
}

/* The process's copy: read once, the same for every thread. */
static pthread_mutex_t secret_lock = PTHREAD_MUTEX_INITIALIZER;
static bool secret_loaded;
static unsigned char secret[SOUK_PAGE_SECRET_BYTES];

static int load_secret(struct souk_db *db, unsigned char out[SOUK_PAGE_SECRET_BYTES])
{
    int rc = 0;
    pthread_mutex_lock(&secret_lock);
    if (!secret_loaded) {
        rc = db != NULL ? souk_page_secret(db, secret) : SOUK_EUNAVAIL;
        secret_loaded = rc == 0;
    }
    if (rc == 0)
        memcpy(out, secret, sizeof(secret));
    pthread_mutex_unlock(&secret_lock);
    return rc;
}

/* ---- a request's page ---- */

/* Copy the opened position into pg, its strings into the request's memory. */
static void take_position(struct souk_page *pg, struct souk_req *r, const json_t *key)
{
    size_t i;
    const json_t *v;
    json_array_foreach(key, i, v)
    {
        struct souk_page_value *p = &pg->pos[i];
        if (json_is_string(v)) {
            p->type = 's';
            p->s = souk_req_printf(r, "%s", json_string_value(v));
        } else if (json_is_integer(v)) {
            p->type = 'i';
            p->i = json_integer_value(v);
        } else {
            p->type = 'd';
            p->d = json_real_value(v);
        }
    }
    pg->npos = (int)json_array_size(key);
    pg->after = pg->npos == 1 && pg->pos[0].type == 's' ? pg->pos[0].s : NULL;
}

int souk_page_start(struct souk_page *pg, struct souk_req *r, struct souk_check *c,
                    const char *list, const char *fmt, ...)
{
    struct souk_check own;
    if (c == NULL) {
        souk_check_init(&own);
        c = &own;
    }
    memset(pg, 0, sizeof(*pg));
    pg->list = list;
    pg->size = souk_check_int_text(c, "page_size", souk_req_query(r, "page_size"), 1, SOUK_PAGE_MAX,
                                   SOUK_PAGE_DEFAULT);
    pg->limit = pg->size + 1;
    if (!souk_check_ok(c))
        return souk_problem_check(r, c);
    int rc = load_secret(souk_req_db(r), pg->secret);
    if (rc != 0) {
        souk_check_free(c);
        return souk_handler_db_error(r, rc, "cannot read the page secret");
    }
    va_list ap;
    va_start(ap, fmt);
    const char *query = souk_arena_vprintf(souk_req_arena(r), fmt, ap);
    va_end(ap);
    bind_tag(pg->secret, list, query, pg->bind);
    const char *token = souk_req_query(r, "page_token");
    if (token == NULL)
        return 0;
    json_t *key = NULL;
    rc = open_bound(pg->secret, pg->bind, token, &key);
    if (rc == SOUK_ECONFLICT)
        souk_check_fail(c, "page_token",
                        "belongs to another list or query; ask for the first page again");
    else if (rc != 0)
        souk_check_fail(c, "page_token", "is not a page token of this list, or was altered");
    else
        take_position(pg, r, key);
    json_decref(key);
    return rc == 0 ? 0 : souk_problem_check(r, c);
}

json_t *souk_page_token(const struct souk_page *pg, const json_t *key)
{
    char out[SOUK_PAGE_TOKEN_MAX];
    int rc = seal_bound(pg->secret, pg->bind, key, out, sizeof(out));
    if (rc != 0) {
        souk_error("cannot make a page token", "{s:s,s:s}", "list", pg->list, "error",
                   souk_strerror(rc));
        return NULL;
    }
    return json_string(out);
}

int souk_page_reply(struct souk_page *pg, struct souk_req *r, struct souk_stmt *st,
                    json_t *(*row)(struct souk_stmt *st), const char *what)
{
    if (st == NULL)
        return souk_handler_db_error(r, SOUK_EDB, what);
    json_t *items = json_array(), *next = json_null();
    bool more = false;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        if ((int64_t)json_array_size(items) == pg->size) { /* the extra row */
            more = true;
            souk_stmt_done(st);
            break;
        }
        json_array_append_new(items, row != NULL ? row(st) : souk_stmt_row_json(st));
    }
    if (rc < 0) { /* a part of a list is not the list */
        json_decref(items);
        return souk_handler_db_error(r, rc, what);
    }
    if (more) {
        json_t *last = json_array_get(items, json_array_size(items) - 1);
        json_t *key = json_pack("[O]", json_object_get(last, "id"));
        json_decref(next);
        next = key != NULL ? souk_page_token(pg, key) : NULL;
        json_decref(key);
        if (next == NULL) {
            json_decref(items);
            souk_error("a page's last item has no id", "{s:s}", "list", pg->list);
            return souk_problem(r, 500, "internal", "%s", what);
        }
    }
    souk_reply_json(r, json_pack("{s:o,s:o}", "items", items, "next_page_token", next));
    return 200;
}
