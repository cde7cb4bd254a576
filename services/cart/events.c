/* events.c: what the cart hears: product.updated (catalog) refreshes the name and
 * price on every line of that product, or drops the lines of an archived one, and
 * drops what cart_products knew of it;
 * order.confirmed (orders) takes the ordered products out of the buyer's cart
 * (unless the buyer changed that line after placing the order). */
#include <string.h>

#include "cart.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"

int cart_on_product_updated(struct souk_db *db, const struct souk_event *ev)
{
    /* docs/events.md names it product_id; the catalog also sends id */
    json_t *d = ev->data;
    const char *id = json_string_value(json_object_get(d, "product_id"));
    if (id == NULL)
        id = json_string_value(json_object_get(d, "id"));
    if (id == NULL || !souk_id_valid(id, "prd"))
        return SOUK_EINVAL;
    /* what cart_products knew of it is dropped, and a PUT whose catalog answer is
     * older than now will ask again (cart.c, write_line_tx) */
    if (souk_db_run(db,
                    "INSERT INTO cart_products (product_id, invalidated_ms) VALUES (?, ?)"
                    " ON CONFLICT (product_id) DO UPDATE SET name = NULL, unit_price_cents = NULL,"
                    " currency = NULL, fetched_ms = NULL, invalidated_ms = " SOUK_SQL_GREATEST
                    "(cart_products.invalidated_ms, excluded.invalidated_ms)",
                    "si", id, souk_wall_ms()) < 0)
        return SOUK_EDB;
    if (json_is_true(json_object_get(d, "archived")))
        return souk_db_run(db, "DELETE FROM cart_items WHERE product_id = ?", "s", id) < 0
                   ? SOUK_EDB
                   : 0;
    const char *name = json_string_value(json_object_get(d, "name"));
    const char *currency = json_string_value(json_object_get(d, "currency"));
    json_t *price = json_object_get(d, "price_cents");
    int64_t cents = json_is_integer(price) ? json_integer_value(price) : -1;
    /* updated_at is the buyer's last change to the line (order.confirmed keeps lines
     * changed after the order was placed): a new price is not one */
    int rc = souk_db_run(db,
                         "UPDATE cart_items SET name = COALESCE(?, name),"
                         " unit_price_cents = CASE WHEN ? < 0 THEN unit_price_cents ELSE ? END,"
                         " currency = COALESCE(?, currency) WHERE product_id = ?",
                         "SiiSs", name, cents, cents, currency, id);
    return rc < 0 ? SOUK_EDB : 0;
}

int cart_empty(struct souk_db *db, const char *user, const json_t *products, const char *placed)
{
    if (products == NULL) /* no lines named: the whole cart went */
        return souk_db_run(db,
                           "DELETE FROM cart_items WHERE user_id = ? AND (?2 IS NULL OR"
                           " updated_at <= ?2)",
                           "sS", user, placed) < 0
                   ? SOUK_EDB
                   : 0;
    size_t i;
    json_t *it;
    json_array_foreach(products, i, it)
    {
        const char *product = json_string_value(it);
        if (product == NULL)
            continue;
        if (souk_db_run(db,
                        "DELETE FROM cart_items WHERE user_id = ? AND product_id = ?"
                        " AND (?3 IS NULL OR updated_at <= ?3)",
                        "ssS", user, product, placed) < 0)
            return SOUK_EDB;
    }
    return 0;
}

int cart_on_order_confirmed(struct souk_db *db, const struct souk_event *ev)
{
    const char *user = json_string_value(json_object_get(ev->data, "user_id"));
    json_t *items = json_object_get(ev->data, "items");
    /* a line written after the order was placed is a new wish: it stays */
    const char *placed = json_string_value(json_object_get(ev->data, "placed_at"));
    if (placed != NULL && strlen(placed) >= SOUK_TIME_MAX)
        placed = NULL;
    if (user == NULL || strlen(user) >= SOUK_SUB_MAX)
        return SOUK_EINVAL;
    if (!json_is_array(items)) /* no lines named: the whole cart went into the order */
        return souk_db_run(db, "DELETE FROM cart_items WHERE user_id = ?", "s", user) < 0 ? SOUK_EDB
                                                                                          : 0;
    json_t *products = json_array(), *it;
    size_t i;
    json_array_foreach(items, i, it)
    {
        json_t *p = json_object_get(it, "product_id");
        if (json_is_string(p))
            json_array_append(products, p);
    }
    int rc = cart_empty(db, user, products, placed);
    json_decref(products);
    if (rc == 0)
        souk_info("cart emptied by order", "{s:s,s:s}", "user_id", user, "order_id",
                  ev->subject ? ev->subject : "");
    return rc;
}
