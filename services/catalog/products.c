/* products.c: the public catalog reads besides the list (listing.c): one product with
 * its ETag, and the categories with their counts (kept by triggers, never counted). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "listing.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

/* GET's product is written here from its columns, not by the database's JSON
 * functions (PRODUCT_JSON, which the lists use): the same object, keys in the same
 * order, strings escaped as SQLite's json_object escapes them, without the database
 * building the document in a growing string that the answer then copies (a tenth of
 * the route's CPU). attributes goes in as stored: the table's CHECK keeps it valid
 * JSON in both engines, and what writes it writes it compact. test_catalog's
 * test_product_shape_and_etag holds the two renderings to the same object. */
enum col_kind { COL_TEXT, COL_INT, COL_JSON };
static const struct {
    const char *member; /* "key": as PRODUCT_JSON names it, ready to copy */
    enum col_kind kind;
} product_cols[] = {
    {"\"id\":", COL_TEXT},         {"\"sku\":", COL_TEXT},
    {"\"name\":", COL_TEXT},       {"\"description\":", COL_TEXT},
    {"\"price_cents\":", COL_INT}, {"\"currency\":", COL_TEXT},
    {"\"category\":", COL_TEXT},   {"\"image_url\":", COL_TEXT},
    {"\"attributes\":", COL_JSON}, {"\"stock_available\":", COL_INT},
    {"\"created_at\":", COL_TEXT}, {"\"updated_at\":", COL_TEXT},
};
#define PRODUCT_VERSION_COL ((int)SOUK_ARRAY_LEN(product_cols)) /* p.version, after them */

static const char product_get_sql[] =
    "SELECT p.id, p.sku, p.name, p.description, p.price_cents, p.currency, p.category,"
    " p.image_url, p.attributes, p.on_hand - p.reserved, p.created_at, p.updated_at, p.version"
    " FROM products p WHERE p.id = ? AND p.archived = 0";

/* Bytes SQLite's json_object writes as they are: all but '"', '\\' and controls. */
static bool plain(unsigned char c) { return c >= 0x20 && c != '"' && c != '\\'; }

/* Whether all 8 bytes at s are plain, in a few word operations instead of a test per
 * byte (the exact whole-word forms of "has a byte below" and "has a zero byte",
 * Hacker's Delight 6-1): texts are mostly plain, and this is the route's hot loop. */
static bool plain8(const char *s)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x;
    memcpy(&x, s, 8);
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\');
    uint64_t below_space = (x - ones * 0x20) & ~x;
    uint64_t has_quote = (quote - ones) & ~quote, has_backslash = (backslash - ones) & ~backslash;
    return ((below_space | has_quote | has_backslash) & highs) == 0;
}

/* s (n bytes) as a JSON string at out, room for 6 bytes per byte and 2; past its end */
static char *put_json_string(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_form[32] = {
        ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
    *out++ = '"';
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run + 8 <= n && plain8(s + run))
            run += 8;
        while (run < n && plain((unsigned char)s[run]))
            run++;
        memcpy(out, s + i, run - i); /* UTF-8 as stored */
        out += run - i;
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        *out++ = '\\';
        if (c == '"' || c == '\\') {
            *out++ = (char)c;
        } else if (short_form[c] != 0) {
            *out++ = short_form[c];
        } else {
            memcpy(out, "u00", 3);
            out[3] = hex[c >> 4];
            out[4] = hex[c & 15];
            out += 5;
        }
        i = run + 1;
    }
    *out++ = '"';
    return out;
}

/* v in decimal at out (room for 21 bytes); past its end */
static char *put_int(char *out, int64_t v)
{
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *out++ = '-';
    while (n > 0)
        *out++ = digits[--n];
    return out;
}

