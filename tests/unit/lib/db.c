/* tests/unit/lib/db.c: the kit's database calls against both engines, SQLite (a
 * file under /tmp) and PostgreSQL (a private cluster, tests/unit/lib/pg.h): types,
 * NULLs, placeholders, transactions, constraints, per-engine SQL, retried
 * transactions, migrations (also two processes racing), bad SOUK_DB values; and for
 * PostgreSQL serialization failures, timeouts, restarts and a server that is down. */
#include "test.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg.h"
#include "souk/db.h"
#include "souk/souk.h"

struct engine {
    enum souk_db_engine kind;
    char url[1024];
    char dir[64]; /* SQLite: the directory of its files */
};

static struct engine lite_engine = {.kind = SOUK_DB_SQLITE}, pg_engine = {.kind = SOUK_DB_POSTGRES};
static struct engine *eng; /* the group's */
static struct souk_db *db; /* the test's connection */

static bool is_pg(void) { return eng->kind == SOUK_DB_POSTGRES; }

/* a URL with a password, for the PostgreSQL tests of logging and password files */
static char *pg_url_with(const char *user, const char *password)
{
    static char url[1024];
    const char *at = strrchr(pg_engine.url, '@');
    snprintf(url, sizeof(url), "postgresql://%s%s%s%s", user, password ? ":" : "",
             password ? password : "", at);
    return url;
}

/* ---- fixtures ---- */

static int group_sqlite(void **state)
{
    (void)state;
    snprintf(lite_engine.dir, sizeof(lite_engine.dir), "/tmp/souk-test-db-XXXXXX");
    if (mkdtemp(lite_engine.dir) == NULL)
        return -1;
    snprintf(lite_engine.url, sizeof(lite_engine.url), "sqlite:%s/test.db", lite_engine.dir);
    eng = &lite_engine;
    return 0;
}

static int group_sqlite_end(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", lite_engine.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int group_pg(void **state)
{
    (void)state;
    if (test_pg_start() != 0)
        return -1;
    char *url = test_pg_createdb("souk_test");
    if (url == NULL)
        return -1;
    snprintf(pg_engine.url, sizeof(pg_engine.url), "%s", url);
    free(url);
    eng = &pg_engine;
    return 0;
}

static int group_pg_end(void **state)
{
    (void)state;
    test_pg_destroy();
    return 0;
}

static const char *const tables[] = {"t", "u", "schema_migrations", "mig_effects", "mig_t"};

static void drop_all(struct souk_db *d)
{
    char sql[128];
    for (size_t i = 0; i < SOUK_ARRAY_LEN(tables); i++) {
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", tables[i]);
        assert_int_equal(souk_db_exec(d, sql), 0);
    }
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(souk_db_open(&db, eng->url), 0);
    assert_int_equal(souk_db_engine(db), eng->kind);
    drop_all(db);
    /* portable DDL: BIGINT is SQLite's INTEGER, DOUBLE PRECISION its REAL */
    assert_int_equal(souk_db_exec(db, "CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT,"
                                      " r DOUBLE PRECISION, s TEXT, flag INTEGER CHECK (flag IN"
                                      " (0, 1)), doc_json TEXT, g INTEGER NOT NULL DEFAULT 0)"),
                     0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    souk_db_rollback(db);
    souk_db_close(db);
    db = NULL;
    return 0;
}

static int64_t count(struct souk_db *d, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(d, &n, sql, NULL), 1);
    return n;
}

static struct souk_db *second(void)
{
    struct souk_db *d;
    assert_int_equal(souk_db_open(&d, eng->url), 0);
    return d;
}

/* ---- both engines ---- */

static void test_types_round_trip(void **state)
{
    (void)state;
    const int64_t big = INT64_C(4611686018427387904) + 7; /* beyond 32 and 53 bits */
    assert_int_equal(
        souk_db_run(db, "INSERT INTO t (id, n, r, s, flag, doc_json) VALUES (?, ?, ?, ?, ?, ?)",
                    "sidsbs", "a", big, 2.5, "héllo ✓", 1, "{\"k\":[1,2]}"),
        1);
    struct souk_stmt *st = souk_db_query(
        db, "SELECT id, n, r, s, flag, doc_json, n = ? AS same, 2 + 3 AS five FROM t", "i", big);
    assert_non_null(st);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_int_equal(souk_stmt_columns(st), 8);
    assert_string_equal(souk_stmt_text(st, 0), "a");
    assert_true(souk_stmt_int(st, 1) == big);
    assert_true(souk_stmt_double(st, 2) == 2.5);
    assert_string_equal(souk_stmt_text(st, 3), "héllo ✓");
    assert_int_equal(souk_stmt_int(st, 4), 1);
    assert_int_equal(souk_stmt_int(st, 6), 1); /* a boolean reads as 1 */
    assert_string_equal(souk_stmt_text(st, 6), "1");
    json_t *row = souk_stmt_row_json(st);
    assert_true(json_is_integer(json_object_get(row, "n")));
    assert_true(json_integer_value(json_object_get(row, "n")) == big);
    assert_true(json_is_real(json_object_get(row, "r")));
    assert_string_equal(json_string_value(json_object_get(row, "s")), "héllo ✓");
    assert_int_equal(json_integer_value(json_object_get(row, "same")), 1);
    assert_int_equal(json_integer_value(json_object_get(row, "five")), 5);
    json_t *doc = json_object_get(row, "doc"); /* *_json parsed, under the short name */
    assert_true(json_is_array(json_object_get(doc, "k")));
    assert_null(json_object_get(row, "doc_json"));
    json_decref(row);
    assert_int_equal(souk_stmt_step(st), SOUK_DONE);

    /* aggregates: PostgreSQL's sum() is a NUMERIC, still an integer in JSON */
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, n) VALUES ('b', 10), ('c', 20)", NULL), 2);
    st = souk_db_query(db,
                       "SELECT count(*) AS c, sum(n) AS total, avg(r) AS mean FROM t"
                       " WHERE id <> 'a'",
                       NULL);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    row = souk_stmt_row_json(st);
    assert_int_equal(json_integer_value(json_object_get(row, "c")), 2);
    assert_true(json_is_integer(json_object_get(row, "total")));
    assert_int_equal(json_integer_value(json_object_get(row, "total")), 30);
    assert_true(json_is_null(json_object_get(row, "mean")));
    json_decref(row);
    souk_stmt_done(st);
}

