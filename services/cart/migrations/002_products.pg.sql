-- PostgreSQL's 002_products.sql (docs/db.md): the same table, BIGINT for money and
-- milliseconds.
CREATE TABLE cart_products (
    product_id       TEXT PRIMARY KEY,
    name             TEXT,
    unit_price_cents BIGINT CHECK (unit_price_cents >= 0),
    currency         TEXT,
    fetched_ms       BIGINT,
    invalidated_ms   BIGINT NOT NULL DEFAULT 0
);
