/* db.h: the database, hiding the engine: SQLite (the local mode) or PostgreSQL (the
 * scale-out mode), chosen by the URL. One connection per thread (souk_db_thread()),
 * prepared statements cached per connection, transactions, and numbered migrations
 * applied at start. Statements bind and read by a small format string:
 * 's' text, 'S' text or NULL when the pointer is NULL, 'i' int64, 'b' bool (int),
 * 'd' double, 'n' NULL. SQL uses '?' or '?NNN' placeholders; docs/db.md says how
 * to write SQL that both engines run (SOUK_IF_SQLITE / SOUK_IF_PG below). */
#ifndef SOUK_DB_H
#define SOUK_DB_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/souk.h"

struct souk_db;
struct souk_stmt; /* a cached prepared statement; owned by its connection */

struct souk_migration {
    const char *name;   /* "001_init.sql": the number orders and identifies it */
    const char *sql;    /* for both engines, or SQLite's when pg_sql is set */
    const char *pg_sql; /* PostgreSQL's (001_init.pg.sql), or NULL */
};

/* The migrations of the service being built (generated from services/<name>/migrations/). */
extern const struct souk_migration service_migrations[];

enum { SOUK_ROW = 1, SOUK_DONE = 0 };

enum souk_db_engine { SOUK_DB_SQLITE, SOUK_DB_POSTGRES };

/* A piece of SQL for one engine only, inside a string both run:
 *   "SELECT … WHERE id = ?" SOUK_IF_PG(" FOR UPDATE")
 *   "… SET n = " SOUK_IF_SQLITE("max") SOUK_IF_PG("greatest") "(n, excluded.n)"
 * The other engine drops it when the statement is first prepared. */
#define SOUK_IF_SQLITE(sql) "\002S" sql "\003"
#define SOUK_IF_PG(sql)     "\002P" sql "\003"
/* Two-argument max and min: SQLite's max(a, b), PostgreSQL's greatest(a, b). */
#define SOUK_SQL_GREATEST SOUK_IF_SQLITE("max") SOUK_IF_PG("greatest")
#define SOUK_SQL_LEAST    SOUK_IF_SQLITE("min") SOUK_IF_PG("least")

/* Check a database URL as configured in the variable named name (SOUK_DB):
 * "sqlite:PATH" (":memory:" works as a PATH) or "postgres://…" / "postgresql://…"
 * (libpq's URL syntax). Also loads the kit's database settings
 * (SOUK_DB_PASSWORD_FILE, SOUK_DB_STATEMENT_TIMEOUT_MS, SOUK_DB_LOCK_TIMEOUT_MS) and
 * registers the database metrics. Returns 0, or SOUK_EINVAL with a message in err
 * naming the variable; the message never shows a password. Touches no file and no
 * server: call it before anything is opened. */
int souk_db_configure(const char *name, const char *url, char *err, size_t errlen);

/* Open a connection to url (as above). For SQLite, the file and its directory are
 * created when missing. Returns 0 and *out, or a negative code with the reason
 * logged: SOUK_EINVAL for a bad URL, SOUK_EUNAVAIL when the server cannot be
 * reached, SOUK_EDB otherwise. */
int souk_db_open(struct souk_db **out, const char *url);
void souk_db_close(struct souk_db *db);
enum souk_db_engine souk_db_engine(const struct souk_db *db);

/* The calling thread's connection to the service database, opened on first use
 * (the URL is set once by souk_db_set_default()). Closed at thread exit. With
 * PostgreSQL it is never NULL once a URL is set: a server that cannot be reached
 * makes each call fail with SOUK_EUNAVAIL until it can (see Reconnection below). */
struct souk_db *souk_db_thread(void);
void souk_db_set_default(const char *url);

/* 0 when the connection can serve (PostgreSQL: a round trip, reconnecting if it
 * must), or SOUK_EUNAVAIL. For readiness checks. */
int souk_db_ping(struct souk_db *db);

/* Run WAL checkpoints on a background thread of this process, so that commits on
 * connections opened afterwards do not checkpoint inline. souk_main() starts it
 * for a serving process and stops it at the end of the drain. Nothing to do (and 0)
 * with PostgreSQL. */
int souk_db_start_checkpointer(void);
void souk_db_stop_checkpointer(void);

/* Apply, in one transaction each and in order, every migration not yet recorded in
 * schema_migrations (PostgreSQL: pg_sql when set). Safe to run concurrently from
 * several processes: SQLite serialises them by its write lock, PostgreSQL by an
 * advisory lock held while they run (statement timeouts do not apply then). */
int souk_db_migrate(struct souk_db *db, const struct souk_migration *m);

/* Create what is missing (CREATE … IF NOT EXISTS statements, no parameters), one
 * process at a time, as migrations run: for the kit's own tables, which every
 * replica creates as it starts (two PostgreSQL sessions creating the same table at
 * once can fail). In a transaction of its own: not inside the caller's. */
int souk_db_schema(struct souk_db *db, const char *sql);

/* Run sql (several statements allowed, no parameters). */
int souk_db_exec(struct souk_db *db, const char *sql);
/* Prepare (cached) and bind; step it with souk_stmt_step(). Strings are copied or
 * sent before it returns. NULL only when the statement cannot be made (bad SQL, a
 * bad format; logged): souk_db_last_error() says which. A failure to run it — the
 * database busy or unreachable, a constraint — is the first souk_stmt_step()'s
 * (with PostgreSQL the statement has run when this returns). */