static void test_nulls(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, n, s, doc_json) VALUES (?, ?, ?, ?)",
                                 "snSS", "a", NULL, NULL),
                     1);
    struct souk_stmt *st = souk_db_query(db, "SELECT n, s, doc_json FROM t WHERE id = ?", "s", "a");
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_true(souk_stmt_null(st, 0));
    assert_null(souk_stmt_text(st, 1));
    assert_int_equal(souk_stmt_int(st, 0), 0);
    json_t *row = souk_stmt_row_json(st);
    assert_true(json_is_null(json_object_get(row, "n")));
    assert_true(json_is_null(json_object_get(row, "s")));
    assert_true(json_is_null(json_object_get(row, "doc_json"))); /* a NULL keeps its name */
    json_decref(row);
    souk_stmt_done(st);
    /* "?1 IS NULL OR …": an optional filter, with and without its value */
    static const char filter[] = "SELECT count(*) FROM t WHERE (?1 IS NULL OR id = ?1)";
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('b')", NULL), 1);
    int64_t n = 0;
    assert_int_equal(souk_db_int(db, &n, filter, "S", NULL), 1);
    assert_int_equal(n, 2);
    assert_int_equal(souk_db_int(db, &n, filter, "S", "b"), 1);
    assert_int_equal(n, 1);
}

