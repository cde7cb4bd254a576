/* db.c: the kit's database calls, whichever the engine: the URL picks SQLite
 * (db_sqlite.c) or PostgreSQL (db_pg.c); this file checks the URL, keeps one
 * connection per thread, dispatches, and holds what both engines share: the
 * migrations, transactions retried on SOUK_EBUSY, the SOUK_IF_* pieces, metrics. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db_int.h"
#include "souk/config.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define TX_ATTEMPTS_PG     8 /* serialization failures are routine under contention */
#define TX_ATTEMPTS_SQLITE 2 /* busy already means 5 s of waiting for the write lock */
#define TX_BACKOFF_US      1000
#define TX_BACKOFF_MAX_US  64000

struct souk__pg_settings souk__pg = {"", 10000, 5000, 60000};

static const struct souk_conf db_config[] = {
    {"SOUK_DB_PASSWORD_FILE", SOUK_CONF_STR, "", 0, 4096, &souk__pg.password_file,
     "PostgreSQL: a file holding the password (instead of one in SOUK_DB)"},
    {"SOUK_DB_STATEMENT_TIMEOUT_MS", SOUK_CONF_INT, "10000", 0, 3600000,
     &souk__pg.statement_timeout_ms, "PostgreSQL: a statement running longer fails (0: never)"},
    {"SOUK_DB_LOCK_TIMEOUT_MS", SOUK_CONF_INT, "5000", 0, 3600000, &souk__pg.lock_timeout_ms,
     "PostgreSQL: a wait for a lock longer than this fails (0: never)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

void souk__db_print_config(FILE *out) { souk_config_print_table(out, db_config); }

static char *default_url;
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static struct souk_metric *m_errors, *m_reconnects, *m_retries;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

/* ---- URLs ---- */

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The engine of url and what it opens (the path for SQLite, the URL for libpq). */
static const struct souk__db_ops *engine_of(const char *url, const char **target)
{
    if (has_prefix(url, "sqlite:") && url[7] != '\0') {
        *target = url + 7;
        return &souk__db_sqlite;
    }
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
        *target = url;
        return &souk__db_pg;
    }
    return NULL;
}

/* A value that is not a URL we know may still hold a password ("postgres:/u:p@h",
 * one slash short): show what follows the last '@', never what precedes it. */
static const char *shown_value(const char *url, char *out, size_t cap)
{
    const char *at = strrchr(url, '@');
    if (strstr(url, "://") != NULL || at == NULL)
        return souk_config_redact_url(url, out, cap);
    size_t scheme = strcspn(url, ":/@");
    snprintf(out, cap, "%.*s%s***@%s", (int)scheme, url, url[scheme] == ':' ? ":" : "", at + 1);
    return out;
}

static void metrics_register(void)
{
    m_errors = souk_metric_counter("souk_db_errors_total", "failed database calls by kind", "kind");
    m_reconnects = souk_metric_counter("souk_db_reconnects_total",
                                       "connections reopened after the server went away", NULL);
    m_retries = souk_metric_counter("souk_db_tx_retries_total",
                                    "transactions run again after SOUK_EBUSY", NULL);
}

void souk__db_count_error(int code)
{
    if (m_errors == NULL)
        return;
    const char *kind = code == SOUK_EUNAVAIL    ? "unavailable"
                       : code == SOUK_EBUSY     ? "busy"
                       : code == SOUK_ECONFLICT ? "conflict"
                                                : "error";
    souk_metric_inc(m_errors, kind);
}

void souk__db_count_reconnect(void)
{
    if (m_reconnects != NULL)
        souk_metric_add(m_reconnects, 1.0);
}

int souk_db_configure(const char *name, const char *url, char *err, size_t errlen)
{
    const char *target;
    const struct souk__db_ops *ops = engine_of(url, &target);
    char shown[512];
    if (ops == NULL) {
        snprintf(err, errlen,
                 "%s=\"%s\": expected sqlite:PATH or a postgres:// (postgresql://) URL", name,
                 shown_value(url, shown, sizeof(shown)));
        return SOUK_EINVAL;
    }
    if (souk_config_load(db_config, err, errlen) != 0)
        return SOUK_EINVAL;
    if (ops == &souk__db_pg && souk__pg_check_url(name, url, err, errlen) != 0)
        return SOUK_EINVAL;
    pthread_once(&metrics_once, metrics_register);
    return 0;
}

/* ---- connections ---- */

int souk_db_open(struct souk_db **out, const char *url)
{
    const char *target;
    const struct souk__db_ops *ops = engine_of(url, &target);
    if (ops == NULL) {
        char shown[512];
        souk_error("db open: not a database URL", "{s:s}", "url",
                   shown_value(url, shown, sizeof(shown)));
        return SOUK_EINVAL;
    }
    return ops->open(out, target, false);
}

void souk_db_close(struct souk_db *db)
{
    if (db != NULL)
        db->ops->close(db);
}

enum souk_db_engine souk_db_engine(const struct souk_db *db) { return db->ops->engine; }

static void thread_close(void *p) { souk_db_close(p); }

static void thread_key_make(void) { pthread_key_create(&thread_key, thread_close); }

void souk_db_set_default(const char *url)
{
    free(default_url);
    default_url = souk_xstrdup(url);
}

struct souk_db *souk_db_thread(void)
{
    pthread_once(&thread_once, thread_key_make);
    struct souk_db *db = pthread_getspecific(thread_key);
    if (db == NULL && default_url != NULL) {
        const char *target;
        const struct souk__db_ops *ops = engine_of(default_url, &target);
        if (ops == NULL || ops->open(&db, target, true) != 0)
            return NULL;
        pthread_setspecific(thread_key, db);
    }
    return db;
}

int souk_db_ping(struct souk_db *db) { return db->ops->ping(db); }

int souk_db_start_checkpointer(void)
{
    const char *target;
    if (default_url == NULL)
        return SOUK_EDB;
    const struct souk__db_ops *ops = engine_of(default_url, &target);
    if (ops == NULL)
        return SOUK_EINVAL;
    return ops == &souk__db_sqlite ? souk__sqlite_start_checkpointer(target) : 0;
}

void souk_db_stop_checkpointer(void) { souk__sqlite_stop_checkpointer(); }

/* ---- statements ---- */

int souk_db_exec(struct souk_db *db, const char *sql) { return db->ops->exec(db, sql); }

struct souk_stmt *souk_db_vquery(struct souk_db *db, const char *sql, const char *fmt, va_list ap)
{
    return db->ops->query(db, sql, fmt, ap);
}

struct souk_stmt *souk_db_query(struct souk_db *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = db->ops->query(db, sql, fmt, ap);
    va_end(ap);
    return st;
}

int souk_db_last_error(struct souk_db *db) { return db->err != 0 ? db->err : SOUK_EDB; }

int souk_stmt_step(struct souk_stmt *st) { return st->db->ops->step(st); }

void souk_stmt_done(struct souk_stmt *st)
{
    if (st != NULL)
        st->db->ops->done(st);
}

const char *souk_stmt_text(struct souk_stmt *st, int col) { return st->db->ops->text(st, col); }
int64_t souk_stmt_int(struct souk_stmt *st, int col) { return st->db->ops->get_int(st, col); }
double souk_stmt_double(struct souk_stmt *st, int col) { return st->db->ops->get_double(st, col); }
bool souk_stmt_null(struct souk_stmt *st, int col) { return st->db->ops->null(st, col); }
int souk_stmt_columns(struct souk_stmt *st) { return st->db->ops->columns(st); }
json_t *souk_stmt_row_json(struct souk_stmt *st) { return st->db->ops->row_json(st); }

int souk_db_run(struct souk_db *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = db->ops->query(db, sql, fmt, ap);
    va_end(ap);
    if (st == NULL)
        return souk_db_last_error(db);
    int rc;
    while ((rc = db->ops->step(st)) == SOUK_ROW)
        ;
    return rc < 0 ? rc : (int)db->ops->changes(db);
}

int souk_db_int(struct souk_db *db, int64_t *out, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = db->ops->query(db, sql, fmt, ap);
    va_end(ap);
    if (st == NULL)
        return souk_db_last_error(db);
    int rc = db->ops->step(st);
    if (rc == SOUK_ROW) {
        *out = db->ops->get_int(st, 0);
        db->ops->done(st);
        return 1;
    }
    return rc;
}

int64_t souk_db_changes(struct souk_db *db) { return db->ops->changes(db); }

const char *souk_db_errmsg(struct souk_db *db) { return db->ops->errmsg(db); }

char *souk__db_variant(const char *sql, enum souk_db_engine engine)
{
    if (strchr(sql, '\002') == NULL)
        return NULL;
    char *out = souk_xmalloc(strlen(sql) + 1), *o = out;
    const char *p = sql;
    while (*p != '\0') {
        if (*p != '\002') {
            *o++ = *p++;
            continue;
        }
        bool keep = (p[1] == 'P' && engine == SOUK_DB_POSTGRES) ||
                    (p[1] == 'S' && engine == SOUK_DB_SQLITE);
        p += p[1] != '\0' ? 2 : 1;
        for (; *p != '\0' && *p != '\003'; p++)
            if (keep)
                *o++ = *p;
        if (*p == '\003')
            p++;
    }
    *o = '\0';
    return out;
}

/* ---- transactions ---- */

/* Every transaction passes here, so a slow one gets a span (souk__trace_tx_*). */
static const char *db_system(const struct souk_db *db)
{
    return db->ops->engine == SOUK_DB_POSTGRES ? "postgresql" : "sqlite";
}

static int tx_begin(struct souk_db *db, enum souk_tx_mode mode)
{
    int rc = db->ops->begin(db, mode);
    if (rc == 0)
        souk__trace_tx_begin(&db->tx);
    return rc;
}

static int tx_commit(struct souk_db *db)
{
    int rc = db->ops->commit(db);
    souk__trace_tx_end(&db->tx, db_system(db), true, rc);
    return rc;
}

static void tx_rollback(struct souk_db *db)
{
    db->ops->rollback(db);
    souk__trace_tx_end(&db->tx, db_system(db), false, 0);
}

int souk_db_begin(struct souk_db *db) { return tx_begin(db, SOUK_TX_SERIAL); }

int souk_db_begin_mode(struct souk_db *db, enum souk_tx_mode mode) { return tx_begin(db, mode); }

int souk_db_commit(struct souk_db *db) { return tx_commit(db); }

void souk_db_rollback(struct souk_db *db) { tx_rollback(db); }

static void backoff(int attempt)
{
    long us = TX_BACKOFF_US << (attempt < 6 ? attempt : 6);
    if (us > TX_BACKOFF_MAX_US)
        us = TX_BACKOFF_MAX_US;
    uint32_t r;
    souk_random(&r, sizeof(r));
    us = us / 2 + (long)(r % (uint32_t)us); /* 0.5x to 1.5x: replicas do not retry in step */
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

int souk_db_tx_mode(struct souk_db *db, enum souk_tx_mode mode, souk_db_tx_fn fn, void *arg)
{
    int attempts = db->ops->engine == SOUK_DB_POSTGRES ? TX_ATTEMPTS_PG : TX_ATTEMPTS_SQLITE;
    for (int attempt = 0;; attempt++) {
        int rc = tx_begin(db, mode);
        if (rc == 0) {
            int v = fn(db, arg);
            if (v >= 0) {
                rc = tx_commit(db); /* rolls back by itself when it fails */
                if (rc == 0)
                    return v;
            } else {
                tx_rollback(db);
                rc = v;
            }
        }
        if (rc != SOUK_EBUSY || attempt + 1 >= attempts)
            return rc;
        if (m_retries != NULL)
            souk_metric_add(m_retries, 1.0);
        backoff(attempt);
    }
}

int souk_db_tx(struct souk_db *db, souk_db_tx_fn fn, void *arg)
{
    return souk_db_tx_mode(db, SOUK_TX_SERIAL, fn, arg);
}

/* ---- migrations ---- */

int souk_db_schema(struct souk_db *db, const char *sql)
{
    int rc = db->ops->migrate_lock(db);
    if (rc != 0)
        return rc;
    /* SQLite: the write lock makes it one process at a time */
    if ((rc = souk_db_begin_mode(db, SOUK_TX_LOCKS)) == 0 && (rc = souk_db_exec(db, sql)) == 0)
        rc = souk_db_commit(db);
    if (rc != 0)
        souk_db_rollback(db);
    db->ops->migrate_unlock(db);
    return rc;
}

int souk_db_migrate(struct souk_db *db, const struct souk_migration *m)
{
    int rc = db->ops->migrate_lock(db);
    if (rc != 0)
        return rc;
    rc = souk_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations (version " SOUK_IF_SQLITE(
                              "INTEGER") SOUK_IF_PG("BIGINT") " PRIMARY KEY, name TEXT NOT NULL,"
                                                              " applied_at TEXT NOT NULL)");
    for (; rc == 0 && m != NULL && m->name != NULL; m++) {
        long version = strtol(m->name, NULL, 10);
        if (version <= 0) {
            souk_error("migration name must start with its number", "{s:s}", "name", m->name);
            rc = SOUK_EINVAL;
            break;
        }
        const char *sql =
            db->ops->engine == SOUK_DB_POSTGRES && m->pg_sql != NULL ? m->pg_sql : m->sql;
        /* under the advisory lock (PostgreSQL) or the write lock (SQLite): no one
         * else migrates, so read committed is enough */
        if ((rc = souk_db_begin_mode(db, SOUK_TX_LOCKS)) != 0)
            break;
        int64_t seen = 0;
        rc = souk_db_int(db, &seen, "SELECT count(*) FROM schema_migrations WHERE version = ?", "i",
                         (int64_t)version);
        if (rc >= 0 && seen) {
            souk_db_rollback(db);
            rc = 0;
            continue;
        }
        char now[SOUK_TIME_MAX];
        souk_time_now(now);
        if (rc < 0 || (rc = souk_db_exec(db, sql)) != 0 ||
            (rc = souk_db_run(db, "INSERT INTO schema_migrations VALUES (?, ?, ?)", "iss",
                              (int64_t)version, m->name, now)) < 0 ||
            (rc = souk_db_commit(db)) != 0) {
            souk_error("migration failed", "{s:s,s:s}", "name", m->name, "error",
                       souk_strerror(rc < 0 ? rc : SOUK_EDB));
            souk_db_rollback(db);
            rc = rc < 0 ? rc : SOUK_EDB;
            break;
        }
        souk_info("migration applied", "{s:s}", "name", m->name);
    }
    db->ops->migrate_unlock(db);
    return rc;
}
