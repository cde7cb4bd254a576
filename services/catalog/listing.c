/* listing.c: GET /api/v1/products, search and list with filters, sorts and keyset
 * pagination, at a cost that grows with the page and not with the catalog. Each filter
 * shape has its own statement (listing.h) pinned to the index that serves it in order;
 * searches read the full-text tables in rowid order (migrations/003_scale.sql). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "listing.h"
#include "search.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"

#define Q_MAX     200
#define PRICE_MAX 1000000000
/* "no upper bound": above PRICE_MAX, and (PRICE_TOP + 1) << 32 still fits an int64 */
#define PRICE_TOP (INT64_C(1) << 30)
#define RID_MASK  INT64_C(4294967295) /* products_fts_price rowid = price << 32 | rid */

/* Residual filters, the same in every statement: ?ST in_stock (0/1), and for the orders
 * that are not by price, ?BAND (0/1) with the range ?LO..?HI. A flag that is 0 decides the
 * test before any column is read, so an unused filter costs no row lookup. */
#define STOCK " AND (?3 = 0 OR p.on_hand > p.reserved)"
#define BAND  " AND (?4 = 0 OR p.price_cents BETWEEN ?5 AND ?6)"

/* What the engines write differently (docs/db.md): SQLite is told which index to read
 * (the unit test holds each plan to it); PostgreSQL's planner picks its own, wants a name
 * for a subquery in FROM and a boolean where SQLite takes 1. A search runs on SQLite's
 * FTS5 tables here, on PostgreSQL in listing_pg.c. */
#define INDEXED(name) SOUK_IF_SQLITE(" INDEXED BY " name)
#define AS_T          SOUK_IF_PG(" AS t")
#define SQL_TRUE      SOUK_IF_SQLITE("1") SOUK_IF_PG("true")

/* The price bucket of migrations/005_price_buckets.sql, as its indexes have it (SQLite
 * only: PostgreSQL reads a price range newest first as before, see page_newest). */
#define PRICE_BUCKET                                                                               \
    "(length(p.price_cents) * 3 + (substr(p.price_cents, 1, 1) >= '2')"                            \
    " + (substr(p.price_cents, 1, 1) >= '5'))"
/* One bucket (?n) newest first from the position, in the range: an arm of a merge. */
#define BUCKET_ARM(index, cat, n)                                                                  \
    "SELECT p.rid FROM products p INDEXED BY " index " WHERE p.archived = 0" cat                   \
    " AND " PRICE_BUCKET " = ?" n " AND p.rid < ?1 AND p.price_cents BETWEEN ?5 AND ?6" STOCK
#define BUCKET_MERGE(index, cat)                                                                   \
    BUCKET_ARM(index, cat, "9")                                                                    \
    " UNION ALL " BUCKET_ARM(index, cat, "10") " UNION ALL " BUCKET_ARM(                           \
        index, cat, "11") " UNION ALL " BUCKET_ARM(index, cat, "12") " ORDER BY 1 DESC LIMIT ?7"

/* Parameters: ?1 the position (the last row's rid, price or rowid), ?2 its tie-break,
 * ?3 in_stock, ?4 band flag, ?5 ?6 the price range, ?7 the limit, ?8 the category or
 * the FTS5 expression, ?9..?12 price buckets. A statement uses some of them and is
 * bound ?1..?params (an unused number below the highest used is no error). */
