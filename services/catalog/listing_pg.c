/* listing_pg.c: a catalog search on PostgreSQL (GET /api/v1/products?q=…). The words
 * match through two stored tsvectors with GIN indexes (migrations/003_scale.pg.sql): the
 * name's, and the name's and description's together. The orders, tiers, filters and
 * keyset positions are listing.c's: relevance is the static rank (every word in the
 * name first, then the rest, each newest first), so paging visits every match once.
 * Unlike FTS5's rowid-ordered streams, a GIN index gives its matches unordered: a page
 * costs a bitmap of the matches and a top-N sort (or, for a word most products carry, a
 * walk down the order's index), chosen by the planner. */
#include <stdbool.h>
#include <stdio.h>

#include "listing.h"
#include "souk/souk.h"

/* ?1 the tsquery text, ?2 the category (NULL: all), ?3 ?4 the price range, ?5 in_stock,
 * ?6 the position (a rid, or a price), ?7 the limit, ?8 the position's rid (by price) */
#define FILTERS                                                                                    \
    " AND p.archived = 0 AND (CAST(?2 AS TEXT) IS NULL OR p.category = ?2)"                        \
    " AND p.price_cents BETWEEN ?3 AND ?4 AND (?5 = 0 OR p.on_hand > p.reserved)"
#define QUERY " to_tsquery('souk', ?1)"

enum { Q_NAME, Q_BODY, Q_BODY_NOT_NAME, Q_PRICE_ASC, Q_PRICE_DESC };

static const char *const statements[] = {
    [Q_NAME] = "SELECT p.rid, p.price_cents FROM products p WHERE p.name_tsv @@" QUERY FILTERS
               " AND p.rid < ?6 ORDER BY p.rid DESC LIMIT ?7",
    [Q_BODY] = "SELECT p.rid, p.price_cents FROM products p WHERE p.body_tsv @@" QUERY FILTERS
               " AND p.rid < ?6 ORDER BY p.rid DESC LIMIT ?7",
    [Q_BODY_NOT_NAME] =
        "SELECT p.rid, p.price_cents FROM products p WHERE p.body_tsv @@" QUERY
        " AND NOT (p.name_tsv @@" QUERY ")" FILTERS " AND p.rid < ?6 ORDER BY p.rid DESC LIMIT ?7",
    [Q_PRICE_ASC] = "SELECT p.rid, p.price_cents FROM products p WHERE p.body_tsv @@" QUERY FILTERS
                    " AND (p.price_cents, p.rid) > (?6, ?8) ORDER BY p.price_cents, p.rid LIMIT ?7",
    [Q_PRICE_DESC] = "SELECT p.rid, p.price_cents FROM products p WHERE p.body_tsv @@" QUERY FILTERS
                     " AND (p.price_cents < ?6 OR (p.price_cents = ?6 AND p.rid > ?8))"
                     " ORDER BY p.price_cents DESC, p.rid LIMIT ?7",
};

struct out {
    int64_t *rid, *price;
    int *tier;
    int n, want;
};

/* Run statement s from position (pos, tie) and append up to want - n rows, each of
 * tier. 0, or the failed step's error. */
static int run(struct souk_db *db, int s, const struct search_query *q, int64_t pos, int64_t tie,
               int tier, struct out *o)
{
    /* the orders by price use ?8, the others stop at ?7 (no value without its place) */
    bool by_price = s == Q_PRICE_ASC || s == Q_PRICE_DESC;
    struct souk_stmt *st =
        souk_db_query(db, statements[s], by_price ? "sSiiiiii" : "sSiiiii", q->tsquery, q->category,
                      q->lo, q->hi, (int64_t)q->in_stock, pos, (int64_t)(o->want - o->n), tie);
    int rc = st != NULL ? SOUK_ROW : souk_db_last_error(db);
    while (rc == SOUK_ROW && (rc = souk_stmt_step(st)) == SOUK_ROW) {
        if (o->n >= o->want) { /* never: the limit is what is left */
            souk_stmt_done(st);
            return 0;
        }
        o->rid[o->n] = souk_stmt_int(st, 0);
        o->price[o->n] = souk_stmt_int(st, 1);
        o->tier[o->n] = tier;
        o->n++;
    }
    return rc < 0 ? rc : 0;
}

int search_pg_page(struct souk_db *db, const struct search_query *q, int want, int64_t *rid,
                   int64_t *price, int *tier, int *n)
{
    struct out o = {rid, price, tier, 0, want};
    int rc = 0;
    switch (q->order) {
    case SEARCH_RELEVANCE:
        /* tier 0, every word in the name, unless the last page was already past it */
        if (!q->after || q->after_key == 0)
            rc = run(db, Q_NAME, q, q->after ? q->after_rid : INT64_MAX, 0, 0, &o);
        if (rc == 0 && o.n < o.want)
            rc = run(db, Q_BODY_NOT_NAME, q,
                     q->after && q->after_key == 1 ? q->after_rid : INT64_MAX, 0, 1, &o);
        break;
    case SEARCH_NEWEST:
        rc = run(db, Q_BODY, q, q->after ? q->after_rid : INT64_MAX, 0, 0, &o);
        break;
    case SEARCH_PRICE_ASC:
        rc = run(db, Q_PRICE_ASC, q, q->after ? q->after_key : -1, q->after ? q->after_rid : 0, 0,
                 &o);
        break;
    case SEARCH_PRICE_DESC:
        rc = run(db, Q_PRICE_DESC, q, q->after ? q->after_key : q->hi + 1,
                 q->after ? q->after_rid : 0, 0, &o);
        break;
    }
    *n = o.n;
    return rc;
}
