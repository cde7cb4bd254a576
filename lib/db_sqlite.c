/* db_sqlite.c: SQLite behind the kit's database calls (the local mode). Each
 * connection keeps a small cache of prepared statements keyed by the SQL text's
 * address (SQL is almost always a string literal), falling back to comparing the
 * text; WAL, a busy timeout, and a background checkpointer. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_int.h"
#include "souk/log.h"
#include "souk/souk.h"

#define STMT_CACHE             96
#define BUSY_TIMEOUT_MS        5000
#define CHECKPOINT_INTERVAL_MS 1000
#define CHECKPOINT_VALVE_PAGES "10000"

struct lite_stmt {
    struct souk_stmt base;
    const char *key; /* the caller's pointer */
    char *sql;       /* our copy of the caller's text, for the fallback comparison */
    sqlite3_stmt *st;
};

struct lite_db {
    struct souk_db base;
    sqlite3 *h;
    struct lite_stmt cache[STMT_CACHE];
    size_t ncache;
    size_t next_evict;
};

static atomic_bool background_checkpoints;

static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* Before the first connection: Debian's SQLite keeps memory statistics behind a
 * global mutex that every allocation takes; we never read them. And no bulk page
 * cache: by default each connection's cache starts with 20 pages in one allocation
 * whose every page it writes a header into (~85 KB resident per connection, one
 * connection per thread, most of which read a few pages); pages then come one by one
 * as the cache grows. */
static void configure_sqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

static struct lite_db *lite(struct souk_db *db) { return (struct lite_db *)db; }
static sqlite3_stmt *handle(struct souk_stmt *st) { return ((struct lite_stmt *)st)->st; }

/* mkdir -p of the directory holding path */
static void make_parent_dirs(const char *path)
{
    char dir[4096];
    if (strcmp(path, ":memory:") == 0 || snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    }
    mkdir(dir, 0755);
}

static int lite_exec(struct souk_db *db, const char *sql);

static int lite_open(struct souk_db **out, const char *path, bool lazy)
{
    SOUK_UNUSED(lazy); /* a file opens or it does not */
    pthread_once(&config_once, configure_sqlite);
    struct lite_db *db = souk_xcalloc(1, sizeof(*db));
    db->base.ops = &souk__db_sqlite;
    make_parent_dirs(path);
    int rc = sqlite3_open_v2(
        path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        souk_error("db open failed", "{s:s,s:s}", "path", path, "error",
                   db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        sqlite3_close(db->h);
        free(db);
        return SOUK_EDB;
    }
    sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
    /* WAL lets readers run beside the one writer; NORMAL sync is durable across a
     * process crash (kill -9), which is the failure this platform is built for. */
    rc = lite_exec(&db->base, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                              "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;");
    /* With the checkpointer running, a commit no longer pays for the checkpoint
     * (and its fsync) inline; the high threshold stays as a safety valve. */
    if (rc == 0 && atomic_load(&background_checkpoints))
        rc = lite_exec(&db->base, "PRAGMA wal_autocheckpoint=" CHECKPOINT_VALVE_PAGES);
    if (rc != 0) {
        souk_db_close(&db->base);
        return rc;
    }
    *out = &db->base;
    return 0;
}

static void lite_close(struct souk_db *base)
{
    struct lite_db *db = lite(base);
    for (size_t i = 0; i < db->ncache; i++) {
        sqlite3_finalize(db->cache[i].st);
        free(db->cache[i].sql);
    }
    sqlite3_close(db->h);
    free(db);
}

static int fail(struct souk_db *db, int code)
{
    db->err = code;
    souk__db_count_error(code);
    return code;
}

static int lite_exec(struct souk_db *db, const char *sql)
{
    char *variant = souk__db_variant(sql, SOUK_DB_SQLITE), *err = NULL;
    int rc = sqlite3_exec(lite(db)->h, variant ? variant : sql, NULL, NULL, &err);
    free(variant);
    if (rc != SQLITE_OK) {
        souk_error("db exec failed", "{s:s}", "error", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return fail(db, rc == SQLITE_BUSY ? SOUK_EBUSY : SOUK_EDB);
    }
    return 0;
}

static struct lite_stmt *prepare(struct lite_db *db, const char *sql)
{
    for (size_t i = 0; i < db->ncache; i++)
        if (db->cache[i].key == sql)
            return &db->cache[i];
    for (size_t i = 0; i < db->ncache; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            db->cache[i].key = sql;
            return &db->cache[i];
        }
    }
    sqlite3_stmt *st;
    char *variant = souk__db_variant(sql, SOUK_DB_SQLITE);
    int rc = sqlite3_prepare_v3(db->h, variant ? variant : sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                                NULL);
    free(variant);
    if (rc != SQLITE_OK) {
        souk_error("db prepare failed", "{s:s,s:s}", "error", sqlite3_errmsg(db->h), "sql", sql);
        fail(&db->base, (rc & 0xff) == SQLITE_BUSY ? SOUK_EBUSY : SOUK_EDB);
        return NULL;
    }
    struct lite_stmt *c;
    if (db->ncache < STMT_CACHE) {
        c = &db->cache[db->ncache++];
    } else {
        /* the next one in turn that no caller is reading rows from */
        for (int tries = 0; tries < STMT_CACHE && sqlite3_stmt_busy(db->cache[db->next_evict].st);
             tries++)
            db->next_evict = (db->next_evict + 1) % STMT_CACHE;
        c = &db->cache[db->next_evict];
        db->next_evict = (db->next_evict + 1) % STMT_CACHE;
        sqlite3_finalize(c->st);
        free(c->sql);
    }
    c->base.db = &db->base;
    c->key = sql;
    c->sql = souk_xstrdup(sql);
    c->st = st;
    return c;
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
        if (rc != SQLITE_OK) {
            souk_error("db bind failed", "{s:s,s:s}", "fmt", fmt, "error", sqlite3_errstr(rc));
            return SOUK_EDB;
        }
    }
    return 0;
}