static void test_placeholders(void **state)
{
    (void)state;
    /* numbered and bare mixed as SQLite numbers them; '?' in a literal, a quoted
     * name and comments are not placeholders */
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT ?2 || ?1 AS ab, ? AS c, '?' AS q, "
                                         "? /* ? */ AS \"d?\" -- ?\n",
                                         "ssss", "b", "a", "c", "d");
    assert_non_null(st);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_string_equal(souk_stmt_text(st, 0), "ab");
    assert_string_equal(souk_stmt_text(st, 1), "c");
    assert_string_equal(souk_stmt_text(st, 2), "?");
    assert_string_equal(souk_stmt_text(st, 3), "d");
    souk_stmt_done(st);
    /* too many values, or a format letter we do not know */
    assert_null(souk_db_query(db, "SELECT ?", "ss", "a", "b"));
    assert_int_equal(souk_db_last_error(db), is_pg() ? SOUK_EINVAL : SOUK_EDB);
    assert_null(souk_db_query(db, "SELECT ?", "x", "a"));
    assert_int_equal(souk_db_last_error(db), SOUK_EINVAL);
    /* a value the engine cannot bind: too few values leave NULLs, as SQLite does */
    int64_t n = -1;
    assert_int_equal(
        souk_db_int(db, &n, "SELECT count(*) FROM t WHERE n = ? OR ? IS NULL", "i", (int64_t)1), 1);
}

static void test_changes_and_missing_rows(void **state)
{
    (void)state;
    assert_int_equal(
        souk_db_run(db, "INSERT INTO t (id, g) VALUES ('a', 1), ('b', 1), ('c', 2)", NULL), 3);
    assert_int_equal(
        souk_db_run(db, "UPDATE t SET n = ? WHERE g = ?", "ii", (int64_t)5, (int64_t)1), 2);
    assert_int_equal(souk_db_changes(db), 2);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 3); /* a read leaves the count */
    assert_int_equal(souk_db_changes(db), 2);
    assert_int_equal(souk_db_run(db, "DELETE FROM t WHERE id = ?", "s", "zzz"), 0);
    int64_t n = 42;
    assert_int_equal(souk_db_int(db, &n, "SELECT n FROM t WHERE id = ?", "s", "zzz"), 0);
    assert_int_equal(n, 42);
}

static void test_commit_and_rollback(void **state)
{
    (void)state;
    struct souk_db *other = second();
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), 1);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(count(other, "SELECT count(*) FROM t"), 1);
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('b')", NULL), 1);
    souk_db_rollback(db);
    assert_int_equal(count(other, "SELECT count(*) FROM t"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    /* a read-only snapshot does not see what commits after it began */
    assert_int_equal(souk_db_begin_mode(db, SOUK_TX_READ), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    assert_int_equal(souk_db_run(other, "INSERT INTO t (id) VALUES ('c')", NULL), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    souk_db_rollback(db);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 2);
    /* nesting is refused */
    assert_int_equal(souk_db_begin(db), 0);
    assert_true(souk_db_begin(db) < 0);
    souk_db_rollback(db);
    souk_db_close(other);
}

static void test_constraints_are_conflicts(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES (?)", "s", "a"), 1);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES (?)", "s", "a"), SOUK_ECONFLICT);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, flag) VALUES ('b', 7)", NULL),
                     SOUK_ECONFLICT);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, g) VALUES ('c', NULL)", NULL),
                     SOUK_ECONFLICT);
    /* the portable upserts */
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                                 "si", "a", (int64_t)1),
                     0);
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO t (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE"
                                 " SET n = CASE WHEN excluded.n > t.n OR t.n IS NULL"
                                 " THEN excluded.n ELSE t.n END",
                                 "si", "a", (int64_t)9),
                     1);
    int64_t n = 0;
    assert_int_equal(souk_db_int(db, &n, "SELECT n FROM t WHERE id = 'a'", NULL), 1);
    assert_int_equal(n, 9);
}

/* PostgreSQL fails the transaction a statement failed in; SQLite keeps the rest.
 * Code written for both treats any failure as the transaction's (docs/db.md). */
static void test_failure_inside_a_transaction(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), 1);
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('b')", NULL), 1);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), SOUK_ECONFLICT);
    if (is_pg()) {
        /* every later statement, and the commit, say what failed first */
        assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('c')", NULL), SOUK_ECONFLICT);
        assert_int_equal(souk_db_commit(db), SOUK_ECONFLICT);
        assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    } else {
        assert_int_equal(souk_db_commit(db), 0);
        assert_int_equal(count(db, "SELECT count(*) FROM t"), 2);
    }
    /* a statement prepared for the first time inside a transaction, that the
     * server must retry with its strings typed, does not fail the transaction */
    assert_int_equal(souk_db_begin(db), 0);
    int64_t n = -1;
    assert_int_equal(
        souk_db_int(db, &n, "SELECT count(*) FROM t WHERE ?1 IS NULL OR s = ?1", "S", NULL), 1);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('z')", NULL), 1);
    assert_int_equal(souk_db_commit(db), 0);
    /* a statement that does not prepare fails alone, as in SQLite */
    assert_int_equal(souk_db_begin(db), 0);
    assert_null(souk_db_query(db, "SELECT nope FROM t", NULL));
    assert_int_equal(souk_db_last_error(db), SOUK_EDB);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('y')", NULL), 1);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM t WHERE id IN ('y', 'z')"), 2);
}