// clang-format off
const struct list_statement list_statements[L_COUNT] = {
    [L_NEW] = {"newest",
               "SELECT p.rid FROM products p" INDEXED("products_live_new")
               " WHERE p.archived = 0 AND p.rid < ?1" STOCK BAND " ORDER BY p.rid DESC LIMIT ?7",
               "products_live_new", "(rid<?)", false, false, 7},
    [L_CAT_NEW] = {"category, newest",
                   "SELECT p.rid FROM products p" INDEXED("products_cat_new")
                   " WHERE p.archived = 0 AND p.category = ?8 AND p.rid < ?1" STOCK BAND
                   " ORDER BY p.rid DESC LIMIT ?7",
                   "products_cat_new", "(category=? AND rid<?)", false, false, 8},
    [L_PROBE_NEW] = {"price range, newest, the next few",
                     "SELECT rid FROM (SELECT p.rid AS rid, p.price_cents AS price,"
                     " CASE WHEN ?3 = 0 THEN " SQL_TRUE " ELSE p.on_hand > p.reserved END AS ok"
                     " FROM products p" INDEXED("products_live_new") " WHERE p.archived = 0"
                     " AND p.rid < ?1 ORDER BY p.rid DESC LIMIT ?2)" AS_T
                     " WHERE ok AND price BETWEEN ?5 AND ?6 ORDER BY rid DESC LIMIT ?7",
                     "products_live_new", "(rid<?)", true, false, 7}, /* sorts what it read */
    [L_CAT_PROBE_NEW] = {"category, price range, newest, the next few",
                         "SELECT rid FROM (SELECT p.rid AS rid, p.price_cents AS price,"
                         " CASE WHEN ?3 = 0 THEN " SQL_TRUE " ELSE p.on_hand > p.reserved END AS ok"
                         " FROM products p" INDEXED("products_cat_new") " WHERE p.archived = 0"
                         " AND p.category = ?8 AND p.rid < ?1 ORDER BY p.rid DESC LIMIT ?2)" AS_T
                         " WHERE ok AND price BETWEEN ?5 AND ?6 ORDER BY rid DESC LIMIT ?7",
                         "products_cat_new", "(category=? AND rid<?)", true, false, 8},
    [L_SIZE] = {"products listed", "SELECT sum(product_count) FROM categories", "categories",
                "categories", false, true, 0},
    [L_CAT_SIZE] = {"products a category lists",
                    "SELECT product_count FROM categories WHERE slug = ?",
                    "sqlite_autoindex_categories_1", "(slug=?)", false, false, 1},
    [L_BAND_COUNT] = {"price range, size",
                      "SELECT count(*) FROM (SELECT 1 FROM products p"
                      INDEXED("products_live_price") " WHERE p.archived = 0"
                      " AND p.price_cents BETWEEN ?5 AND ?6 LIMIT ?7)" AS_T,
                      "products_live_price", "(price_cents>? AND price_cents<?)", false, false, 7},
    [L_CAT_BAND_COUNT] = {"category, price range, size",
                          "SELECT count(*) FROM (SELECT 1 FROM products p"
                          INDEXED("products_cat_price") " WHERE p.archived = 0"
                          " AND p.category = ?8 AND p.price_cents BETWEEN ?5 AND ?6 LIMIT ?7)" AS_T,
                          "products_cat_price", "(category=? AND price_cents>? AND price_cents<?)",
                          false, false, 8},
    [L_BAND_NEW] = {"small price range, newest",
                    "SELECT p.rid FROM products p" INDEXED("products_live_price")
                    " WHERE p.archived = 0 AND p.price_cents BETWEEN ?5 AND ?6"
                    " AND p.rid < ?1" STOCK " ORDER BY p.rid DESC LIMIT ?7",
                    "products_live_price", "(price_cents>? AND price_cents<?)", true, false, 7},
    [L_CAT_BAND_NEW] = {"category, small price range, newest",
                        "SELECT p.rid FROM products p" INDEXED("products_cat_price")
                        " WHERE p.archived = 0 AND p.category = ?8"
                        " AND p.price_cents BETWEEN ?5 AND ?6 AND p.rid < ?1" STOCK
                        " ORDER BY p.rid DESC LIMIT ?7",
                        "products_cat_price", "(category=? AND price_cents>? AND price_cents<?)",
                        true, false, 8},
    [L_BAND_MERGE] = {"price range, newest, its buckets merged",
                      BUCKET_MERGE("products_live_bucket", ""), "products_live_bucket",
                      "(<expr>=? AND rid<?)", false, false, 12},
    [L_CAT_BAND_MERGE] = {"category, price range, newest, its buckets merged",
                          BUCKET_MERGE("products_cat_bucket", " AND p.category = ?8"),
                          "products_cat_bucket", "(category=? AND <expr>=? AND rid<?)", false,
                          false, 12},
    [L_PRICE_TIE] = {"price_asc, rest of a price",
                     "SELECT p.rid, p.price_cents FROM products p"
                     INDEXED("products_live_price") " WHERE p.archived = 0"
                     " AND p.price_cents = ?1 AND p.rid > ?2" STOCK
                     " ORDER BY p.price_cents, p.rid LIMIT ?7",
                     "products_live_price", "(price_cents=? AND rid>?)", false, false, 7},
    [L_CAT_PRICE_TIE] = {"category, price_asc, rest of a price",
                         "SELECT p.rid, p.price_cents FROM products p"
                         INDEXED("products_cat_price") " WHERE p.archived = 0 AND p.category = ?8"
                         " AND p.price_cents = ?1 AND p.rid > ?2" STOCK
                         " ORDER BY p.price_cents, p.rid LIMIT ?7",
                         "products_cat_price", "(category=? AND price_cents=? AND rid>?)", false,
                         false, 8},
    [L_PRICE] = {"price_asc",
                 "SELECT p.rid, p.price_cents FROM products p"
                 INDEXED("products_live_price") " WHERE p.archived = 0"
                 " AND p.price_cents > ?1 AND p.price_cents <= ?6" STOCK
                 " ORDER BY p.price_cents, p.rid LIMIT ?7",
                 "products_live_price", "(price_cents>? AND price_cents<?)", false, false, 7},
    [L_CAT_PRICE] = {"category, price_asc",
                     "SELECT p.rid, p.price_cents FROM products p"
                     INDEXED("products_cat_price") " WHERE p.archived = 0 AND p.category = ?8"
                     " AND p.price_cents > ?1 AND p.price_cents <= ?6" STOCK
                     " ORDER BY p.price_cents, p.rid LIMIT ?7",
                     "products_cat_price", "(category=? AND price_cents>? AND price_cents<?)",
                     false, false, 8},
    [L_PRICE_DESC_TIE] = {"price_desc, rest of a price",
                          "SELECT p.rid, p.price_cents FROM products p"
                          INDEXED("products_live_price_desc") " WHERE p.archived = 0"
                          " AND p.price_cents = ?1 AND p.rid > ?2" STOCK
                          " ORDER BY p.price_cents DESC, p.rid LIMIT ?7",
                          "products_live_price_desc", "(price_cents=? AND rid>?)", false, false, 7},
    [L_CAT_PRICE_DESC_TIE] = {"category, price_desc, rest of a price",
                              "SELECT p.rid, p.price_cents FROM products p"
                              INDEXED("products_cat_price_desc") " WHERE p.archived = 0"
                              " AND p.category = ?8 AND p.price_cents = ?1 AND p.rid > ?2" STOCK
                              " ORDER BY p.price_cents DESC, p.rid LIMIT ?7",
                              "products_cat_price_desc", "(category=? AND price_cents=? AND rid>?)",
                              false, false, 8},
    [L_PRICE_DESC] = {"price_desc",
                      "SELECT p.rid, p.price_cents FROM products p"
                      INDEXED("products_live_price_desc") " WHERE p.archived = 0"
                      " AND p.price_cents < ?1 AND p.price_cents >= ?5" STOCK
                      " ORDER BY p.price_cents DESC, p.rid LIMIT ?7",
                      "products_live_price_desc", "(price_cents>? AND price_cents<?)", false, false,
                      7},
    [L_CAT_PRICE_DESC] =
        {"category, price_desc",
         "SELECT p.rid, p.price_cents FROM products p"
         INDEXED("products_cat_price_desc") " WHERE p.archived = 0"
         " AND p.category = ?8 AND p.price_cents < ?1 AND p.price_cents >= ?5" STOCK
         " ORDER BY p.price_cents DESC, p.rid LIMIT ?7",
         "products_cat_price_desc", "(category=? AND price_cents>? AND price_cents<?)", false,
         false, 8},
    [L_FTS] = {"search, newest or a relevance tier",
               "SELECT f.rowid FROM products_fts f JOIN products p ON p.rid = f.rowid"
               " WHERE products_fts MATCH ?8 AND f.rowid < ?1" STOCK BAND
               " ORDER BY f.rowid DESC LIMIT ?7",
               "VIRTUAL TABLE", ":M3<", false, false, 8},
    [L_FTS_CAT] = {"search in a category, newest or a relevance tier",
                   "SELECT f.rowid FROM products_fts_cat f"
                   " JOIN products p ON p.rid = 4294967295 - f.rowid % 4294967296"
                   " WHERE products_fts_cat MATCH ?8 AND f.rowid > ?1 AND f.rowid <= ?2" STOCK BAND
                   " ORDER BY f.rowid LIMIT ?7",
                   "VIRTUAL TABLE", ":M2><", false, false, 8},
    [L_FTS_CAT_ALL] = {"search in a category, every match",
                       "SELECT f.rowid FROM products_fts_cat f WHERE products_fts_cat MATCH ?8"
                       " AND f.rowid > ?1 AND f.rowid <= ?2 ORDER BY f.rowid",
                       "VIRTUAL TABLE", ":M2><", false, false, 8},
    [L_CAT_NO] = {"a category's number", "SELECT rowid FROM categories WHERE slug = ?",
                  "sqlite_autoindex_categories_1", "(slug=?)", false, false, 1},
    [L_FTS_PRICE] = {"search, price_asc",
                     "SELECT f.rowid FROM products_fts_price f"
                     " JOIN products p ON p.rid = f.rowid % 4294967296"
                     " WHERE products_fts_price MATCH ?8 AND f.rowid > ?1 AND f.rowid <= ?2" STOCK
                     " ORDER BY f.rowid LIMIT ?7",
                     "VIRTUAL TABLE", ":M2><", false, false, 8},
    [L_FTS_PRICE_DESC] = {"search, price_desc",
                          "SELECT f.rowid FROM products_fts_price f"
                          " JOIN products p ON p.rid = f.rowid % 4294967296"
                          " WHERE products_fts_price MATCH ?8 AND f.rowid >= ?1"
                          " AND f.rowid < ?2" STOCK " ORDER BY f.rowid DESC LIMIT ?7",
                          "VIRTUAL TABLE", ":M2><", false, false, 8},
    [L_WORDS] = {"completions of a word",
                 "SELECT word FROM search_words WHERE word > ?1 AND word < ?2 ORDER BY word"
                 " LIMIT ?3",
                 "PRIMARY KEY", "(word>? AND word<?)", false, false, 3},
    [L_ROW] = {"one product", "SELECT " PRODUCT_JSON " FROM products p WHERE p.rid = ?",
               "INTEGER PRIMARY KEY", "(rowid=?)", false, false, 1},
    [L_CATEGORIES] = {"categories",
                      "SELECT c.slug, c.name, c.description, c.product_count"
                      " FROM categories c" INDEXED("categories_by_name") " ORDER BY c.name, c.slug",
                      "categories_by_name", "categories_by_name", false, true, 0},
};
// clang-format on

