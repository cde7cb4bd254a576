/* main.c: the orders service (DESIGN §4, §5): places the cart as an order through
 * the checkout saga (reserve, authorize, commit, capture), and cancels and ships. */
#include "orders.h"
#include "souk/service.h"
#include "souk/idempotency.h"
#include "souk/grpc.h"
#include "souk/souk.h"

const char *orders_catalog_url, *orders_payments_url, *orders_cart_url, *orders_users_url;
const char *orders_catalog_rpc, *orders_payments_rpc, *orders_cart_rpc, *orders_users_rpc;
int64_t orders_wait_ms, orders_workers, orders_reservation_ttl, orders_call_timeout_ms;

static const struct souk_conf config[] = {
    {"SOUK_CATALOG_URL", SOUK_CONF_STR, "http://127.0.0.1:8082", 1, 4096, &orders_catalog_url,
     "the catalog (reservations)"},
    {"SOUK_PAYMENTS_URL", SOUK_CONF_STR, "http://127.0.0.1:8085", 1, 4096, &orders_payments_url,
     "payments"},
    {"SOUK_CART_URL", SOUK_CONF_STR, "http://127.0.0.1:8083", 1, 4096, &orders_cart_url,
     "the cart"},
    {"SOUK_USERS_URL", SOUK_CONF_STR, "http://127.0.0.1:8081", 1, 4096, &orders_users_url,
     "users (addresses)"},
    /* SOUK_<PEER>_URL is also where the feed and the keys are (HTTP): a peer's gRPC
     * address has a variable of its own; a grpc:// SOUK_<PEER>_URL works too */
    {"SOUK_CATALOG_GRPC_URL", SOUK_CONF_STR, "", 0, 4096, &orders_catalog_rpc,
     "the catalog over gRPC (grpc://…): the saga's calls go there; empty: SOUK_CATALOG_URL"},
    {"SOUK_PAYMENTS_GRPC_URL", SOUK_CONF_STR, "", 0, 4096, &orders_payments_rpc,
     "payments over gRPC; empty: SOUK_PAYMENTS_URL"},
    {"SOUK_CART_GRPC_URL", SOUK_CONF_STR, "", 0, 4096, &orders_cart_rpc,
     "the cart over gRPC; empty: SOUK_CART_URL"},
    {"SOUK_USERS_GRPC_URL", SOUK_CONF_STR, "", 0, 4096, &orders_users_rpc,
     "users over gRPC (addresses); empty: SOUK_USERS_URL"},
    {"SOUK_ORDERS_WAIT_MS", SOUK_CONF_INT, "5000", 0, 30000, &orders_wait_ms,
     "how long POST /orders and cancel wait for the saga before answering 202"},
    {"SOUK_ORDERS_WORKERS", SOUK_CONF_INT, "4", 1, 64, &orders_workers, "saga worker threads"},
    {"SOUK_ORDERS_RESERVATION_TTL", SOUK_CONF_INT, "900", 30, 86400, &orders_reservation_ttl,
     "seconds a reservation holds stock before the catalog lets it go"},
    {"SOUK_ORDERS_CALL_TIMEOUT_MS", SOUK_CONF_INT, "3000", 100, 60000, &orders_call_timeout_ms,
     "timeout of one call to a peer"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct souk_route routes[] = {
    {"POST", "/api/v1/orders", orders_create, SOUK_USER, NULL, 4096},
    {"GET", "/api/v1/orders", orders_list, SOUK_USER, NULL, 0},
    {"GET", "/api/v1/orders/{id}", orders_get, SOUK_USER, NULL, 0},
    {"POST", "/api/v1/orders/{id}/cancel", orders_cancel, SOUK_USER, NULL, 1024},
    {"POST", "/api/v1/orders/{id}/ship", orders_ship, SOUK_ADMIN, NULL, 1024},
    {NULL, NULL, NULL, 0, NULL, 0},
};

static int start(void)
{
    int rc = souk_idem_init(souk_db_thread());
    if (rc == 0)
        rc = souk_idem_purge(souk_db_thread(), SOUK_IDEM_TTL_MS) < 0 ? SOUK_EDB : 0;
    if (rc == 0)
        rc = wait_start();
    if (rc == 0)
        rc = saga_start();
    return rc;
}

static void stop(void)
{
    saga_stop();
    wait_stop();
}

/* No RPCs of its own (no service calls orders while answering): its gRPC port serves
 * the standard health service, so that every service is probed the same way. */
static const struct souk_grpc_service grpc = {.listen = "127.0.0.1:9084"};

static const struct souk_service orders = {
    .name = "orders",
    .listen = "127.0.0.1:8084",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .start = start,
    .stop = stop,
    .publishes = true,
    .grpc = &grpc,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &orders); }