static void test_per_engine_pieces(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), 1);
    struct souk_stmt *st =
        souk_db_query(db,
                      "SELECT 'x' " SOUK_IF_SQLITE("|| 'lite'")
                          SOUK_IF_PG("|| 'pg'") " AS v, " SOUK_IF_SQLITE("max")
                              SOUK_IF_PG("greatest") "(?, 3) AS m FROM t" SOUK_IF_PG(" FOR UPDATE"),
                      "i", (int64_t)7);
    assert_non_null(st);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_string_equal(souk_stmt_text(st, 0), is_pg() ? "xpg" : "xlite");
    assert_int_equal(souk_stmt_int(st, 1), 7);
    souk_stmt_done(st);
    assert_int_equal(souk_db_exec(db, "CREATE TABLE u (k " SOUK_IF_SQLITE("INTEGER PRIMARY KEY")
                                          SOUK_IF_PG("BIGINT GENERATED BY DEFAULT AS IDENTITY"
                                                     " PRIMARY KEY") ", v TEXT)"),
                     0);
    assert_int_equal(souk_db_run(db, "INSERT INTO u (v) VALUES ('a'), ('b')", NULL), 2);
    assert_int_equal(count(db, "SELECT max(k) FROM u"), 2);
}

struct tally {
    int calls;
    int fail_with;
};

static int add_row(struct souk_db *d, void *arg)
{
    struct tally *t = arg;
    t->calls++;
    if (souk_db_run(d, "INSERT INTO t (id) VALUES (?)", "s", t->calls == 1 ? "a" : "b") < 0)
        return SOUK_EDB;
    return t->fail_with != 0 ? t->fail_with : 41;
}

static void test_tx_helper(void **state)
{
    (void)state;
    struct tally t = {0};
    assert_int_equal(souk_db_tx(db, add_row, &t), 41); /* its value, committed */
    assert_int_equal(t.calls, 1);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    t = (struct tally){.calls = 5, .fail_with = SOUK_ECONFLICT};
    assert_int_equal(souk_db_tx(db, add_row, &t), SOUK_ECONFLICT); /* rolled back, not retried */
    assert_int_equal(t.calls, 6);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
}

static const struct souk_migration migrations[] = {
    {"001_first.sql", "CREATE TABLE mig_t (k TEXT PRIMARY KEY, engine TEXT)",
     "CREATE TABLE mig_t (k TEXT PRIMARY KEY, engine TEXT NOT NULL DEFAULT 'pg')"},
    {"002_effect.sql",
     "CREATE TABLE IF NOT EXISTS mig_effects (n INTEGER); INSERT INTO mig_effects VALUES (1);"
     "INSERT INTO mig_t (k, engine) VALUES ('a', 'sqlite')",
     "CREATE TABLE IF NOT EXISTS mig_effects (n INTEGER); INSERT INTO mig_effects VALUES (1);"
     "SELECT pg_sleep(0.2); INSERT INTO mig_t (k) VALUES ('a')"},
    {NULL, NULL, NULL},
};

static void test_migrations(void **state)
{
    (void)state;
    assert_int_equal(souk_db_migrate(db, migrations), 0);
    assert_int_equal(souk_db_migrate(db, migrations), 0); /* nothing twice */
    assert_int_equal(count(db, "SELECT count(*) FROM mig_effects"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 2);
    struct souk_stmt *st = souk_db_query(db, "SELECT engine FROM mig_t", NULL);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_string_equal(souk_stmt_text(st, 0), is_pg() ? "pg" : "sqlite"); /* its own file */
    souk_stmt_done(st);
    static const struct souk_migration bad[] = {{"003_bad.sql", "CREATE TABLE nope (", NULL},
                                                {NULL, NULL, NULL}};
    assert_int_equal(souk_db_migrate(db, bad), SOUK_EDB);
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 2);
    /* the session is usable after (PostgreSQL: the lock released, the timeouts back) */
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('x')", NULL), 1);
}

