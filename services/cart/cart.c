/* cart.c: the cart's handlers. A line keeps the catalog's name and unit price as
 * of when it was written (refreshed by events.c); a PUT takes them from the
 * catalog's answer, kept in cart_products for SOUK_CART_PRODUCT_TTL_MS and dropped
 * by product.updated (README's "Freshness"): an unknown product is always asked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cart.h"
#include "souk/catalog/v1/catalog.pb-c.h"
#include "souk/client.h"
#include "souk/grpc.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

#define CATALOG_TIMEOUT_MS 2000
#define URL_MAX            512

/* A line as its JSON text, rendered by the database: the cart's answer is these
 * joined, with no JSON object per field to build and dump (a fifth of a PUT's CPU
 * in the cart went to building and dumping them: bench/profile-notes.md). */
// clang-format off
#define LINE_JSON                                                                                  \
    SOUK_IF_SQLITE("json_object(") SOUK_IF_PG("json_build_object(")                                \
    "'product_id', product_id, 'name', name, 'unit_price_cents', unit_price_cents,"                \
    " 'quantity', quantity, 'line_total_cents', unit_price_cents * quantity)" SOUK_IF_PG("::text")
/* each line, its total, and its currency as a JSON string */
#define CART_SQL                                                                                   \
    "SELECT " LINE_JSON ", unit_price_cents * quantity, "                                          \
    SOUK_IF_SQLITE("json_quote(currency)") SOUK_IF_PG("to_json(currency)::text")                   \
    " FROM cart_items WHERE user_id = ? ORDER BY added_at, product_id"
// clang-format on
#define CART_JSON_MAX (CART_LINES_MAX * 4096 + 256) /* lines of at most ~4 KB each */

/* The cart of user as {items, subtotal_cents, currency}, rendered, into *out and
 * *len (malloc'd): 0, the database's error, or SOUK_ENOMEM past CART_JSON_MAX. The
 * currency is the last line's, "USD" for an empty cart. */
static int cart_render(struct souk_db *db, const char *user, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *buf = NULL, currency[32] = "\"USD\"";
    size_t n = 0;
    int64_t subtotal = 0;
    int rc, lines = 0;
    FILE *f = NULL;
    struct souk_stmt *st = souk_db_query(db, CART_SQL, "s", user);
    if (st == NULL)
        return SOUK_EDB;
    if ((f = open_memstream(&buf, &n)) == NULL) {
        rc = SOUK_ENOMEM;
        goto out;
    }
    fputs("{\"items\":[", f);
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        const char *line = souk_stmt_text(st, 0), *cur = souk_stmt_text(st, 2);
        fprintf(f, "%s%s", lines++ > 0 ? "," : "", line != NULL ? line : "null");
        subtotal += souk_stmt_int(st, 1);
        if (cur != NULL && strlen(cur) < sizeof(currency))
            snprintf(currency, sizeof(currency), "%s", cur);
        if (ftell(f) > CART_JSON_MAX) {
            rc = SOUK_ENOMEM;
            goto out;
        }
    }
    st = NULL; /* done or failed: the statement is reset */
    if (rc == SOUK_DONE)
        fprintf(f, "],\"subtotal_cents\":%lld,\"currency\":%s}", (long long)subtotal, currency);
out:
    if (st != NULL)
        souk_stmt_done(st);
    if (f != NULL && fclose(f) != 0 && rc == SOUK_DONE)
        rc = SOUK_ENOMEM;
    if (rc != SOUK_DONE) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int reply_cart(struct souk_req *r, const char *user, int status)
{
    char *doc;
    size_t len;
    int rc = cart_render(souk_req_db(r), user, &doc, &len);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot read the cart");
    souk_reply_raw(r, "application/json", doc, len, true);
    return status;
}

int cart_get(struct souk_req *r) { return reply_cart(r, souk_req_identity(r)->sub, 200); }

int cart_internal_get(struct souk_req *r)
{
    const char *user = souk_req_param(r, "user_id");
    if (!souk_id_valid(user, "usr"))
        return souk_problem(r, 404, "not_found", "no such user");
    return reply_cart(r, user, 200);
}

/* Is s an RFC 3339 UTC time as the kit writes them ("2026-11-29T22:18:01.123Z")?
 * The cart compares it as text with the lines' updated_at. */
