-- Accounts, addresses, refresh tokens and login throttling. Emails are unique by
-- their lower-cased form; refresh tokens are stored only as a hash.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,              -- usr_<ulid>
    email         TEXT NOT NULL,                 -- as given
    email_norm    TEXT NOT NULL UNIQUE,          -- lower-cased: uniqueness ignores case
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,                 -- argon2id encoded string
    role          TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE addresses (
    id          TEXT PRIMARY KEY,                -- adr_<ulid>
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    line1       TEXT NOT NULL,
    line2       TEXT NOT NULL DEFAULT '',
    city        TEXT NOT NULL,
    region      TEXT NOT NULL DEFAULT '',
    postal_code TEXT NOT NULL,
    country     TEXT NOT NULL,                   -- ISO 3166-1 alpha-2
    phone       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);
CREATE INDEX addresses_by_user ON addresses (user_id, id);

-- One row per refresh token ever issued. A family is the chain of rotations that
-- started with one login; presenting a token already rotated (used_at set)
-- revokes the whole family.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,                -- hex BLAKE2b-256 of the opaque token
    family_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,                -- unix seconds
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,                         -- rotated: must never be presented again
    revoked_at  INTEGER
);
CREATE INDEX refresh_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_by_expiry ON refresh_tokens (expires_at);

-- Failed logins per key ("acct:<email_norm>" or "addr:<ip>") in a fixed window.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,               -- unix seconds
    failures     INTEGER NOT NULL
);
