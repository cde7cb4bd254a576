-- List pages and search that cost what a page costs, not what the catalog holds (issue 13).
-- Every list shape reads one of the indexes below in its own order and stops after a page;
-- products.c names the index of each shape and a unit test checks the plans. The tie-break
-- of every order is rid: rows are numbered as they are added, so rid order is id order.

DROP INDEX products_by_price;
DROP INDEX products_by_created;
DROP INDEX products_by_category;

-- Live products only (archived rows are never listed), in each order a page is read in.
-- price_desc breaks ties by rid ascending, hence its own index. The newest-first indexes
-- carry the price, so a price range filtered on the way reads no rows. Stock is in none
-- of them: reservations change it all the time and would rewrite index entries.
CREATE INDEX products_live_new ON products (rid, price_cents) WHERE archived = 0;
CREATE INDEX products_live_price ON products (price_cents, rid) WHERE archived = 0;
CREATE INDEX products_live_price_desc ON products (price_cents DESC, rid) WHERE archived = 0;
CREATE INDEX products_cat_new ON products (category, rid, price_cents) WHERE archived = 0;
CREATE INDEX products_cat_price ON products (category, price_cents, rid) WHERE archived = 0;
CREATE INDEX products_cat_price_desc ON products (category, price_cents DESC, rid)
    WHERE archived = 0;

-- Category counts are kept by the triggers below instead of counted per request.
ALTER TABLE categories ADD COLUMN product_count INTEGER NOT NULL DEFAULT 0;
UPDATE categories SET product_count =
    (SELECT count(*) FROM products p WHERE p.category = categories.slug AND p.archived = 0);
CREATE INDEX categories_by_name ON categories (name, slug);

-- Full text, twice, over live products only. Both are contentless (the triggers give them
-- the text, and the old text to forget it), and queries read rowids only:
--   products_fts        rowid = rid: relevance tiers and newest stream in rid order;
--   products_fts_price  rowid = price_cents * 2^32 + rid: a search sorted by price streams
--                       in (price, rid) order, and a price range is a rowid range.
-- The category column holds one token per product, hex(slug) || '0': a digit at the end
-- keeps the porter stemmer off it, so `{category}: "<token>"` is an exact match and a
-- search within a category intersects two lists instead of filtering every match.
DROP TRIGGER products_fts_insert;
DROP TRIGGER products_fts_delete;
DROP TRIGGER products_fts_update;
DROP TABLE products_fts;

CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, description, category,
    content = '', columnsize = 0, tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE products_fts_price USING fts5 (
    body, category,
    content = '', columnsize = 0, tokenize = 'porter unicode61 remove_diacritics 2'
);

-- The raw words of names and descriptions (lowercased ASCII), for prefix search: "coff"
-- becomes ("coff" OR "coffee" OR ...), which FTS5 streams, where "coff"* would gather
-- every match first. Written by the catalog (search.c) on every product write; words of
-- archived or changed products stay (a word without products matches nothing).
CREATE TABLE search_words (word TEXT PRIMARY KEY) WITHOUT ROWID;

CREATE TRIGGER products_live_insert AFTER INSERT ON products WHEN new.archived = 0 BEGIN
    INSERT INTO products_fts (rowid, name, description, category)
    VALUES (new.rid, new.name, new.description, hex(new.category) || '0');
    INSERT INTO products_fts_price (rowid, body, category)
    VALUES (new.price_cents * 4294967296 + new.rid, new.name || ' ' || new.description,
            hex(new.category) || '0');
    UPDATE categories SET product_count = product_count + 1 WHERE slug = new.category;
END;

CREATE TRIGGER products_live_delete AFTER DELETE ON products WHEN old.archived = 0 BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, category)
    VALUES ('delete', old.rid, old.name, old.description, hex(old.category) || '0');
    INSERT INTO products_fts_price (products_fts_price, rowid, body, category)
    VALUES ('delete', old.price_cents * 4294967296 + old.rid,
            old.name || ' ' || old.description, hex(old.category) || '0');
    UPDATE categories SET product_count = product_count - 1 WHERE slug = old.category;
END;

-- Stock and version changes (every reservation) touch none of this.
CREATE TRIGGER products_live_update AFTER UPDATE OF name, description, category, price_cents,
    archived ON products
    WHEN old.name IS NOT new.name OR old.description IS NOT new.description
      OR old.category IS NOT new.category OR old.price_cents IS NOT new.price_cents
      OR old.archived IS NOT new.archived
BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, category)
    SELECT 'delete', old.rid, old.name, old.description, hex(old.category) || '0'
    WHERE old.archived = 0;
    INSERT INTO products_fts_price (products_fts_price, rowid, body, category)
    SELECT 'delete', old.price_cents * 4294967296 + old.rid,
           old.name || ' ' || old.description, hex(old.category) || '0'
    WHERE old.archived = 0;
    UPDATE categories SET product_count = product_count - 1
    WHERE slug = old.category AND old.archived = 0;
    INSERT INTO products_fts (rowid, name, description, category)
    SELECT new.rid, new.name, new.description, hex(new.category) || '0'
    WHERE new.archived = 0;
    INSERT INTO products_fts_price (rowid, body, category)
    SELECT new.price_cents * 4294967296 + new.rid, new.name || ' ' || new.description,
           hex(new.category) || '0'
    WHERE new.archived = 0;
    UPDATE categories SET product_count = product_count + 1
    WHERE slug = new.category AND new.archived = 0;
END;

-- The products already here, in rowid order: FTS5 writes a segment whenever a rowid is
-- not larger than the last one (seed.c loads a new catalog the same way).
INSERT INTO products_fts (rowid, name, description, category)
SELECT rid, name, description, hex(category) || '0' FROM products INDEXED BY products_live_new
WHERE archived = 0 ORDER BY rid;
INSERT INTO products_fts_price (rowid, body, category)
SELECT price_cents * 4294967296 + rid, name || ' ' || description, hex(category) || '0'
FROM products INDEXED BY products_live_price WHERE archived = 0 ORDER BY price_cents, rid;
