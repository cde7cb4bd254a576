/* catalog.h: what the catalog's files share: the handlers main.c routes to, and
 * rendering a product row the same way everywhere. */
#ifndef CATALOG_H
#define CATALOG_H

#include "souk/db.h"
#include "souk/server.h"

/* The column list every product query selects, in the order product_json() reads. */
#define PRODUCT_COLUMNS                                                                            \
    "p.id, p.sku, p.name, p.description, p.price_cents, p.currency, p.category, p.image_url,"      \
    " p.attributes AS attributes_json, p.on_hand - p.reserved AS stock_available,"                 \
    " p.created_at, p.updated_at"

/* The same product rendered by the database itself (SQLite: byte for byte what jansson
 * would write; PostgreSQL: the same members, its own spacing): the hot read paths answer
 * with this text and never build a JSON tree. */
// clang-format off
#define PRODUCT_JSON                                                                               \
    SOUK_IF_SQLITE("json_object(") SOUK_IF_PG("json_build_object(")                                \
    "'id', p.id, 'sku', p.sku, 'name', p.name, 'description', p.description,"                      \
    " 'price_cents', p.price_cents, 'currency', p.currency, 'category', p.category,"               \
    " 'image_url', p.image_url,"                                                                   \
    " 'attributes', " SOUK_IF_SQLITE("json(p.attributes)") SOUK_IF_PG("p.attributes::json") ","    \
    " 'stock_available', p.on_hand - p.reserved, 'created_at', p.created_at,"                      \
    " 'updated_at', p.updated_at)" SOUK_IF_PG("::text")
// clang-format on

int products_list(struct souk_req *r);
int products_get(struct souk_req *r);
int categories_list(struct souk_req *r);
#define LOOKUP_MAX 100 /* ids in one products_lookup */
int products_lookup(struct souk_req *r);

/* admin.c: admin writes */
int products_create(struct souk_req *r);
int products_update(struct souk_req *r);
int products_archive(struct souk_req *r);
int products_set_stock(struct souk_req *r);

/* seed.c: `catalog seed [--products N]` */
int catalog_seed(struct souk_db *db);
/* Set N from its text (1..DEMO_PRODUCTS_MAX); 0, or SOUK_EINVAL for anything else. */
int catalog_seed_size(const char *text);
/* main.c's start hook: the search vocabulary of a migrated database, then the sweeper. */
int catalog_start(void);

struct souk_event;
int reservations_create(struct souk_req *r);
int reservations_commit(struct souk_req *r);
int reservations_release(struct souk_req *r);
int reservations_on_order_cancelled(struct souk_db *db, const struct souk_event *ev);
int reservations_start(void); /* the expiry sweeper */
void reservations_stop(void);

#endif
