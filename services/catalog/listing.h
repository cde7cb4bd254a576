/* listing.h: the statements behind GET /api/v1/products, one per filter shape and
 * order, each reading one index in its own order and stopping after a page. Exposed
 * so the unit test can hold every statement's query plan to what it is written for. */
#ifndef CATALOG_LISTING_H
#define CATALOG_LISTING_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/db.h"

enum list_stmt {
    L_NEW,                /* newest first */
    L_CAT_NEW,            /* newest first in a category */
    L_PROBE_NEW,          /* newest first in a price range: the next few hundred, filtered */
    L_CAT_PROBE_NEW,      /* the same in a category */
    L_SIZE,               /* how many products are listed, from the kept counts */
    L_CAT_SIZE,           /* how many a category lists */
    L_BAND_COUNT,         /* how many products a price range holds, up to a bound */
    L_CAT_BAND_COUNT,     /* the same in a category */
    L_BAND_NEW,           /* newest first within a small price range: the range, sorted */
    L_CAT_BAND_NEW,       /* the same in a category */
    L_BAND_MERGE,         /* newest first within a price range: its price buckets merged */
    L_CAT_BAND_MERGE,     /* the same in a category */
    L_PRICE_TIE,          /* cheapest first: the rest of the price the last page ended in */
    L_CAT_PRICE_TIE,      /* the same in a category */
    L_PRICE,              /* cheapest first: the prices above */
    L_CAT_PRICE,          /* the same in a category */
    L_PRICE_DESC_TIE,     /* dearest first: the rest of the price the last page ended in */
    L_CAT_PRICE_DESC_TIE, /* the same in a category */
    L_PRICE_DESC,         /* dearest first: the prices below */
    L_CAT_PRICE_DESC,     /* the same in a category */
    L_FTS,                /* a search, newest first (relevance reads it once per tier) */
    L_FTS_CAT,            /* a search in a category, newest first (or a relevance tier) */
    L_FTS_CAT_ALL,        /* the same, every match, no filter: the name hits tier 2 skips */
    L_CAT_NO,             /* a category's number: its range of products_fts_cat rowids */
    L_FTS_PRICE,          /* a search, cheapest first (and one price group, by rid) */
    L_FTS_PRICE_DESC,     /* a search, dearest first, by whole price groups */
    L_WORDS,              /* the completions of a word (search.c) */
    L_ROW,                /* one product, rendered */
    L_CATEGORIES,         /* GET /api/v1/categories */
    L_COUNT
};

struct list_statement {
    const char *name;
    const char *sql;
    const char *uses; /* what its plan must read: an index name or "VIRTUAL TABLE" */
    const char *seek; /* how its plan must start: the constraint it seeks with (for FTS5,
                         its index string: M<column> the match, < and > rowid bounds) */
    bool may_sort;    /* a temporary b-tree is allowed: it sorts a bounded set */
    bool may_scan;    /* a full scan is allowed: it reads a whole small table */
    int params;       /* it is bound ?1..?params */
};

extern const struct list_statement list_statements[L_COUNT];

/* A newest-first page in a price range (listing.c, page_newest): the newest PROBE x page
 * rows, filtered, when the range is that dense; else a range of at most sqrt(page x
 * products listed) products, within these bounds, is read and sorted, and a wider one
 * read newest first and filtered. */
/* Or, when the next few hundred hold some of the range, the buckets of about 2x in price
 * that hold the range (migrations/005_price_buckets.sql), at most BAND_ARMS of them,
 * merged newest first. */
#define BAND_ARMS     4
#define BAND_PROBE    16
#define BAND_SORT_MIN 200
#define BAND_SORT_MAX 20000

/* A search on PostgreSQL (listing_pg.c): its tsvectors and GIN indexes stand in for the
 * FTS5 tables; the same filters, orders, tiers and keyset positions as listing.c's. */
enum search_order { SEARCH_RELEVANCE, SEARCH_PRICE_ASC, SEARCH_PRICE_DESC, SEARCH_NEWEST };
struct search_query {
    const char *tsquery;  /* search.c's expression for to_tsquery('souk', …) */
    const char *category; /* or NULL */
    int64_t lo, hi;       /* the price range, inclusive */
    bool in_stock;
    enum search_order order;
    bool after;                   /* the previous page ended at: */
    int64_t after_rid, after_key; /* its last row, and its price or relevance tier */
};
/* The rows of the page (at most want) in order into rid[], price[] and tier[]: *n of
 * them. 0, or the failed step's error. */
int search_pg_page(struct souk_db *db, const struct search_query *q, int want, int64_t *rid,
                   int64_t *price, int *tier, int *n);

#endif