enum sort { SORT_RELEVANCE, SORT_PRICE_ASC, SORT_PRICE_DESC, SORT_NEWEST };
static const char *const sort_names[] = {"relevance", "price_asc", "price_desc", "newest", NULL};

struct list_query {
    const char *q, *category;
    int64_t min_price, max_price; /* -1: no bound */
    bool in_stock;
    enum sort sort;
    const char *words; /* the FTS5 expression of q's words; "" when none */
    const char *key;   /* q's words, normalised: what a page token is bound to */
    /* keyset position after the previous page: its last row */
    bool after;
    int64_t after_rid, after_key; /* key: the price, or the relevance tier */
};

/* The rows of a page in order, one more than the page when there is a next one. */
struct page {
    int64_t rid[SOUK_PAGE_MAX + 1], price[SOUK_PAGE_MAX + 1];
    int tier[SOUK_PAGE_MAX + 1];
    int n, want;
};

/* Is s UTF-8? PostgreSQL refuses any other text as a value, where SQLite compares the
 * bytes: text that is not matches nothing in either (every name and slug is UTF-8). */
static bool utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson checks */
    json_decref(j);
    return j != NULL;
}

/* The endpoint's own filters into lq and their errors into c (page_size and page_token
 * are the kit's: souk_page_start). 0, or the error of the vocabulary lookup behind q. */
