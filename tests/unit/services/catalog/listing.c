/* Unit tests for services/catalog/listing.c, search.c and migrations/003-004 on a
 * seeded in-memory catalog: every list statement's query plan reads the index it was
 * written for, from a position (no full scan, no sort that grows with the catalog); the
 * triggers keep the full-text tables and the category counts right through writes; a
 * query word becomes the OR of its completions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "listing.h"
#include "search.h"
#include "souk/arena.h"
#include "souk/db.h"

static struct souk_db *db;

static int setup(void **state)
{
    (void)state;
    if (souk_db_open(&db, "sqlite::memory:") != 0 || souk_db_migrate(db, service_migrations) != 0)
        return -1;
    /* big enough that a scan and a seek differ; seeding takes the bulk path */
    if (catalog_seed_size("3000") != 0 || catalog_seed(db) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    souk_db_close(db);
    return 0;
}

/* The EXPLAIN QUERY PLAN lines of statement i, one per line, in out (cap bytes). The
 * text lives as long as the connection: the kit caches statements by the SQL's address. */
static void plan(int i, char *out, size_t cap)
{
    static char explain[L_COUNT][4096];
    const char *sql = list_statements[i].sql;
    snprintf(explain[i], sizeof(explain[i]), "EXPLAIN QUERY PLAN %s", sql);
    struct souk_stmt *st = souk_db_query(db, explain[i], NULL);
    if (st == NULL)
        fail_msg("cannot explain: %s\n%s", souk_db_errmsg(db), sql);
    size_t len = 0;
    out[0] = '\0';
    while (souk_stmt_step(st) == SOUK_ROW)
        len +=
            (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s\n", souk_stmt_text(st, 3));
}

static void test_every_shape_reads_its_index_from_a_position(void **state)
{
    (void)state;
    for (int i = 0; i < L_COUNT; i++) {
        const struct list_statement *s = &list_statements[i];
        char p[4096];
        plan(i, p, sizeof(p));
        print_message("%-40s %s", s->name, p);
        if (strstr(p, s->uses) == NULL)
            fail_msg("%s: the plan does not use %s:\n%s", s->name, s->uses, p);
        /* a deep page starts where it starts: the position is part of the seek */
        if (strstr(p, s->seek) == NULL)
            fail_msg("%s: the plan does not seek %s:\n%s", s->name, s->seek, p);
        /* a merge of price buckets: every arm seeks its own bucket, none sorts */
        int arms = 0;
        for (const char *at = p; (at = strstr(at, s->seek)) != NULL; at++)
            arms++;
        if (strstr(p, "MERGE") != NULL && arms != BAND_ARMS)
            fail_msg("%s: %d of %d arms seek %s:\n%s", s->name, arms, BAND_ARMS, s->seek, p);
        if (!s->may_sort && strstr(p, "TEMP B-TREE") != NULL)
            fail_msg("%s: the plan sorts:\n%s", s->name, p);
        /* a scan reads from the start: only the whole small categories table may */
        for (const char *line = p; *line != '\0'; line = strchr(line, '\n') + 1) {
            bool scan = strncmp(line, "SCAN ", 5) == 0 &&
                        strncmp(line, "SCAN f VIRTUAL", 14) != 0 &&
                        strncmp(line, "SCAN (subquery", 14) != 0; /* a LIMITed inner query */
            if (scan && !s->may_scan)
                fail_msg("%s: the plan scans:\n%s", s->name, p);
        }
    }
}

/* The rids a full-text table answers for an expression, in rowid order, as a string. */
static void fts(const char *table, const char *expr, char *out, size_t cap)
{
    const char *sql =
        strcmp(table, "products_fts") == 0
            ? "SELECT rowid FROM products_fts WHERE products_fts MATCH ? ORDER BY rowid"
            : "SELECT rowid % 4294967296 FROM products_fts_price WHERE products_fts_price MATCH ?"
              " ORDER BY rowid";
    struct souk_stmt *st = souk_db_query(db, sql, "s", expr);
    assert_non_null(st);
    size_t len = 0;
    out[0] = '\0';
    while (souk_stmt_step(st) == SOUK_ROW)
        len += (size_t)snprintf(out + len, cap - len, "%lld ", (long long)souk_stmt_int(st, 0));
}

static int64_t count_of(const char *slug)
{
    int64_t n = -1;
    assert_int_equal(
        souk_db_int(db, &n, "SELECT product_count FROM categories WHERE slug = ?", "s", slug), 1);
    return n;
}

static int64_t counted(const char *slug)
{
    int64_t n = -1;
    assert_int_equal(
        souk_db_int(db, &n, "SELECT count(*) FROM products WHERE category = ? AND archived = 0",
                    "s", slug),
        1);
    return n;
}

/* The rowid of products_fts_cat matching expr (-1 if none), and a category's number. */
static int64_t cat_rowid(const char *word)
{
    int64_t rowid = -1;
    assert_true(souk_db_int(db, &rowid,
                            "SELECT rowid FROM products_fts_cat WHERE products_fts_cat MATCH ?",
                            "s", word) >= 0);
    return rowid;
}

static int64_t catno(const char *slug)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, "SELECT rowid FROM categories WHERE slug = ?", "s", slug),
                     1);
    return n;
}

