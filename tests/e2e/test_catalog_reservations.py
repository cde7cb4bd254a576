"""Catalog stock reservations (DESIGN §4 catalog internal): reserve, commit and
release are idempotent by reservation id and atomic over all lines; held stock
expires by itself; concurrent reservations never oversell. Tokens come from the
real users service (the orders client's client_credentials grant)."""
import concurrent.futures
import json
import os
import secrets
import time
import uuid

import pytest
import requests

from conftest import Service, assert_problem


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    var = tmp_path_factory.mktemp("reservations")
    secret = {"orders": secrets.token_hex(24), "cart": secrets.token_hex(24)}
    clients = var / "clients.json"
    clients.write_text(json.dumps(secret))
    os.chmod(clients, 0o600)
    users = Service("users", var, {"SOUK_CLIENTS_FILE": str(clients)}).start()
    catalog = Service("catalog", var, {"SOUK_USERS_URL": users.url})
    catalog.run("seed")
    catalog.start()

    def token(client):
        r = requests.post(users.url + "/oauth/token", auth=(client, secret[client]),
                          data={"grant_type": "client_credentials"}, timeout=10)
        assert r.status_code == 200, r.text
        return {"Authorization": "Bearer " + r.json()["access_token"]}

    e = type("Env", (), {})()
    e.users, e.catalog = users, catalog
    e.orders, e.cart = token("orders"), token("cart")
    yield e
    catalog.kill()
    users.kill()


def product(env, pid):
    return requests.get(f"{env.catalog.url}/api/v1/products/{pid}", timeout=5).json()


def products_with_stock(env, at_least, n=2):
    r = requests.get(env.catalog.url + "/api/v1/products",
                     params={"in_stock": "true", "page_size": 100, "sort": "price_asc"}, timeout=5)
    found = [p for p in r.json()["items"] if p["stock_available"] >= at_least]
    assert len(found) >= n
    return found[:n]


def reserve(env, rid, items, ttl=None, headers=None):
    body = {"reservation_id": rid, "items": items}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    return requests.post(env.catalog.url + "/internal/v1/reservations", json=body,
                         headers=env.orders if headers is None else headers, timeout=10)


def commit(env, rid):
    return requests.post(f"{env.catalog.url}/internal/v1/reservations/{rid}/commit",
                         headers=env.orders, timeout=10)


def release(env, rid):
    return requests.delete(f"{env.catalog.url}/internal/v1/reservations/{rid}",
                           headers=env.orders, timeout=10)


def rid():
    return "ord_" + uuid.uuid4().hex


def test_reserve_is_idempotent_and_priced(env):
    a, b = products_with_stock(env, 3)
    before = {p["id"]: p["stock_available"] for p in (a, b)}
    r_id = rid()
    items = [{"product_id": a["id"], "quantity": 2}, {"product_id": b["id"], "quantity": 1}]
    r = reserve(env, r_id, items)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["reservation_id"] == r_id and body["status"] == "held"
    lines = {i["product_id"]: i for i in body["items"]}
    assert lines[a["id"]]["unit_price_cents"] == a["price_cents"]
    assert lines[a["id"]]["name"] == a["name"] and lines[a["id"]]["quantity"] == 2
    assert product(env, a["id"])["stock_available"] == before[a["id"]] - 2
    assert product(env, b["id"])["stock_available"] == before[b["id"]] - 1
    again = reserve(env, r_id, list(reversed(items)))
    assert again.status_code == 200 and again.json() == body
    assert product(env, a["id"])["stock_available"] == before[a["id"]] - 2   # held once
    other = reserve(env, r_id, [{"product_id": a["id"], "quantity": 1}])
    assert_problem(other, 409, "reservation_mismatch")
    assert release(env, r_id).status_code == 200
    assert product(env, a["id"])["stock_available"] == before[a["id"]]


def test_out_of_stock_is_atomic_and_names_each_item(env):
    a, b = products_with_stock(env, 2)
    before_a = product(env, a["id"])["stock_available"]
    r = reserve(env, rid(), [{"product_id": a["id"], "quantity": 1},
                             {"product_id": b["id"], "quantity": 1000}])
    body = assert_problem(r, 409, "out_of_stock")
    assert body["items"] == [{"product_id": b["id"], "requested": 1000,
                              "available": product(env, b["id"])["stock_available"]}]
    assert product(env, a["id"])["stock_available"] == before_a   # nothing held


def test_commit_sells_and_release_returns(env):
    (a,) = products_with_stock(env, 2, n=1)
    start = product(env, a["id"])["stock_available"]
    sold, dropped = rid(), rid()
    assert reserve(env, sold, [{"product_id": a["id"], "quantity": 1}]).status_code == 201
    assert reserve(env, dropped, [{"product_id": a["id"], "quantity": 1}]).status_code == 201
    assert product(env, a["id"])["stock_available"] == start - 2
    for _ in range(2):
        r = commit(env, sold)
        assert r.status_code == 200 and r.json()["status"] == "committed"
    assert_problem(release(env, sold), 409, "already_committed")
    for _ in range(2):
        r = release(env, dropped)
        assert r.status_code == 200 and r.json()["status"] == "released"
    assert product(env, a["id"])["stock_available"] == start - 1
    assert_problem(reserve(env, dropped, [{"product_id": a["id"], "quantity": 1}]), 409,
                   "reservation_released")
    assert_problem(commit(env, dropped), 409, "reservation_released")
    assert_problem(commit(env, "ord_never"), 404, "reservation_not_found")


