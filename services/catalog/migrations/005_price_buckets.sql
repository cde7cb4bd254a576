-- A narrow price range read newest first at a cost that grows with the page (issue 13).
-- Filtering the newest products on the way reads page / (the range's share of the
-- catalog) rows: 1,200 for 100..900 at 1M products. Here prices fall into buckets of about
-- 2x each (1, 2-4, 5-9 as the first digit, per number of digits: ..., 200-499, 500-999,
-- 1000-1999, ...), each bucket in rid order, so a range is the merge of the few buckets
-- it spans, newest first, the two at its ends filtered (listing.c, page_newest).
-- The expression is PRICE_BUCKET in listing.c, character for character (SQLite uses an
-- index on an expression only for the same expression).
CREATE INDEX products_live_bucket ON products (
    (length(price_cents) * 3 + (substr(price_cents, 1, 1) >= '2')
        + (substr(price_cents, 1, 1) >= '5')),
    rid, price_cents) WHERE archived = 0;
CREATE INDEX products_cat_bucket ON products (
    category,
    (length(price_cents) * 3 + (substr(price_cents, 1, 1) >= '2')
        + (substr(price_cents, 1, 1) >= '5')),
    rid, price_cents) WHERE archived = 0;
