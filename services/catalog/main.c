/* main.c: the catalog service: products, categories and stock (DESIGN §4). */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "demo.h"
#include "search.h"
#include "souk/service.h"
#include "souk/catalog/v1/catalog.pb-c.h"
#include "souk/events.h"
#include "souk/grpc.h"
#include "souk/souk.h"

static const struct souk_route routes[] = {
    {"GET", "/api/v1/products", products_list, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/products/{id}", products_get, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/categories", categories_list, SOUK_PUBLIC, NULL, 0},
    {"POST", "/api/v1/products", products_create, SOUK_ADMIN, NULL, 0},
    {"PATCH", "/api/v1/products/{id}", products_update, SOUK_ADMIN, NULL, 0},
    {"DELETE", "/api/v1/products/{id}", products_archive, SOUK_ADMIN, NULL, 0},
    {"PUT", "/api/v1/products/{id}/stock", products_set_stock, SOUK_ADMIN, NULL, 0},
    {"POST", "/internal/v1/reservations", reservations_create, SOUK_SERVICE, "catalog:reserve", 0},
    {"POST", "/internal/v1/reservations/{id}/commit", reservations_commit, SOUK_SERVICE,
     "catalog:reserve", 0},
    {"DELETE", "/internal/v1/reservations/{id}", reservations_release, SOUK_SERVICE,
     "catalog:reserve", 0},
    {"POST", "/internal/v1/products/lookup", products_lookup, SOUK_SERVICE, "catalog:read", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

/* Every RPC is answered by the route it names (the kit's bridge, docs/grpc.md). */
static const struct souk_rpc_method rpcs[] = {
    SOUK_RPC_ROUTE("/souk.catalog.v1.Catalog/GetProduct", "GET /api/v1/products/{id}",
                   souk__catalog__v1__get_product_request, souk__catalog__v1__product),
    SOUK_RPC_ROUTE("/souk.catalog.v1.Catalog/ListProducts", "GET /api/v1/products",
                   souk__catalog__v1__list_products_request,
                   souk__catalog__v1__list_products_response),
    SOUK_RPC_ROUTE("/souk.catalog.v1.Catalog/SearchProducts", "GET /api/v1/products",
                   souk__catalog__v1__search_products_request,
                   souk__catalog__v1__list_products_response),
    SOUK_RPC_ROUTE("/souk.catalog.v1.Catalog/ListCategories", "GET /api/v1/categories",
                   souk__catalog__v1__list_categories_request,
                   souk__catalog__v1__list_categories_response),
    SOUK_RPC_ROUTE("/souk.catalog.v1.CatalogInternal/GetProducts",
                   "POST /internal/v1/products/lookup", souk__catalog__v1__get_products_request,
                   souk__catalog__v1__get_products_response),
    SOUK_RPC_ROUTE("/souk.catalog.v1.CatalogInternal/Reserve", "POST /internal/v1/reservations",
                   souk__catalog__v1__reserve_request, souk__catalog__v1__reservation),
    SOUK_RPC_ROUTE("/souk.catalog.v1.CatalogInternal/CommitReservation",
                   "POST /internal/v1/reservations/{reservation_id}/commit",
                   souk__catalog__v1__commit_reservation_request,
                   souk__catalog__v1__reservation_state),
    SOUK_RPC_ROUTE("/souk.catalog.v1.CatalogInternal/ReleaseReservation",
                   "DELETE /internal/v1/reservations/{reservation_id}",
                   souk__catalog__v1__release_reservation_request,
                   souk__catalog__v1__reservation_state),
    {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL},
};

static const struct souk_grpc_service grpc = {
    .listen = "127.0.0.1:9082",
    .methods = rpcs,
    .descriptors = souk_proto_descriptors,
    .descriptors_len = &souk_proto_descriptors_len,
};

static const struct souk_subscription subscriptions[] = {
    {"orders", "order.cancelled", reservations_on_order_cancelled},
    {NULL, NULL, NULL},
};

static const struct souk_service catalog = {
    .name = "catalog",
    .listen = "127.0.0.1:8082",
    .routes = routes,
    .migrations = service_migrations,
    .seed = catalog_seed,
    .start = catalog_start,
    .stop = reservations_stop,
    .publishes = true,
    .subscriptions = subscriptions,
    .grpc = &grpc,
};

int catalog_start(void)
{
    struct souk_db *db = souk_db_thread();
    if (db == NULL || search_words_build(db) != 0)
        return SOUK_EDB;
    return reservations_start();
}

int main(int argc, char **argv)
{
    /* `catalog seed --products N`: the kit runs `seed`, the size is the catalog's */
    if (argc > 2 && strcmp(argv[1], "seed") == 0) {
        if (argc != 4 || strcmp(argv[2], "--products") != 0 || catalog_seed_size(argv[3]) != 0) {
            fprintf(stderr, "usage: %s seed [--products N]   (N from 1 to %d; default %d)\n",
                    argv[0], DEMO_PRODUCTS_MAX, DEMO_PRODUCTS);
            return 2;
        }
        argc = 2;
    }
    return souk_main(argc, argv, &catalog);
}