/* The product on st's row as a JSON object: malloc'd, its length in *len. */
static char *product_json(struct souk_stmt *st, size_t *len)
{
    enum { NCOLS = SOUK_ARRAY_LEN(product_cols) };
    const char *text[NCOLS];
    size_t tlen[NCOLS];
    size_t need = 3; /* {}, NUL */
    for (int i = 0; i < NCOLS; i++) {
        need += strlen(product_cols[i].member) + 1; /* and a comma */
        text[i] = product_cols[i].kind == COL_INT ? NULL : souk_stmt_text(st, i);
        tlen[i] = text[i] != NULL ? strlen(text[i]) : 0;
        if (product_cols[i].kind == COL_INT)
            need += 24;
        else if (text[i] == NULL)
            need += 4; /* null: never, the columns are NOT NULL */
        else
            need += (product_cols[i].kind == COL_TEXT ? 6 : 1) * tlen[i] + 2;
    }
    char *doc = souk_xmalloc(need), *o = doc;
    *o++ = '{';
    for (int i = 0; i < NCOLS; i++) {
        if (i > 0)
            *o++ = ',';
        size_t m = strlen(product_cols[i].member);
        memcpy(o, product_cols[i].member, m);
        o += m;
        if (product_cols[i].kind == COL_INT) {
            o = put_int(o, souk_stmt_int(st, i));
        } else if (text[i] == NULL) {
            memcpy(o, "null", 4);
            o += 4;
        } else if (product_cols[i].kind == COL_TEXT) {
            o = put_json_string(o, text[i], tlen[i]);
        } else {
            memcpy(o, text[i], tlen[i]);
            o += tlen[i];
        }
    }
    *o++ = '}';
    *o = '\0';
    *len = (size_t)(o - doc);
    return doc;
}

int products_get(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!souk_id_valid(id, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %s", id);
    struct souk_stmt *st = souk_db_query(souk_req_db(r), product_get_sql, "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? souk_handler_db_error(r, rc, "cannot read the product")
                      : souk_problem(r, 404, "product_not_found", "no product %s", id);
    char etag[48] = "\"v"; /* "v7" */
    char *e = put_int(etag + 2, souk_stmt_int(st, PRODUCT_VERSION_COL));
    memcpy(e, "\"", 2);
    souk_reply_header(r, "ETag", etag);
    const char *inm = souk_req_header(r, "If-None-Match");
    if (inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
        souk_stmt_done(st);
        return 304;
    }
    size_t len;
    char *doc = product_json(st, &len);
    souk_stmt_done(st);
    souk_reply_raw(r, "application/json", doc, len, true);
    return 200;
}

/* POST /internal/v1/products/lookup {ids}: several products at once, in the order
 * asked, for the cart (GetProducts over gRPC). Unknown, archived or malformed ids
 * are listed in missing_ids, not an error. */
int products_lookup(struct souk_req *r)
{
    static const char *const fields[] = {"ids", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, fields);
    if (body == NULL)
        return souk_req_status(r);
    json_t *ids = souk_json_array(&c, body, "ids", SOUK_REQUIRED, LOOKUP_MAX), *it;
    size_t i;
    json_array_foreach(ids, i, it) if (!json_is_string(it))
        souk_check_fail(&c, souk_req_printf(r, "ids[%zu]", i), "must be a string");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    souk_check_free(&c);
    json_t *items = json_array(), *missing = json_array();
    int rc = 0;
    json_array_foreach(ids, i, it)
    {
        const char *id = json_string_value(it);
        json_t *doc = NULL;
        if (souk_id_valid(id, "prd")) {
            struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                                 "SELECT " PRODUCT_JSON " FROM products p"
                                                 " WHERE p.id = ? AND p.archived = 0",
                                                 "s", id);
            if (st == NULL) {
                rc = SOUK_EDB;
                break;
            }
            rc = souk_stmt_step(st);
            if (rc == SOUK_ROW)
                doc = json_loads(souk_stmt_text(st, 0), 0, NULL);
            souk_stmt_done(st);
            if (rc < 0)
                break;
            rc = 0;
        }
        json_array_append_new(doc != NULL ? items : missing, doc != NULL ? doc : json_incref(it));
    }
    if (rc < 0) {
        json_decref(items);
        json_decref(missing);
        return souk_handler_db_error(r, rc, "cannot read the products");
    }
    souk_reply_json(r, json_pack("{s:o,s:o}", "items", items, "missing_ids", missing));
    return 200;
}

int categories_list(struct souk_req *r)
{
    struct souk_stmt *st = souk_db_query(souk_req_db(r), list_statements[L_CATEGORIES].sql, NULL);
    if (st == NULL)
        return souk_handler_db_error(r, SOUK_EDB, "cannot read the categories");
    json_t *items = json_array();
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(items, souk_stmt_row_json(st));
    if (rc < 0) {
        json_decref(items);
        return souk_handler_db_error(r, rc, "cannot read the categories");
    }
    souk_reply_json(r, json_pack("{s:o,s:n}", "items", items, "next_page_token"));
    return 200;
}