/* A search in a category reads its own rowid range of products_fts_cat (newest first in
 * rowid order): the same products as the category token of products_fts says, for every
 * category. */
static void test_category_search_is_a_rowid_range(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    struct souk_stmt *cats = souk_db_query(db, "SELECT slug FROM categories ORDER BY slug", NULL);
    assert_non_null(cats);
    char slugs[32][65];
    int n = 0;
    while (souk_stmt_step(cats) == SOUK_ROW && n < 32)
        snprintf(slugs[n++], sizeof(slugs[0]), "%s", souk_stmt_text(cats, 0));
    assert_true(n > 5);
    int nonempty = 0;
    for (int i = 0; i < n; i++) {
        char want[8192], got[8192];
        fts("products_fts",
            souk_arena_printf(&a, "\"coffee\" AND {category} : \"%s\"",
                              search_category_token(&a, slugs[i])),
            want, sizeof(want));
        int64_t c = catno(slugs[i]);
        struct souk_stmt *st = souk_db_query(
            db,
            "SELECT 4294967295 - rowid % 4294967296 FROM products_fts_cat"
            " WHERE products_fts_cat MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC",
            "sii", "\"coffee\"", c << 32, (c + 1) << 32);
        assert_non_null(st);
        size_t len = 0;
        got[0] = '\0';
        while (souk_stmt_step(st) == SOUK_ROW)
            len += (size_t)snprintf(got + len, sizeof(got) - len, "%lld ",
                                    (long long)souk_stmt_int(st, 0));
        assert_string_equal(got, want);
        nonempty += got[0] != '\0';
    }
    assert_true(nonempty > 0 && nonempty < n); /* coffee is in some categories, not all */
    souk_arena_free(&a);
}

