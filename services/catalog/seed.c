/* seed.c: loads the deterministic demo catalog (demo.c) into an empty database,
 * in one transaction. Running it again changes nothing. */
#include "catalog.h"
#include "demo.h"
#include "souk/log.h"

int catalog_seed(struct souk_db *db)
{
    const struct demo_category *cats;
    size_t ncats = demo_categories(&cats);
    int rc = souk_db_begin(db);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < ncats; i++) {
        rc = souk_db_run(
            db, "INSERT OR IGNORE INTO categories (slug, name, description) VALUES (?, ?, ?)",
            "sss", cats[i].slug, cats[i].name, cats[i].description);
        if (rc < 0)
            goto out;
    }
    int added = 0;
    for (uint32_t i = 0; i < DEMO_PRODUCTS; i++) {
        struct demo_product p;
        demo_product(i, &p);
        rc = souk_db_run(db,
                         "INSERT OR IGNORE INTO products (id, sku, name, description, price_cents,"
                         " category, image_url, attributes, on_hand, created_at, updated_at)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         "ssssisssiss", p.id, p.sku, p.name, p.description, p.price_cents,
                         p.category, p.image_url, p.attributes, p.on_hand, p.created_at,
                         p.created_at);
        if (rc < 0)
            goto out;
        added += rc;
    }
    rc = souk_db_commit(db);
    if (rc == 0)
        souk_info("demo catalog seeded", "{s:i,s:i}", "categories", (int)ncats, "products_added",
                  added);
out:
    if (rc < 0)
        souk_db_rollback(db);
    return rc < 0 ? rc : 0;
}
