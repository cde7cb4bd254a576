-- Carts: one row per (user, product). Name and price are the catalog's, copied when
-- the line is written and refreshed from product.updated events.
CREATE TABLE cart_items (
    user_id          TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
    currency         TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    added_at         TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);

CREATE INDEX cart_items_by_product ON cart_items (product_id);
