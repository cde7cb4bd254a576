/* db.c: SQLite behind the kit's database calls. Each connection keeps a small
 * cache of prepared statements keyed by the SQL text's address (SQL is almost
 * always a string literal), falling back to comparing the text. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/config.h"
#include "souk/db.h"
#include "souk/log.h"
#include "souk/souk.h"

#define STMT_CACHE             96
#define BUSY_TIMEOUT_MS        5000
#define CHECKPOINT_INTERVAL_MS 1000
#define CHECKPOINT_VALVE_PAGES "10000"

struct cached {
    const char *key; /* the caller's pointer */
    char *sql;       /* our copy, for the fallback comparison */
    sqlite3_stmt *st;
};

struct souk_db {
    sqlite3 *h;
    struct cached cache[STMT_CACHE];
    size_t ncache;
    size_t next_evict;
};

static char *default_url;
static atomic_bool background_checkpoints;
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static const char *url_path(const char *url)
{
    return strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
}

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* Before the first connection: Debian's SQLite keeps memory statistics behind a
 * global mutex that every allocation takes; we never read them. */
static void configure_sqlite(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

int souk_db_open(struct souk_db **out, const char *url)
{
    pthread_once(&config_once, configure_sqlite);
    struct souk_db *db = souk_xcalloc(1, sizeof(*db));
    const char *path = url_path(url);
    int rc = sqlite3_open_v2(
        path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        char shown[512]; /* what is not a path may be a URL with a password */
        souk_error("db open failed", "{s:s,s:s}", "path",
                   souk_config_redact_url(path, shown, sizeof(shown)), "error",
                   db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        sqlite3_close(db->h);
        free(db);
        return SOUK_EDB;
    }
    sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
    /* WAL lets readers run beside the one writer; NORMAL sync is durable across a
     * process crash (kill -9), which is the failure this platform is built for. */
    rc = souk_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
    /* With the checkpointer running, a commit no longer pays for the checkpoint
     * (and its fsync) inline; the high threshold stays as a safety valve. */
    if (rc == 0 && atomic_load(&background_checkpoints))
        rc = souk_db_exec(db, "PRAGMA wal_autocheckpoint=" CHECKPOINT_VALVE_PAGES);
    if (rc != 0) {
        souk_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void souk_db_close(struct souk_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->ncache; i++) {
        sqlite3_finalize(db->cache[i].st);
        free(db->cache[i].sql);
    }
    sqlite3_close(db->h);
    free(db);
}

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
    if (db == NULL) {
        if (default_url == NULL || souk_db_open(&db, default_url) != 0)
            return NULL;
        pthread_setspecific(thread_key, db);
    }
    return db;
}

int souk_db_exec(struct souk_db *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db->h, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        souk_error("db exec failed", "{s:s}", "error", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return rc == SQLITE_BUSY ? SOUK_EBUSY : SOUK_EDB;
    }
    return 0;
}

static sqlite3_stmt *prepare(struct souk_db *db, const char *sql)
{
    for (size_t i = 0; i < db->ncache; i++)
        if (db->cache[i].key == sql)
            return db->cache[i].st;
    for (size_t i = 0; i < db->ncache; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            db->cache[i].key = sql;
            return db->cache[i].st;
        }
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        souk_error("db prepare failed", "{s:s,s:s}", "error", sqlite3_errmsg(db->h), "sql", sql);
        return NULL;
    }
    struct cached *c;
    if (db->ncache < STMT_CACHE) {
        c = &db->cache[db->ncache++];
    } else {
        c = &db->cache[db->next_evict];
        db->next_evict = (db->next_evict + 1) % STMT_CACHE;
        sqlite3_finalize(c->st);
        free(c->sql);
    }
    c->key = sql;
    c->sql = souk_xstrdup(sql);
    c->st = st;
    return st;
}

static int bind(sqlite3_stmt *st, const char *fmt, va_list ap)
{
    int i = 1;
    for (const char *f = fmt; f != NULL && *f != '\0'; f++, i++) {
        int rc;
        switch (*f) {
        case 's':
            rc = sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
            break;
        case 'S': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        case 'b':
            rc = sqlite3_bind_int(st, i, va_arg(ap, int) ? 1 : 0);
            break;
        case 'd':
            rc = sqlite3_bind_double(st, i, va_arg(ap, double));
            break;
        case 'n':
            rc = sqlite3_bind_null(st, i);
            break;
        default:
            souk_error("db bind: bad format", "{s:s}", "fmt", fmt);
            return SOUK_EINVAL;
        }
        if (rc != SQLITE_OK)
            return SOUK_EDB;
    }
    return 0;
}

struct souk_stmt *souk_db_vquery(struct souk_db *db, const char *sql, const char *fmt, va_list ap)
{
    sqlite3_stmt *st = prepare(db, sql);
    if (st == NULL)
        return NULL;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (bind(st, fmt, ap) != 0) {
        sqlite3_reset(st);
        return NULL;
    }
    return (struct souk_stmt *)st;
}

struct souk_stmt *souk_db_query(struct souk_db *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = souk_db_vquery(db, sql, fmt, ap);
    va_end(ap);
    return st;
}

static int map_error(sqlite3 *h, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return SOUK_ECONFLICT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SOUK_EBUSY;
    }
    souk_error("db step failed", "{s:s}", "error", sqlite3_errmsg(h));
    return SOUK_EDB;
}

