/* db.h: the database, hiding SQLite. One connection per thread (souk_db_thread()),
 * WAL, a busy timeout, a prepared-statement cache, transactions, and numbered
 * migrations applied at start. Statements bind and read by a small format string:
 * 's' text, 'i' int64, 'n' null, 'b' bool (int), 'S' text or null when NULL. */
#ifndef SOUK_DB_H
#define SOUK_DB_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

struct souk_db;
struct souk_stmt; /* a cached prepared statement; owned by its connection */

struct souk_migration {
    const char *name; /* "001_init.sql": the number orders and identifies it */
    const char *sql;
};

/* The migrations of the service being built (generated from services/<name>/migrations/). */
extern const struct souk_migration service_migrations[];

enum { SOUK_ROW = 1, SOUK_DONE = 0 };

/* Open a connection to url ("sqlite:PATH" or a plain path; ":memory:" works).
 * Returns 0 and *out, or a negative code with the reason logged. */
int souk_db_open(struct souk_db **out, const char *url);
void souk_db_close(struct souk_db *db);

/* The calling thread's connection to the service database, opened on first use
 * (the URL is set once by souk_db_set_default()). Closed at thread exit. */
struct souk_db *souk_db_thread(void);
void souk_db_set_default(const char *url);

/* Run WAL checkpoints on a background thread of this process, so that commits on
 * connections opened afterwards do not checkpoint inline. souk_main() starts it
 * for a serving process and stops it at the end of the drain. */
int souk_db_start_checkpointer(void);
void souk_db_stop_checkpointer(void);

/* Apply, in one transaction each and in order, every migration not yet recorded in
 * schema_migrations. Safe to run concurrently from several processes. */
int souk_db_migrate(struct souk_db *db, const struct souk_migration *m);

/* Run sql (several statements allowed, no parameters). */
int souk_db_exec(struct souk_db *db, const char *sql);
/* Prepare (cached) and bind; step it with souk_stmt_step(). NULL on error (logged). */
struct souk_stmt *souk_db_query(struct souk_db *db, const char *sql, const char *fmt, ...);
struct souk_stmt *souk_db_vquery(struct souk_db *db, const char *sql, const char *fmt, va_list ap);
/* Prepare, bind, step to completion. Returns the number of rows changed, or a negative
 * code: SOUK_ECONFLICT for a constraint violation, SOUK_EBUSY, SOUK_EDB. */
int souk_db_run(struct souk_db *db, const char *sql, const char *fmt, ...);

/* SOUK_ROW, SOUK_DONE or a negative code. After SOUK_DONE or an error the statement is
 * reset; call souk_stmt_done() to release one left early. */
int souk_stmt_step(struct souk_stmt *st);
void souk_stmt_done(struct souk_stmt *st);
const char *souk_stmt_text(struct souk_stmt *st, int col); /* NULL for null */
int64_t souk_stmt_int(struct souk_stmt *st, int col);
double souk_stmt_double(struct souk_stmt *st, int col);
bool souk_stmt_null(struct souk_stmt *st, int col);
int souk_stmt_columns(struct souk_stmt *st);
/* The current row as an object: column name → string, integer, real or null.
 * Columns named "*_json" are parsed and put under the name without the suffix. */
json_t *souk_stmt_row_json(struct souk_stmt *st);

/* One-row helpers: run the query and copy column 0. Return 1 if a row was found,
 * 0 if none, or a negative code. */
int souk_db_int(struct souk_db *db, int64_t *out, const char *sql, const char *fmt, ...);

/* Transactions. begin takes the write lock at once (BEGIN IMMEDIATE), so two writers
 * never deadlock on upgrade. Nesting is not supported. */
int souk_db_begin(struct souk_db *db);
int souk_db_commit(struct souk_db *db);
void souk_db_rollback(struct souk_db *db);

int64_t souk_db_changes(struct souk_db *db);
const char *souk_db_errmsg(struct souk_db *db);

#endif
