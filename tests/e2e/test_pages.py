"""Every list endpoint pages the one way (issue 12, lib/page.c): page_size (default
20, at most 100) and an opaque page_token bound to its list and query. Paging through
each list returns every item once, in its order; a token that is made up, altered, of
another list (of this service or another), of another user or of another query is a
400 naming page_token, never a wrong page.

The real users, orders, payments and notify binaries serve the lists; the rows they
list are written into each service's own database by the test (fast, and exactly
known), except addresses and payment methods, added through their API."""
import secrets

import pytest
import requests

from conftest import Service, assert_problem
from users_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, bearer, write_clients

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NOW = "2026-01-01T00:00:00.000Z"
ADDR = {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345",
        "country": "US"}
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}


def new_id(prefix):
    return f"{prefix}_0" + "".join(secrets.choice(CROCKFORD) for _ in range(25))


def sql(svc, name, statement, rows):
    svc.execute_many(statement, rows)


def token_of(users, email, password=PASSWORD):
    r = requests.post(users.url + "/oauth/token", timeout=30,
                      data={"grant_type": "password", "username": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    var = tmp_path_factory.mktemp("pages")
    # paging, not events: the feed (which this notify, holding no service credentials,
    # never reads), whatever SOUK_TEST_EVENTS says; on a broker it would add welcome
    # notifications while the lists are read
    users = Service("users", var, {"SOUK_CLIENTS_FILE": write_clients(var),
                                   "SOUK_ADMIN_EMAIL": ADMIN_EMAIL,
                                   "SOUK_ADMIN_PASSWORD": ADMIN_PASSWORD, "SOUK_EVENTS": "feed"})
    users.run("seed")
    users.start()
    peers = {name: Service(name, var, {"SOUK_USERS_URL": users.url, "SOUK_EVENTS": "feed"})
             for name in ("orders", "payments", "notify")}
    for svc in peers.values():
        svc.start(wait=False)
    try:
        for svc in peers.values():
            svc.wait_ready()
        e = type("Env", (), {})()
        e.users, e.orders, e.payments, e.notify = users, peers["orders"], peers["payments"], peers["notify"]
        e.people = {}
        for who in ("alice", "bob"):
            email = f"{who}-{secrets.token_hex(4)}@example.com"
            r = requests.post(users.url + "/api/v1/users", timeout=30,
                              json={"email": email, "password": PASSWORD, "name": who})
            assert r.status_code == 201, r.text
            e.people[who] = (r.json()["id"], bearer(token_of(users, email)))
        e.admin = bearer(token_of(users, ADMIN_EMAIL, ADMIN_PASSWORD))
        fill(e)
        yield e
    finally:
        for svc in peers.values():
            svc.kill()
        users.kill()


def fill(e):
    """Known rows in every list: alice has 7 of each (5 addresses and methods), bob 2."""
    alice, bob = e.people["alice"][0], e.people["bob"][0]
    owners = [alice] * 7 + [bob] * 2
    e.orders_of = {alice: [], bob: []}
    rows = []
    for user in owners:
        oid = new_id("ord")
        e.orders_of[user].append(oid)
        rows.append((oid, user, "confirmed", "done", "[]", 100, 0, 100, "USD", "{}", "pm_1", NOW, NOW))
    sql(e.orders, "orders",
        "INSERT INTO orders (id, user_id, status, step, items_json, subtotal_cents, shipping_cents,"
        " total_cents, currency, shipping_address_json, payment_method_id, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    e.order_a, e.order_b = new_id("ord"), new_id("ord")
    e.payments_of = {alice: [], bob: []}
    rows = []
    for i, user in enumerate(owners):
        pid = new_id("pay")
        order = e.order_a if i % 2 == 0 else e.order_b
        e.payments_of[user].append((pid, order))
        rows.append((pid, order, user, "pm_1", "authorized", 100, "USD", NOW, NOW))
    sql(e.payments, "payments",
        "INSERT INTO payments (id, order_id, user_id, payment_method_id, status, amount_cents,"
        " currency, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    e.notifications_of = {alice: [], bob: []}
    rows = []
    for user in owners:
        nid = new_id("ntf")
        e.notifications_of[user].append(nid)
        rows.append((nid, user, new_id("evt"), "test", "subject", "body", NOW))
    sql(e.notify, "notify",
        "INSERT INTO notifications (id, user_id, event_id, type, subject, body, created_at)"
        " VALUES (?,?,?,?,?,?,?)", rows)
    sql(e.users, "users",
        "INSERT INTO users (id, email, email_norm, name, password_hash, created_at, updated_at)"
        " VALUES (?,?,?,?,'x',?,?)",
        [(new_id("usr"), f"x{i}@example.com", f"x{i}@example.com", "X", NOW, NOW) for i in range(5)])
    h = e.people["alice"][1]
    for i in range(5):
        r = requests.post(e.users.url + "/api/v1/users/me/addresses", json={**ADDR, "line1": f"{i} Main St"},
                          headers=h, timeout=10)
        assert r.status_code == 201, r.text
        r = requests.post(e.payments.url + "/api/v1/payment-methods", json={"card": CARD}, headers=h,
                          timeout=10)
        assert r.status_code == 201, r.text


def lists(e):
    """(name, url, auth, query) of every list endpoint, as alice sees them (the
    accounts: as the admin)."""
    h = e.people["alice"][1]
    return [
        ("orders", e.orders.url + "/api/v1/orders", h, {}),
        ("payments", e.payments.url + "/api/v1/payments", h, {}),
        ("payments of an order", e.payments.url + "/api/v1/payments", h, {"order_id": e.order_a}),
        ("payment methods", e.payments.url + "/api/v1/payment-methods", h, {}),
        ("notifications", e.notify.url + "/api/v1/notifications", h, {}),
        ("addresses", e.users.url + "/api/v1/users/me/addresses", h, {}),
        ("accounts", e.users.url + "/api/v1/users", e.admin, {}),
    ]


def every_item(url, auth, query, size):
    """Follow next_page_token to the end: (ids in order, pages)."""
    ids, token, pages = [], None, 0
    while True:
        params = {**query, "page_size": size, **({"page_token": token} if token else {})}
        r = requests.get(url, params=params, headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_page_token"}, body
        ids += [item["id"] for item in body["items"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            return ids, pages
        assert len(body["items"]) == size, body  # only the last page is short
        assert pages < 100


def test_paging_returns_every_item_once_in_order(env):
    alice = env.people["alice"][0]
    for name, url, auth, query in lists(env):
        whole = requests.get(url, params=query, headers=auth, timeout=10)
        assert whole.status_code == 200, (name, whole.text)
        assert whole.json()["next_page_token"] is None, name  # fewer than the default 20
        want = [item["id"] for item in whole.json()["items"]]
        assert len(want) == len(set(want)) >= 4, (name, want)
        for size in (1, 2, 3, 100):
            ids, pages = every_item(url, auth, query, size)
            assert ids == want, (name, size)
            assert pages == max(1, -(-len(want) // size)), (name, size, pages)  # no empty last page
    # and the lists hold what they must: alice's own, newest first where the API says so
    assert every_item(*lists(env)[0][1:], 2)[0] == sorted(env.orders_of[alice], reverse=True)
    assert every_item(*lists(env)[1][1:], 2)[0] == sorted(p for p, _ in env.payments_of[alice])
    assert every_item(*lists(env)[2][1:], 2)[0] == sorted(p for p, o in env.payments_of[alice]
                                                         if o == env.order_a)
    assert every_item(*lists(env)[4][1:], 2)[0] == sorted(env.notifications_of[alice], reverse=True)
    accounts = every_item(*lists(env)[6][1:], 3)[0]
    assert accounts == sorted(accounts) and len(accounts) == 8  # admin, alice, bob, 5 more


def first_token(url, auth, query):
    r = requests.get(url, params={**query, "page_size": 1}, headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["next_page_token"], r.text
    return r.json()["next_page_token"]


def refused(r, field="page_token"):
    body = assert_problem(r, 400, "validation_failed")
    assert [err["field"] for err in body["errors"]] == [field], body
    return body["errors"][0]["message"]


def test_a_token_of_another_list_query_or_user_or_a_forged_one_is_400(env):
    every = lists(env)
    tokens = {name: first_token(url, auth, query) for name, url, auth, query in every}
    for name, url, auth, query in every:
        mine = tokens[name]
        altered = mine[:10] + ("A" if mine[10] != "A" else "B") + mine[11:]
        forged = ["not a token", "AAAA", altered, mine + "A", mine[:-4], "x" * 600,
                  new_id("ord"), new_id("usr")]  # the old formats: a bare id
        for bad in forged + [t for other, t in tokens.items() if other != name]:
            r = requests.get(url, params={**query, "page_token": bad}, headers=auth, timeout=10)
            refused(r)
        # the same token still works: nothing above spent it
        assert requests.get(url, params={**query, "page_token": mine}, headers=auth,
                            timeout=10).status_code == 200
    # another user's token, on the same list: bob is not shown alice's second page
    bob = env.people["bob"][1]
    for name, url, auth, query in every[:6]:
        if name == "payments of an order":
            continue
        assert "another list or query" in refused(
            requests.get(url, params={**query, "page_token": tokens[name]}, headers=bob, timeout=10))
    # another query of the same list: the order filter is part of the query
    url, auth = every[1][1], every[1][2]
    assert "another list or query" in refused(
        requests.get(url, params={"page_token": tokens["payments of an order"]}, headers=auth, timeout=10))
    assert "another list or query" in refused(
        requests.get(url, params={"order_id": env.order_b, "page_token": tokens["payments of an order"]},
                     headers=auth, timeout=10))


def test_page_size_is_checked_the_same_everywhere(env):
    for name, url, auth, query in lists(env):
        for bad in ("0", "101", "-1", "x", "1.5", ""):
            refused(requests.get(url, params={**query, "page_size": bad}, headers=auth, timeout=10),
                    "page_size")
        r = requests.get(url, params={**query, "page_size": "100"}, headers=auth, timeout=10)
        assert r.status_code == 200, (name, r.text)
