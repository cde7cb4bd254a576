/* products.c: the public catalog reads: search and list with filters, sorts and
 * keyset pagination; one product with its ETag; the categories. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

#define Q_MAX        200
#define MATCH_MAX    1024
#define PRICE_MAX    1000000000
#define PAGE_DEFAULT 20
#define PAGE_MAX     100
#define TOKEN_MAX    512

enum sort { SORT_RELEVANCE, SORT_PRICE_ASC, SORT_PRICE_DESC, SORT_NEWEST };
static const char *const sort_names[] = {"relevance", "price_asc", "price_desc", "newest", NULL};

struct list_query {
    const char *q, *category;
    int64_t min_price, max_price; /* -1: no bound */
    bool in_stock;
    enum sort sort;
    int64_t page_size;
    char match[MATCH_MAX]; /* the FTS5 expression built from q; "" when none */
    uint32_t filter_hash;  /* binds a page token to the query that made it */
    /* keyset position after the previous page */
    bool after;
    int64_t after_price;
    double after_score;
    const char *after_created, *after_id;
};

/* Filters shared by every listing. Parameters: ?1 category, ?2 min, ?3 max, ?4 in_stock,
 * ?5 key and ?6 id of the previous page's last row, ?7 limit, ?8 FTS match. */
#define FILTERS                                                                                    \
    " p.archived = 0"                                                                              \
    " AND (?1 IS NULL OR p.category = ?1)"                                                         \
    " AND (?2 < 0 OR p.price_cents >= ?2)"                                                         \
    " AND (?3 < 0 OR p.price_cents <= ?3)"                                                         \
    " AND (?4 = 0 OR p.on_hand - p.reserved > 0)"

/* A page query returns keys only, in order: rid (to fetch the rendered row after),
 * id, price_cents, created_at[, score] (for the next page token). Sorting the
 * matches of a search then carries four small columns instead of whole rows. */
#define KEYS     "p.rid, p.id, p.price_cents, p.created_at"
#define FROM_ALL " FROM products p WHERE" FILTERS
#define FROM_FTS                                                                                   \
    " FROM products_fts f JOIN products p ON p.rid = f.rowid WHERE products_fts MATCH ?8 "         \
    "AND" FILTERS

static const char *const list_sql[2][4] = {
    {
        /* without q */
        [SORT_RELEVANCE] = NULL,
        [SORT_PRICE_ASC] =
            "SELECT " KEYS FROM_ALL
            " AND (?6 IS NULL OR p.price_cents > ?5 OR (p.price_cents = ?5 AND p.id > ?6))"
            " ORDER BY p.price_cents, p.id LIMIT ?7",
        [SORT_PRICE_DESC] =
            "SELECT " KEYS FROM_ALL
            " AND (?6 IS NULL OR p.price_cents < ?5 OR (p.price_cents = ?5 AND p.id > ?6))"
            " ORDER BY p.price_cents DESC, p.id LIMIT ?7",
        [SORT_NEWEST] =
            "SELECT " KEYS FROM_ALL
            " AND (?6 IS NULL OR p.created_at < ?5 OR (p.created_at = ?5 AND p.id < ?6))"
            " ORDER BY p.created_at DESC, p.id DESC LIMIT ?7",
    },
    {
        /* with q: bm25 weighs a hit in the name ten times one in the description */
        [SORT_RELEVANCE] =
            "SELECT * FROM (SELECT " KEYS ", bm25(products_fts, 10.0, 1.0) AS score" FROM_FTS ")"
            " WHERE (?6 IS NULL OR score > ?5 OR (score = ?5 AND id > ?6))"
            " ORDER BY score, id LIMIT ?7",
        [SORT_PRICE_ASC] =
            "SELECT " KEYS FROM_FTS
            " AND (?6 IS NULL OR p.price_cents > ?5 OR (p.price_cents = ?5 AND p.id > ?6))"
            " ORDER BY p.price_cents, p.id LIMIT ?7",
        [SORT_PRICE_DESC] =
            "SELECT " KEYS FROM_FTS
            " AND (?6 IS NULL OR p.price_cents < ?5 OR (p.price_cents = ?5 AND p.id > ?6))"
            " ORDER BY p.price_cents DESC, p.id LIMIT ?7",
        [SORT_NEWEST] =
            "SELECT " KEYS FROM_FTS
            " AND (?6 IS NULL OR p.created_at < ?5 OR (p.created_at = ?5 AND p.id < ?6))"
            " ORDER BY p.created_at DESC, p.id DESC LIMIT ?7",
    },
};

/* Turn free text into an FTS5 query: every word becomes a quoted prefix term, all
 * required. Quoting means no input can be FTS5 syntax (no errors, no operators). */
