-- The token signing keys (keys.c), in the database so that every users replica
-- signs with the same set: the private JWK of each, and when it was made.
CREATE TABLE signing_keys (
    kid     TEXT PRIMARY KEY,
    created INTEGER NOT NULL, -- unix seconds; the newest key not made for later signs
    jwk     TEXT NOT NULL     -- the private JWK (RSA) as JSON, without souk_created
);