static int parse_list_query(struct souk_req *r, struct list_query *lq, struct souk_check *c)
{
    memset(lq, 0, sizeof(*lq));
    lq->words = lq->key = "";
    lq->q = souk_req_query(r, "q");
    if (lq->q != NULL && strlen(lq->q) > Q_MAX) {
        souk_check_fail(c, "q", "must be at most %d characters", Q_MAX);
    } else if (lq->q != NULL) {
        int rc = search_expression(souk_req_db(r), souk_req_arena(r), lq->q, &lq->words, &lq->key);
        if (rc != 0)
            return rc < 0 ? rc : SOUK_EDB;
    }
    lq->category = souk_req_query(r, "category");
    if (lq->category != NULL && (strlen(lq->category) == 0 || strlen(lq->category) > 64)) {
        souk_check_fail(c, "category", "must be 1 to 64 characters");
        lq->category = NULL;
    }
    lq->min_price =
        souk_check_int_text(c, "min_price", souk_req_query(r, "min_price"), 0, PRICE_MAX, -1);
    lq->max_price =
        souk_check_int_text(c, "max_price", souk_req_query(r, "max_price"), 0, PRICE_MAX, -1);
    if (lq->min_price >= 0 && lq->max_price >= 0 && lq->min_price > lq->max_price)
        souk_check_fail(c, "min_price", "must not be greater than max_price");
    lq->in_stock = souk_check_bool_text(c, "in_stock", souk_req_query(r, "in_stock"), false);
    bool has_q = lq->q != NULL && lq->q[0] != '\0';
    int sort = souk_check_enum_text(c, "sort", souk_req_query(r, "sort"), sort_names,
                                    has_q ? SORT_RELEVANCE : SORT_NEWEST);
    /* relevance needs words to rank by; without them the newest come first */
    lq->sort = (sort == SORT_RELEVANCE && !has_q) ? SORT_NEWEST : (enum sort)sort;
    return 0;
}

/* Where the previous page ended, from the token souk_page_start opened: [rid] newest
 * first, [price, rid] by price, [tier, rid] by relevance. The token was sealed for
 * this very query, so another shape means another format of ours: false. */
static bool take_position(struct list_query *lq, const struct souk_page *pg)
{
    if (pg->npos == 0)
        return true;
    const struct souk_page_value *key = &pg->pos[0], *rid = &pg->pos[pg->npos - 1];
    if (pg->npos != (lq->sort == SORT_NEWEST ? 1 : 2) || rid->type != 'i' || rid->i <= 0 ||
        rid->i > RID_MASK)
        return false;
    if (lq->sort == SORT_RELEVANCE && (key->type != 'i' || key->i < 0 || key->i > 1))
        return false;
    if ((lq->sort == SORT_PRICE_ASC || lq->sort == SORT_PRICE_DESC) &&
        (key->type != 'i' || key->i < 0 || key->i > PRICE_TOP))
        return false;
    lq->after = true;
    lq->after_rid = rid->i;
    lq->after_key = lq->sort == SORT_NEWEST ? 0 : key->i;
    return true;
}

/* The next page's token: the position of row i, the page's last. NULL if it cannot be
 * made (logged). */
static json_t *next_token(const struct list_query *lq, const struct souk_page *spg,
                          const struct page *pg, int i)
{
    json_t *key =
        lq->sort == SORT_NEWEST
            ? json_pack("[I]", (json_int_t)pg->rid[i])
            : json_pack("[I,I]",
                        (json_int_t)(lq->sort == SORT_RELEVANCE ? pg->tier[i] : pg->price[i]),
                        (json_int_t)pg->rid[i]);
    json_t *token = key != NULL ? souk_page_token(spg, key) : NULL;
    json_decref(key);
    return token;
}

/* The bound values of one run of a list statement (see the parameter list above). */
struct run {
    int64_t pos, tie, lo, hi;
    bool band;
    const char *text; /* ?8: the category or the FTS5 expression */
};

/* How a statement's first column becomes a row of the page. */
enum cols { RID, RID_PRICE, FTS_PRICE_ROWID, FTS_CAT_ROWID };

static struct souk_stmt *query(struct souk_db *db, enum list_stmt s, const struct list_query *lq,
                               const struct run *a, int64_t limit)
{
    char fmt[9];
    snprintf(fmt, sizeof(fmt), "%.*s", list_statements[s].params, "iiiiiiiS");
    return souk_db_query(db, list_statements[s].sql, fmt, a->pos, a->tie, (int64_t)lq->in_stock,
                         (int64_t)a->band, a->lo, a->hi, limit, a->text);
}

/* Run statement s and append its rows (up to limit more) to the page, each with the
 * given relevance tier. Returns how many it appended, or a negative code. */
static int run_page(struct souk_db *db, enum list_stmt s, const struct list_query *lq,
                    const struct run *a, enum cols cols, int limit, int tier, struct page *pg)
{
    struct souk_stmt *st = query(db, s, lq, a, limit);
    if (st == NULL)
        return SOUK_EDB;
    int rc, added = 0;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        if (pg->n >= pg->want) { /* never: limits are computed from want */
            souk_stmt_done(st);
            break;
        }
        int64_t v = souk_stmt_int(st, 0);
        pg->rid[pg->n] = cols == FTS_PRICE_ROWID ? (v & RID_MASK)
                         : cols == FTS_CAT_ROWID ? RID_MASK - (v & RID_MASK)
                                                 : v;
        pg->price[pg->n] = cols == FTS_PRICE_ROWID ? (v >> 32)
                           : cols == RID_PRICE     ? souk_stmt_int(st, 1)
                                                   : 0;
        pg->tier[pg->n] = tier;
        pg->n++;
        added++;
    }
    return rc < 0 ? rc : added;
}

static int64_t lo_price(const struct list_query *lq)
{
    return lq->min_price >= 0 ? lq->min_price : 0;
}

static int64_t hi_price(const struct list_query *lq)
{
    return lq->max_price >= 0 ? lq->max_price : PRICE_TOP;
}

static bool has_band(const struct list_query *lq)
{
    return lq->min_price >= 0 || lq->max_price >= 0;
}

