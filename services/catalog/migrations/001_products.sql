-- Products, categories and stock. stock_available = on_hand - reserved; the CHECKs make
-- overselling impossible at the database level, whatever the code above does.
CREATE TABLE categories (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);

CREATE TABLE products (
    rid         INTEGER PRIMARY KEY,          -- stable rowid for the full-text index
    id          TEXT NOT NULL UNIQUE,         -- prd_<ulid>
    sku         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    currency    TEXT NOT NULL DEFAULT 'USD',
    category    TEXT NOT NULL REFERENCES categories(slug),
    image_url   TEXT NOT NULL DEFAULT '',
    attributes  TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    on_hand     INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    archived    INTEGER NOT NULL DEFAULT 0,
    version     INTEGER NOT NULL DEFAULT 1,   -- bumped on every change: the ETag
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX products_by_price ON products (price_cents, id);
CREATE INDEX products_by_created ON products (created_at, id);
CREATE INDEX products_by_category ON products (category, price_cents);

CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, description,
    content = 'products', content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rid, new.name, new.description);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description)
    VALUES ('delete', old.rid, old.name, old.description);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description)
    VALUES ('delete', old.rid, old.name, old.description);
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rid, new.name, new.description);
END;
