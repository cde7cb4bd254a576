/* main.c: the cart service (DESIGN §4): a per-user cart priced from the catalog,
 * read by orders at checkout and emptied when the order is confirmed. */
#include "cart.h"
#include "souk/service.h"
#include "souk/cart/v1/cart.pb-c.h"
#include "souk/grpc.h"
#include "souk/souk.h"

const char *cart_catalog_url, *cart_catalog_rpc;
int64_t cart_product_ttl_ms;

static const struct souk_conf config[] = {
    {"SOUK_CATALOG_URL", SOUK_CONF_STR, "http://127.0.0.1:8082", 1, 4096, &cart_catalog_url,
     "the catalog (prices and names)"},
    /* SOUK_CATALOG_URL is also where the catalog's feed is (HTTP) */
    {"SOUK_CATALOG_GRPC_URL", SOUK_CONF_STR, "", 0, 4096, &cart_catalog_rpc,
     "the catalog over gRPC (grpc://…): product lookups go there; empty: SOUK_CATALOG_URL"},
    {"SOUK_CART_PRODUCT_TTL_MS", SOUK_CONF_INT, "30000", 0, 3600000, &cart_product_ttl_ms,
     "how long a product the catalog named prices PUTs without asking it again, unless"
     " product.updated came first (ms; 0: every PUT asks)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct souk_route routes[] = {
    {"GET", "/api/v1/cart", cart_get, SOUK_USER, NULL, 0},
    {"PUT", "/api/v1/cart/items/{product_id}", cart_put_item, SOUK_USER, NULL, 1024},
    {"DELETE", "/api/v1/cart/items/{product_id}", cart_delete_item, SOUK_USER, NULL, 0},
    {"DELETE", "/api/v1/cart", cart_clear, SOUK_USER, NULL, 0},
    {"GET", "/internal/v1/carts/{user_id}", cart_internal_get, SOUK_SERVICE, "cart:read", 0},
    {"POST", "/internal/v1/carts/{user_id}/clear", cart_internal_clear, SOUK_SERVICE, "cart:write",
     1024},
    {NULL, NULL, NULL, 0, NULL, 0},
};

/* Every RPC is answered by the route it names (the kit's bridge, docs/grpc.md). */
static const struct souk_rpc_method rpcs[] = {
    SOUK_RPC_ROUTE("/souk.cart.v1.Carts/GetCart", "GET /internal/v1/carts/{user_id}",
                   souk__cart__v1__get_cart_request, souk__cart__v1__cart),
    SOUK_RPC_ROUTE("/souk.cart.v1.Carts/ClearCart", "POST /internal/v1/carts/{user_id}/clear",
                   souk__cart__v1__clear_cart_request, souk__cart__v1__cart),
    {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL},
};

static const struct souk_grpc_service grpc = {
    .listen = "127.0.0.1:9083",
    .methods = rpcs,
    .descriptors = souk_proto_descriptors,
    .descriptors_len = &souk_proto_descriptors_len,
};

static const struct souk_subscription subscriptions[] = {
    {"catalog", "product.updated", cart_on_product_updated},
    {"orders", "order.confirmed", cart_on_order_confirmed},
    {NULL, NULL, NULL},
};

static const struct souk_service cart = {
    .name = "cart",
    .listen = "127.0.0.1:8083",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .subscriptions = subscriptions,
    .grpc = &grpc,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &cart); }
