/* idempotency.c: the Idempotency-Key store of idempotency.h on the kit's database:
 * a lease taken in a short transaction of its own, the response stored in the
 * effect's transaction, transient failures released for a retry. */
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/idempotency.h"
#include "souk/log.h"
#include "souk/souk.h"

#define PURGE_EVERY_MS (3600LL * 1000)

static _Atomic int64_t last_purge_ms;

int souk_idem_init(struct souk_db *db)
{
    return souk_db_schema(
        db, "CREATE TABLE IF NOT EXISTS idempotency_keys ("
            " scope TEXT NOT NULL,"
            " key TEXT NOT NULL,"
            " request_hash TEXT NOT NULL,"
            " lease_token TEXT,"   /* set while a request runs */
            " lease_until BIGINT," /* ms since the epoch (SQLite's BIGINT is its INTEGER) */
            " attempts INTEGER NOT NULL DEFAULT 0,"
            " status INTEGER," /* NULL until the response is stored */
            " response TEXT,"
            " created_at BIGINT NOT NULL," /* ms since the epoch */
            " PRIMARY KEY (scope, key));"
            "CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys (created_at);");
}

bool souk_idem_key_valid(const char *key)
{
    size_t n = 0;
    for (; key != NULL && key[n] != '\0'; n++)
        if (n == SOUK_IDEM_KEY_MAX || key[n] < 0x21 || key[n] > 0x7e)
            return false;
    return n > 0;
}

/* SHA-256 over method, path and body, NUL-separated so no two splits collide. */
static void request_hash(char out[SOUK_IDEM_HASH_LEN + 1], const char *method, const char *path,
                         const char *body, size_t len)
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)method, strlen(method) + 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)path, strlen(path) + 1);
    if (len > 0)
        crypto_hash_sha256_update(&st, (const unsigned char *)body, len);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, SOUK_IDEM_HASH_LEN + 1, h, sizeof(h));
}

static void maybe_purge(struct souk_db *db, int64_t now)
{
    int64_t last = atomic_load(&last_purge_ms);
    if (now - last < PURGE_EVERY_MS || !atomic_compare_exchange_strong(&last_purge_ms, &last, now))
        return;
    int n = souk_idem_purge(db, SOUK_IDEM_TTL_MS);
    if (n > 0)
        souk_info("idempotency records purged", "{s:i}", "count", n);
}

static int take_lease(struct souk_db *db, struct souk_idem *k, bool insert, int64_t now,
                      int64_t lease_ms)
{
    unsigned char rnd[16];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(k->lease, sizeof(k->lease), rnd, sizeof(rnd));
    int rc =
        insert ? souk_db_run(db,
                             "INSERT INTO idempotency_keys (scope, key, request_hash, lease_token,"
                             " lease_until, attempts, created_at) VALUES (?, ?, ?, ?, ?, 0, ?)",
                             "ssssii", k->scope, k->key, k->hash, k->lease, now + lease_ms, now)
               : souk_db_run(db,
                             "UPDATE idempotency_keys SET lease_token = ?, lease_until = ?"
                             " WHERE scope = ? AND key = ?",
                             "siss", k->lease, now + lease_ms, k->scope, k->key);
    return rc < 0 ? rc : SOUK_IDEM_PROCEED;
}

struct begin_args {
    struct souk_idem *k;
    int64_t now, lease_ms;
    bool peek; /* look only: no lease taken, no row written */
};

/* Look the key up and take the lease, in one transaction (souk_db_tx runs it again
 * when a replica raced us to the same key on PostgreSQL). */
static int begin_tx(struct souk_db *db, void *arg)
{
    struct begin_args *a = arg;
    struct souk_idem *k = a->k;
    souk_idem_free(k); /* a run again starts over */
    k->status = 0;
    k->attempts = 0;
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT request_hash, lease_token IS NOT NULL AND lease_until > ?, attempts, status,"
        " response FROM idempotency_keys WHERE scope = ? AND key = ?",
        "iss", a->now, k->scope, k->key);
    if (st == NULL)
        return souk_db_last_error(db);
    int rc = souk_stmt_step(st);
    if (rc == SOUK_DONE)
        return a->peek ? SOUK_IDEM_PROCEED : take_lease(db, k, true, a->now, a->lease_ms);
    if (rc < 0)
        return rc;
    bool same = strcmp(souk_stmt_text(st, 0), k->hash) == 0;
    bool leased = souk_stmt_int(st, 1) != 0;
    k->attempts = souk_stmt_int(st, 2);
    bool done = !souk_stmt_null(st, 3);
    rc = SOUK_IDEM_PROCEED;
    if (!same) {
        rc = SOUK_IDEM_MISMATCH;
    } else if (done) {
        k->status = (int)souk_stmt_int(st, 3);
        const char *resp = souk_stmt_text(st, 4);
        k->response = souk_xstrdup(resp ? resp : "");
        rc = SOUK_IDEM_REPLAY;
    } else if (leased) {
        rc = SOUK_IDEM_IN_USE;
    }
    souk_stmt_done(st);
    if (same && !done && !leased && !a->peek) /* released or expired: this retry runs it */
        rc = take_lease(db, k, false, a->now, a->lease_ms);
    return rc;
}