static struct souk_stmt *lite_query(struct souk_db *db, const char *sql, const char *fmt,
                                    va_list ap)
{
    struct lite_stmt *c = prepare(lite(db), sql);
    if (c == NULL)
        return NULL;
    sqlite3_reset(c->st);
    sqlite3_clear_bindings(c->st);
    int rc = bind(c->st, fmt, ap);
    if (rc != 0) {
        sqlite3_reset(c->st);
        fail(db, rc);
        return NULL;
    }
    return &c->base;
}

static int map_error(struct souk_db *db, sqlite3 *h, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return fail(db, SOUK_ECONFLICT);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return fail(db, SOUK_EBUSY);
    }
    souk_error("db step failed", "{s:s}", "error", sqlite3_errmsg(h));
    return fail(db, SOUK_EDB);
}

static int lite_step(struct souk_stmt *stmt)
{
    sqlite3_stmt *st = handle(stmt);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return SOUK_ROW;
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return SOUK_DONE;
    return map_error(stmt->db, sqlite3_db_handle(st), rc);
}

static void lite_done(struct souk_stmt *st) { sqlite3_reset(handle(st)); }

static const char *lite_text(struct souk_stmt *st, int col)
{
    return (const char *)sqlite3_column_text(handle(st), col);
}

static int64_t lite_int(struct souk_stmt *st, int col)
{
    return sqlite3_column_int64(handle(st), col);
}

static double lite_double(struct souk_stmt *st, int col)
{
    return sqlite3_column_double(handle(st), col);
}

static bool lite_null(struct souk_stmt *st, int col)
{
    return sqlite3_column_type(handle(st), col) == SQLITE_NULL;
}

static int lite_columns(struct souk_stmt *st) { return sqlite3_column_count(handle(st)); }

static json_t *lite_row_json(struct souk_stmt *stmt)
{
    sqlite3_stmt *st = handle(stmt);
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

static int lite_begin(struct souk_db *db, enum souk_tx_mode mode)
{
    /* one writer at a time: serial and locking transactions are the same here */
    return lite_exec(db, mode == SOUK_TX_READ ? "BEGIN" : "BEGIN IMMEDIATE");
}

static void lite_rollback(struct souk_db *db)
{
    if (!sqlite3_get_autocommit(lite(db)->h))
        sqlite3_exec(lite(db)->h, "ROLLBACK", NULL, NULL, NULL);
}

static int lite_commit(struct souk_db *db)
{
    int rc = lite_exec(db, "COMMIT");
    if (rc != 0)
        lite_rollback(db);
    return rc;
}

static int64_t lite_changes(struct souk_db *db) { return sqlite3_changes64(lite(db)->h); }

static const char *lite_errmsg(struct souk_db *db) { return sqlite3_errmsg(lite(db)->h); }

static int lite_ping(struct souk_db *db)
{
    SOUK_UNUSED(db);
    return 0;
}

static int lite_migrate_lock(struct souk_db *db)
{
    SOUK_UNUSED(db); /* each migration's BEGIN IMMEDIATE is the lock */
    return 0;
}

static void lite_migrate_unlock(struct souk_db *db) { SOUK_UNUSED(db); }

const struct souk__db_ops souk__db_sqlite = {
    .engine = SOUK_DB_SQLITE,
    .open = lite_open,
    .close = lite_close,
    .exec = lite_exec,
    .query = lite_query,
    .step = lite_step,
    .done = lite_done,
    .text = lite_text,
    .get_int = lite_int,
    .get_double = lite_double,
    .null = lite_null,
    .columns = lite_columns,
    .row_json = lite_row_json,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .changes = lite_changes,
    .errmsg = lite_errmsg,
    .ping = lite_ping,
    .migrate_lock = lite_migrate_lock,
    .migrate_unlock = lite_migrate_unlock,
};

/* ---- the checkpointer: moves the WAL into the database in the background ---- */

static pthread_t checkpointer;
static atomic_bool checkpointing;

static void *checkpoint_loop(void *arg)
{
    struct lite_db *db = arg;
    while (atomic_load(&checkpointing)) {
        for (int slept = 0; slept < CHECKPOINT_INTERVAL_MS && atomic_load(&checkpointing);
             slept += 50)
            usleep(50 * 1000);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            souk_warn("checkpoint failed", "{s:s}", "error", sqlite3_errmsg(db->h));
    }
    lite_close(&db->base);
    return NULL;
}

int souk__sqlite_start_checkpointer(const char *path)
{
    struct souk_db *db;
    if (lite_open(&db, path, false) != 0)
        return SOUK_EDB;
    atomic_store(&background_checkpoints, true);
    atomic_store(&checkpointing, true);
    if (pthread_create(&checkpointer, NULL, checkpoint_loop, db) != 0) {
        atomic_store(&checkpointing, false);
        lite_close(db);
        return SOUK_ENOMEM;
    }
    return 0;
}

void souk__sqlite_stop_checkpointer(void)
{
    if (!atomic_exchange(&checkpointing, false))
        return;
    pthread_join(checkpointer, NULL);
}
