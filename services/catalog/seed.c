/* seed.c: loads the deterministic catalog of demo.c into a database without products,
 * in one transaction: the demo's 1,200 products, or `catalog seed --products N` for a
 * large catalog. A database that already has products is left as it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "demo.h"
#include "search.h"
#include "souk/log.h"
#include "souk/souk.h"

static uint32_t seed_products = DEMO_PRODUCTS;

int catalog_seed_size(const char *text)
{
    char *end;
    unsigned long n = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || n < 1 || n > DEMO_PRODUCTS_MAX)
        return SOUK_EINVAL;
    seed_products = (uint32_t)n;
    return 0;
}

static int seed_products_rows(struct souk_db *db, struct search_vocab *v)
{
    for (uint32_t i = 0; i < seed_products; i++) {
        struct demo_product p;
        demo_product_of(i, seed_products, &p);
        /* rid is the index + 1: rows numbered in creation order, as the lists assume */
        int rc = souk_db_run(db,
                             "INSERT INTO products (rid, id, sku, name, description, price_cents,"
                             " category, image_url, attributes, on_hand, created_at, updated_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             "issssisssiss", (int64_t)i + 1, p.id, p.sku, p.name, p.description,
                             p.price_cents, p.category, p.image_url, p.attributes, p.on_hand,
                             p.created_at, p.created_at);
        if (rc < 0)
            return rc;
        search_vocab_add_text(v, p.name);
        search_vocab_add_text(v, p.description);
        if (seed_products >= 100000 && (i + 1) % 100000 == 0)
            souk_info("seeding", "{s:i,s:i}", "products", (int)(i + 1), "of", (int)seed_products);
    }
    return 0;
}

/* What the insert trigger of migrations/004_search_category.sql does row by row, for the
 * whole catalog at once: the full-text tables filled in rowid order (a row out of order makes
 * FTS5 write a segment, which is what the trigger would do for products_fts_price), each
 * left as one segment, and the category counts. */
static const char bulk_index[] =
    "INSERT INTO products_fts (rowid, name, description, category)"
    " SELECT rid, name, description, hex(category) || '0' FROM products"
    " INDEXED BY products_live_new WHERE archived = 0 ORDER BY rid;"
    "INSERT INTO products_fts_price (rowid, body, category)"
    " SELECT price_cents * 4294967296 + rid, name || ' ' || description, hex(category) || '0'"
    " FROM products INDEXED BY products_live_price WHERE archived = 0 ORDER BY price_cents, rid;"
    "INSERT INTO products_fts_cat (rowid, name, description)"
    " SELECT c.rowid * 4294967296 + 4294967295 - p.rid, p.name, p.description FROM categories c"
    " CROSS JOIN products p INDEXED BY products_cat_new"
    " ON p.category = c.slug AND p.archived = 0"
    " ORDER BY c.rowid, p.rid DESC;"
    "INSERT INTO products_fts (products_fts) VALUES ('optimize');"
    "INSERT INTO products_fts_price (products_fts_price) VALUES ('optimize');"
    "INSERT INTO products_fts_cat (products_fts_cat) VALUES ('optimize');"
    "UPDATE categories SET product_count = (SELECT count(*) FROM products p"
    " WHERE p.category = categories.slug AND p.archived = 0);";

/* The schema objects a bulk load sets aside: the insert trigger (indexed in bulk after)
 * and the products' own indexes (built once, sorted, after the rows are in). */
static const char set_aside[] =
    "SELECT name, type, sql FROM sqlite_schema WHERE tbl_name = 'products' AND sql IS NOT NULL"
    " AND (type = 'index' OR (type = 'trigger' AND name = 'products_live_insert'))";

/* Load the rows with the trigger and indexes set aside (inside the open transaction, so
 * no other connection ever sees the schema without them), put the indexes back from their
 * own text, index the full text in bulk, and put the trigger back. */
