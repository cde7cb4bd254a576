"""Catalog admin writes with real tokens from a real users service: create, edit
with If-Match (412 stale, 428 missing), archive, set stock (409 below reserved),
version and updated_at bumped on every change; 401/403 for everyone else."""

import pytest
import requests

from conftest import assert_problem
from users_helpers import admin_token, bearer, register, start_catalog, start_users, tokens


@pytest.fixture
def env(services, tmp_path):
    users = start_users(services, tmp_path / "users")
    catalog = start_catalog(services, tmp_path / "catalog", users)
    return users, catalog, admin_token(users)


NEW = {"sku": "TEST-0001", "name": "Test Lamp", "description": "A lamp for tests", "price_cents": 2599,
       "category": None, "attributes": {"color": "red"}, "on_hand": 5}


def category(catalog):
    return requests.get(catalog.url + "/api/v1/categories").json()["items"][0]["slug"]


def create(catalog, adm, **over):
    body = dict(NEW, category=category(catalog))
    body.update(over)
    r = requests.post(catalog.url + "/api/v1/products", json=body, headers=bearer(adm))
    assert r.status_code == 201, r.text
    return r


def test_create_then_read(env):
    users, catalog, adm = env
    r = create(catalog, adm)
    p = r.json()
    assert p["id"].startswith("prd_") and p["stock_available"] == 5 and p["attributes"] == {"color": "red"}
    assert r.headers["ETag"] == '"v1"'
    g = requests.get(catalog.url + f"/api/v1/products/{p['id']}")
    assert g.status_code == 200 and g.json()["name"] == "Test Lamp" and g.headers["ETag"] == '"v1"'
    dup = requests.post(catalog.url + "/api/v1/products", json=dict(NEW, category=category(catalog)),
                        headers=bearer(adm))
    assert_problem(dup, 409, "sku_taken")
    bad = requests.post(catalog.url + "/api/v1/products",
                        json=dict(NEW, sku="X-2", category="no-such", price_cents=-1), headers=bearer(adm))
    fields = {e["field"] for e in assert_problem(bad, 400, "validation_failed")["errors"]}
    assert fields == {"category", "price_cents"}

    # GET writes the product's JSON itself (products.c), the create answer and the
    # lists come from elsewhere: the same object whatever the text holds
    name = 'Lamp "Q" \\ back\tslash\n\u0001\u001f\u007f é ☃ 😀'
    attrs = {"s": 'x"y\\z\n\u0001', "n": 2.5, "b": True, "u": "é☃"}
    p = create(catalog, adm, sku="TEST-AWK", name=name, description="d\r\b\f", attributes=attrs).json()
    g = requests.get(catalog.url + f"/api/v1/products/{p['id']}", timeout=5)
    assert g.status_code == 200 and g.json() == p
    assert g.json()["name"] == name and g.json()["attributes"] == attrs
    listed = requests.get(catalog.url + "/api/v1/products", params={"page_size": 5}, timeout=5).json()
    assert [i for i in listed["items"] if i["id"] == p["id"]] == [g.json()]


