"""The catalog's public reads (DESIGN §4) against the real binary with the demo data."""
import base64
import json
import signal
import subprocess
import time

import pytest
import requests

from conftest import assert_problem

DEMO_PRODUCTS = 1200


def get(catalog, path, **params):
    return requests.get(catalog.url + path, params=params, timeout=5)


def walk(catalog, **params):
    """Follow next_page_token to the end; return every item in order."""
    items, token, pages = [], None, 0
    while True:
        p = dict(params)
        if token:
            p["page_token"] = token
        r = get(catalog, "/api/v1/products", **p)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= int(params.get("page_size", 20))
        items += body["items"]
        token = body["next_page_token"]
        pages += 1
        assert pages < 1000
        if token is None:
            return items


def test_product_shape_and_etag(catalog):
    first = get(catalog, "/api/v1/products", page_size=1).json()["items"][0]
    r = get(catalog, f"/api/v1/products/{first['id']}")
    assert r.status_code == 200
    p = r.json()
    assert set(p) == {"id", "sku", "name", "description", "price_cents", "currency", "category",
                      "image_url", "attributes", "stock_available", "created_at", "updated_at"}
    assert p == first
    assert p["id"].startswith("prd_") and len(p["id"]) == 30
    assert isinstance(p["price_cents"], int) and p["currency"] == "USD"
    assert isinstance(p["attributes"], dict)
    etag = r.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = requests.get(catalog.url + f"/api/v1/products/{p['id']}",
                         headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""


def test_every_product_exactly_once_newest(catalog):
    items = walk(catalog, page_size=100)
    ids = [i["id"] for i in items]
    assert len(ids) == DEMO_PRODUCTS == len(set(ids))
    created = [(i["created_at"], i["id"]) for i in items]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("sort,key,reverse", [
    ("price_asc", lambda i: (i["price_cents"], i["id"]), False),
    ("price_desc", lambda i: (-i["price_cents"], i["id"]), False),
])
def test_sorted_walk_visits_all_once(catalog, sort, key, reverse):
    items = walk(catalog, sort=sort, page_size=37)
    assert len(items) == DEMO_PRODUCTS == len({i["id"] for i in items})
    assert items == sorted(items, key=key, reverse=reverse)


def test_search_price_asc_pages(catalog):
    items = walk(catalog, q="coffee", sort="price_asc", page_size=7)
    assert len(items) >= 20
    assert len({i["id"] for i in items}) == len(items)
    for i in items:
        text = (i["name"] + " " + i["description"]).lower()
        assert "coffee" in text
    prices = [(i["price_cents"], i["id"]) for i in items]
    assert prices == sorted(prices)


def test_search_relevance_walk_matches_full_result(catalog):
    full = get(catalog, "/api/v1/products", q="leather", page_size=100).json()
    assert full["next_page_token"] is None
    paged = walk(catalog, q="leather", page_size=5)
    assert [i["id"] for i in paged] == [i["id"] for i in full["items"]]
    # a hit in the name ranks before hits only in the description
    in_name = ["leather" in i["name"].lower() for i in paged]
    assert in_name == sorted(in_name, reverse=True)


def test_search_is_and_of_words_and_prefix(catalog):
    both = walk(catalog, q="wireless keyboard", page_size=100)
    assert both
    for i in both:
        text = (i["name"] + " " + i["description"]).lower()
        assert "wireless" in text and "keyboard" in text
    assert walk(catalog, q="coff", page_size=100)  # prefix match
    assert walk(catalog, q="zzzzqqq", page_size=100) == []
    # FTS syntax in the input is just text, never an error
    for q in ['"', "AND OR NOT", "name:coffee", "*", "(coffee", "coffee NEAR/2 mug", "'; DROP"]:
        r = get(catalog, "/api/v1/products", q=q)
        assert r.status_code == 200, (q, r.text)


def test_filters(catalog):
    cats = get(catalog, "/api/v1/categories").json()["items"]
    assert len(cats) >= 10
    kitchen = walk(catalog, category="kitchen", page_size=100)
    assert len(kitchen) == next(c["product_count"] for c in cats if c["slug"] == "kitchen")
    assert all(i["category"] == "kitchen" for i in kitchen)
    band = walk(catalog, min_price=2000, max_price=3000, page_size=100)
    assert band and all(2000 <= i["price_cents"] <= 3000 for i in band)
    stocked = walk(catalog, in_stock="true", page_size=100)
    assert all(i["stock_available"] > 0 for i in stocked)
    assert 0 < DEMO_PRODUCTS - len(stocked) < DEMO_PRODUCTS * 0.1
    assert walk(catalog, category="no-such-category") == []


def test_categories(catalog):
    body = get(catalog, "/api/v1/categories").json()
    assert body["next_page_token"] is None
    items = body["items"]
    assert sum(c["product_count"] for c in items) == DEMO_PRODUCTS
    for c in items:
        assert set(c) == {"slug", "name", "description", "product_count"}


@pytest.mark.parametrize("params,field", [
    ({"sort": "cheapest"}, "sort"),
    ({"page_size": "0"}, "page_size"),
    ({"page_size": "1000"}, "page_size"),
    ({"page_size": "ten"}, "page_size"),
    ({"page_size": "-1"}, "page_size"),
    ({"min_price": "500", "max_price": "100"}, "min_price"),
    ({"min_price": "1.5"}, "min_price"),
    ({"max_price": "99999999999999999999"}, "max_price"),
    ({"in_stock": "maybe"}, "in_stock"),
    ({"page_token": "not-a-token!"}, "page_token"),
    ({"page_token": "eyJmIjoxfQ"}, "page_token"),
    ({"q": "x" * 201}, "q"),
])
def test_bad_list_input_is_400_naming_the_field(catalog, params, field):
    body = assert_problem(get(catalog, "/api/v1/products", **params), 400, "validation_failed")
    assert field in [e["field"] for e in body["errors"]], body


def refused(r):
    """r is a 400 naming page_token alone; returns its message."""
    body = assert_problem(r, 400, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["page_token"], body
    return body["errors"][0]["message"]


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(token):
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


# One query of each kind, and a second page of it: a token of any of them is refused by
# every other (the filters, the sort and the words are all part of what it is bound to).
QUERIES = [
    {},
    {"sort": "price_asc"},
    {"sort": "price_desc"},
    {"category": "kitchen"},
    {"category": "kitchen", "sort": "price_asc"},
    {"min_price": 2000, "max_price": 3000},
    {"min_price": 2000, "max_price": 3001},
    {"in_stock": "true"},
    {"q": "coffee"},
    {"q": "coffee", "sort": "newest"},
    {"q": "coffee", "sort": "price_asc"},
    {"q": "coffee", "sort": "price_desc"},
    {"q": "coffee mug"},
    {"q": "coffee", "category": "kitchen"},
]


def test_page_token_bound_to_its_query(catalog):
    tokens = []
    for q in QUERIES:
        first = get(catalog, "/api/v1/products", page_size=2, **q).json()
        assert first["next_page_token"], q
        tokens.append(first["next_page_token"])
        # its own token takes the next page, whatever page_size now asks for
        r = get(catalog, "/api/v1/products", page_size=3, page_token=tokens[-1], **q)
        assert r.status_code == 200, (q, r.text)
        assert not {i["id"] for i in r.json()["items"]} & {i["id"] for i in first["items"]}
    for i, q in enumerate(QUERIES):
        for j, token in enumerate(tokens):
            if i != j:
                assert "another list or query" in refused(
                    get(catalog, "/api/v1/products", page_token=token, **q)), (q, QUERIES[j])
    # free text the same once normalised is the same query: case and spaces do not matter
    r = get(catalog, "/api/v1/products", q="  COFFEE ", page_token=tokens[QUERIES.index({"q": "coffee"})])
    assert r.status_code == 200, r.text


def _fnv1a(h, s):
    for b in (s or "").encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return ((h ^ 0xFF) * 16777619) & 0xFFFFFFFF


def test_forged_page_tokens_are_400(catalog):
    """A token is sealed with the catalog's secret: one made up, or a real one altered,
    never lands the caller on a page of its choosing."""
    # the old format, {"f":filter_hash,"r":rid,"k":key} with the unkeyed FNV-1a hash of
    # the query (newest first, no filters): anyone could compute it
    h = 2166136261
    for part in ("", None, "-1/-1/0/3"):
        h = _fnv1a(h, part)
    old = b64(json.dumps({"f": h, "r": 600, "k": 0}, separators=(",", ":")).encode())
    refused(get(catalog, "/api/v1/products", page_token=old))

    token = get(catalog, "/api/v1/products", page_size=2).json()["next_page_token"]
    raw = unb64(token)
    version, bind, key, tag = raw[0], raw[1:9], raw[9:-16], raw[-16:]
    assert version == 1 and json.loads(key)[0] > 2   # [rid]: where the next page starts
    deep = json.dumps([600]).encode()
    forged = [
        b64(raw[:9] + deep + tag),                           # another position, the old tag
        b64(raw[:9] + deep + bytes(16)),                     # ... a made-up tag
        b64(raw[:9] + key + bytes(a ^ 1 for a in tag)),      # the position, a flipped tag
        b64(bytes([2]) + raw[1:]),                           # another version
        b64(raw[:-1]),                                       # cut short
        b64(raw[:9] + b"[600," + key[1:] + tag),             # a longer position
        token[:-2],
        token + "AA",
        "x" * 600,
    ]
    for bad in forged:
        assert refused(get(catalog, "/api/v1/products", page_token=bad)), bad
    # nothing above was taken for a page, and the real token still is one
    r = get(catalog, "/api/v1/products", page_size=2, page_token=token)
    assert r.status_code == 200 and len(r.json()["items"]) == 2


def test_unknown_ids_and_paths(catalog):
    assert_problem(get(catalog, "/api/v1/products/prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C"), 404, "product_not_found")
    assert_problem(get(catalog, "/api/v1/products/nonsense"), 404)
    assert_problem(get(catalog, "/api/v1/nothing"), 404, "not_found")
    r = requests.delete(catalog.url + "/api/v1/categories", timeout=5)
    assert_problem(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_request_id_and_traceparent(catalog):
    r = requests.get(catalog.url + "/api/v1/categories", timeout=5,
                     headers={"X-Request-Id": "abc-123",
                              "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
    assert r.headers["X-Request-Id"] == "abc-123"
    generated = requests.get(catalog.url + "/api/v1/categories", timeout=5,
                             headers={"X-Request-Id": "bad id with spaces"})
    assert generated.headers["X-Request-Id"].startswith("req_")
    access = []
    for _ in range(40):   # the access log is written in batches, within 100 ms
        access = [l for l in catalog.log_lines() if l.get("http.request.id") == "abc-123"]
        if access:
            break
        time.sleep(0.05)
    assert access and access[-1]["trace.id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert access[-1]["http.response.status_code"] == 200
    assert access[-1]["url.path"] == "/api/v1/categories"


def test_metrics_pass_promtool(catalog):
    get(catalog, "/api/v1/products", page_size=3)
    text = requests.get(catalog.url + "/metrics", timeout=5).text
    assert 'http_requests_total{route="/api/v1/products",method="GET",code="200"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text and "process_open_fds" in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_health(catalog):
    assert requests.get(catalog.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(catalog.url + "/readyz", timeout=5).json() == {"status": "ready"}


def test_seed_is_idempotent_and_migrations_recorded(services, tmp_path):
    svc = services("catalog", seed=True)
    svc.run("seed")
    assert svc.query("SELECT count(*) FROM products") == [(DEMO_PRODUCTS,)]
    assert svc.query("SELECT count(*) FROM schema_migrations")[0][0] >= 1
    if not svc.postgres:
        assert svc.query("PRAGMA journal_mode") == [("wal",)]


def test_bad_config_is_a_clear_error(services, tmp_path):
    from conftest import Service
    svc = Service("catalog", tmp_path, env={"SOUK_THREADS": "0"})
    r = svc.run("serve", check=False)
    assert r.returncode == 2
    assert "SOUK_THREADS" in r.stderr and "1 to 256" in r.stderr
    svc = Service("catalog", tmp_path, env={"SOUK_LISTEN": "nonsense"})
    r = svc.run("serve", check=False)
    assert r.returncode == 2 and "SOUK_LISTEN" in r.stderr


def test_sigterm_drains_and_exits_zero(services):
    svc = services("catalog", seed=True)
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(timeout=10) == 0
    assert any(l.get("message") == "stopped" for l in svc.log_lines())
