/* main.c: the catalog service: products, categories and stock (DESIGN §4). */
#include "catalog.h"

static const struct souk_route routes[] = {
    {"GET", "/api/v1/products", products_list, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/products/{id}", products_get, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/categories", categories_list, SOUK_PUBLIC, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

static const struct souk_service catalog = {
    .name = "catalog",
    .listen = "127.0.0.1:8082",
    .routes = routes,
    .migrations = service_migrations,
    .seed = catalog_seed,
};

int main(int argc, char **argv)
{
    return souk_main(argc, argv, &catalog);
}
