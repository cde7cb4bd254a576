-- The card vault, payments, refunds and the double-entry ledger. Card numbers live
-- only inside number_box (secretbox, base64url); the CVC is never stored. The CHECKs
-- keep the money invariants true whatever the code above does.
CREATE TABLE payment_methods (
    id          TEXT PRIMARY KEY,            -- pm_<ulid>
    user_id     TEXT NOT NULL,
    brand       TEXT NOT NULL,
    last4       TEXT NOT NULL CHECK (length(last4) = 4),
    exp_month   INTEGER NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year    INTEGER NOT NULL,
    holder      TEXT NOT NULL DEFAULT '',
    number_box  TEXT NOT NULL,               -- base64url(nonce || secretbox(number))
    created_at  TEXT NOT NULL
);
CREATE INDEX payment_methods_by_user ON payment_methods (user_id, id);

CREATE TABLE payments (
    id                TEXT PRIMARY KEY,      -- pay_<ulid>
    order_id          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    payment_method_id TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('authorized', 'declined', 'captured',
                                           'partially_refunded', 'refunded', 'voided')),
    decline_code      TEXT,
    amount_cents      INTEGER NOT NULL CHECK (amount_cents > 0),
    captured_cents    INTEGER NOT NULL DEFAULT 0 CHECK (captured_cents >= 0 AND captured_cents <= amount_cents),
    refunded_cents    INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= captured_cents),
    currency          TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX payments_by_user ON payments (user_id, id);
CREATE INDEX payments_by_order ON payments (order_id);

CREATE TABLE refunds (
    id           TEXT PRIMARY KEY,           -- rfd_<ulid>
    payment_id   TEXT NOT NULL REFERENCES payments (id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    created_at   TEXT NOT NULL
);
CREATE INDEX refunds_by_payment ON refunds (payment_id);

-- One row per ledger line; the lines of one posting share txn_id and balance.
CREATE TABLE ledger_entries (
    seq          INTEGER PRIMARY KEY,
    txn_id       TEXT NOT NULL,              -- ltx_<ulid>
    payment_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,              -- authorize | capture | void | refund
    account      TEXT NOT NULL CHECK (account IN ('customer_funds', 'authorized_holds',
                                                  'merchant_revenue', 'refunds')),
    debit_cents  INTEGER NOT NULL DEFAULT 0 CHECK (debit_cents >= 0),
    credit_cents INTEGER NOT NULL DEFAULT 0 CHECK (credit_cents >= 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    CHECK ((debit_cents = 0) <> (credit_cents = 0))
);
CREATE INDEX ledger_by_payment ON ledger_entries (payment_id);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    lease_token  TEXT,
    lease_until  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 0,
    status       INTEGER,
    response     TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