struct souk_stmt *souk_db_query(struct souk_db *db, const char *sql, const char *fmt, ...);
struct souk_stmt *souk_db_vquery(struct souk_db *db, const char *sql, const char *fmt, va_list ap);
/* Prepare, bind, step to completion. Returns the number of rows changed, or a negative
 * code: SOUK_ECONFLICT for a constraint violation, SOUK_EBUSY, SOUK_EUNAVAIL, SOUK_EDB. */
int souk_db_run(struct souk_db *db, const char *sql, const char *fmt, ...);
/* The code of this connection's last failure (what a NULL from souk_db_query meant). */
int souk_db_last_error(struct souk_db *db);

/* SOUK_ROW, SOUK_DONE or a negative code. After SOUK_DONE or an error the statement is
 * reset; call souk_stmt_done() to release one left early. */
int souk_stmt_step(struct souk_stmt *st);
void souk_stmt_done(struct souk_stmt *st);
const char *souk_stmt_text(struct souk_stmt *st, int col); /* NULL for null */
int64_t souk_stmt_int(struct souk_stmt *st, int col);      /* a boolean reads as 0 or 1 */
double souk_stmt_double(struct souk_stmt *st, int col);
bool souk_stmt_null(struct souk_stmt *st, int col);
int souk_stmt_columns(struct souk_stmt *st);
/* The current row as an object: column name → string, integer, real or null (the
 * same JSON from both engines: a boolean is 0 or 1, an integral NUMERIC such as a
 * PostgreSQL sum() an integer). Columns named "*_json" holding text are parsed and
 * put under the name without the suffix. */
json_t *souk_stmt_row_json(struct souk_stmt *st);

/* One-row helpers: run the query and copy column 0. Return 1 if a row was found,
 * 0 if none, or a negative code. */
int souk_db_int(struct souk_db *db, int64_t *out, const char *sql, const char *fmt, ...);

/* Transactions. Nesting is not supported.
 * SOUK_TX_SERIAL: as if transactions ran one after another. SQLite takes the write
 *   lock at once (BEGIN IMMEDIATE), so two writers never deadlock on upgrade;
 *   PostgreSQL runs it SERIALIZABLE, where any statement or the commit may fail with
 *   SOUK_EBUSY (a serialization failure): run it again, or use souk_db_tx().
 *   What code written for SQLite's single writer assumes (check, then write).
 * SOUK_TX_LOCKS: PostgreSQL READ COMMITTED; the transaction takes the row locks it
 *   needs ("SELECT … " SOUK_IF_PG("FOR UPDATE")) and sees others' commits between
 *   statements. SQLite: BEGIN IMMEDIATE, as above.
 * SOUK_TX_READ: a consistent read-only snapshot (PostgreSQL REPEATABLE READ READ
 *   ONLY; SQLite a deferred read transaction). */
enum souk_tx_mode { SOUK_TX_SERIAL, SOUK_TX_LOCKS, SOUK_TX_READ };
int souk_db_begin(struct souk_db *db); /* SOUK_TX_SERIAL */
int souk_db_begin_mode(struct souk_db *db, enum souk_tx_mode mode);
/* On failure the transaction is rolled back. PostgreSQL: a transaction in which a
 * statement failed cannot commit: commit returns that statement's error. A commit
 * failing with SOUK_EUNAVAIL may have happened or not (the answer was lost). */
int souk_db_commit(struct souk_db *db);
void souk_db_rollback(struct souk_db *db);

/* Run fn(db, arg) in a transaction of the given mode and commit when it returns a
 * value >= 0 (returned), or roll back and return its negative code. A transaction
 * that fails with SOUK_EBUSY (serialization failure, deadlock, lock or statement
 * timeout, SQLite busy) in begin, fn or commit is rolled back and run again, a few
 * times with a short jittered backoff, before SOUK_EBUSY is returned: fn may run
 * more than once, so it must keep its effects outside the database for after. */
typedef int (*souk_db_tx_fn)(struct souk_db *db, void *arg);
int souk_db_tx(struct souk_db *db, souk_db_tx_fn fn, void *arg); /* SOUK_TX_SERIAL */
int souk_db_tx_mode(struct souk_db *db, enum souk_tx_mode mode, souk_db_tx_fn fn, void *arg);

/* Errors to answer with 503 and Retry-After: the database is unreachable
 * (SOUK_EUNAVAIL) or asked to try again (SOUK_EBUSY). */
static inline bool souk_db_retryable(int rc) { return rc == SOUK_EBUSY || rc == SOUK_EUNAVAIL; }

/* Reconnection (PostgreSQL): a connection found broken (the server restarted, the
 * network failed) is reopened by the next call that is not inside a transaction.
 * A call inside a transaction whose connection broke fails with SOUK_EUNAVAIL, as
 * does every later one until the caller rolls back (or begins anew, which gives the
 * lost transaction up). A server that said goodbye
 * while the connection sat idle is reconnected to before the call runs, so the
 * first statement after a restart works. Failed reconnects back off (up to 2 s). */

int64_t souk_db_changes(struct souk_db *db);
const char *souk_db_errmsg(struct souk_db *db);

#endif