int souk_stmt_step(struct souk_stmt *stmt)
{
    sqlite3_stmt *st = (sqlite3_stmt *)stmt;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return SOUK_ROW;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return SOUK_DONE;
    return map_error(sqlite3_db_handle(st), rc);
}

void souk_stmt_done(struct souk_stmt *st)
{
    if (st != NULL)
        sqlite3_reset((sqlite3_stmt *)st);
}

const char *souk_stmt_text(struct souk_stmt *st, int col)
{
    return (const char *)sqlite3_column_text((sqlite3_stmt *)st, col);
}

int64_t souk_stmt_int(struct souk_stmt *st, int col)
{
    return sqlite3_column_int64((sqlite3_stmt *)st, col);
}

double souk_stmt_double(struct souk_stmt *st, int col)
{
    return sqlite3_column_double((sqlite3_stmt *)st, col);
}

bool souk_stmt_null(struct souk_stmt *st, int col)
{
    return sqlite3_column_type((sqlite3_stmt *)st, col) == SQLITE_NULL;
}

int souk_stmt_columns(struct souk_stmt *st) { return sqlite3_column_count((sqlite3_stmt *)st); }

json_t *souk_stmt_row_json(struct souk_stmt *stmt)
{
    sqlite3_stmt *st = (sqlite3_stmt *)stmt;
    json_t *o = json_object();
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        size_t nlen = strlen(name);
        json_t *v;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_NULL:
            v = json_null();
            break;
        default: {
            const char *text = (const char *)sqlite3_column_text(st, i);
            if (nlen > 5 && strcmp(name + nlen - 5, "_json") == 0) {
                v = json_loads(text, JSON_DECODE_ANY, NULL);
                if (v == NULL)
                    v = json_null();
                char key[64];
                snprintf(key, sizeof(key), "%.*s", (int)(nlen - 5), name);
                json_object_set_new(o, key, v);
                continue;
            }
            v = json_stringn(text, (size_t)sqlite3_column_bytes(st, i));
            if (v == NULL) /* not UTF-8: never expected, but never crash */
                v = json_null();
        }
        }
        json_object_set_new(o, name, v);
    }
    return o;
}

int souk_db_run(struct souk_db *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = souk_db_vquery(db, sql, fmt, ap);
    va_end(ap);
    if (st == NULL)
        return SOUK_EDB;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        ;
    return rc < 0 ? rc : (int)sqlite3_changes(db->h);
}