static int bulk_load(struct souk_db *db, struct search_vocab *vocab)
{
    char *name[16], *sql[16], *trigger = NULL;
    size_t n = 0;
    int rc;
    struct souk_stmt *st = souk_db_query(db, set_aside, NULL);
    if (st == NULL)
        return SOUK_EDB;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        if (strcmp(souk_stmt_text(st, 1), "trigger") == 0) {
            free(trigger);
            trigger = souk_xstrdup(souk_stmt_text(st, 2));
        } else if (n < sizeof(name) / sizeof(name[0])) {
            name[n] = souk_xstrdup(souk_stmt_text(st, 0));
            sql[n++] = souk_xstrdup(souk_stmt_text(st, 2));
        } else {
            rc = SOUK_EINVAL; /* more indexes than this knows how to hold: a new migration */
            souk_stmt_done(st);
            break;
        }
    }
    if (rc == SOUK_DONE && trigger == NULL)
        rc = SOUK_EDB;
    if (rc != SOUK_DONE)
        goto out;
    rc = souk_db_exec(db, "DROP TRIGGER products_live_insert");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char drop[160];
        snprintf(drop, sizeof(drop), "DROP INDEX \"%s\"", name[i]);
        rc = souk_db_exec(db, drop);
    }
    if (rc == 0)
        rc = seed_products_rows(db, vocab);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = souk_db_exec(db, sql[i]);
    if (rc == 0 && (rc = souk_db_exec(db, bulk_index)) == 0)
        rc = souk_db_exec(db, trigger);
out:
    for (size_t i = 0; i < n; i++) {
        free(name[i]);
        free(sql[i]);
    }
    free(trigger);
    return rc;
}

/* PostgreSQL: the rows one by one (the count trigger and the tsvectors with them; the
 * indexes stay), then the identity moved past the rids given here, so the catalog's own
 * inserts continue the numbering. */
static int pg_load(struct souk_db *db, struct search_vocab *vocab)
{
    int rc = seed_products_rows(db, vocab);
    if (rc == 0)
        rc = souk_db_run(db,
                         "SELECT setval(pg_get_serial_sequence('products', 'rid'),"
                         " (SELECT max(rid) FROM products))",
                         NULL);
    return rc < 0 ? rc : 0;
}

int catalog_seed(struct souk_db *db)
{
    const struct demo_category *cats;
    size_t ncats = demo_categories(&cats);
    struct search_vocab vocab = {0};
    int64_t existing = 0;
    uint64_t t0 = souk_now_ns();
    bool pg = souk_db_engine(db) == SOUK_DB_POSTGRES;
    /* a big load wants more than SQLite's 2 MB of page cache; this process only seeds */
    int rc = pg ? 0 : souk_db_exec(db, "PRAGMA cache_size = -262144");
    if (rc == 0)
        rc = souk_db_begin(db);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < ncats; i++) {
        rc = souk_db_run(db,
                         "INSERT INTO categories (slug, name, description) VALUES (?, ?, ?)"
                         " ON CONFLICT DO NOTHING",
                         "sss", cats[i].slug, cats[i].name, cats[i].description);
        if (rc < 0)
            goto out;
    }
    rc = souk_db_int(db, &existing, "SELECT count(*) FROM products", NULL);
    if (rc < 0)
        goto out;
    if (existing > 0) {
        rc = souk_db_commit(db);
        if (rc == 0)
            souk_info("catalog has products: seed left them as they are", "{s:I}", "products",
                      (json_int_t)existing);
        goto out;
    }
    if ((rc = pg ? pg_load(db, &vocab) : bulk_load(db, &vocab)) < 0 ||
        (rc = search_vocab_write(&vocab, db)) < 0)
        goto out;
    rc = souk_db_commit(db);
    /* the load went to the WAL: move it into the database file now rather than leave a
       WAL the size of the catalog to the first process that opens it */
    /* PostgreSQL: statistics for the planner now, not at autovacuum's leisure */
    if (rc == 0)
        rc = souk_db_exec(db, pg ? "ANALYZE products" : "PRAGMA wal_checkpoint(TRUNCATE)");
    if (rc == 0)
        souk_info("demo catalog seeded", "{s:i,s:i,s:I,s:I}", "categories", (int)ncats, "products",
                  (int)seed_products, "words", (json_int_t)vocab.n, "ms",
                  (json_int_t)((souk_now_ns() - t0) / 1000000));
out:
    if (rc < 0)
        souk_db_rollback(db);
    search_vocab_free(&vocab);
    return rc < 0 ? rc : 0;
}