/* Two processes start together, create the kit's tables and migrate: each
 * migration applies once, and neither fails. */
static void test_migrations_race(void **state)
{
    (void)state;
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            struct souk_db *d;
            char c = 0;
            int rc = souk_db_open(&d, eng->url);
            /* both connected, then both at once */
            if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
                _exit(2);
            if (rc == 0) /* the kit's own tables, as every replica creates them */
                rc = souk_db_schema(d, "CREATE TABLE IF NOT EXISTS u (k TEXT PRIMARY KEY);"
                                       "CREATE INDEX IF NOT EXISTS u_k ON u (k)");
            if (rc == 0)
                rc = souk_db_migrate(d, migrations);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    char buf[2];
    for (int n = 0; n < 2;)
        n += (int)read(ready[0], buf + n, (size_t)(2 - n));
    assert_int_equal(write(go[1], "gg", 2), 2);
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(go[i]);
    }
    assert_int_equal(count(db, "SELECT count(*) FROM mig_effects"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM schema_migrations"), 2);
}

static void test_statement_cache_turns_over(void **state)
{
    (void)state;
    char *sqls[130];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 130; i++) {
            if (round == 0)
                assert_true(asprintf(&sqls[i], "SELECT %d + ?", i) > 0);
            int64_t v = -1;
            assert_int_equal(souk_db_int(db, &v, sqls[i], "i", (int64_t)1), 1);
            assert_int_equal(v, i + 1);
        }
    }
    /* a statement whose rows are being read is not evicted under its reader */
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a'), ('b')", NULL), 2);
    struct souk_stmt *st = souk_db_query(db, "SELECT id FROM t ORDER BY id", NULL);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    for (int i = 0; i < 130; i++) {
        int64_t v = -1;
        assert_int_equal(souk_db_int(db, &v, sqls[i], "i", (int64_t)2), 1);
    }
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    assert_string_equal(souk_stmt_text(st, 0), "b");
    souk_stmt_done(st);
    for (int i = 0; i < 130; i++)
        free(sqls[i]);
}

/* ---- configuration ---- */

