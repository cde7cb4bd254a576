-- The products the cart has priced lines from (services/cart/README.md, "Freshness"):
-- a PUT of a product asked of the catalog within SOUK_CART_PRODUCT_TTL_MS is priced
-- from here, without a call. product.updated leaves a tombstone (the columns NULL,
-- invalidated_ms set) so that a PUT whose catalog answer is older than the event
-- neither caches it nor writes its line from it: it asks again.
CREATE TABLE cart_products (
    product_id       TEXT PRIMARY KEY,
    name             TEXT,
    unit_price_cents INTEGER CHECK (unit_price_cents >= 0),
    currency         TEXT,
    fetched_ms       INTEGER, -- the cart's clock when it asked the catalog; NULL: not cached
    invalidated_ms   INTEGER NOT NULL DEFAULT 0 -- the last product.updated heard
);