static bool utc_time(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = strlen(s);
    if (n < sizeof(shape) || n >= SOUK_TIME_MAX || s[n - 1] != 'Z')
        return false;
    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    for (size_t i = sizeof(shape) - 1; i < n - 1; i++)
        if (!(s[i] == '.' && i == sizeof(shape) - 1) && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

/* POST /internal/v1/carts/{user_id}/clear {product_ids?, placed_at?}: what
 * order.confirmed does, for a caller that wants it at once (ClearCart over gRPC). */
int cart_internal_clear(struct souk_req *r)
{
    static const char *const fields[] = {"product_ids", "placed_at", NULL};
    const char *user = souk_req_param(r, "user_id");
    if (!souk_id_valid(user, "usr"))
        return souk_problem(r, 404, "not_found", "no such user");
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, fields);
    if (body == NULL)
        return souk_req_status(r);
    json_t *ids = souk_json_array(&c, body, "product_ids", SOUK_OPTIONAL, CART_LINES_MAX * 2);
    const char *placed = souk_json_str(&c, body, "placed_at", SOUK_OPTIONAL, 1, SOUK_TIME_MAX - 1);
    if (placed != NULL && !utc_time(placed))
        souk_check_fail(&c, "placed_at", "must be an RFC 3339 UTC time");
    size_t i;
    json_t *it;
    json_array_foreach(ids, i,
                       it) if (!json_is_string(it) || !souk_id_valid(json_string_value(it), "prd"))
        souk_check_fail(&c, souk_req_printf(r, "product_ids[%zu]", i), "must be a product id");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    souk_check_free(&c);
    /* an empty list names no line: the whole cart, like a missing one */
    int rc = cart_empty(souk_req_db(r), user, json_array_size(ids) > 0 ? ids : NULL, placed);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot write the cart");
    return reply_cart(r, user, 200);
}

/* Where product lookups go: SOUK_CATALOG_GRPC_URL when set, else SOUK_CATALOG_URL. */
static const char *catalog_peer(void)
{
    return cart_catalog_rpc[0] != '\0' ? cart_catalog_rpc : cart_catalog_url;
}

/* The catalog's product id over gRPC (SOUK_CATALOG_GRPC_URL): GetProducts with one
 * id, read as the message it is (the name, price and currency are all a line
 * keeps; no JSON of the whole product is made); an id in missing_ids is the REST
 * 404. The same answer as fetch_product: *out has name, currency, price_cents. */
static int fetch_product_rpc(struct souk_req *r, const char *id, json_t **out)
{
    char *ids[1] = {(char *)id};
    Souk__Catalog__V1__GetProductsRequest req = SOUK__CATALOG__V1__GET_PRODUCTS_REQUEST__INIT;
    req.n_ids = 1;
    req.ids = ids;
    struct souk_grpc_call call = {.method = "/souk.catalog.v1.CatalogInternal/GetProducts",
                                  .request = &req.base,
                                  .response_type =
                                      &souk__catalog__v1__get_products_response__descriptor,
                                  .service_token = true,
                                  .parent = r,
                                  .timeout_ms = CATALOG_TIMEOUT_MS,
                                  .retries = 1 /* a read: another replica may answer */};
    struct souk_grpc_result res;
    int rc = souk_grpc_call(catalog_peer(), &call, &res), status = 503;
    const Souk__Catalog__V1__GetProductsResponse *m =
        rc == 0 ? (const Souk__Catalog__V1__GetProductsResponse *)res.response : NULL;
    *out = NULL;
    if (m != NULL && m->n_items == 1 && m->items[0] != NULL) {
        const Souk__Catalog__V1__Product *p = m->items[0];
        *out = json_pack("{s:s,s:s,s:I}", "name", p->name, "currency", p->currency, "price_cents",
                         (json_int_t)p->price_cents);
        status = *out != NULL ? 200 : 503;
    } else if (m != NULL && m->n_items == 0 && m->n_missing_ids == 1) {
        status = 404;
    } else {
        souk_warn("catalog lookup failed", "{s:s,s:i,s:s}", "product_id", id, "status", res.status,
                  "error", rc != 0 ? souk_strerror(rc) : res.message);
    }
    souk_grpc_result_free(&res);
    return status;
}

/* Ask the catalog for product id. Returns 200 with *out (owned by the caller), 404
 * when the catalog does not know it, or 503 when the catalog could not answer. */
static int fetch_product(struct souk_req *r, const char *id, json_t **out)
{
    if (souk_grpc_url(catalog_peer()))
        return fetch_product_rpc(r, id, out);
    char base[URL_MAX], url[URL_MAX + 128];
    struct souk_response res = {0};
    int rc = souk_client_url(url, sizeof(url),
                             souk_client_pick(cart_catalog_url, base, sizeof(base)),
                             "/api/v1/products/%s", id),
        status = 503;
    if (rc == 0) {
        struct souk_call call = {.method = "GET",
                                 .url = url,
                                 .service_token = true,
                                 .parent = r,
                                 .timeout_ms = CATALOG_TIMEOUT_MS,
                                 .retries = -1,
                                 .peers = cart_catalog_url};
        rc = souk_client_do(&call, &res);
    }
    *out = NULL;
    if (rc == 0 && res.status == 200 && json_is_object(res.json)) {
        *out = json_incref(res.json);
        status = 200;
    } else if (rc == 0 && res.status == 404) {
        status = 404;
    } else {
        souk_warn("catalog lookup failed", "{s:s,s:i,s:s}", "product_id", id, "status", res.status,
                  "error", souk_strerror(rc));
    }
    souk_response_free(&res);
    return status;
}

static int remove_line(struct souk_req *r, const char *user, const char *product)
{
    int rc =
        souk_db_run(souk_req_db(r), "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?",
                    "ss", user, product);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot write the cart");
    return reply_cart(r, user, 200);
}

struct line {
    const char *user, *product, *now;
    const char *name, *currency; /* the catalog's answer; NULL: price it from cart_products */
    int64_t price, qty;
    int64_t asked_ms; /* the cart's clock when the catalog was asked for that answer */
    bool cache;       /* keep the answer in cart_products (and refuse one older than an event) */
    char *doc;        /* out: the cart after the write, rendered in its transaction */
    size_t len;
};

/* The cart as the write left it, read in the write's transaction (one transaction
 * per PUT, not a second one to read it back): 0 or cart_render's error. A run again
 * by souk_db_tx renders again. */
static int render_in_tx(struct souk_db *db, struct line *l)
{
    free(l->doc);
    return cart_render(db, l->user, &l->doc, &l->len);
}

/* What write_line_tx says besides 0 (written) and the database's errors; with any of
 * them nothing was written and the commit is a no-op. */
enum { TX_FULL = 1, TX_MISS = 2, TX_RACED = 3 };

/* The size check, the product (the catalog's answer in l, or else cart_products' row
 * when it is younger than the TTL) and the write in one transaction, run again by
 * souk_db_tx when PostgreSQL saw a concurrent write. TX_MISS: no fresh row, ask the
 * catalog; TX_RACED: a product.updated was heard since the catalog was asked, so
 * its answer may be older than the event: ask again (the race of README's
 * "Freshness"); TX_FULL: the cart is full. */
static int write_line_tx(struct souk_db *db, void *arg)
{
    struct line *l = arg;
    int64_t now_ms = souk_wall_ms();
    /* the cart's size, whether the line is one of it (the size check needs both),
     * and what cart_products knows of the product, in one statement */
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT c.n, c.e, p.fetched_ms, p.invalidated_ms FROM"
                                         " (SELECT count(*) AS n, count(*) FILTER"
                                         " (WHERE product_id = ?) AS e"
                                         " FROM cart_items WHERE user_id = ?) c"
                                         " LEFT JOIN cart_products p ON p.product_id = ?",
                                         "sss", l->product, l->user, l->product);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    int64_t lines = souk_stmt_int(st, 0), exists = souk_stmt_int(st, 1);
    bool cached = !souk_stmt_null(st, 2);
    int64_t fetched = cached ? souk_stmt_int(st, 2) : 0;
    int64_t invalidated = souk_stmt_null(st, 3) ? 0 : souk_stmt_int(st, 3);
    souk_stmt_done(st);
    if (l->name == NULL && (!cached || fetched < now_ms - cart_product_ttl_ms))
        return TX_MISS;
    if (l->name != NULL && l->cache && invalidated >= l->asked_ms)
        return TX_RACED;
    if (exists == 0 && lines >= CART_LINES_MAX)
        return TX_FULL;
    if (l->name == NULL) { /* priced from the row just read, in this transaction */
        rc = souk_db_run(
            db,
            "INSERT INTO cart_items (user_id, product_id, name, unit_price_cents, currency,"
            " quantity, added_at, updated_at) SELECT ?, product_id, name, unit_price_cents,"
            " currency, ?, ?, ? FROM cart_products WHERE product_id = ?"
            " ON CONFLICT (user_id, product_id) DO UPDATE SET name = excluded.name,"
            " unit_price_cents = excluded.unit_price_cents, currency = excluded.currency,"
            " quantity = excluded.quantity, updated_at = excluded.updated_at",
            "sisss", l->user, l->qty, l->now, l->now, l->product);
        if (rc != 1)
            return rc < 0 ? rc : SOUK_EDB;
        return render_in_tx(db, l);
    }
    if (l->cache && (!cached || fetched < l->asked_ms)) { /* a newer answer stays */
        rc = souk_db_run(db,
                         "INSERT INTO cart_products (product_id, name, unit_price_cents, currency,"
                         " fetched_ms) VALUES (?, ?, ?, ?, ?) ON CONFLICT (product_id) DO UPDATE"
                         " SET name = excluded.name, unit_price_cents = excluded.unit_price_cents,"
                         " currency = excluded.currency, fetched_ms = excluded.fetched_ms",
                         "ssisi", l->product, l->name, l->price, l->currency, l->asked_ms);
        if (rc < 0)
            return rc;
    }
    rc = souk_db_run(
        db,
        "INSERT INTO cart_items (user_id, product_id, name, unit_price_cents, currency, quantity,"
        " added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, product_id) DO UPDATE SET name = excluded.name,"
        " unit_price_cents = excluded.unit_price_cents, currency = excluded.currency,"
        " quantity = excluded.quantity, updated_at = excluded.updated_at",
        "sssisiss", l->user, l->product, l->name, l->price, l->currency, l->qty, l->now, l->now);
    return rc < 0 ? rc : render_in_tx(db, l);
}