static void test_bad_urls(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "/var/db/catalog.db",
        ":memory:",
        "catalog.db",
        "sqlite:",
        "mysql://souk:s3cret-pw@db/catalog",
        "postgres:/souk:s3cret-pw@db/catalog",
        "postgres//souk:s3cret-pw@db/catalog",
        "postgresql://souk:s3cret-pw@db:99999999/catalog",
        "postgres://souk:s3cret-pw@db/catalog?no_such_option=1",
        "postgres://db/catalog?connect_timeout=soon",
        "postgres://souk:s3%zz-pw@db/catalog",
        "postgres://db:5432,db2:0/catalog",
        "postgres://db/catalog?sslmode=sometimes",
    };
    char cwd[256], err[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(eng->dir[0] ? eng->dir : "/tmp"), 0);
    for (size_t i = 0; i < SOUK_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (souk_db_configure("SOUK_DB", bad[i], err, sizeof(err)) != SOUK_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(err, "SOUK_DB"));
        if (strstr(err, "-pw") != NULL)
            fail_msg("the password shows: %s", err);
        struct souk_db *d = NULL; /* what is not a URL we know is not opened either */
        if (strncmp(bad[i], "postgres", 8) != 0 || strstr(bad[i], "://") == NULL)
            assert_int_equal(souk_db_open(&d, bad[i]), SOUK_EINVAL);
    }
    struct stat sb;
    assert_int_equal(stat("catalog.db", &sb), -1); /* nothing created */
    assert_int_equal(stat(":memory:", &sb), -1);
    static const char *const good[] = {
        "sqlite::memory:",
        "sqlite:/tmp/x/y.db",
        "postgres://db/catalog",
        "postgresql://souk@db:5432/catalog?sslmode=disable",
        "postgresql:///catalog?host=/var/run/postgresql",
        "postgresql://a:1,b:2/catalog?target_session_attrs=read-write&connect_timeout=3",
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(good); i++)
        assert_int_equal(souk_db_configure("SOUK_DB", good[i], err, sizeof(err)), 0);
    assert_int_equal(stat("/tmp/x/y.db", &sb), -1);
    /* the password in one place: the URL or SOUK_DB_PASSWORD_FILE, which must be readable */
    setenv("SOUK_DB_PASSWORD_FILE", "/nonexistent/pw", 1);
    assert_int_equal(souk_db_configure("SOUK_DB", "postgres://souk@db/x", err, sizeof(err)),
                     SOUK_EINVAL);
    assert_non_null(strstr(err, "SOUK_DB_PASSWORD_FILE"));
    int fd = open("pw", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, "hunter22\n", 9), 9);
    close(fd);
    setenv("SOUK_DB_PASSWORD_FILE", "pw", 1);
    assert_int_equal(souk_db_configure("SOUK_DB", "postgres://souk@db/x", err, sizeof(err)), 0);
    assert_int_equal(souk_db_configure("SOUK_DB", "postgres://souk:other@db/x", err, sizeof(err)),
                     SOUK_EINVAL);
    assert_null(strstr(err, "other"));
    unsetenv("SOUK_DB_PASSWORD_FILE");
    setenv("SOUK_DB_STATEMENT_TIMEOUT_MS", "-1", 1);
    assert_int_equal(souk_db_configure("SOUK_DB", "sqlite::memory:", err, sizeof(err)),
                     SOUK_EINVAL);
    assert_non_null(strstr(err, "SOUK_DB_STATEMENT_TIMEOUT_MS"));
    unsetenv("SOUK_DB_STATEMENT_TIMEOUT_MS");
    assert_int_equal(souk_db_configure("SOUK_DB", "sqlite::memory:", err, sizeof(err)), 0);
    unlink("pw");
    assert_int_equal(chdir(cwd), 0);
}

/* ---- PostgreSQL only ---- */

/* Two serializable transactions that both read and write the same row: the
 * second to write fails with SOUK_EBUSY; souk_db_tx runs it again. */
struct racer {
    struct souk_db *other;
    int calls;
};

static int bump(struct souk_db *d, void *arg)
{
    struct racer *r = arg;
    r->calls++;
    int64_t n = 0;
    if (souk_db_int(d, &n, "SELECT n FROM t WHERE id = 'a'", NULL) != 1)
        return SOUK_EDB;
    if (r->calls == 1) /* someone else commits a change to it meanwhile */
        assert_int_equal(souk_db_run(r->other, "UPDATE t SET n = n + 100 WHERE id = 'a'", NULL), 1);
    int rc = souk_db_run(d, "UPDATE t SET n = ? WHERE id = 'a'", "i", n + 1);
    return rc < 0 ? rc : 0;
}

static void test_serialization_failure_is_retried(void **state)
{
    (void)state;
    struct souk_db *other = second();
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, n) VALUES ('a', 1)", NULL), 1);
    /* by hand: the failure is SOUK_EBUSY, at the write */
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(count(db, "SELECT n FROM t WHERE id = 'a'"), 1);
    assert_int_equal(souk_db_run(other, "UPDATE t SET n = 2 WHERE id = 'a'", NULL), 1);
    assert_int_equal(souk_db_run(db, "UPDATE t SET n = 3 WHERE id = 'a'", NULL), SOUK_EBUSY);
    assert_int_equal(souk_db_commit(db), SOUK_EBUSY);
    assert_int_equal(count(db, "SELECT n FROM t WHERE id = 'a'"), 2);
    /* the helper: run again, on the value the other committed */
    struct racer r = {other, 0};
    assert_int_equal(souk_db_tx(db, bump, &r), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(count(db, "SELECT n FROM t WHERE id = 'a'"), 103);
    /* write skew: both read the set, both add to it; one of them must fail */
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_begin(other), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM t WHERE g = 1"), 0);
    assert_int_equal(count(other, "SELECT count(*) FROM t WHERE g = 1"), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, g) VALUES ('x', 1)", NULL), 1);
    assert_int_equal(souk_db_run(other, "INSERT INTO t (id, g) VALUES ('y', 1)", NULL), 1);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(souk_db_commit(other), SOUK_EBUSY);
    assert_int_equal(count(db, "SELECT count(*) FROM t WHERE g = 1"), 1);
    souk_db_close(other);
}

