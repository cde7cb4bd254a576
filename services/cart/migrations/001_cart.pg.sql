-- PostgreSQL's 001_cart.sql (docs/db.md): the same table; money in BIGINT, since
-- PostgreSQL's INTEGER has 32 bits where SQLite's has 64.
CREATE TABLE cart_items (
    user_id          TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    currency         TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at         TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE INDEX cart_items_by_product ON cart_items (product_id);
