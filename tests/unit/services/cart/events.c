/* Unit tests for services/cart/events.c on an in-memory cart: product.updated reprices
 * a line without making it look like the buyer's own later change, so the order that
 * took the line still empties it (order.confirmed), while a line the buyer really
 * changed after placing the order stays; product.updated clears cart_products. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "cart.h"
#include "souk/db.h"
#include "souk/events.h"

#define USER    "usr_01JB9ZQ7R1X3T9V2K8M4N6P0QA"
#define PRODUCT "prd_01JB9ZQ7R1X3T9V2K8M4N6P0QB"

const char *cart_catalog_url = "http://127.0.0.1:9"; /* main.c's, not linked here */
const char *cart_catalog_rpc = "";                   /* REST: the test answers no gRPC */
int64_t cart_product_ttl_ms = 30000;

static struct souk_db *db;

static int setup(void **state)
{
    (void)state;
    if (souk_db_open(&db, "sqlite::memory:") != 0 || souk_db_migrate(db, service_migrations) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    souk_db_close(db);
    return 0;
}

static void put_line(const char *at)
{
    assert_int_equal(souk_db_run(db, "DELETE FROM cart_items", NULL) >= 0, 1);
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO cart_items (user_id, product_id, name,"
                                 " unit_price_cents, currency, quantity, added_at, updated_at)"
                                 " VALUES (?, ?, 'Mug', 1200, 'USD', 2, ?, ?)",
                                 "ssss", USER, PRODUCT, at, at),
                     1);
}

static int64_t lines(void)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, "SELECT count(*) FROM cart_items", NULL), 1);
    return n;
}

static void deliver(int (*fn)(struct souk_db *, const struct souk_event *), const char *type,
                    json_t *data)
{
    struct souk_event ev = {
        "evt_01JB9ZQ7R1X3T9V2K8M4N6P0QC", type, "test", "ord_01JB9ZQ7R1X3T9V2K8M4N6P0QD",
        "2026-01-01T00:00:00.000Z",       data};
    assert_int_equal(fn(db, &ev), 0);
    json_decref(data);
}

static void confirm(const char *placed_at)
{
    deliver(cart_on_order_confirmed, "order.confirmed",
            json_pack("{s:s,s:s,s:[{s:s,s:i}]}", "user_id", USER, "placed_at", placed_at, "items",
                      "product_id", PRODUCT, "quantity", 2));
}

/* The order was placed, then the catalog repriced the product, then order.confirmed
 * arrived: the line went into the order and must leave the cart. */
static void test_a_repriced_line_still_leaves_with_its_order(void **state)
{
    (void)state;
    put_line("2026-01-01T10:00:00.000Z");
    deliver(cart_on_product_updated, "product.updated",
            json_pack("{s:s,s:s,s:i,s:s}", "product_id", PRODUCT, "name", "Big mug", "price_cents",
                      1500, "currency", "USD"));
    int64_t price = 0;
    assert_int_equal(souk_db_int(db, &price, "SELECT unit_price_cents FROM cart_items", NULL), 1);
    assert_int_equal(price, 1500);
    confirm("2026-01-01T10:00:05.000Z");
    assert_int_equal(lines(), 0);
}

/* The buyer changed the line after placing the order: a new wish, it stays. */
static void test_a_line_changed_after_the_order_stays(void **state)
{
    (void)state;
    put_line("2026-01-01T10:00:09.000Z");
    confirm("2026-01-01T10:00:05.000Z");
    assert_int_equal(lines(), 1);
}

/* product.updated clears the product's row in cart_products (a PUT then asks the
 * catalog) and records when, also for a product no PUT has asked about yet (a PUT
 * in flight then asks again, cart.c); an archived product's too. */
static void test_product_updated_clears_the_product_table(void **state)
{
    (void)state;
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO cart_products (product_id, name, unit_price_cents,"
                                 " currency, fetched_ms) VALUES (?, 'Mug', 1200, 'USD', 1)",
                                 "s", PRODUCT),
                     1);
    deliver(cart_on_product_updated, "product.updated",
            json_pack("{s:s,s:i}", "id", PRODUCT, "price_cents", 1500));
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n,
                                 "SELECT count(*) FROM cart_products WHERE name IS NULL AND"
                                 " unit_price_cents IS NULL AND fetched_ms IS NULL AND"
                                 " invalidated_ms > 1",
                                 NULL),
                     1);
    assert_int_equal(n, 1);
    const char *other = "prd_01JB9ZQ7R1X3T9V2K8M4N6P0QE";
    deliver(cart_on_product_updated, "product.updated",
            json_pack("{s:s,s:b}", "product_id", other, "archived", 1));
    assert_int_equal(souk_db_int(db, &n,
                                 "SELECT count(*) FROM cart_products WHERE product_id = ? AND"
                                 " fetched_ms IS NULL AND invalidated_ms > 0",
                                 "s", other),
                     1);
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_repriced_line_still_leaves_with_its_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_line_changed_after_the_order_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_product_updated_clears_the_product_table, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
