/* db_int.h: what the common database layer (db.c) shares with its two engines
 * (db_sqlite.c, db_pg.c): the table of calls each engine fills in, and the headers
 * every connection and statement start with, so the public calls can dispatch. */
#ifndef SOUK_DB_INT_H
#define SOUK_DB_INT_H

#include <stdarg.h>
#include <stdio.h>

#include "souk/db.h"
#include "trace_int.h"

struct souk__db_ops {
    enum souk_db_engine engine;
    /* target: the URL without "sqlite:" for SQLite, the whole URL for PostgreSQL.
     * lazy: return a connection even if the server cannot be reached now. */
    int (*open)(struct souk_db **out, const char *target, bool lazy);
    void (*close)(struct souk_db *db);
    int (*exec)(struct souk_db *db, const char *sql);
    struct souk_stmt *(*query)(struct souk_db *db, const char *sql, const char *fmt, va_list ap);
    int (*step)(struct souk_stmt *st);
    void (*done)(struct souk_stmt *st);
    const char *(*text)(struct souk_stmt *st, int col);
    int64_t (*get_int)(struct souk_stmt *st, int col);
    double (*get_double)(struct souk_stmt *st, int col);
    bool (*null)(struct souk_stmt *st, int col);
    int (*columns)(struct souk_stmt *st);
    json_t *(*row_json)(struct souk_stmt *st);
    int (*begin)(struct souk_db *db, enum souk_tx_mode mode);
    int (*commit)(struct souk_db *db);
    void (*rollback)(struct souk_db *db);
    int64_t (*changes)(struct souk_db *db);
    const char *(*errmsg)(struct souk_db *db);
    int (*ping)(struct souk_db *db);
    /* around the migrations: PostgreSQL's advisory lock (and no statement timeout) */
    int (*migrate_lock)(struct souk_db *db);
    void (*migrate_unlock)(struct souk_db *db);
};

struct souk_db {
    const struct souk__db_ops *ops;
    int err;                 /* the code of the last failure */
    struct souk__tx_span tx; /* a span for the open transaction when it proves slow */
};

struct souk_stmt {
    struct souk_db *db;
};

extern const struct souk__db_ops souk__db_sqlite;
extern const struct souk__db_ops souk__db_pg;

/* sql with the other engines' SOUK_IF_* pieces dropped and the markers of its own
 * removed, in a malloc'd copy; NULL when sql has none (use it as is). */
char *souk__db_variant(const char *sql, enum souk_db_engine engine);

/* The database's configuration table, for `<service> --help`. */
void souk__db_print_config(FILE *out);

/* Counted in the database metrics (no-ops before souk_db_configure). */
void souk__db_count_error(int code);
void souk__db_count_reconnect(void);

/* PostgreSQL settings from souk_db_configure (defaults until it runs). */
struct souk__pg_settings {
    const char *password_file; /* "" for none */
    int64_t statement_timeout_ms, lock_timeout_ms, idle_tx_timeout_ms;
};
extern struct souk__pg_settings souk__pg;
/* Check a postgres:// URL with libpq's own parser; 0 or SOUK_EINVAL with err set
 * (never showing a password). */
int souk__pg_check_url(const char *name, const char *url, char *err, size_t errlen);
/* Load libpq (dl_int.h), once per process: souk__pg_check_url and every connection
 * call it first. 0, or SOUK_ENOTFOUND with why naming the library and what failed. */
int souk__pg_load(char *why, size_t whycap);

/* SQLite's background checkpointer (db_sqlite.c). */
int souk__sqlite_start_checkpointer(const char *path);
void souk__sqlite_stop_checkpointer(void);

#endif
