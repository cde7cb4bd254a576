/* idempotency.h: Idempotency-Key records with Stripe's semantics, for any write
 * that moves money or creates orders. A retry with the same key and body gets the
 * first response replayed; the same key with another body is refused; a request
 * arriving while the first is still running is refused as in use.
 *
 * Life of a key (the caller's code, in order):
 *   souk_idem_begin()      its own short transaction: look the key up and, when the
 *                          request must run, take a lease on it (so a concurrent
 *                          duplicate cannot run too).
 *   ... the effect ...     may call other services or a processor outside any
 *                          transaction; then opens the effect's transaction and
 *   souk_idem_complete()   inside that transaction: stores the response, so the
 *                          effect and its record commit (or vanish) together.
 *   souk_idem_release()    instead of complete, after a transient failure (5xx):
 *                          nothing is stored, the key stays retryable, and its
 *                          attempt count goes up.
 * A crash between begin and complete leaves only a lease, which expires. complete
 * checks the lease is still ours, so an expired lease taken over by a retry can
 * never let the effect commit twice.
 *
 * The table (created by souk_idem_init()):
 *   idempotency_keys(scope, key, request_hash, lease_token, lease_until, attempts,
 *                    status, response, created_at) PRIMARY KEY (scope, key)
 * scope separates callers (usually the caller's identity) so two clients can
 * never collide on a key. Records are kept SOUK_IDEM_TTL_MS at least. */
#ifndef SOUK_IDEMPOTENCY_H
#define SOUK_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/db.h"

#define SOUK_IDEM_KEY_MAX   255 /* Stripe's limit on key length */
#define SOUK_IDEM_SCOPE_MAX 64
#define SOUK_IDEM_HASH_LEN  64 /* hex SHA-256 */
#define SOUK_IDEM_TTL_MS    (24LL * 3600 * 1000)
#define SOUK_IDEM_LEASE_MS  30000 /* default lease: longer than any request runs */

enum souk_idem_outcome {
    SOUK_IDEM_PROCEED = 0, /* run the request; then complete() or release() */
    SOUK_IDEM_REPLAY,      /* a stored response: send status and response as they are */
    SOUK_IDEM_MISMATCH,    /* same key, different request: 409 idempotency_key_reused */
    SOUK_IDEM_IN_USE,      /* the first request is still running: 409 idempotency_key_in_use */
};

struct souk_idem {
    char scope[SOUK_IDEM_SCOPE_MAX + 1];
    char key[SOUK_IDEM_KEY_MAX + 1];
    char hash[SOUK_IDEM_HASH_LEN + 1];
    char lease[33];   /* our lease token while PROCEED */
    int64_t attempts; /* earlier attempts that ended transiently (release) */
    int status;       /* REPLAY: the stored HTTP status */
    char *response;   /* REPLAY: the stored body (malloc'd; souk_idem_free) */
    bool in_tx;       /* begun in the caller's transaction: the lease goes with it */
};

/* Create the table if missing (safe to call at every start and concurrently). */
int souk_idem_init(struct souk_db *db);

/* True when key is acceptable: 1..SOUK_IDEM_KEY_MAX printable ASCII characters. */
bool souk_idem_key_valid(const char *key);

/* Look up (scope, key) for the request whose identity is method, path and body
 * (hashed, never stored). Must be called outside a transaction: it runs its own.
 * Returns a souk_idem_outcome (>= 0) with k filled, or a negative code. lease_ms 0
 * means SOUK_IDEM_LEASE_MS. */
int souk_idem_begin(struct souk_db *db, struct souk_idem *k, const char *scope, const char *key,
                    const char *method, const char *path, const char *body, size_t len,
                    int64_t lease_ms);

/* The same inside the caller's open transaction, for a request whose effect is
 * local and commits in that same transaction (nothing called outside it between
 * the look-up and the effect): the lease then never outlives the transaction, and
 * a concurrent duplicate waits for its commit and is answered with the replay.
 * SQLite: open it with SOUK_TX_SERIAL or SOUK_TX_LOCKS (the write lock). PostgreSQL:
 * a duplicate that raced ours to a new key fails with SOUK_ECONFLICT at the insert
 * or at souk_idem_complete(): roll back and run the request again (it replays). */
int souk_idem_begin_in_tx(struct souk_db *db, struct souk_idem *k, const char *scope,
                          const char *key, const char *method, const char *path, const char *body,
                          size_t len, int64_t lease_ms);

/* Look (scope, key) up, outside any transaction, and take nothing: REPLAY,
 * MISMATCH or IN_USE as souk_idem_begin() would answer, or PROCEED when the request
 * should run. For a request whose work before its effect only reads (calls that
 * change nothing): it does that work, then takes the key with
 * souk_idem_begin_in_tx() in the effect's transaction, which looks again, so a
 * duplicate that ran meanwhile is answered with its replay. No release is needed
 * when the work fails: nothing was written. */
int souk_idem_peek(struct souk_db *db, struct souk_idem *k, const char *scope, const char *key,
                   const char *method, const char *path, const char *body, size_t len);

/* Inside the caller's open transaction: record the final response. Returns 0, or
 * SOUK_ECONFLICT when our lease was lost (roll the effect back), or another code. */
int souk_idem_complete(struct souk_db *db, struct souk_idem *k, int status, const char *response);

/* After a transient failure: count the attempt and drop the lease so a retry runs.
 * Runs its own transaction unless in_tx. Returns 0 or a negative code. */
int souk_idem_release(struct souk_db *db, struct souk_idem *k, bool in_tx);

/* Delete records older than ttl_ms that are not leased. Returns the count or a code. */
int souk_idem_purge(struct souk_db *db, int64_t ttl_ms);

void souk_idem_free(struct souk_idem *k);

#endif