int souk_db_int(struct souk_db *db, int64_t *out, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct souk_stmt *st = souk_db_vquery(db, sql, fmt, ap);
    va_end(ap);
    if (st == NULL)
        return SOUK_EDB;
    int rc = souk_stmt_step(st);
    if (rc == SOUK_ROW) {
        *out = souk_stmt_int(st, 0);
        souk_stmt_done(st);
        return 1;
    }
    return rc;
}

int souk_db_begin(struct souk_db *db) { return souk_db_exec(db, "BEGIN IMMEDIATE"); }

int souk_db_commit(struct souk_db *db)
{
    int rc = souk_db_exec(db, "COMMIT");
    if (rc != 0)
        souk_db_rollback(db);
    return rc;
}

void souk_db_rollback(struct souk_db *db)
{
    if (!sqlite3_get_autocommit(db->h))
        sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int64_t souk_db_changes(struct souk_db *db) { return sqlite3_changes64(db->h); }

const char *souk_db_errmsg(struct souk_db *db) { return sqlite3_errmsg(db->h); }

int souk_db_migrate(struct souk_db *db, const struct souk_migration *m)
{
    int rc = souk_db_exec(db, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                              " applied_at TEXT NOT NULL)");
    if (rc != 0)
        return rc;
    for (; m != NULL && m->name != NULL; m++) {
        long version = strtol(m->name, NULL, 10);
        if (version <= 0) {
            souk_error("migration name must start with its number", "{s:s}", "name", m->name);
            return SOUK_EINVAL;
        }
        if ((rc = souk_db_begin(db)) != 0)
            return rc;
        int64_t seen = 0;
        rc = souk_db_int(db, &seen, "SELECT count(*) FROM schema_migrations WHERE version = ?", "i",
                         (int64_t)version);
        if (rc < 0)
            goto fail;
        if (seen) {
            souk_db_rollback(db);
            continue;
        }
        char now[SOUK_TIME_MAX];
        souk_time_now(now);
        if ((rc = souk_db_exec(db, m->sql)) != 0 ||
            (rc = souk_db_run(db, "INSERT INTO schema_migrations VALUES (?, ?, ?)", "iss",
                              (int64_t)version, m->name, now)) < 0 ||
            (rc = souk_db_commit(db)) != 0)
            goto fail;
        souk_info("migration applied", "{s:s}", "name", m->name);
    }
    return 0;
fail:
    souk_error("migration failed", "{s:s}", "name", m->name);
    souk_db_rollback(db);
    return rc < 0 ? rc : SOUK_EDB;
}

/* ---- the checkpointer: moves the WAL into the database in the background ---- */

static pthread_t checkpointer;
static atomic_bool checkpointing;

static void *checkpoint_loop(void *arg)
{
    struct souk_db *db = arg;
    while (atomic_load(&checkpointing)) {
        for (int slept = 0; slept < CHECKPOINT_INTERVAL_MS && atomic_load(&checkpointing);
             slept += 50)
            usleep(50 * 1000);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            souk_warn("checkpoint failed", "{s:s}", "error", sqlite3_errmsg(db->h));
    }
    souk_db_close(db);
    return NULL;
}

int souk_db_start_checkpointer(void)
{
    struct souk_db *db;
    if (default_url == NULL || souk_db_open(&db, default_url) != 0)
        return SOUK_EDB;
    atomic_store(&background_checkpoints, true);
    atomic_store(&checkpointing, true);
    if (pthread_create(&checkpointer, NULL, checkpoint_loop, db) != 0) {
        atomic_store(&checkpointing, false);
        souk_db_close(db);
        return SOUK_ENOMEM;
    }
    return 0;
}

void souk_db_stop_checkpointer(void)
{
    if (!atomic_exchange(&checkpointing, false))
        return;
    pthread_join(checkpointer, NULL);
}
