-- PostgreSQL's 003_scale.sql: the list indexes (the same partial indexes over live
-- products, in each order a page is read in), the kept category counts, and the
-- full-text search on PostgreSQL's own: two stored tsvectors (the name; name and
-- description) with GIN indexes, queried with to_tsquery (search.c builds the query,
-- listing_pg.c runs it). A word is what search.c splits on (ASCII letters and digits,
-- any byte above 0x7f): ASCII punctuation becomes a space before the parser sees the
-- text, so the parser's e-mails, URLs and hyphenated words never form. The
-- configuration "souk" stems English (Snowball, where SQLite has Porter), keeps every
-- word (no stop words, as FTS5 has none) and drops accents (unaccent, as FTS5's
-- remove_diacritics).

CREATE INDEX products_live_new ON products (rid, price_cents) WHERE archived = 0;
CREATE INDEX products_live_price ON products (price_cents, rid) WHERE archived = 0;
CREATE INDEX products_live_price_desc ON products (price_cents DESC, rid) WHERE archived = 0;
CREATE INDEX products_cat_new ON products (category, rid, price_cents) WHERE archived = 0;
CREATE INDEX products_cat_price ON products (category, price_cents, rid) WHERE archived = 0;
CREATE INDEX products_cat_price_desc ON products (category, price_cents DESC, rid)
    WHERE archived = 0;

ALTER TABLE categories ADD COLUMN product_count BIGINT NOT NULL DEFAULT 0;
UPDATE categories SET product_count =
    (SELECT count(*) FROM products p WHERE p.category = categories.slug AND p.archived = 0);
CREATE INDEX categories_by_name ON categories (name, slug);

CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH DICTIONARY souk_stem (TEMPLATE = snowball, Language = english);
CREATE TEXT SEARCH CONFIGURATION souk (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION souk
    ALTER MAPPING FOR asciiword, word, numword, uint, int, asciihword, hword, numhword,
                      hword_asciipart, hword_part, hword_numpart
    WITH unaccent, souk_stem;

ALTER TABLE products
    ADD COLUMN name_tsv tsvector GENERATED ALWAYS AS (to_tsvector('souk',
        regexp_replace(name, '[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+', ' ', 'g'))) STORED,
    ADD COLUMN body_tsv tsvector GENERATED ALWAYS AS (to_tsvector('souk',
        regexp_replace(name || ' ' || description, '[\x01-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+',
                       ' ', 'g'))) STORED;
CREATE INDEX products_name_text ON products USING gin (name_tsv) WHERE archived = 0;
CREATE INDEX products_body_text ON products USING gin (body_tsv) WHERE archived = 0;

-- The raw words of names and descriptions, for prefix search (search.c).
CREATE TABLE search_words (word TEXT PRIMARY KEY);

-- Category counts, kept by triggers (insert, archive, category change) as on SQLite.
CREATE FUNCTION products_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.archived = 0 THEN
        UPDATE categories SET product_count = product_count - 1 WHERE slug = OLD.category;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.archived = 0 THEN
        UPDATE categories SET product_count = product_count + 1 WHERE slug = NEW.category;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER products_live_insert AFTER INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION products_count();
CREATE TRIGGER products_live_delete AFTER DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION products_count();
CREATE TRIGGER products_live_update AFTER UPDATE OF category, archived ON products
    FOR EACH ROW WHEN (OLD.category IS DISTINCT FROM NEW.category
                       OR OLD.archived IS DISTINCT FROM NEW.archived)
    EXECUTE FUNCTION products_count();