/* The most products of a price range worth sorting for a newest-first page. Sorting a
 * range of b products reads b rows; filtering the newest on the way reads about
 * page x N / b of N; both are sqrt(page x N) at b = sqrt(page x N), which is what the
 * worst range costs either way (a one-dimensional index can do no better). */
static int band_sort_max(struct souk_db *db, const struct list_query *lq, int want, int64_t *max)
{
    int64_t n = 0;
    int rc = lq->category != NULL
                 ? souk_db_int(db, &n, list_statements[L_CAT_SIZE].sql, "s", lq->category)
                 : souk_db_int(db, &n, list_statements[L_SIZE].sql, NULL);
    if (rc < 0)
        return rc;
    uint64_t target = (uint64_t)want * (uint64_t)(n > 0 ? n : 0), k = 0;
    for (uint64_t bit = UINT64_C(1) << 31; bit != 0; bit >>= 1) /* integer square root */
        if ((k + bit) * (k + bit) <= target)
            k += bit;
    *max = k < BAND_SORT_MIN ? BAND_SORT_MIN : k > BAND_SORT_MAX ? BAND_SORT_MAX : (int64_t)k;
    return 0;
}

/* The bucket of PRICE_BUCKET that holds price, with its lowest and highest price. */
static int64_t price_bucket(int64_t price, int64_t *lo, int64_t *hi)
{
    static const int64_t start[] = {1, 2, 5}, end[] = {2, 5, 10};
    int64_t unit = 1, digits = 1;
    while (price >= unit * 10) {
        unit *= 10;
        digits++;
    }
    int cls = (price / unit >= 2) + (price / unit >= 5);
    *lo = digits == 1 && cls == 0 ? 0 : start[cls] * unit;
    *hi = end[cls] * unit - 1;
    return digits * 3 + cls;
}

/* The buckets that hold the prices lo..hi, into arm (the rest -1, a bucket that holds
 * nothing); false when more than BAND_ARMS would. */
static bool band_buckets(int64_t lo, int64_t hi, int64_t arm[BAND_ARMS])
{
    int n = 0;
    for (int64_t x = lo, blo, bhi; x <= hi; x = bhi + 1) {
        if (n == BAND_ARMS)
            return false;
        arm[n++] = price_bucket(x, &blo, &bhi);
    }
    while (n < BAND_ARMS)
        arm[n++] = -1;
    return true;
}

/* A page of the range's buckets merged newest first, each read from the position with
 * the range as a filter (only the two end buckets hold prices outside it). */
static int band_merge(struct souk_db *db, const struct list_query *lq, const struct run *a,
                      const int64_t arm[BAND_ARMS], struct page *pg)
{
    bool cat = lq->category != NULL;
    struct souk_stmt *st = souk_db_query(
        db, list_statements[cat ? L_CAT_BAND_MERGE : L_BAND_MERGE].sql, "iiiiiiiSiiii", a->pos,
        (int64_t)0, (int64_t)lq->in_stock, (int64_t)0, a->lo, a->hi, (int64_t)pg->want,
        cat ? lq->category : "", arm[0], arm[1], arm[2], arm[3]);
    if (st == NULL)
        return SOUK_EDB;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW && pg->n < pg->want) {
        pg->rid[pg->n] = souk_stmt_int(st, 0);
        pg->price[pg->n] = 0;
        pg->tier[pg->n++] = 0;
    }
    if (rc == SOUK_ROW)
        souk_stmt_done(st); /* never: the LIMIT is want */
    return rc < 0 ? rc : 0;
}

/* Newest first without words. A price range is a filter on the way over the next few
 * hundred rows if they hold a page. Else, if they hold some of it, its few price buckets
 * merged (reading about page x (the buckets' share of the catalog / the range's)); else,
 * when the range holds few products, the range itself is read and sorted (a bounded
 * sort), because a narrow range filtered on the way would read much of the catalog to
 * fill a page. */
static int page_newest(struct souk_db *db, const struct list_query *lq, struct page *pg)
{
    bool cat = lq->category != NULL;
    struct run a = {lq->after ? lq->after_rid : INT64_MAX,
                    0,
                    lo_price(lq),
                    hi_price(lq),
                    has_band(lq),
                    lq->category};
    if (a.band) {
        /* most ranges people ask for are dense: the newest few hundred hold a page */
        a.tie = (int64_t)BAND_PROBE * pg->want;
        int rc = run_page(db, cat ? L_CAT_PROBE_NEW : L_PROBE_NEW, lq, &a, RID, pg->want, 0, pg);
        if (rc < 0 || pg->n >= pg->want)
            return rc;
        int64_t arm[BAND_ARMS];
        bool some = pg->n > 0;
        pg->n = 0; /* too sparse for a page: start again from the position */
        /* the buckets are an index of SQLite's (PostgreSQL has no such index yet) */
        if (some && souk_db_engine(db) == SOUK_DB_SQLITE && band_buckets(a.lo, a.hi, arm))
            return band_merge(db, lq, &a, arm, pg);
        int64_t max = 0;
        rc = band_sort_max(db, lq, pg->want, &max);
        if (rc < 0)
            return rc;
        struct souk_stmt *st = query(db, cat ? L_CAT_BAND_COUNT : L_BAND_COUNT, lq, &a, max + 1);
        rc = st == NULL ? SOUK_EDB : souk_stmt_step(st);
        if (rc != SOUK_ROW)
            return rc < 0 ? rc : SOUK_EDB;
        int64_t size = souk_stmt_int(st, 0);
        souk_stmt_done(st);
        if (size <= max)
            return run_page(db, cat ? L_CAT_BAND_NEW : L_BAND_NEW, lq, &a, RID, pg->want, 0, pg);
    }
    return run_page(db, cat ? L_CAT_NEW : L_NEW, lq, &a, RID, pg->want, 0, pg);
}

