"""The catalog's list pages at scale (issue 13), against the real binary: every filter
shape under every sort visits each matching product exactly once, in order, whichever
statement serves it; `catalog seed --products N` makes a catalog of that size."""

import pytest
import requests

from conftest import Service

DEMO_PRODUCTS = 1200


def walk(catalog, page_size, **params):
    """Follow next_page_token to the end; every item, in order."""
    items, token = [], None
    for _ in range(2000):
        p = dict(params, page_size=page_size)
        if token:
            p["page_token"] = token
        r = requests.get(catalog.url + "/api/v1/products", params=p, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= page_size
        items += body["items"]
        token = body["next_page_token"]
        if token is None:
            return items
    raise AssertionError("more than 2000 pages")


@pytest.fixture(scope="module")
def everything(catalog):
    return walk(catalog, 100)


def expected(everything, category, band, in_stock, sort):
    """The list the filters and sort make, computed here: rows are numbered in creation
    order, so newest is created_at descending and ties of price go by id."""
    rows = [p for p in everything
            if (category is None or p["category"] == category)
            and (band is None or band[0] <= p["price_cents"] <= band[1])
            and (not in_stock or p["stock_available"] > 0)]
    keys = {"newest": lambda p: (p["created_at"], p["id"]),
            "price_asc": lambda p: (p["price_cents"], p["id"]),
            "price_desc": lambda p: (-p["price_cents"], p["id"])}
    return sorted(rows, key=keys[sort], reverse=sort == "newest")


SHAPES = [(category, band, in_stock)
          for category in (None, "kitchen")
          for band in (None, (1500, 6000), (900, 1000))
          for in_stock in (False, True)]


@pytest.mark.parametrize("sort", ["newest", "price_asc", "price_desc"])
def test_every_list_shape_visits_each_product_once_in_order(catalog, everything, sort):
    for category, band, in_stock in SHAPES:
        params = {"sort": sort}
        if category:
            params["category"] = category
        if band:
            params["min_price"], params["max_price"] = band
        if in_stock:
            params["in_stock"] = "true"
        want = [p["id"] for p in expected(everything, category, band, in_stock, sort)]
        got = [p["id"] for p in walk(catalog, 37 if category is None else 7, **params)]
        assert got == want, params


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc"])
def test_every_search_shape_visits_each_match_once_in_order(catalog, sort):
    for q in ("coffee", "wireless charg", "leath"):
        full = {p["id"]: p for p in walk(catalog, 100, q=q, sort="newest")}
        assert full
        for category, band, in_stock in SHAPES:
            params = {"q": q, "sort": sort}
            if category:
                params["category"] = category
            if band:
                params["min_price"], params["max_price"] = band
            if in_stock:
                params["in_stock"] = "true"
            got = walk(catalog, 7, **params)
            ids = [p["id"] for p in got]
            assert len(ids) == len(set(ids)), params
            if sort == "relevance":
                want = expected(list(full.values()), category, band, in_stock, "newest")
                words = q.split()
                name_hit = [all(_word_in(w, p["name"]) for w in words) for p in want]
                want = [p for p, hit in zip(want, name_hit) if hit] + \
                       [p for p, hit in zip(want, name_hit) if not hit]
            else:
                want = expected(list(full.values()), category, band, in_stock, sort)
            assert ids == [p["id"] for p in want], params


def test_search_in_every_category(catalog):
    """A search in a category reads that category's rowid range of products_fts_cat:
    every category, the ones a word is never in too, gives the matches of the search
    without a category that are in it, name hits first, each tier newest first."""
    cats = [c["slug"] for c in requests.get(catalog.url + "/api/v1/categories",
                                            timeout=10).json()["items"]]
    assert len(cats) > 10
    for q in ("coffee", "wireless charg"):
        full = walk(catalog, 100, q=q, sort="newest")
        hits = 0
        for cat in cats:
            want = [p for p in full if p["category"] == cat]
            names = [all(_word_in(w, p["name"]) for w in q.split()) for p in want]
            want = [p["id"] for p, hit in zip(want, names) if hit] + \
                   [p["id"] for p, hit in zip(want, names) if not hit]
            assert [p["id"] for p in walk(catalog, 5, q=q, category=cat)] == want, (q, cat)
            assert [p["id"] for p in walk(catalog, 100, q=q, category=cat, sort="newest")] == \
                [p["id"] for p in full if p["category"] == cat], (q, cat)
            hits += bool(want)
        assert 0 < hits < len(cats), q   # some categories have matches, some none


@pytest.mark.parametrize("params", [{"q": "coffee"}, {"category": "kitchen"}, {}])
def test_pages_that_end_inside_a_price(catalog, params):
    """Small pages end between products of the same price; the next page must take the
    rest of that price and nothing twice (the price orders read a price's rest apart)."""
    for sort in ("price_asc", "price_desc"):
        whole = [p["id"] for p in walk(catalog, 100, sort=sort, **params)]
        prices = [p["price_cents"] for p in walk(catalog, 100, sort=sort, **params)]
        assert len(set(prices)) < len(prices)   # there are ties to end inside
        for size in (1, 2, 3) if params else (13,):
            assert [p["id"] for p in walk(catalog, size, sort=sort, **params)] == whole, (sort, size)


def _word_in(word, text):
    """A word of the query in text as the catalog matches it: a word of text that starts
    with it (the demo's words need no stemming for these queries)."""
    return any(w.startswith(word) for w in
               "".join(c if c.isalnum() else " " for c in text.lower()).split())


def test_search_matches_prefixes_and_every_word(catalog):
    for i in walk(catalog, 100, q="leath"):
        text = i["name"] + " " + i["description"]
        assert _word_in("leath", text)
    assert walk(catalog, 100, q="leath") == walk(catalog, 100, q="leather")
    both = walk(catalog, 100, q="wireless charg")
    assert both and all(_word_in("wireless", i["name"] + " " + i["description"])
                        and _word_in("charg", i["name"] + " " + i["description"]) for i in both)


def test_any_text_is_a_query_never_an_error(catalog):
    # words FTS5's tokenizer splits or drops, invalid UTF-8, many words, long words
    for q in ("—", "café—bar", "日本語", "%FF%FE", "x " * 100, "coffee " * 28, "y" * 200,
              "co", "a b c d e f g h i j k l m n o p q r s t"):
        r = requests.get(catalog.url + "/api/v1/products?page_size=5&q=" +
                         (q if q.startswith("%") else requests.utils.quote(q)), timeout=5)
        assert r.status_code == 200, (q, r.text)
    # more words than are searched: the extra ones are dropped, never an error
    assert walk(catalog, 100, q="coffee " * 28) == walk(catalog, 100, q="coffee")


def test_category_counts_match_the_lists(catalog):
    cats = requests.get(catalog.url + "/api/v1/categories", timeout=5).json()["items"]
    for c in cats:
        assert len(walk(catalog, 100, category=c["slug"])) == c["product_count"]


@pytest.fixture(scope="module")
def catalog20k(tmp_path_factory):
    """A catalog of 20,000 products, big enough for every way a newest-first page in a
    price range is read: the next few hundred filtered, the range sorted, or the range
    filtered all the way (more products than are worth sorting, too few to be near)."""
    svc = Service("catalog", tmp_path_factory.mktemp("catalog20k"))
    svc.run("seed", "--products", "20000")
    svc.start()
    yield svc
    svc.kill()


def test_price_ranges_newest_first(catalog20k):
    everything = walk(catalog20k, 100)
    assert len(everything) == 20000
    prices = sorted(p["price_cents"] for p in everything)
    # ~4.5 % of the catalog: sparser than the next few hundred can fill a page from,
    # wider than sqrt(page x 20,000) = 648 products worth sorting
    sparse = (prices[5000], prices[5900])
    shapes = [((0, 1000000), "toys"), ((1000, 20000), "toys"), ((990, 1010), None),
              ((990, 1010), "toys"), (sparse, None), (sparse, "toys")]
    for band, category in shapes:
        params = {"min_price": band[0], "max_price": band[1]}
        if category:
            params["category"] = category
        want = [p["id"] for p in expected(everything, category, band, False, "newest")]
        assert [p["id"] for p in walk(catalog20k, 20, **params)] == want, params


def test_seed_products_option(tmp_path):
    svc = Service("catalog", tmp_path)
    r = svc.run("seed", "--products", "3000")
    assert r.returncode == 0, r.stderr
    assert svc.query("SELECT count(*) FROM products") == [(3000,)]
    assert svc.query("SELECT sum(product_count) FROM categories") == [(3000,)]
    ids = svc.query("SELECT id FROM products ORDER BY rid")
    assert ids == sorted(ids) and len(set(ids)) == 3000
    # a catalog with products is left as it is
    again = svc.run("seed", "--products", "5000")
    assert again.returncode == 0 and "left them as they are" in again.stdout + again.stderr
    for bad in (["--products", "0"], ["--products", "ten"], ["--products", "20000000"],
                ["--products"], ["--items", "5"]):
        r = svc.run("seed", *bad, check=False)
        assert r.returncode == 2 and "--products N" in r.stderr, (bad, r.stderr)
    assert svc.query("SELECT count(*) FROM products") == [(3000,)]