def test_release_before_reserve_leaves_a_tombstone(env):
    (a,) = products_with_stock(env, 1, n=1)
    late = rid()
    assert release(env, late).status_code == 200
    start = product(env, a["id"])["stock_available"]
    assert_problem(reserve(env, late, [{"product_id": a["id"], "quantity": 1}]), 409,
                   "reservation_released")
    assert product(env, a["id"])["stock_available"] == start


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_ttl_returns_stock_and_late_commit_retakes_it(env):
    (a,) = products_with_stock(env, 2, n=1)
    start = product(env, a["id"])["stock_available"]
    r_id = rid()
    assert reserve(env, r_id, [{"product_id": a["id"], "quantity": 1}], ttl=1).status_code == 201
    assert product(env, a["id"])["stock_available"] == start - 1
    assert wait_for(lambda: product(env, a["id"])["stock_available"] == start)
    # the stock is still there: a late commit takes it again rather than lose the sale
    assert commit(env, r_id).status_code == 200
    assert product(env, a["id"])["stock_available"] == start - 1


def test_expired_and_sold_out_commit_is_refused(env):
    (a,) = products_with_stock(env, 1, n=1)
    avail = product(env, a["id"])["stock_available"]
    slow = rid()
    assert reserve(env, slow, [{"product_id": a["id"], "quantity": avail}], ttl=1).status_code == 201
    assert wait_for(lambda: product(env, a["id"])["stock_available"] == avail)
    fast = rid()
    assert reserve(env, fast, [{"product_id": a["id"], "quantity": avail}]).status_code == 201
    assert commit(env, fast).status_code == 200
    assert_problem(commit(env, slow), 409, "reservation_expired")
    assert product(env, a["id"])["stock_available"] == 0


def test_concurrent_reservations_never_oversell(env):
    (a,) = products_with_stock(env, 5, n=1)
    avail = product(env, a["id"])["stock_available"]
    tries = avail + 20

    def one(_):
        return reserve(env, rid(), [{"product_id": a["id"], "quantity": 1}]).status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(tries)))
    assert codes.count(201) == avail, codes
    assert codes.count(409) == tries - avail
    assert product(env, a["id"])["stock_available"] == 0


@pytest.mark.parametrize("body,field", [
    ({"items": [{"product_id": "prd_x", "quantity": 1}]}, "reservation_id"),
    ({"reservation_id": "a b", "items": [{"product_id": "prd_x", "quantity": 1}]}, "reservation_id"),
    ({"reservation_id": "r1"}, "items"),
    ({"reservation_id": "r1", "items": []}, "items"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": 0}]}, "quantity"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": 1001}]}, "quantity"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": "1"}]}, "quantity"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": 1}] * 2}, "items"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": 1}], "ttl_seconds": 0},
     "ttl_seconds"),
    ({"reservation_id": "r1", "items": [{"product_id": "prd_x", "quantity": 1}], "ttl": 60}, "ttl"),
])
def test_bad_reservations_are_400(env, body, field):
    r = requests.post(env.catalog.url + "/internal/v1/reservations", json=body,
                      headers=env.orders, timeout=10)
    problem = assert_problem(r, 400, "validation_failed")
    assert field in [e["field"] for e in problem["errors"]], problem


def test_unknown_product_is_404_naming_it(env):
    ghost = "prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C"
    body = assert_problem(reserve(env, rid(), [{"product_id": ghost, "quantity": 1}]), 404,
                          "product_not_found")
    assert body["product_id"] == ghost


def test_internal_routes_need_the_reserve_scope(env):
    items = [{"product_id": "prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C", "quantity": 1}]
    r = reserve(env, rid(), items, headers={})
    assert_problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(reserve(env, rid(), items, headers=env.cart), 403)
    r = requests.delete(env.catalog.url + "/internal/v1/reservations/x", headers=env.cart, timeout=5)
    assert_problem(r, 403)


def test_a_failed_database_step_holds_nothing_and_says_so(env):
    """A write that fails half-way (here: the lines of the reservation cannot be stored)
    is the kit's 500, rolled back whole; the same reservation id works once it can."""
    (a,) = products_with_stock(env, 2, n=1)
    before = product(env, a["id"])["stock_available"]
    if env.catalog.postgres:
        env.catalog.query("CREATE FUNCTION no_lines() RETURNS trigger LANGUAGE plpgsql"
                          " AS $$ BEGIN RAISE EXCEPTION 'no lines'; END $$")
        env.catalog.query("CREATE TRIGGER no_lines BEFORE INSERT ON reservation_items"
                          " FOR EACH ROW EXECUTE FUNCTION no_lines()")
    else:
        env.catalog.query("CREATE TRIGGER no_lines BEFORE INSERT ON reservation_items"
                          " BEGIN SELECT abs(-9223372036854775807 - 1); END")
    r_id = rid()
    try:
        body = assert_problem(reserve(env, r_id, [{"product_id": a["id"], "quantity": 1}]), 500,
                              "internal")
    finally:
        env.catalog.query("DROP TRIGGER no_lines" + (" ON reservation_items" if env.catalog.postgres else ""))
    assert body["detail"] == "cannot hold stock"
    assert product(env, a["id"])["stock_available"] == before   # nothing held
    assert reserve(env, r_id, [{"product_id": a["id"], "quantity": 1}]).status_code == 201
    assert release(env, r_id).status_code == 200
    lines = [l for l in env.catalog.log_lines() if l.get("message") == "database step failed"]
    assert lines and lines[-1]["http.response.status_code"] == 500 and lines[-1].get("http.request.id")