static void test_timeouts_are_busy(void **state)
{
    (void)state;
    struct souk_db *other = second();
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id, n) VALUES ('a', 1)", NULL), 1);
    assert_int_equal(souk_db_exec(other, "SET lock_timeout = 50; SET statement_timeout = 300"), 0);
    assert_int_equal(souk_db_begin_mode(db, SOUK_TX_LOCKS), 0);
    assert_int_equal(count(db, "SELECT n FROM t WHERE id = 'a'" SOUK_IF_PG(" FOR UPDATE")), 1);
    assert_int_equal(souk_db_run(other, "UPDATE t SET n = 5 WHERE id = 'a'", NULL), SOUK_EBUSY);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(souk_db_run(other, "SELECT pg_sleep(2)", NULL), SOUK_EBUSY);
    assert_int_equal(souk_db_run(other, "UPDATE t SET n = 5 WHERE id = 'a'", NULL), 1);
    souk_db_close(other);
}

static void pg_cmd(const char *cmd)
{
    char *out = test_pg(cmd, NULL);
    assert_non_null(out);
    free(out);
}

static void test_restart_while_idle(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), 1);
    int64_t n = 0;
    static const char q[] = "SELECT count(*) FROM t WHERE id = ?";
    assert_int_equal(souk_db_int(db, &n, q, "s", "a"), 1);
    pg_cmd("restart"); /* pg_ctl restart -m fast: every session is closed */
    /* the server said goodbye before the call: it reconnects and works */
    assert_int_equal(souk_db_int(db, &n, q, "s", "a"), 1); /* prepared again, too */
    assert_int_equal(n, 1);
    assert_int_equal(souk_db_ping(db), 0);
}

static void test_restart_inside_a_transaction(void **state)
{
    (void)state;
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('a')", NULL), 1);
    pg_cmd("restart");
    /* the transaction is gone: this call and every one until the rollback fail */
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('b')", NULL), SOUK_EUNAVAIL);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('c')", NULL), SOUK_EUNAVAIL);
    assert_int_equal(souk_db_commit(db), SOUK_EUNAVAIL); /* commit rolls back */
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 0);
    /* and a transaction begun after works */
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('d')", NULL), 1);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 1);
    /* a caller that begins again without rolling back the lost one gives it up */
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('e')", NULL), 1);
    pg_cmd("restart");
    assert_int_equal(souk_db_run(db, "INSERT INTO t (id) VALUES ('f')", NULL), SOUK_EUNAVAIL);
    assert_int_equal(souk_db_tx(db, add_row, &(struct tally){0}), 41);
    assert_int_equal(count(db, "SELECT count(*) FROM t"), 2);
}

static void test_server_down(void **state)
{
    (void)state;
    struct souk_db *idle = second();
    pg_cmd("stop");
    /* every call fails with SOUK_EUNAVAIL, at once, and nothing crashes */
    for (int i = 0; i < 3; i++) {
        struct souk_stmt *st = souk_db_query(db, "SELECT 1", NULL); /* its step says why */
        assert_non_null(st);
        assert_int_equal(souk_stmt_step(st), SOUK_EUNAVAIL);
        assert_int_equal(souk_stmt_step(st), SOUK_DONE);
        assert_int_equal(souk_db_last_error(db), SOUK_EUNAVAIL);
        int64_t n = 0;
        assert_int_equal(souk_db_int(db, &n, "SELECT count(*) FROM t", NULL), SOUK_EUNAVAIL);
        assert_int_equal(souk_db_begin(db), SOUK_EUNAVAIL);
        souk_db_rollback(db);
        assert_int_equal(souk_db_ping(db), SOUK_EUNAVAIL);
    }
    struct souk_db *d = NULL;
    assert_int_equal(souk_db_open(&d, eng->url), SOUK_EUNAVAIL);
    pg_cmd("start");
    /* the first call after the server is back works: no backoff was pending */
    assert_int_equal(souk_db_ping(idle), 0);
    /* the connection that failed three times waits out its backoff (< 2 s) */
    int64_t n = -1;
    uint64_t deadline = souk_now_ns() + 10ull * 1000000000u;
    int rc;
    while ((rc = souk_db_int(db, &n, "SELECT count(*) FROM t", NULL)) == SOUK_EUNAVAIL &&
           souk_now_ns() < deadline)
        usleep(20000);
    assert_int_equal(rc, 1);
    assert_int_equal(n, 0);
    souk_db_close(idle);
}

