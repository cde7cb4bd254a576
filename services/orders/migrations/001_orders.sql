-- Orders and their saga state (DESIGN §5). The order row is the saga's memory: its
-- step says what runs next, and every step's result (prices, payment id, whether
-- stock was committed) is written with the step change, so a restart resumes
-- exactly where the last committed step left off.
CREATE TABLE orders (
    id                    TEXT PRIMARY KEY,                 -- ord_<ulid>; also the reservation id
    user_id               TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'shipped', 'rejected', 'cancelled')),
    reason                TEXT,                             -- why rejected or cancelled
    step                  TEXT NOT NULL,                    -- saga step to run next; 'done' when settled
    items_json            TEXT NOT NULL CHECK (json_valid(items_json)),
    subtotal_cents        INTEGER NOT NULL CHECK (subtotal_cents >= 0),
    shipping_cents        INTEGER NOT NULL CHECK (shipping_cents >= 0),
    total_cents           INTEGER NOT NULL CHECK (total_cents >= 0),
    currency              TEXT NOT NULL,
    shipping_address_json TEXT NOT NULL CHECK (json_valid(shipping_address_json)),
    payment_method_id     TEXT NOT NULL,
    payment_id            TEXT,                             -- set when authorized
    stock_committed       INTEGER NOT NULL DEFAULT 0,       -- the reservation was committed
    refunded_cents        INTEGER NOT NULL DEFAULT 0,
    attempts              INTEGER NOT NULL DEFAULT 0,       -- transient failures of this step
    next_attempt_ms       INTEGER NOT NULL DEFAULT 0,       -- not before (backoff)
    lease_until           INTEGER NOT NULL DEFAULT 0,       -- a worker owns the saga until then
    lease_owner           TEXT NOT NULL DEFAULT '',
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    shipped_at            TEXT,
    cancelled_at          TEXT
);

CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_unsettled ON orders (next_attempt_ms) WHERE step <> 'done';

-- Every step outcome, for operators and tests: what was asked, what came back.
CREATE TABLE saga_log (
    seq        INTEGER PRIMARY KEY,
    order_id   TEXT NOT NULL,
    step       TEXT NOT NULL,
    outcome    TEXT NOT NULL,       -- ok, retry, fail
    http       INTEGER NOT NULL,
    code       TEXT,
    at         TEXT NOT NULL
);

CREATE INDEX saga_log_by_order ON saga_log (order_id, seq);
