/* cart.c: the cart's handlers. A line keeps the catalog's name and unit price as
 * of when it was written (refreshed by events.c); a PUT asks the catalog for the
 * product first, so an unknown or archived product is a 404 and the price is
 * current. */
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
    const char *user, *product, *name, *currency, *now;
    int64_t price, qty;
};

/* The size check and the write in one transaction, run again by souk_db_tx when
 * PostgreSQL saw a concurrent write to the same cart. 1 when the cart is full. */
static int write_line_tx(struct souk_db *db, void *arg)
{
    const struct line *l = arg;
    /* the cart's size, and whether the line is one of it, in one statement: the size
     * check needs both (FILTER is in both engines) */
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT count(*), count(*) FILTER (WHERE product_id = ?)"
                                         " FROM cart_items WHERE user_id = ?",
                                         "ss", l->product, l->user);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    int64_t lines = souk_stmt_int(st, 0), exists = souk_stmt_int(st, 1);
    souk_stmt_done(st);
    if (exists == 0 && lines >= CART_LINES_MAX)
        return 1; /* nothing written: the commit is a no-op */
    rc = souk_db_run(
        db,
        "INSERT INTO cart_items (user_id, product_id, name, unit_price_cents, currency, quantity,"
        " added_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (user_id, product_id) DO UPDATE SET name = excluded.name,"
        " unit_price_cents = excluded.unit_price_cents, currency = excluded.currency,"
        " quantity = excluded.quantity, updated_at = excluded.updated_at",
        "sssisiss", l->user, l->product, l->name, l->price, l->currency, l->qty, l->now, l->now);
    return rc < 0 ? rc : 0;
}

/* Insert or update one line; 0, or a problem status. */
static int write_line(struct souk_req *r, const char *user, const char *product, json_t *p,
                      int64_t qty)
{
    const char *name = json_string_value(json_object_get(p, "name"));
    const char *currency = json_string_value(json_object_get(p, "currency"));
    json_t *price = json_object_get(p, "price_cents");
    if (name == NULL || currency == NULL || !json_is_integer(price) ||
        json_integer_value(price) < 0)
        return souk_problem(r, 502, "bad_gateway", "the catalog sent a malformed product");
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    struct line l = {user, product, name, currency, now, json_integer_value(price), qty};
    int rc = souk_db_tx(souk_req_db(r), write_line_tx, &l);
    if (rc == 1)
        return souk_problem(r, 409, "cart_full", "a cart holds at most %d different products",
                            CART_LINES_MAX);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot write the cart");
    return 0;
}

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
    json_t *p = NULL;
    int status = fetch_product(r, product, &p);
    if (status == 404)
        return souk_problem(r, 404, "product_not_found", "no product %s", product);
    if (status != 200)
        return souk_problem(r, 503, "catalog_unavailable", "the catalog cannot be reached; retry");
    status = write_line(r, user, product, p, qty);
    json_decref(p);
    return status != 0 ? status : reply_cart(r, user, 200);
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