#define ASK_MAX 3 /* catalog answers raced by events before the line is written uncached */

/* PUT: priced from cart_products when the cart asked the catalog for this product
 * less than SOUK_CART_PRODUCT_TTL_MS ago and no product.updated came since, else
 * from the catalog (404 and 503 come from there: unknown products are never kept). */
int cart_put_item(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub;
    const char *product = souk_req_param(r, "product_id");
    static const char *const allowed[] = {"quantity", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    int64_t qty = souk_json_int(&c, body, "quantity", SOUK_REQUIRED, 0, CART_QTY_MAX, 0);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    if (!souk_id_valid(product, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %.64s", product);
    if (qty == 0)
        return remove_line(r, user, product);
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    struct line l = {.user = user, .product = product, .now = now, .qty = qty};
    struct souk_db *db = souk_req_db(r);
    int rc = cart_product_ttl_ms > 0 ? souk_db_tx(db, write_line_tx, &l) : TX_MISS, status = 0;
    json_t *p = NULL;
    for (int ask = 1; rc == TX_MISS || rc == TX_RACED; ask++) {
        json_decref(p);
        l.asked_ms = souk_wall_ms();
        status = fetch_product(r, product, &p);
        if (status == 404) {
            status = souk_problem(r, 404, "product_not_found", "no product %s", product);
            goto out;
        }
        if (status != 200) {
            status =
                souk_problem(r, 503, "catalog_unavailable", "the catalog cannot be reached; retry");
            goto out;
        }
        json_t *price = json_object_get(p, "price_cents");
        l.name = json_string_value(json_object_get(p, "name"));
        l.currency = json_string_value(json_object_get(p, "currency"));
        if (l.name == NULL || l.currency == NULL || !json_is_integer(price) ||
            json_integer_value(price) < 0) {
            status = souk_problem(r, 502, "bad_gateway", "the catalog sent a malformed product");
            goto out;
        }
        l.price = json_integer_value(price);
        l.cache = cart_product_ttl_ms > 0 && ask < ASK_MAX;
        rc = souk_db_tx(db, write_line_tx, &l);
    }
    if (rc == TX_FULL)
        status = souk_problem(r, 409, "cart_full", "a cart holds at most %d different products",
                              CART_LINES_MAX);
    else if (rc < 0)
        status = souk_handler_db_error(r, rc, "cannot write the cart");
    else {
        souk_reply_raw(r, "application/json", l.doc, l.len, true);
        l.doc = NULL;
        status = 200;
    }
out:
    free(l.doc);
    json_decref(p);
    return status;
}

int cart_delete_item(struct souk_req *r)
{
    const char *product = souk_req_param(r, "product_id");
    if (!souk_id_valid(product, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %.64s", product);
    return remove_line(r, souk_req_identity(r)->sub, product);
}

int cart_clear(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub;
    int rc = souk_db_run(souk_req_db(r), "DELETE FROM cart_items WHERE user_id = ?", "s", user);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot write the cart");
    return reply_cart(r, user, 200);
}