static void test_writes_keep_full_text_and_counts(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    char got[1024];
    int64_t home = count_of("home"), kitchen = count_of("kitchen");
    assert_int_equal(home, counted("home"));
    assert_int_equal(kitchen, counted("kitchen"));

    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(
        souk_db_run(db,
                    "INSERT INTO products (rid, id, sku, name, description, price_cents, category,"
                    " on_hand, created_at, updated_at) VALUES (900001, 'prd_T1', 'T-1',"
                    " 'Zanzibar Kettle', 'Quokka enamel', 1234, 'home', 0, 'x', 'x')",
                    NULL),
        1);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(count_of("home"), home + 1);
    const char *cat = search_category_token(&a, "home");
    fts("products_fts", "{name} : \"zanzibar\"", got, sizeof(got));
    assert_string_equal(got, "900001 ");
    fts("products_fts", souk_arena_printf(&a, "\"quokka\" AND {category} : \"%s\"", cat), got,
        sizeof(got));
    assert_string_equal(got, "900001 ");
    fts("products_fts_price", "{body} : \"quokka\"", got, sizeof(got));
    assert_string_equal(got, "900001 ");
    assert_int_equal(cat_rowid("quokka"), catno("home") << 32 | (4294967295 - 900001));

    /* a new price, name and category move it in both tables and in the counts */
    assert_int_equal(souk_db_run(db,
                                 "UPDATE products SET price_cents = 99, name = 'Zebra Kettle',"
                                 " category = 'kitchen' WHERE rid = 900001",
                                 NULL),
                     1);
    assert_int_equal(count_of("home"), home);
    assert_int_equal(count_of("kitchen"), kitchen + 1);
    fts("products_fts", "\"zanzibar\"", got, sizeof(got));
    assert_string_equal(got, "");
    fts("products_fts", "{name} : \"zebra\"", got, sizeof(got));
    assert_string_equal(got, "900001 ");
    int64_t rowid = -1;
    assert_int_equal(souk_db_int(db, &rowid,
                                 "SELECT rowid FROM products_fts_price WHERE products_fts_price"
                                 " MATCH '\"zebra\"'",
                                 NULL),
                     1);
    assert_int_equal(rowid, INT64_C(99) * 4294967296 + 900001);
    assert_int_equal(cat_rowid("zebra"), catno("kitchen") << 32 | (4294967295 - 900001));
    assert_int_equal(cat_rowid("zanzibar"), -1);

    /* stock changes touch none of it; archiving takes it out; restoring puts it back */
    assert_int_equal(souk_db_run(db, "UPDATE products SET on_hand = 7 WHERE rid = 900001", NULL),
                     1);
    assert_int_equal(count_of("kitchen"), kitchen + 1);
    assert_int_equal(souk_db_run(db, "UPDATE products SET archived = 1 WHERE rid = 900001", NULL),
                     1);
    assert_int_equal(count_of("kitchen"), kitchen);
    fts("products_fts_price", "\"zebra\"", got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(cat_rowid("zebra"), -1);
    assert_int_equal(souk_db_run(db, "UPDATE products SET archived = 0 WHERE rid = 900001", NULL),
                     1);
    fts("products_fts", "\"zebra\"", got, sizeof(got));
    assert_string_equal(got, "900001 ");
    assert_int_equal(cat_rowid("zebra"), catno("kitchen") << 32 | (4294967295 - 900001));
    assert_int_equal(souk_db_run(db, "DELETE FROM products WHERE rid = 900001", NULL), 1);
    assert_int_equal(count_of("kitchen"), kitchen);
    fts("products_fts", "\"zebra\"", got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(cat_rowid("zebra"), -1);
    /* the full-text tables are whole: FTS5's own check finds nothing wrong */
    assert_int_equal(souk_db_exec(db, "INSERT INTO products_fts (products_fts, rank)"
                                      " VALUES ('integrity-check', 0)"),
                     0);
    assert_int_equal(souk_db_exec(db, "INSERT INTO products_fts_cat (products_fts_cat, rank)"
                                      " VALUES ('integrity-check', 0)"),
                     0);
    souk_arena_free(&a);
}

static void test_words_complete_to_known_words(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    const char *expr, *key;
    assert_int_equal(souk_db_exec(db, "DELETE FROM search_words;"
                                      "INSERT INTO search_words VALUES ('coffee'), ('coffees'),"
                                      " ('coffeemaker'), ('cog'), ('mug'), ('mugs')"),
                     0);
    assert_int_equal(search_expression(db, &a, "Coff  MUG!", &expr, &key), 0);
    assert_string_equal(expr, "(\"coff\" OR \"coffee\" OR \"coffeemaker\" OR \"coffees\") AND "
                              "(\"mug\" OR \"mugs\")");
    assert_string_equal(key, "coff mug");
    /* two letters match whole words only; punctuation is never syntax */
    assert_int_equal(search_expression(db, &a, "co \"* NEAR(", &expr, &key), 0);
    assert_string_equal(expr, "(\"co\") AND (\"near\")");
    assert_int_equal(search_expression(db, &a, "*** --", &expr, &key), 0);
    assert_string_equal(expr, "");
    /* more completions than SEARCH_EXPAND_MAX: FTS5's own prefix query */
    for (int i = 0; i <= SEARCH_EXPAND_MAX; i++)
        assert_int_equal(souk_db_run(db, "INSERT INTO search_words VALUES (?)", "s",
                                     souk_arena_printf(&a, "tea%03d", i)),
                         1);
    assert_int_equal(search_expression(db, &a, "tea", &expr, &key), 0);
    assert_string_equal(expr, "(\"tea\"*)");
    /* the vocabulary of a catalog migrated without one is built from its products */
    assert_int_equal(souk_db_exec(db, "DELETE FROM search_words"), 0);
    assert_int_equal(search_words_build(db), 0);
    int64_t n = 0;
    assert_int_equal(souk_db_int(db, &n,
                                 "SELECT count(*) FROM search_words WHERE word IN"
                                 " ('coffee', 'kettle', 'wireless')",
                                 NULL),
                     1);
    assert_int_equal(n, 3);
    assert_string_equal(search_category_token(&a, "kitchen"), "6B69746368656E0");
    souk_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shape_reads_its_index_from_a_position),
        cmocka_unit_test(test_category_search_is_a_rowid_range),
        cmocka_unit_test(test_writes_keep_full_text_and_counts),
        cmocka_unit_test(test_words_complete_to_known_words),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
