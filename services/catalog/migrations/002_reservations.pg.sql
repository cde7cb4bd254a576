-- PostgreSQL's 002_reservations.sql: the same tables; milliseconds, quantities and
-- money in BIGINT.
CREATE TABLE reservations (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'restocked')),
    release_reason TEXT CHECK (release_reason IN ('requested', 'expired')),
    expires_at     BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX reservations_by_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_items (
    reservation_id   TEXT NOT NULL REFERENCES reservations (id),
    product_id       TEXT NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    name             TEXT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    PRIMARY KEY (reservation_id, product_id)
);
