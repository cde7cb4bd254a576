/* demo.h: a deterministic generator of believable demo products (no network, no randomness
   from the environment: the same index always gives the same product). The catalog service
   uses it to seed an empty database; tests use it to know what the catalog holds. */
#ifndef SOUK_CATALOG_DEMO_H
#define SOUK_CATALOG_DEMO_H

#include <stddef.h>
#include <stdint.h>

#define DEMO_PRODUCTS     1200     /* the demo catalog, `catalog seed` */
#define DEMO_PRODUCTS_MAX 10000000 /* the largest catalog the generator makes */

struct demo_category {
    const char *slug;        /* "kitchen", url-safe lowercase */
    const char *name;        /* "Kitchen & Dining" */
    const char *description; /* one sentence */
};

struct demo_product {
    char id[32];           /* "prd_" + 26-char ULID (Crockford base32): 48-bit ms timestamp, then
                              80 pseudo-random bits; timestamps increase with the index */
    char sku[24];          /* "KIT-00042": category prefix + number, unique */
    char name[96];         /* unique across all products */
    char description[512]; /* 2-3 sentences, ASCII */
    int64_t price_cents;   /* > 0, ends in 99, 49 or 00 */
    const char *category;  /* slug of one of demo_categories(); static storage */
    char image_url[128];   /* "/img/products/<category>/<n>.svg", n = 1 + product kind */
    char attributes[256];  /* a JSON object as text, e.g. {"brand":"Kettlewood","material":"oak"} */
    int64_t on_hand;       /* stock: mostly 6..500, ~5% exactly 0, ~4% low (1..5) */
    char created_at[32];   /* RFC 3339 UTC with milliseconds, strictly increasing with the index,
                              within 2026-01-01..2026-10-31, equal to the ULID timestamp */
};

/* Sets *out to a static array of the demo categories and returns how many (at least 12).
   The array lives for the whole program; the caller must not free it. */
size_t demo_categories(const struct demo_category **out);

/* Fills *out with product number index, in [0, DEMO_PRODUCTS). Pure function of index:
   no global state, safe from any thread. An index out of range is a caller bug and aborts. */
void demo_product(uint32_t index, struct demo_product *out);

/* The same for a catalog of total products (1..DEMO_PRODUCTS_MAX; `catalog seed --products
   N`): a pure function of (index, total), with the demo's properties at every size (unique
   names, SKUs and ids, created_at spread over the same period and increasing with the index).
   demo_product(i, out) is demo_product_of(i, DEMO_PRODUCTS, out). Out of range aborts. */
void demo_product_of(uint32_t index, uint32_t total, struct demo_product *out);

#endif