/* Cheapest first, ties by rid: the rest of the price the last page ended in, then the
 * prices above it. Two seeks: a (price, rid) position as one row value would seek by
 * price alone and read through every product of that price. */
static int page_price_asc(struct souk_db *db, const struct list_query *lq, struct page *pg)
{
    bool cat = lq->category != NULL;
    struct run a = {lq->after_key, lq->after_rid, 0, hi_price(lq), false, lq->category};
    if (lq->after) {
        int rc =
            run_page(db, cat ? L_CAT_PRICE_TIE : L_PRICE_TIE, lq, &a, RID_PRICE, pg->want, 0, pg);
        if (rc < 0 || pg->n >= pg->want)
            return rc;
    }
    a.pos = lq->after ? lq->after_key : lo_price(lq) - 1;
    return run_page(db, cat ? L_CAT_PRICE : L_PRICE, lq, &a, RID_PRICE, pg->want - pg->n, 0, pg);
}

/* Dearest first, ties by rid ascending: the rest of the price the last page ended in,
 * then the prices below it. */
static int page_price_desc(struct souk_db *db, const struct list_query *lq, struct page *pg)
{
    bool cat = lq->category != NULL;
    struct run a = {lq->after_key, lq->after_rid, lo_price(lq), hi_price(lq), false, lq->category};
    if (lq->after) {
        int rc = run_page(db, cat ? L_CAT_PRICE_DESC_TIE : L_PRICE_DESC_TIE, lq, &a, RID_PRICE,
                          pg->want, 0, pg);
        if (rc < 0 || pg->n >= pg->want)
            return rc;
    }
    a.pos = lq->after ? lq->after_key : hi_price(lq) + 1;
    return run_page(db, cat ? L_CAT_PRICE_DESC : L_PRICE_DESC, lq, &a, RID_PRICE, pg->want - pg->n,
                    0, pg);
}

/* The FTS5 expression for the words in some columns, within the category (by its token:
 * products_fts_price; the newest and relevance streams read products_fts_cat instead). */
static const char *match(struct souk_req *r, const struct list_query *lq, const char *cols)
{
    if (lq->category == NULL)
        return souk_req_printf(r, "{%s} : (%s)", cols, lq->words);
    return souk_req_printf(r, "{%s} : (%s) AND {category} : \"%s\"", cols, lq->words,
                           search_category_token(souk_req_arena(r), lq->category));
}

/* The rowid range of products_fts_cat after rid pos (excluded) in category catno:
 * catno << 32 | (RID_MASK - rid), so newest first is ascending rowid order. */
static struct run cat_range(const struct list_query *lq, int64_t catno, int64_t pos,
                            const char *text)
{
    int64_t base = catno << 32;
    struct run a = {pos > RID_MASK ? base - 1 : base | (RID_MASK - pos),
                    base | RID_MASK,
                    lo_price(lq),
                    hi_price(lq),
                    has_band(lq),
                    text};
    return a;
}

/* Tier 2 in a category: the matches in any column whose name does not hold every word,
 * newest first. Two streams of products_fts_cat merged, the name hits skipped (they end
 * about where the page does, so this reads about what it skips), because FTS5 evaluates
 * `any NOT name` from the first rowid of the table, not of the range: it would walk every
 * category before this one (10 ms at 1M products). */
static int run_cat_tier2(struct souk_req *r, const struct list_query *lq, int64_t catno,
                         int64_t pos, int limit, struct page *pg)
{
    struct souk_db *db = souk_req_db(r);
    struct run a =
        cat_range(lq, catno, pos, souk_req_printf(r, "{name description} : (%s)", lq->words));
    struct souk_stmt *any = query(db, L_FTS_CAT, lq, &a, -1), *names = NULL; /* no LIMIT */
    int64_t skip = -1; /* the first name hit not before the current row; INT64_MAX: none */
    int rc = any == NULL ? SOUK_EDB : SOUK_ROW, added = 0;
    while (rc >= 0 && added < limit && (rc = souk_stmt_step(any)) == SOUK_ROW) {
        int64_t v = souk_stmt_int(any, 0);
        if (names == NULL) { /* at the first match: a search that finds nothing reads one */
            a.text = souk_req_printf(r, "{name} : (%s)", lq->words);
            if ((names = query(db, L_FTS_CAT_ALL, lq, &a, 0)) == NULL) {
                rc = SOUK_EDB;
                break;
            }
        }
        while (skip < v && (rc = souk_stmt_step(names)) == SOUK_ROW)
            skip = souk_stmt_int(names, 0);
        if (rc < 0)
            break;
        if (rc == SOUK_DONE)
            skip = INT64_MAX; /* no name hit left */
        rc = SOUK_ROW;
        if (v == skip)
            continue;
        pg->rid[pg->n] = RID_MASK - (v & RID_MASK);
        pg->price[pg->n] = 0;
        pg->tier[pg->n] = 1;
        pg->n++;
        added++;
    }
    if (names != NULL)
        souk_stmt_done(names);
    if (any != NULL)
        souk_stmt_done(any);
    return rc < 0 ? rc : added;
}

/* A newest-first search stream, the words in cols, from rid pos down (pos excluded): tier
 * 0 the words in cols, tier 1 (cols "name description") those not all in the name. In a
 * category, that category's range of products_fts_cat; else products_fts (rowid = rid).
 * Appends up to limit rows. */
