/* cart.h: what the cart's files share: configuration, handlers and event handlers. */
#ifndef CART_H
#define CART_H

#include "souk/events.h"
#include "souk/server.h"

#define CART_QTY_MAX   99 /* DESIGN §4: quantity 1–99 */
#define CART_LINES_MAX 50 /* distinct products in one cart */

extern const char *cart_catalog_url, *cart_catalog_rpc; /* rpc: "" or a grpc:// list */
extern int64_t cart_product_ttl_ms; /* SOUK_CART_PRODUCT_TTL_MS: 0, every PUT asks the catalog */

int cart_get(struct souk_req *r);
int cart_put_item(struct souk_req *r);
int cart_delete_item(struct souk_req *r);
int cart_clear(struct souk_req *r);
int cart_internal_get(struct souk_req *r);
int cart_internal_clear(struct souk_req *r);

/* Take products (a JSON array of product ids; NULL: every line) out of user's cart,
 * keeping lines written after placed (RFC 3339 UTC; NULL: none kept). 0 or SOUK_EDB. */
int cart_empty(struct souk_db *db, const char *user, const json_t *products, const char *placed);

int cart_on_product_updated(struct souk_db *db, const struct souk_event *ev);
int cart_on_order_confirmed(struct souk_db *db, const struct souk_event *ev);

#endif