def test_patch_with_if_match(env):
    users, catalog, adm = env
    p = create(catalog, adm).json()
    url = catalog.url + f"/api/v1/products/{p['id']}"
    etag = requests.get(url).headers["ETag"]
    assert_problem(requests.patch(url, json={"price_cents": 1999}, headers=bearer(adm)), 428)
    r = requests.patch(url, json={"price_cents": 1999}, headers={**bearer(adm), "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["price_cents"] == 1999 and r.json()["name"] == "Test Lamp"
    assert r.headers["ETag"] == '"v2"' and r.json()["updated_at"] > p["updated_at"]
    stale = requests.patch(url, json={"name": "Late"}, headers={**bearer(adm), "If-Match": etag})
    assert_problem(stale, 412, "precondition_failed")
    assert requests.get(url).json()["name"] == "Test Lamp"
    assert_problem(requests.patch(url, json={"on_hand": 3}, headers={**bearer(adm), "If-Match": '"v2"'}), 400)


def test_stock_and_archive(env, tmp_path):
    users, catalog, adm = env
    p = create(catalog, adm).json()
    url = catalog.url + f"/api/v1/products/{p['id']}"
    r = requests.put(url + "/stock", json={"on_hand": 12}, headers=bearer(adm))
    assert r.status_code == 200 and r.json()["stock_available"] == 12 and r.headers["ETag"] == '"v2"'
    # reserve 4 behind the API's back, as a reservation would; stock may not go below it
    assert catalog.query("UPDATE products SET reserved = 4 WHERE id = ?", (p["id"],)) == 1
    assert_problem(requests.put(url + "/stock", json={"on_hand": 3}, headers=bearer(adm)), 409, "below_reserved")
    assert requests.put(url + "/stock", json={"on_hand": 4}, headers=bearer(adm)).status_code == 200
    assert_problem(requests.put(url + "/stock", json={"on_hand": -1}, headers=bearer(adm)), 400)
    assert requests.delete(url, headers=bearer(adm)).status_code == 204
    assert_problem(requests.get(url), 404)
    assert_problem(requests.delete(url, headers=bearer(adm)), 404)
    assert catalog.query("SELECT version, archived FROM products WHERE id = ?", (p["id"],)) == [(4, 1)]


def test_admin_writes_need_an_admin(env):
    users, catalog, adm = env
    p = create(catalog, adm).json()
    email, _ = register(users)
    user = tokens(users, email)["access_token"]
    url = catalog.url + f"/api/v1/products/{p['id']}"
    calls = [("POST", catalog.url + "/api/v1/products", dict(NEW, sku="Y")),
             ("PATCH", url, {"name": "x"}), ("DELETE", url, None), ("PUT", url + "/stock", {"on_hand": 1})]
    for method, u, body in calls:
        r = requests.request(method, u, json=body, headers={"If-Match": '"v1"'})
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(requests.request(method, u, json=body, headers={**bearer(user), "If-Match": '"v1"'}), 403)
    assert requests.get(url).headers["ETag"] == '"v1"'       # nothing changed


def counts(catalog):
    items = requests.get(catalog.url + "/api/v1/categories").json()["items"]
    return {c["slug"]: c["product_count"] for c in items}


def listed(catalog, **params):
    r = requests.get(catalog.url + "/api/v1/products", params=dict(params, page_size=100))
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["items"]]


def test_writes_move_products_in_lists_search_and_counts(env):
    """Counts, the full-text tables and the search vocabulary follow every admin write,
    and stock changes move a product in and out of in_stock lists without touching them."""
    users, catalog, adm = env
    before = counts(catalog)
    a, b = sorted(before)[:2]
    p = create(catalog, adm, sku="ZZ-1", name="Quixotic Zorblax Lamp", description="Made for zorbling.",
               category=a, price_cents=1, on_hand=0).json()
    url = catalog.url + f"/api/v1/products/{p['id']}"
    assert counts(catalog) == dict(before, **{a: before[a] + 1})
    # a prefix of words no product had before: the vocabulary learned them with the write
    assert listed(catalog, q="zorbl") == [p["id"]]
    assert listed(catalog, q="quixo zorblax", sort="price_desc") == [p["id"]]
    assert listed(catalog, category=a, sort="price_asc")[0] == p["id"]
    assert p["id"] not in listed(catalog, category=a, sort="price_asc", in_stock="true")
    # stock: in the in_stock lists now, and no count moved
    assert requests.put(url + "/stock", json={"on_hand": 3}, headers=bearer(adm)).status_code == 200
    assert listed(catalog, category=a, sort="price_asc", in_stock="true")[0] == p["id"]
    assert listed(catalog, q="zorbl", in_stock="true") == [p["id"]]
    assert counts(catalog) == dict(before, **{a: before[a] + 1})
    # a new name, description, category and price move it everywhere
    etag = requests.get(url).headers["ETag"]
    r = requests.patch(url, json={"name": "Quixotic Frobnitz Lamp", "description": "Plain.",
                                  "category": b, "price_cents": 99999999},
                       headers={**bearer(adm), "If-Match": etag})
    assert r.status_code == 200, r.text
    assert counts(catalog) == dict(before, **{b: before[b] + 1})
    assert listed(catalog, q="zorbl") == []
    assert listed(catalog, q="frobn", category=b, sort="price_asc") == [p["id"]]
    assert listed(catalog, q="frobn", category=a) == []
    assert listed(catalog, category=b, sort="price_desc")[0] == p["id"]
    assert listed(catalog, sort="price_desc", min_price=99999999)[0] == p["id"]
    assert p["id"] not in listed(catalog, category=a, sort="price_asc")
    # archived: in no list, no search, no count
    assert requests.delete(url, headers=bearer(adm)).status_code == 204
    assert counts(catalog) == before
    assert listed(catalog, q="frobn") == []
    assert p["id"] not in listed(catalog, category=b, sort="price_desc")
    assert p["id"] not in listed(catalog)