static int run_newest(struct souk_req *r, const struct list_query *lq, int64_t catno,
                      const char *cols, int tier, int64_t pos, int limit, struct page *pg)
{
    const char *in = souk_req_printf(r, "{%s} : (%s)", cols, lq->words);
    if (lq->category == NULL) {
        if (tier == 1)
            in = souk_req_printf(r, "(%s) NOT ({name} : (%s))", in, lq->words);
        struct run a = {pos, 0, lo_price(lq), hi_price(lq), has_band(lq), in};
        return run_page(souk_req_db(r), L_FTS, lq, &a, RID, limit, tier, pg);
    }
    if (tier == 1)
        return run_cat_tier2(r, lq, catno, pos, limit, pg);
    struct run a = cat_range(lq, catno, pos, in);
    return run_page(souk_req_db(r), L_FTS_CAT, lq, &a, FTS_CAT_ROWID, limit, tier, pg);
}

/* The number of the category asked for (the high half of its products_fts_cat rowids):
 * 1, 0 when there is no such category (nothing can match), or a negative code. */
static int category_number(struct souk_db *db, const struct list_query *lq, int64_t *catno)
{
    *catno = 0;
    if (lq->category == NULL)
        return 1;
    int rc = souk_db_int(db, catno, list_statements[L_CAT_NO].sql, "s", lq->category);
    if (rc == 1 && (*catno <= 0 || *catno >= (INT64_C(1) << 30)))
        rc = 0; /* not a rowid the range can hold: the triggers indexed nothing under it */
    return rc;
}

/* Relevance: products with every word in the name, then the others, each newest first.
 * The order is a static rank, so a page is the next rows of a stream and paging visits
 * every match exactly once. */
static int page_relevance(struct souk_req *r, const struct list_query *lq, struct page *pg)
{
    int64_t catno;
    int rc = category_number(souk_req_db(r), lq, &catno);
    if (rc <= 0)
        return rc;
    int64_t pos = INT64_MAX;
    if (!lq->after || lq->after_key == 0) {
        rc = run_newest(r, lq, catno, "name", 0, lq->after ? lq->after_rid : INT64_MAX, pg->want,
                        pg);
        if (rc < 0 || pg->n >= pg->want)
            return rc;
    } else {
        pos = lq->after_rid;
    }
    return run_newest(r, lq, catno, "name description", 1, pos, pg->want - pg->n, pg);
}

static int page_search_newest(struct souk_req *r, const struct list_query *lq, struct page *pg)
{
    int64_t catno;
    int rc = category_number(souk_req_db(r), lq, &catno);
    if (rc <= 0)
        return rc;
    return run_newest(r, lq, catno, "name description", 0, lq->after ? lq->after_rid : INT64_MAX,
                      pg->want, pg);
}

static int page_search_price_asc(struct souk_req *r, const struct list_query *lq, struct page *pg)
{
    struct run a = {lq->after ? (lq->after_key << 32 | lq->after_rid) : (lo_price(lq) << 32) - 1,
                    hi_price(lq) << 32 | RID_MASK,
                    0,
                    0,
                    false,
                    match(r, lq, "body")};
    return run_page(souk_req_db(r), L_FTS_PRICE, lq, &a, FTS_PRICE_ROWID, pg->want, 0, pg);
}

/* Reverse each run of equal prices in rows [from, to): the descending stream gives a
 * price's rows by rid descending, the order wants them ascending. */
static void reverse_groups(struct page *pg, int from, int to)
{
    for (int i = from; i < to;) {
        int j = i;
        while (j < to && pg->price[j] == pg->price[i])
            j++;
        for (int x = i, y = j - 1; x < y; x++, y--) {
            int64_t t = pg->rid[x];
            pg->rid[x] = pg->rid[y];
            pg->rid[y] = t;
        }
        i = j;
    }
}

/* A search, dearest first with ties by rid ascending, from products_fts_price whose
 * rowids run (price, rid) ascending: the rest of the last page's price ascending, then
 * the prices below read descending (whole prices, each turned around), and the price the
 * page ends in read again from its smallest rid. Three streams, each at most a page. */
static int page_search_price_desc(struct souk_req *r, const struct list_query *lq, struct page *pg)
{
    struct souk_db *db = souk_req_db(r);
    const char *m = match(r, lq, "body");
    struct run a = {0, 0, 0, 0, false, m};
    int64_t top = (hi_price(lq) + 1) << 32;
    if (lq->after) {
        a.pos = lq->after_key << 32 | lq->after_rid;
        a.tie = lq->after_key << 32 | RID_MASK;
        int rc = run_page(db, L_FTS_PRICE, lq, &a, FTS_PRICE_ROWID, pg->want, 0, pg);
        if (rc < 0 || pg->n >= pg->want)
            return rc;
        top = lq->after_key << 32;
    }
    int base = pg->n;
    a.pos = lo_price(lq) << 32;
    a.tie = top;
    int rc = run_page(db, L_FTS_PRICE_DESC, lq, &a, FTS_PRICE_ROWID, pg->want - base, 0, pg);
    if (rc < 0)
        return rc;
    if (pg->n < pg->want) { /* every price read whole */
        reverse_groups(pg, base, pg->n);
        return 0;
    }
    int64_t last = pg->price[pg->n - 1]; /* read only in part, from its largest rids */
    while (pg->n > base && pg->price[pg->n - 1] == last)
        pg->n--;
    reverse_groups(pg, base, pg->n);
    a.pos = (last << 32) - 1;
    a.tie = last << 32 | RID_MASK;
    rc = run_page(db, L_FTS_PRICE, lq, &a, FTS_PRICE_ROWID, pg->want - pg->n, 0, pg);
    return rc < 0 ? rc : 0;
}