enum how { OWN_TX, IN_TX, PEEK };

/* begin, begin_in_tx and peek: the key checked and hashed into k, begin_tx run in a
 * transaction of its own, in the caller's, or (a look only: one SELECT) in none. */
static int begin(struct souk_db *db, struct souk_idem *k, const char *scope, const char *key,
                 const char *method, const char *path, const char *body, size_t len,
                 int64_t lease_ms, enum how how)
{
    memset(k, 0, sizeof(*k));
    if (!souk_idem_key_valid(key) || scope == NULL || strlen(scope) > SOUK_IDEM_SCOPE_MAX)
        return SOUK_EINVAL;
    strcpy(k->scope, scope);
    strcpy(k->key, key);
    request_hash(k->hash, method, path, body, len);
    int64_t now = souk_wall_ms();
    if (how != IN_TX) /* the purge is a write of its own: never inside the caller's */
        maybe_purge(db, now);
    struct begin_args a = {k, now, lease_ms > 0 ? lease_ms : SOUK_IDEM_LEASE_MS, how == PEEK};
    int rc = how == OWN_TX ? souk_db_tx(db, begin_tx, &a) : begin_tx(db, &a);
    k->in_tx = how == IN_TX;
    if (rc < 0)
        souk_idem_free(k);
    return rc;
}

int souk_idem_begin(struct souk_db *db, struct souk_idem *k, const char *scope, const char *key,
                    const char *method, const char *path, const char *body, size_t len,
                    int64_t lease_ms)
{
    return begin(db, k, scope, key, method, path, body, len, lease_ms, OWN_TX);
}

int souk_idem_begin_in_tx(struct souk_db *db, struct souk_idem *k, const char *scope,
                          const char *key, const char *method, const char *path, const char *body,
                          size_t len, int64_t lease_ms)
{
    return begin(db, k, scope, key, method, path, body, len, lease_ms, IN_TX);
}

int souk_idem_peek(struct souk_db *db, struct souk_idem *k, const char *scope, const char *key,
                   const char *method, const char *path, const char *body, size_t len)
{
    return begin(db, k, scope, key, method, path, body, len, 0, PEEK);
}

int souk_idem_complete(struct souk_db *db, struct souk_idem *k, int status, const char *response)
{
    int rc = souk_db_run(db,
                         "UPDATE idempotency_keys SET status = ?, response = ?,"
                         " lease_token = NULL, lease_until = NULL"
                         " WHERE scope = ? AND key = ? AND lease_token = ? AND status IS NULL",
                         "issss", (int64_t)status, response, k->scope, k->key, k->lease);
    if (rc < 0)
        return rc;
    return rc == 1 ? 0 : SOUK_ECONFLICT;
}

int souk_idem_release(struct souk_db *db, struct souk_idem *k, bool in_tx)
{
    int rc = in_tx ? 0 : souk_db_begin_mode(db, SOUK_TX_LOCKS); /* one row, atomic */
    if (rc != 0)
        return rc;
    rc = souk_db_run(db,
                     "UPDATE idempotency_keys SET attempts = attempts + 1,"
                     " lease_token = NULL, lease_until = NULL"
                     " WHERE scope = ? AND key = ? AND lease_token = ? AND status IS NULL",
                     "sss", k->scope, k->key, k->lease);
    if (in_tx)
        return rc < 0 ? rc : 0;
    if (rc < 0) {
        souk_db_rollback(db);
        return rc;
    }
    return souk_db_commit(db);
}

int souk_idem_purge(struct souk_db *db, int64_t ttl_ms)
{
    int64_t now = souk_wall_ms();
    return souk_db_run(db,
                       "DELETE FROM idempotency_keys WHERE created_at < ?"
                       " AND (lease_until IS NULL OR lease_until < ?)",
                       "ii", now - ttl_ms, now);
}

void souk_idem_free(struct souk_idem *k)
{
    free(k->response);
    k->response = NULL;
}