/* Logs go to stderr: capture them around fn. */
static char *captured(void (*fn)(void))
{
    char path[] = "/tmp/souk-test-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char text[8192];
    ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
    text[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return text;
}

static void open_with_wrong_password(void)
{
    struct souk_db *d = NULL;
    assert_int_equal(souk_db_open(&d, pg_url_with("souk_test", "wr0ng-Secret")), SOUK_EUNAVAIL);
}

static void bind_a_bad_value(void)
{
    int64_t n = 0;
    assert_int_equal(souk_db_int(db, &n, "SELECT count(*) FROM t WHERE n = CAST(? AS BIGINT)", "s",
                                 "card-4242424242424242"),
                     SOUK_EDB);
}

static void test_secrets_stay_out_of_logs(void **state)
{
    (void)state;
    /* a value the server quotes in its error message is not logged */
    char *log = captured(bind_a_bad_value);
    assert_non_null(strstr(log, "db statement failed"));
    assert_non_null(strstr(log, "22P02"));
    assert_null(strstr(log, "4242424242424242"));
    /* the URL's password was checked by every test so far; a wrong one is refused,
     * and neither the log nor the message shows it */
    log = captured(open_with_wrong_password);
    assert_non_null(strstr(log, "database unreachable"));
    assert_null(strstr(log, "wr0ng-Secret"));
    /* SOUK_DB_PASSWORD_FILE instead of a password in the URL */
    char *pwfile = test_pg("password-file", "souk_test"), err[512];
    assert_non_null(pwfile);
    setenv("SOUK_DB_PASSWORD_FILE", pwfile, 1);
    assert_int_equal(souk_db_configure("SOUK_DB", pg_url_with("souk_test", NULL), err, sizeof(err)),
                     0);
    struct souk_db *d = NULL;
    assert_int_equal(souk_db_open(&d, pg_url_with("souk_test", NULL)), 0);
    assert_int_equal(count(d, "SELECT count(*) FROM t"), 0);
    souk_db_close(d);
    unsetenv("SOUK_DB_PASSWORD_FILE");
    assert_int_equal(souk_db_configure("SOUK_DB", "sqlite::memory:", err, sizeof(err)), 0);
    free(pwfile);
}

#define BOTH(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest both[] = {
        BOTH(test_types_round_trip),
        BOTH(test_nulls),
        BOTH(test_placeholders),
        BOTH(test_changes_and_missing_rows),
        BOTH(test_commit_and_rollback),
        BOTH(test_constraints_are_conflicts),
        BOTH(test_failure_inside_a_transaction),
        BOTH(test_per_engine_pieces),
        BOTH(test_tx_helper),
        BOTH(test_migrations),
        BOTH(test_migrations_race),
        BOTH(test_statement_cache_turns_over),
        cmocka_unit_test(test_bad_urls),
    };
    const struct CMUnitTest pg_only[] = {
        BOTH(test_serialization_failure_is_retried),
        BOTH(test_timeouts_are_busy),
        BOTH(test_restart_while_idle),
        BOTH(test_restart_inside_a_transaction),
        BOTH(test_server_down),
        BOTH(test_secrets_stay_out_of_logs),
    };
    test_pg_locate(); /* before a test changes directory */
    int failed = cmocka_run_group_tests_name("sqlite", both, group_sqlite, group_sqlite_end);
    if (group_pg(NULL) != 0) {
        group_pg_end(NULL);
        fprintf(stderr, "test: cannot start PostgreSQL\n");
        return 1;
    }
    failed += cmocka_run_group_tests_name("postgresql", both, NULL, NULL);
    failed += cmocka_run_group_tests_name("postgresql only", pg_only, NULL, NULL);
    group_pg_end(NULL);
    return failed != 0;
}