/* PostgreSQL: a search runs on its tsvectors (listing_pg.c), in the same orders. */
static int page_search_pg(struct souk_db *db, const struct list_query *lq, struct page *pg)
{
    static const enum search_order orders[] = {[SORT_RELEVANCE] = SEARCH_RELEVANCE,
                                               [SORT_PRICE_ASC] = SEARCH_PRICE_ASC,
                                               [SORT_PRICE_DESC] = SEARCH_PRICE_DESC,
                                               [SORT_NEWEST] = SEARCH_NEWEST};
    struct search_query q = {lq->words,    lq->category,  lo_price(lq),
                             hi_price(lq), lq->in_stock,  orders[lq->sort],
                             lq->after,    lq->after_rid, lq->after_key};
    return search_pg_page(db, &q, pg->want, pg->rid, pg->price, pg->tier, &pg->n);
}

/* A growing response body; its memory goes to the response. */
struct body {
    char *p;
    size_t len, cap;
};

static void body_put(struct body *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = souk_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void body_puts(struct body *b, const char *s) { body_put(b, s, strlen(s)); }

/* Append the rendered product with this rid to the body. 0, or the failed step's error
 * (SOUK_EDB for a row that vanished: products are archived, never deleted). */
static int put_product(struct souk_db *db, struct body *b, int64_t rid)
{
    struct souk_stmt *st = souk_db_query(db, list_statements[L_ROW].sql, "i", rid);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    body_puts(b, souk_stmt_text(st, 0));
    souk_stmt_done(st);
    return 0;
}

/* The page of products lq and spg ask for, as the answer, in a read transaction. */
static int list_page(struct souk_req *r, struct list_query *lq, struct souk_page *spg)
{
    bool has_q = lq->q != NULL && lq->q[0] != '\0';
    struct souk_db *db = souk_req_db(r);
    int rc = 0;
    struct page *pg = souk_req_alloc(r, sizeof(*pg));
    pg->n = 0;
    pg->want = (int)spg->limit; /* one more tells whether a next page exists */
    if (has_q && souk_db_engine(db) == SOUK_DB_POSTGRES)
        rc = page_search_pg(db, lq, pg);
    else
        switch (lq->sort) {
        case SORT_RELEVANCE:
            rc = page_relevance(r, lq, pg);
            break;
        case SORT_NEWEST:
            rc = has_q ? page_search_newest(r, lq, pg) : page_newest(db, lq, pg);
            break;
        case SORT_PRICE_ASC:
            rc = has_q ? page_search_price_asc(r, lq, pg) : page_price_asc(db, lq, pg);
            break;
        case SORT_PRICE_DESC:
            rc = has_q ? page_search_price_desc(r, lq, pg) : page_price_desc(db, lq, pg);
            break;
        }
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot list the products");
    bool more = pg->n > spg->size;
    int n = more ? (int)spg->size : pg->n;
    struct body b = {NULL, 0, 0};
    body_puts(&b, "{\"items\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            body_puts(&b, ",");
        rc = put_product(db, &b, pg->rid[i]);
        if (rc != 0) { /* a part of a list is not the list */
            free(b.p);
            return souk_handler_db_error(r, rc, "cannot list the products");
        }
    }
    body_puts(&b, "],\"next_page_token\":");
    if (more) {
        json_t *token = next_token(lq, spg, pg, n - 1);
        if (token == NULL) {
            free(b.p);
            return souk_problem(r, 500, "internal", "cannot list the products");
        }
        body_puts(&b, "\""); /* base64url: nothing to escape */
        body_puts(&b, json_string_value(token));
        body_puts(&b, "\"}");
        json_decref(token);
    } else {
        body_puts(&b, "null}");
    }
    souk_reply_raw(r, "application/json", b.p, b.len, true);
    return 200;
}

int products_list(struct souk_req *r)
{
    struct souk_check c;
    struct list_query lq;
    struct souk_page spg;
    souk_check_init(&c);
    int rc = parse_list_query(r, &lq, &c);
    if (rc != 0) {
        souk_check_free(&c);
        return souk_handler_db_error(r, rc, "cannot search the catalog");
    }
    /* the token is bound to everything that decides the list; free text goes
     * length-prefixed, so no two queries print the same */
    int status = souk_page_start(
        &spg, r, &c, "products", "q=%zu:%s cat=%zu:%s min=%lld max=%lld stock=%d sort=%d",
        strlen(lq.key), lq.key, lq.category != NULL ? strlen(lq.category) : 0,
        lq.category != NULL ? lq.category : "", (long long)lq.min_price, (long long)lq.max_price,
        (int)lq.in_stock, (int)lq.sort);
    if (status != 0)
        return status;
    if (!take_position(&lq, &spg)) {
        souk_check_init(&c);
        souk_check_fail(&c, "page_token", "is not a page token of this list, or was altered");
        return souk_problem_check(r, &c);
    }
    static const char empty[] = "{\"items\":[],\"next_page_token\":null}";
    bool has_q = lq.q != NULL && lq.q[0] != '\0';
    bool on_pg = souk_db_engine(souk_req_db(r)) == SOUK_DB_POSTGRES;
    if ((has_q && lq.words[0] == '\0') || /* only punctuation: nothing can match */
        (on_pg && ((has_q && !utf8(lq.q)) || (lq.category != NULL && !utf8(lq.category))))) {
        souk_reply_raw(r, "application/json", (char *)empty, sizeof(empty) - 1, false);
        return 200;
    }
    /* One read snapshot for the page and its rows: the page is consistent, and SQLite
     * takes its WAL read lock once instead of once a statement (a fifth of a search's
     * CPU went to that lock's fcntl calls). */
    struct souk_db *db = souk_req_db(r);
    rc = souk_db_begin_mode(db, SOUK_TX_READ);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot list the products");
    status = list_page(r, &lq, &spg);
    souk_db_rollback(db); /* read only: nothing to keep */
    return status;
}
