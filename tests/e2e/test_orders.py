"""Checkout end to end on the whole platform (souk up -d): a customer's journey
through the gateway, an admin shipping, declined cards, idempotent retries,
oversell under concurrency, and kill -9 of orders, payments and catalog while
checkouts stream in, with the money and stock invariants checked after."""
import concurrent.futures as cf
import glob
import os
import signal
import threading
import time
import uuid

import pytest
import requests

from conftest import SCALE, assert_problem
from orders_helpers import (ADDRESS, CARD_DECLINED, CARD_FLAKY, FINAL, Shop, bearer, wait_until)


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path)
    try:
        yield s.up()
    finally:
        s.down()


def test_customer_journey_through_the_gateway(shop):
    gw = shop.url("gateway")
    pid = shop.product(price_cents=2000, stock=5)
    c = shop.customer(base=gw)
    # browse
    r = requests.get(gw + f"/api/v1/products/{pid}", timeout=5)
    assert r.status_code == 200 and r.json()["price_cents"] == 2000
    # cart
    cart = shop.add_to_cart(c["token"], pid, 3, base=gw)
    assert cart["items"][0]["quantity"] == 3 and cart["subtotal_cents"] == 6000
    assert cart["items"][0]["line_total_cents"] == 6000
    # a saved address
    r = requests.post(gw + "/api/v1/users/me/addresses", headers=bearer(c["token"]), json=ADDRESS, timeout=5)
    assert r.status_code == 201, r.text
    address_id = r.json()["id"]
    # check out
    r = shop.checkout(c, base=gw, body={"payment_method_id": c["pm"], "address_id": address_id})
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "confirmed", order
    assert order["subtotal_cents"] == 6000 and order["shipping_cents"] == 0 and order["total_cents"] == 6000
    assert order["items"] == [{"product_id": pid, "name": order["items"][0]["name"], "unit_price_cents": 2000,
                               "quantity": 3, "line_total_cents": 6000}]
    assert order["shipping_address"]["line1"] == ADDRESS["line1"]
    assert shop.stock(pid) == 2
    pays = shop.payments(c["token"], order["id"])
    assert [(p["status"], p["captured_cents"]) for p in pays] == [("captured", 6000)]
    # the cart empties, the mail arrives, the order is listed
    wait_until(lambda: requests.get(gw + "/api/v1/cart", headers=bearer(c["token"]), timeout=5)
               .json()["items"] == [], 15, "cart emptied")
    wait_until(lambda: any(order["id"] in m and c["email"] in m and "confirmed" in m for m in shop.mails()),
               20, "confirmation mail")
    r = requests.get(gw + "/api/v1/orders", headers=bearer(c["token"]), timeout=5)
    assert [o["id"] for o in r.json()["items"]] == [order["id"]]
    # another customer cannot see it
    other = shop.customer()
    assert_problem(requests.get(gw + f"/api/v1/orders/{order['id']}", headers=bearer(other["token"]), timeout=5),
                   404, "order_not_found")
    # cancel: refunded, stock back
    r = requests.post(gw + f"/api/v1/orders/{order['id']}/cancel", headers=bearer(c["token"]), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json().get("reason") == "cancelled_by_customer", r.json()
    pays = shop.payments(c["token"], order["id"])
    assert [(p["status"], p["refunded_cents"]) for p in pays] == [("refunded", 6000)]
    wait_until(lambda: shop.stock(pid) == 5, 15, "stock restored by order.cancelled")
    wait_until(lambda: any(order["id"] in m and "cancelled" in m for m in shop.mails()), 20, "cancellation mail")
    # a cancelled order cannot ship
    assert_problem(requests.post(gw + f"/api/v1/orders/{order['id']}/ship", headers=bearer(shop.admin),
                                 timeout=5), 409, "not_shippable")


def test_admin_ships_an_order(shop):
    pid = shop.product(price_cents=1000, stock=3)
    c = shop.customer()
    shop.add_to_cart(c["token"], pid, 1)
    r = shop.checkout(c)
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    order = r.json()
    assert order["shipping_cents"] == 499 and order["total_cents"] == 1499
    oid = order["id"]
    # customers cannot ship
    r = requests.post(shop.url("orders") + f"/api/v1/orders/{oid}/ship", headers=bearer(c["token"]), timeout=5)
    assert r.status_code == 403
    r = requests.post(shop.url("orders") + f"/api/v1/orders/{oid}/ship", headers=bearer(shop.admin), timeout=5)
    assert r.status_code == 200 and r.json()["status"] == "shipped" and r.json()["shipped_at"], r.text
    # admins see every order
    r = requests.get(shop.url("orders") + "/api/v1/orders", headers=bearer(shop.admin), timeout=5)
    assert oid in [o["id"] for o in r.json()["items"]]
    # a shipped order cannot be cancelled
    assert_problem(requests.post(shop.url("orders") + f"/api/v1/orders/{oid}/cancel",
                                 headers=bearer(c["token"]), timeout=5), 409, "not_cancellable")
    wait_until(lambda: any(oid in m and "shipped" in m for m in shop.mails()), 20, "shipping mail")
    # domain metrics: orders by status, saga step durations
    metrics = lambda: requests.get(shop.url("orders") + "/metrics", timeout=5).text
    assert 'orders_saga_step_duration_seconds_count{step="capture"} 1' in metrics()
    wait_until(lambda: 'orders_by_status{status="shipped"} 1' in metrics(), 10, "orders_by_status")


def test_declined_card_rejects_and_releases_stock(shop):
    pid = shop.product(price_cents=700, stock=4)
    c = shop.customer(card=CARD_DECLINED)
    shop.add_to_cart(c["token"], pid, 2)
    r = shop.checkout(c)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "rejected" and r.json()["reason"] == "payment_declined"
    assert shop.stock(pid) == 4
    assert [p["status"] for p in shop.payments(c["token"], r.json()["id"])] == ["declined"]
    # the cart is kept for another try
    r = requests.get(shop.url("cart") + "/api/v1/cart", headers=bearer(c["token"]), timeout=5)
    assert len(r.json()["items"]) == 1


def test_flaky_processor_is_retried(shop):
    pid = shop.product(price_cents=700, stock=4)
    c = shop.customer(card=CARD_FLAKY)
    shop.add_to_cart(c["token"], pid, 1)
    r = shop.checkout(c)
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    pays = shop.payments(c["token"], r.json()["id"])
    assert [(p["status"], p["captured_cents"]) for p in pays] == [("captured", 1199)]


def test_idempotency_key_gives_one_order_and_one_charge(shop):
    pid = shop.product(price_cents=6000, stock=5)
    c = shop.customer()
    shop.add_to_cart(c["token"], pid, 1)
    key = str(uuid.uuid4())
    first = shop.checkout(c, key=key)
    assert first.status_code == 201, first.text
    second = shop.checkout(c, key=key)
    assert second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(shop.payments(c["token"], first.json()["id"])) == 1
    assert shop.stock(pid) == 4
    r = requests.get(shop.url("orders") + "/api/v1/orders", headers=bearer(c["token"]), timeout=5)
    assert len(r.json()["items"]) == 1
    # the same key with another body
    other = shop.checkout(c, key=key, body={"payment_method_id": c["pm"], "shipping_address": {**ADDRESS, "city": "X"}})
    assert_problem(other, 409, "idempotency_key_reused")


def test_concurrent_duplicates_all_answered_with_the_one_order(shop):
    """Eight requests with one Idempotency-Key at once (a client retrying on a timeout
    while the first still runs): one order, one charge, one unit of stock, and every
    request is answered with that order; none is refused as in use."""
    pid = shop.product(price_cents=2500, stock=5)
    c = shop.customer()
    shop.add_to_cart(c["token"], pid, 1)
    key = str(uuid.uuid4())
    barrier = threading.Barrier(8)

    def go(_):
        barrier.wait()
        return shop.checkout(c, key=key, timeout=60)

    with cf.ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(go, range(8)))
    assert all(r.status_code in (201, 202) for r in answers), [(r.status_code, r.text) for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1, ids
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
    order = shop.wait_final(c["token"], ids.pop())
    assert order["status"] == "confirmed", order
    assert len(shop.payments(c["token"], order["id"])) == 1
    assert shop.stock(pid) == 4


def test_bad_requests(shop):
    c = shop.customer()
    base = shop.url("orders")
    h = bearer(c["token"])
    assert_problem(requests.post(base + "/api/v1/orders", headers=h, json={"payment_method_id": c["pm"],
                                 "shipping_address": ADDRESS}, timeout=5), 400, "idempotency_key_required")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    for body, field in [({}, "payment_method_id"),
                        ({"payment_method_id": c["pm"]}, "address_id"),
                        ({"payment_method_id": "nope", "shipping_address": ADDRESS}, "payment_method_id"),
                        ({"payment_method_id": c["pm"], "shipping_address": {**ADDRESS, "country": "usa"}},
                         "shipping_address.country"),
                        ({"payment_method_id": c["pm"], "shipping_address": {**ADDRESS, "line1": "x" * 500}},
                         "shipping_address.line1"),
                        ({"payment_method_id": c["pm"], "shipping_address": ADDRESS, "extra": 1}, "extra")]:
        p = assert_problem(requests.post(base + "/api/v1/orders", headers={**h, **key}, json=body, timeout=5), 400)
        assert field in [e["field"] for e in p["errors"]], (body, p)
    assert_problem(shop.checkout(c), 409, "cart_empty")
    assert_problem(requests.get(base + "/api/v1/orders/ord_nope", headers=h, timeout=5), 404)
    assert requests.get(base + "/api/v1/orders", timeout=5).status_code == 401
    cart = shop.url("cart")
    pid = shop.product(stock=1)
    for qty in (-1, 100, "3", None):
        assert_problem(requests.put(cart + f"/api/v1/cart/items/{pid}", headers=h, json={"quantity": qty},
                                    timeout=5), 400)
    assert_problem(requests.put(cart + "/api/v1/cart/items/prd_01J00000000000000000000000", headers=h,
                                json={"quantity": 1}, timeout=5), 404, "product_not_found")
    shop.add_to_cart(c["token"], pid, 2)
    p = assert_problem(shop.checkout(c, body={"payment_method_id": c["pm"], "address_id": "adr_nope"}), 400)
    assert p["errors"][0]["field"] == "address_id"
    r = requests.put(cart + f"/api/v1/cart/items/{pid}", headers=h, json={"quantity": 0}, timeout=5)
    assert r.status_code == 200 and r.json()["items"] == []


CART_TTL_MS = 3000


def test_cart_product_table_freshness(tmp_path):
    """The cart prices a PUT from its own table of products (services/cart/README.md,
    "Freshness"): product.updated drops a row before any later PUT reads it, an
    archived or unknown product is 404, and a change the cart never heard of reaches
    a PUT within SOUK_CART_PRODUCT_TTL_MS."""
    shop = Shop(tmp_path, env={"SOUK_CART_PRODUCT_TTL_MS": str(CART_TTL_MS)}).up()
    try:
        cart = shop.url("cart")
        a, b = shop.customer(), shop.customer()

        def put(c, pid, qty=1):
            return requests.put(cart + f"/api/v1/cart/items/{pid}", headers=bearer(c["token"]),
                                json={"quantity": qty}, timeout=10)

        def heard(pid):
            """pid once the cart has heard of its creation (a product.updated too), which
            would otherwise drop its row under the test"""
            wait_until(lambda: shop.platform.query("cart", "SELECT count(*) FROM cart_products"
                                                   " WHERE product_id = ? AND invalidated_ms > 0", (pid,)) == [(1,)],
                       15, "creation heard")
            return pid

        def price(c, pid):
            r = requests.get(cart + "/api/v1/cart", headers=bearer(c["token"]), timeout=5)
            return {i["product_id"]: i["unit_price_cents"] for i in r.json()["items"]}.get(pid)

        pid = shop.product(price_cents=1000, stock=5)
        assert shop.add_to_cart(a["token"], pid)["items"][0]["unit_price_cents"] == 1000
        cat = shop.url("catalog") + f"/api/v1/products/{pid}"
        etag = requests.get(cat, timeout=5).headers["ETag"]
        r = requests.patch(cat, headers={**bearer(shop.admin), "If-Match": etag}, json={"price_cents": 1250},
                           timeout=5)
        assert r.status_code == 200, r.text
        # the event that refreshed a's line dropped the row in the same transaction
        wait_until(lambda: price(a, pid) == 1250, 15, "a's line repriced")
        r = put(b, pid)
        assert r.status_code == 200 and r.json()["items"][0]["unit_price_cents"] == 1250, r.text
        # archived: its lines go, and a PUT after the event is 404 however fresh the row was
        assert requests.delete(cat, headers=bearer(shop.admin), timeout=5).status_code == 204
        wait_until(lambda: price(a, pid) is None, 15, "archived product's line removed")
        assert_problem(put(b, pid, 2), 404, "product_not_found")
        # unknown ids are asked every time, never kept
        unknown = "prd_01J00000000000000000000000"
        for _ in range(2):
            assert_problem(put(a, unknown), 404, "product_not_found")
        assert shop.platform.query("cart", "SELECT count(*) FROM cart_products WHERE product_id = ?",
                                   (unknown,)) == [(0,)]
        # a change the cart hears nothing of (written under the catalog, no event) is
        # seen once the row is older than the TTL, never later
        pid = heard(shop.product(price_cents=500, stock=5))
        t0 = time.monotonic()
        assert shop.add_to_cart(a["token"], pid)["items"][-1]["unit_price_cents"] == 500
        assert shop.platform.query("catalog", "UPDATE products SET price_cents = 700 WHERE id = ?", (pid,)) == 1
        r = put(b, pid)
        assert r.status_code == 200, r.text
        if time.monotonic() - t0 < CART_TTL_MS / 1000:   # a machine slower than the TTL: no claim
            assert r.json()["items"][-1]["unit_price_cents"] == 500, "priced from the cart's table"
        wait_until(lambda: put(b, pid).json()["items"][-1]["unit_price_cents"] == 700,
                   CART_TTL_MS / 1000 + 10, "the TTL bounds a missed change")
        # a full cart takes no new product, priced from the table or not, but its lines change
        assert shop.platform.query(
            "cart", "INSERT INTO cart_items (user_id, product_id, name, unit_price_cents, currency, quantity,"
            " added_at, updated_at) WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 49)"
            " SELECT ?, 'prd_filler' || n, 'filler', 1, 'USD', 1, '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z'"
            " FROM s", (b["id"],)) == 49
        assert_problem(put(b, shop.product()), 409, "cart_full")   # asked of the catalog
        p3 = heard(shop.product())
        shop.add_to_cart(a["token"], p3)
        assert_problem(put(b, p3), 409, "cart_full")   # priced from the table (within the TTL)
        r = put(b, pid, 3)
        assert r.status_code == 200 and len(r.json()["items"]) == 50, r.text
    finally:
        shop.down()


def test_oversell_fifty_customers_ten_units(shop):
    pid = shop.product(price_cents=1000, stock=10)
    with cf.ThreadPoolExecutor(8) as ex:
        customers = list(ex.map(lambda _: shop.customer(), range(50)))
    for c in customers:
        shop.add_to_cart(c["token"], pid, 1)
    barrier = threading.Barrier(50)

    def go(c):
        barrier.wait()
        r = shop.checkout(c, timeout=60)
        assert r.status_code in (201, 202), r.text
        return c, r.json()["id"]

    with cf.ThreadPoolExecutor(50) as ex:
        placed = list(ex.map(go, customers))
    orders = [shop.wait_final(c["token"], oid) for c, oid in placed]
    confirmed = [o for o in orders if o["status"] == "confirmed"]
    rejected = [o for o in orders if o["status"] == "rejected"]
    assert len(confirmed) == 10, [o["status"] for o in orders]
    assert len(rejected) == 40 and all(o["reason"] == "out_of_stock" for o in rejected)
    assert shop.stock(pid) == 0
    for c, oid in placed:
        pays = shop.payments(c["token"], oid)
        status = next(o["status"] for o in orders if o["id"] == oid)
        assert [p["status"] for p in pays] == (["captured"] if status == "confirmed" else [])


def _restart_after_kill(shop, name, old_pid, timeout=20):
    wait_until(lambda: shop.platform.state()[(name, 0)]["pid"] != old_pid
               and requests.get(shop.url(name) + "/readyz", timeout=0.5).status_code == 200,
               timeout, f"{name} back after SIGKILL")


def test_sigkill_orders_payments_catalog_while_checking_out(shop):
    start_stock = 600   # enough that most checkouts reach payments while peers die
    products = [shop.product(price_cents=1200, stock=start_stock), shop.product(price_cents=3100, stock=start_stock)]
    cards = ["4242424242424242"] * 6 + [CARD_DECLINED, CARD_FLAKY]
    with cf.ThreadPoolExecutor(8) as ex:
        customers = list(ex.map(lambda i: shop.customer(card=cards[i % len(cards)]), range(16)))
    stop = threading.Event()
    errors = []

    def stream(i, c):
        """Keep checking out: fill the cart, place it, retry the same key until answered."""
        n = 0
        while not stop.is_set():
            n += 1
            try:
                shop.add_to_cart(c["token"], products[(i + n) % 2], 1 + n % 3)
            except (AssertionError, requests.RequestException):
                time.sleep(0.3)   # cart or catalog restarting
                continue
            key = str(uuid.uuid4())
            for _ in range(200):
                try:
                    r = shop.checkout(c, key=key, timeout=10)
                    if r.status_code in (201, 202):
                        break
                    if r.status_code == 409 and r.json().get("code") == "cart_empty":
                        break
                    if r.status_code not in (409, 503):   # in use / a peer restarting
                        errors.append(r.text)
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.2)
            time.sleep(0.25)

    threads = [threading.Thread(target=stream, args=(i, c)) for i, c in enumerate(customers)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        for name in ("orders", "payments", "catalog"):
            old = shop.platform.state()[(name, 0)]["pid"]
            os.kill(old, signal.SIGKILL)
            _restart_after_kill(shop, name, old)
            time.sleep(1.5)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []

    # within 30 s every order is final
    def all_orders():
        out = []
        for c in customers:
            r = requests.get(shop.url("orders") + "/api/v1/orders", params={"page_size": 100},
                             headers=bearer(c["token"]), timeout=5)
            assert r.status_code == 200 and r.json()["next_page_token"] is None, r.text
            out += [(c, o) for o in r.json()["items"]]
        return out

    settled = wait_until(lambda: (o := all_orders()) and all(x["status"] in FINAL for _, x in o) and o,
                         30, "every order final", every=0.5)
    statuses = [o["status"] for _, o in settled]
    assert statuses.count("confirmed") >= 5, statuses
    assert statuses.count("rejected") >= 1, statuses

    # money: one capture of the total per confirmed order, no net charge otherwise
    sold = {p: 0 for p in products}
    for c, o in settled:
        pays = shop.payments(c["token"], o["id"])
        if o["status"] == "confirmed":
            assert [(p["status"], p["captured_cents"], p["refunded_cents"]) for p in pays] == \
                [("captured", o["total_cents"], 0)], (o, pays)
            for it in o["items"]:
                sold[it["product_id"]] += it["quantity"]
        else:
            assert sum(p["captured_cents"] - p["refunded_cents"] for p in pays) == 0, (o, pays)
            assert all(p["status"] in ("declined", "voided", "refunded") for p in pays), (o, pays)
        if o["status"] == "rejected" and c["pm"] and o["reason"] == "payment_declined":
            assert [p["status"] for p in pays] == ["declined"]

    # stock: on hand plus sold is what we started with, nothing left held
    wait_until(lambda: all(shop.stock(p) + sold[p] == start_stock for p in products), 15,
               f"stock to balance (sold {sold})")
    ledger = shop.ledger()
    assert ledger["balanced"] is True and ledger["consistent"] is True, ledger
    # the kills did interrupt sagas in flight (else this test proved nothing), in some
    # orders replica's log (the scale-out mode runs two; a saga may be run by either):
    # a step that reached no peer; with replicas, whose client sends a call that reached
    # no one to the other replica, that failover (or the dead replica's circuit
    # opening) does as well
    logs = glob.glob(os.path.join(shop.var, "log", "orders.log")) + \
        glob.glob(os.path.join(shop.var, "log", "orders-[0-9]*.log"))
    interrupted = False
    for path in logs:
        with open(path, errors="replace") as f:
            interrupted |= any(("saga step failed transiently" in l and '"souk.http":0' in l)
                               or (SCALE and ("circuit open" in l or "call sent to the next replica" in l))
                               for l in f)
    assert interrupted, logs


def test_cart_follows_catalog_changes(shop):
    pid = shop.product(price_cents=1000, stock=5)
    c = shop.customer()
    shop.add_to_cart(c["token"], pid, 2)
    cat = shop.url("catalog") + f"/api/v1/products/{pid}"
    etag = requests.get(cat, timeout=5).headers["ETag"]
    r = requests.patch(cat, headers={**bearer(shop.admin), "If-Match": etag},
                       json={"price_cents": 1250, "name": "Renamed thing"}, timeout=5)
    assert r.status_code == 200, r.text

    def cart():
        return requests.get(shop.url("cart") + "/api/v1/cart", headers=bearer(c["token"]), timeout=5).json()
    wait_until(lambda: cart()["items"][0]["unit_price_cents"] == 1250, 15, "price refreshed")
    got = cart()
    assert got["items"][0]["name"] == "Renamed thing" and got["subtotal_cents"] == 2500
    # an order is priced by the catalog's reservation, not by the cart
    r = shop.checkout(c)
    assert r.status_code == 201 and r.json()["subtotal_cents"] == 2500, r.text
    # archived products leave every cart
    pid2 = shop.product(price_cents=100, stock=5)
    shop.add_to_cart(c["token"], pid2, 1)
    assert requests.delete(shop.url("catalog") + f"/api/v1/products/{pid2}", headers=bearer(shop.admin),
                           timeout=5).status_code == 204
    wait_until(lambda: all(i["product_id"] != pid2 for i in cart()["items"]), 15, "archived product removed")
    # other carts are private; clearing empties
    other = shop.customer()
    assert requests.get(shop.url("cart") + "/api/v1/cart", headers=bearer(other["token"]), timeout=5).json()["items"] == []
    assert requests.get(shop.url("cart") + f"/internal/v1/carts/{c['id']}", headers=bearer(other["token"]),
                        timeout=5).status_code in (401, 403)
    r = requests.delete(shop.url("cart") + "/api/v1/cart", headers=bearer(c["token"]), timeout=5)
    assert r.status_code == 200 and r.json()["items"] == []