static void build_match(const char *q, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    const unsigned char *p = (const unsigned char *)q;
    while (*p != '\0') {
        while (*p != '\0' && *p < 0x80 &&
               !((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            p++;
        const unsigned char *start = p;
        while (*p != '\0' && (*p >= 0x80 || (*p >= '0' && *p <= '9') ||
                              ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0)
            continue;
        if (len + n + 5 >= cap)
            break;
        len += (size_t)snprintf(out + len, cap - len, "%s\"%.*s\"*", len ? " " : "", (int)n,
                                (const char *)start);
    }
}

static uint32_t fnv1a(uint32_t h, const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return (h ^ 0xff) * 16777619u; /* separator, so ("ab","") differs from ("a","b") */
}

static uint32_t filter_hash(const struct list_query *lq)
{
    char nums[96];
    snprintf(nums, sizeof(nums), "%lld/%lld/%d/%d", (long long)lq->min_price,
             (long long)lq->max_price, lq->in_stock, (int)lq->sort);
    uint32_t h = 2166136261u;
    h = fnv1a(h, lq->match);
    h = fnv1a(h, lq->category);
    return fnv1a(h, nums);
}

/* A page token is base64url of {"f":filter_hash,"k":key,"i":id}. Anything else is 400. */
static void decode_token(struct souk_check *c, struct list_query *lq, const char *token,
                         struct souk_req *r)
{
    char raw[TOKEN_MAX];
    long n = strlen(token) < TOKEN_MAX ? souk_b64url_dec(token, raw, sizeof(raw) - 1) : -1;
    json_t *t = n > 0 ? json_loadb(raw, (size_t)n, 0, NULL) : NULL;
    json_t *f = json_object_get(t, "f"), *k = json_object_get(t, "k"), *i = json_object_get(t, "i");
    bool ok = json_is_integer(f) && json_is_string(i) && souk_id_valid(json_string_value(i), "prd");
    if (ok && (uint32_t)json_integer_value(f) != lq->filter_hash) {
        souk_check_fail(c, "page_token", "belongs to a different query");
        goto out;
    }
    switch (lq->sort) {
    case SORT_RELEVANCE:
        ok = ok && (json_is_real(k) || json_is_integer(k));
        if (ok)
            lq->after_score = json_number_value(k);
        break;
    case SORT_PRICE_ASC:
    case SORT_PRICE_DESC:
        ok = ok && json_is_integer(k);
        if (ok)
            lq->after_price = json_integer_value(k);
        break;
    case SORT_NEWEST:
        ok = ok && json_is_string(k) && json_string_length(k) < 40;
        if (ok)
            lq->after_created = souk_req_printf(r, "%s", json_string_value(k));
        break;
    }
    if (!ok) {
        souk_check_fail(c, "page_token", "is malformed");
        goto out;
    }
    lq->after = true;
    lq->after_id = souk_req_printf(r, "%s", json_string_value(i));
out:
    json_decref(t);
}

/* The sort keys of a page's last row. */
struct last_row {
    char id[SOUK_ID_MAX];
    int64_t price;
    char created[SOUK_TIME_MAX];
    double score;
};

static json_t *encode_token(const struct list_query *lq, const struct last_row *last)
{
    json_t *key;
    switch (lq->sort) {
    case SORT_RELEVANCE:
        key = json_real(last->score);
        break;
    case SORT_NEWEST:
        key = json_string(last->created);
        break;
    default:
        key = json_integer(last->price);
        break;
    }
    json_t *t =
        json_pack("{s:I,s:o,s:s}", "f", (json_int_t)lq->filter_hash, "k", key, "i", last->id);
    size_t len;
    char *raw = souk_json_dump(t, &len);
    json_decref(t);
    char out[TOKEN_MAX];
    souk_b64url_enc(raw, len, out, sizeof(out));
    free(raw);
    return json_string(out);
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

static int parse_list_query(struct souk_req *r, struct list_query *lq, struct souk_check *c)
{
    memset(lq, 0, sizeof(*lq));
    lq->q = souk_req_query(r, "q");
    if (lq->q != NULL && strlen(lq->q) > Q_MAX)
        souk_check_fail(c, "q", "must be at most %d characters", Q_MAX);
    else if (lq->q != NULL)
        build_match(lq->q, lq->match, sizeof(lq->match));
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
    lq->page_size = souk_check_int_text(c, "page_size", souk_req_query(r, "page_size"), 1, PAGE_MAX,
                                        PAGE_DEFAULT);
    lq->filter_hash = filter_hash(lq);
    const char *token = souk_req_query(r, "page_token");
    if (token != NULL && souk_check_ok(c))
        decode_token(c, lq, token, r);
    return souk_check_ok(c) ? 0 : SOUK_EINVAL;
}

/* Append the rendered product with this rid to the body; false if it vanished. */
static bool put_product(struct souk_db *db, struct body *b, int64_t rid)
{
    struct souk_stmt *st =
        souk_db_query(db, "SELECT " PRODUCT_JSON " FROM products p WHERE p.rid = ?", "i", rid);
    if (st == NULL || souk_stmt_step(st) != SOUK_ROW)
        return false;
    body_puts(b, souk_stmt_text(st, 0));
    souk_stmt_done(st);
    return true;
}

int products_list(struct souk_req *r)
{
    struct souk_check c;
    struct list_query lq;
    souk_check_init(&c);
    if (parse_list_query(r, &lq, &c) != 0)
        return souk_problem_check(r, &c);

    static const char empty[] = "{\"items\":[],\"next_page_token\":null}";
    bool has_q = lq.q != NULL && lq.q[0] != '\0';
    if (has_q && lq.match[0] == '\0') { /* only punctuation: nothing can match */
        souk_reply_raw(r, "application/json", (char *)empty, sizeof(empty) - 1, false);
        return 200;
    }
    const char *sql = list_sql[has_q][lq.sort];
    struct souk_db *db = souk_req_db(r);
    struct souk_stmt *st;
    const char *id = lq.after ? lq.after_id : NULL;
    int64_t limit = lq.page_size + 1; /* one more tells whether a next page exists */
    const char *match = has_q ? lq.match : NULL;
    switch (lq.sort) {
    case SORT_RELEVANCE:
        st = souk_db_query(db, sql, "SiiidSis", lq.category, lq.min_price, lq.max_price,
                           (int64_t)lq.in_stock, lq.after_score, id, limit, match);
        break;
    case SORT_NEWEST:
        st = souk_db_query(db, sql, has_q ? "SiiiSSis" : "SiiiSSi", lq.category, lq.min_price,
                           lq.max_price, (int64_t)lq.in_stock, lq.after_created, id, limit, match);
        break;
    default:
        st = souk_db_query(db, sql, has_q ? "SiiiiSis" : "SiiiiSi", lq.category, lq.min_price,
                           lq.max_price, (int64_t)lq.in_stock, lq.after_price, id, limit, match);
        break;
    }
    if (st == NULL)
        return souk_problem(r, 500, "internal", "query failed");
    /* collect the page's keys first: the rendered rows come from a second statement */
    int64_t rids[PAGE_MAX + 1];
    struct last_row last = {0};
    int64_t n = 0;
    int rc;
    bool more = false;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        if (n == lq.page_size) {
            more = true;
            souk_stmt_done(st);
            break;
        }
        rids[n++] = souk_stmt_int(st, 0);
        snprintf(last.id, sizeof(last.id), "%s", souk_stmt_text(st, 1));
        last.price = souk_stmt_int(st, 2);
        snprintf(last.created, sizeof(last.created), "%s", souk_stmt_text(st, 3));
        if (lq.sort == SORT_RELEVANCE)
            last.score = souk_stmt_double(st, 4);
    }
    if (rc < 0)
        return souk_problem(r, 500, "internal", "query failed");
    struct body b = {NULL, 0, 0};
    body_puts(&b, "{\"items\":[");
    for (int64_t i = 0; i < n; i++) {
        if (i > 0)
            body_puts(&b, ",");
        if (!put_product(db, &b, rids[i])) {
            free(b.p);
            return souk_problem(r, 500, "internal", "query failed");
        }
    }
    body_puts(&b, "],\"next_page_token\":");
    if (more) {
        json_t *token = encode_token(&lq, &last);
        body_puts(&b, "\"");
        body_put(&b, json_string_value(token),
                 json_string_length(token)); /* base64url: no escapes */
        body_puts(&b, "\"}");
        json_decref(token);
    } else {
        body_puts(&b, "null}");
    }
    souk_reply_raw(r, "application/json", b.p, b.len, true);
    return 200;
}

int products_get(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!souk_id_valid(id, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %s", id);
    struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                         "SELECT " PRODUCT_JSON ", p.version FROM products p"
                                         " WHERE p.id = ? AND p.archived = 0",
                                         "s", id);
    if (st == NULL)
        return souk_problem(r, 500, "internal", "query failed");
    int rc = souk_stmt_step(st);
    if (rc != SOUK_ROW)
        return rc < 0 ? souk_problem(r, 500, "internal", "query failed")
                      : souk_problem(r, 404, "product_not_found", "no product %s", id);
    char etag[48];
    snprintf(etag, sizeof(etag), "\"v%lld\"", (long long)souk_stmt_int(st, 1));
    souk_reply_header(r, "ETag", etag);
    const char *inm = souk_req_header(r, "If-None-Match");
    if (inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
        souk_stmt_done(st);
        return 304;
    }
    const char *doc = souk_stmt_text(st, 0);
    souk_reply_raw(r, "application/json", (char *)doc, strlen(doc), false);
    souk_stmt_done(st);
    return 200;
}

int categories_list(struct souk_req *r)
{
    struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                         "SELECT c.slug, c.name, c.description,"
                                         " (SELECT count(*) FROM products p WHERE p.category = "
                                         "c.slug AND p.archived = 0) AS product_count"
                                         " FROM categories c ORDER BY c.name",
                                         NULL);
    if (st == NULL)
        return souk_problem(r, 500, "internal", "query failed");
    json_t *items = json_array();
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(items, souk_stmt_row_json(st));
    if (rc < 0) {
        json_decref(items);
        return souk_problem(r, 500, "internal", "query failed");
    }
    souk_reply_json(r, json_pack("{s:o,s:n}", "items", items, "next_page_token"));
    return 200;
}
