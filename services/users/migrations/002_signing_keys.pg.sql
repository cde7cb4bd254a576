-- PostgreSQL's 002_signing_keys.sql: the same table, times in BIGINT.
CREATE TABLE signing_keys (
    kid     TEXT PRIMARY KEY,
    created BIGINT NOT NULL, -- unix seconds; the newest key not made for later signs
    jwk     TEXT NOT NULL    -- the private JWK (RSA) as JSON, without souk_created
);
