-- A search within a category that reads only that category's matches (issue 13). With the
-- category as a token of products_fts, `coffee AND {category}: toys` walks both posting
-- lists, 77k and 71k entries at 1M products, to find that they never meet (24 ms). Here
-- the category is in the rowid instead:
--   products_fts_cat  rowid = categories.rowid * 2^32 + rid: a category's products are one
--                     rowid range, in rid order, which FTS5 seeks to like a price range of
--                     products_fts_price; an empty result costs a seek.
-- Categories are only ever added (INSERT OR IGNORE), so a category's rowid never changes.
-- The insert, delete and update triggers of 003_scale.sql are made again with it.

CREATE VIRTUAL TABLE products_fts_cat USING fts5 (
    name, description,
    content = '', columnsize = 0, tokenize = 'porter unicode61 remove_diacritics 2'
);

DROP TRIGGER products_live_insert;
DROP TRIGGER products_live_delete;
DROP TRIGGER products_live_update;

CREATE TRIGGER products_live_insert AFTER INSERT ON products WHEN new.archived = 0 BEGIN
    INSERT INTO products_fts (rowid, name, description, category)
    VALUES (new.rid, new.name, new.description, hex(new.category) || '0');
    INSERT INTO products_fts_price (rowid, body, category)
    VALUES (new.price_cents * 4294967296 + new.rid, new.name || ' ' || new.description,
            hex(new.category) || '0');
    INSERT INTO products_fts_cat (rowid, name, description)
    SELECT c.rowid * 4294967296 + 4294967295 - new.rid, new.name, new.description
    FROM categories c WHERE c.slug = new.category;
    UPDATE categories SET product_count = product_count + 1 WHERE slug = new.category;
END;

CREATE TRIGGER products_live_delete AFTER DELETE ON products WHEN old.archived = 0 BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, category)
    VALUES ('delete', old.rid, old.name, old.description, hex(old.category) || '0');
    INSERT INTO products_fts_price (products_fts_price, rowid, body, category)
    VALUES ('delete', old.price_cents * 4294967296 + old.rid,
            old.name || ' ' || old.description, hex(old.category) || '0');
    INSERT INTO products_fts_cat (products_fts_cat, rowid, name, description)
    SELECT 'delete', c.rowid * 4294967296 + 4294967295 - old.rid, old.name, old.description
    FROM categories c WHERE c.slug = old.category;
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
    INSERT INTO products_fts_cat (products_fts_cat, rowid, name, description)
    SELECT 'delete', c.rowid * 4294967296 + 4294967295 - old.rid, old.name, old.description
    FROM categories c WHERE c.slug = old.category AND old.archived = 0;
    UPDATE categories SET product_count = product_count - 1
    WHERE slug = old.category AND old.archived = 0;
    INSERT INTO products_fts (rowid, name, description, category)
    SELECT new.rid, new.name, new.description, hex(new.category) || '0'
    WHERE new.archived = 0;
    INSERT INTO products_fts_price (rowid, body, category)
    SELECT new.price_cents * 4294967296 + new.rid, new.name || ' ' || new.description,
           hex(new.category) || '0'
    WHERE new.archived = 0;
    INSERT INTO products_fts_cat (rowid, name, description)
    SELECT c.rowid * 4294967296 + 4294967295 - new.rid, new.name, new.description
    FROM categories c WHERE c.slug = new.category AND new.archived = 0;
    UPDATE categories SET product_count = product_count + 1
    WHERE slug = new.category AND new.archived = 0;
END;

-- The products already here, in rowid order, category by category from the index that
-- holds them so (seed.c loads a new catalog the same way).
INSERT INTO products_fts_cat (rowid, name, description)
SELECT c.rowid * 4294967296 + 4294967295 - p.rid, p.name, p.description
FROM categories c CROSS JOIN products p INDEXED BY products_cat_new
    ON p.category = c.slug AND p.archived = 0
ORDER BY c.rowid, p.rid DESC;
