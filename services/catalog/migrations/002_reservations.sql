-- Stock reservations for checkouts. A reservation holds stock (products.reserved)
-- until it is committed (the stock is sold: on_hand drops), released, or expires.
-- The id is the caller's (an order id), which makes every call idempotent.
CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'restocked')),
    release_reason TEXT CHECK (release_reason IN ('requested', 'expired')),
    expires_at     INTEGER NOT NULL,   -- unix ms; only meaningful while held
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX reservations_by_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_items (
    reservation_id   TEXT NOT NULL REFERENCES reservations (id),
    product_id       TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    name             TEXT NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    currency         TEXT NOT NULL,
    PRIMARY KEY (reservation_id, product_id)
);
