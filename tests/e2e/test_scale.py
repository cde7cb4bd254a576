"""The scale-out mode under faults (issue 14): the whole platform with two replicas of
every service on PostgreSQL and RabbitMQ (SOUK_TEST_MODE=scale), checkouts streaming
through the gateway while one replica of each stateful service is SIGKILLed, while
PostgreSQL restarts (fast shutdown), and while the broker stops and comes back; then
a rolling restart of every service, one replica at a time, under load with zero
client errors. After each: every acknowledged order is final within 30 s, nothing is
charged twice, no unit is oversold, the ledger balances, and every event reached
each of its consumers once (their inboxes against the producers' outboxes)."""
import concurrent.futures as cf
import os
import re
import signal
import threading
import time
import uuid

import pytest
import requests

from conftest import SCALE, SERVICES, _databases, _transport
from orders_helpers import ADDRESS, CARD_DECLINED, FINAL, Shop, bearer, wait_until

pytestmark = pytest.mark.skipif(
    not SCALE, reason="faults of the scale-out mode (replicas, PostgreSQL, RabbitMQ): "
                      "SOUK_TEST_MODE=scale")

STATEFUL = ["users", "catalog", "cart", "orders", "payments", "notify"]
# who consumes what (services/*/main.c): producer -> [(consumer, types)]
CONSUMERS = {
    "users": [("notify", {"user.registered"})],
    "orders": [("notify", {"order.confirmed", "order.rejected", "order.cancelled", "order.shipped"}),
               ("cart", {"order.confirmed"}), ("catalog", {"order.cancelled"})],
    "payments": [("notify", {"payment.refunded"})],
    "catalog": [("cart", {"product.updated"})],
}


class Gateway:
    """The client's side of a load balancer in front of the gateway's replicas: each
    request goes to the next replica in rotation, and to the other one when its
    connection is refused (nothing was sent), as a Kubernetes Service or an L4
    balancer does. A replica about to be stopped is taken out of rotation first
    (Kubernetes removes a terminating pod from the endpoints; a preStop pause covers
    the race), so no new connection reaches a draining gateway."""

    def __init__(self, shop):
        self.urls = [shop.platform.url("gateway", k) for k in range(shop.platform.replicas("gateway"))]
        self.out = set()   # replicas out of rotation
        self.n = 0
        self.lock = threading.Lock()

    def request(self, method, path, **kw):
        with self.lock:
            self.n += 1
            first = self.n
            urls = [u for k, u in enumerate(self.urls) if k not in self.out] or self.urls
        kw.setdefault("timeout", 30)
        for i in range(len(urls) * 3):
            url = urls[(first + i) % len(urls)]
            try:
                return requests.request(method, url + path, **kw)
            except requests.ConnectionError as e:
                if "refused" not in str(e).lower():
                    raise
                time.sleep(0.05)
        raise AssertionError(f"every gateway replica refused {method} {path}")


@pytest.fixture
def shop(tmp_path):
    """A platform per test: each test begins with the broker's souk queues deleted
    (conftest), which a platform kept across tests would not survive."""
    s = Shop(tmp_path)
    try:
        yield s.up()
    finally:
        s.down()


class Load:
    """Customers checking out through the gateway until stopped: fill the cart, place
    it with a fresh Idempotency-Key and send the same key again until it is answered.
    What a fault may cost is latency and retries, never an order: each acknowledged
    order (201 or 202 with an id) is kept for the checks after."""

    def __init__(self, shop, products, customers=8, strict=False):
        self.shop, self.products, self.strict = shop, products, strict
        self.gw = Gateway(shop)
        cards = ["4242424242424242"] * 5 + [CARD_DECLINED]
        with cf.ThreadPoolExecutor(4) as ex:
            self.customers = list(ex.map(lambda i: shop.customer(card=cards[i % len(cards)]),
                                         range(customers)))
        self.stop = threading.Event()
        self.acked = []    # (customer, order id)
        self.errors = []   # what a strict load may not see: any answer that is not the API's
        self.threads = []

    def _call(self, method, path, ok, **kw):
        """One request; its response when the status is in ok. Otherwise it is an error
        under a strict load, and a retry (None) under a fault."""
        try:
            r = self.gw.request(method, path, **kw)
        except (requests.RequestException, AssertionError) as e:
            if self.strict:
                self.errors.append(f"{method} {path}: {e}")
            return None
        if r.status_code in ok:
            return r
        if self.strict or r.status_code < 500 and r.status_code not in (409, 429):
            self.errors.append(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return None

    def _customer(self, i, c):
        h = bearer(c["token"])
        n = 0
        while not self.stop.is_set():
            n += 1
            pid = self.products[(i + n) % len(self.products)]
            self._call("GET", "/api/v1/products", (200,), params={"q": "thing", "page_size": 5})
            if self._call("PUT", f"/api/v1/cart/items/{pid}", (200,), headers=h,
                          json={"quantity": 1 + n % 2}) is None:
                time.sleep(0.2)
                continue
            key = str(uuid.uuid4())
            for _ in range(300):
                r = self._call("POST", "/api/v1/orders", (201, 202, 409), headers={**h, "Idempotency-Key": key},
                               json={"payment_method_id": c["pm"], "shipping_address": ADDRESS})
                if r is not None and r.status_code in (201, 202):
                    self.acked.append((c, r.json()["id"]))
                    break
                if r is not None and r.json().get("code") == "cart_empty":
                    break   # the last order emptied it meanwhile
                if self.stop.is_set() and r is None:
                    break
                time.sleep(0.2)   # in use (409), or the platform busy
            time.sleep(0.1)

    def __enter__(self):
        for i, c in enumerate(self.customers):
            t = threading.Thread(target=self._customer, args=(i, c), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=90)
        return False


def products(shop, stock):
    return [shop.product(price_cents=1200, stock=stock), shop.product(price_cents=2300, stock=stock)]


def check_everything(shop, load, start_stock):
    """The invariants after a fault: final orders, money, stock, ledger, events."""
    assert load.acked, "no order was placed: the test proved nothing"
    # every acknowledged order is final within 30 s
    def final():
        out = []
        for c, oid in load.acked:
            o = shop.order(c["token"], oid)
            if o["status"] not in FINAL or o.get("cancellation_pending"):
                return None
            out.append((c, o))
        return out
    settled = wait_until(final, 30, "every acknowledged order final", every=0.5)
    # no double charge: one capture of the total per confirmed order, nothing net otherwise
    sold = {p: 0 for p in load.products}
    for c, o in settled:
        pays = shop.payments(c["token"], o["id"])
        if o["status"] == "confirmed":
            assert [(p["status"], p["captured_cents"], p["refunded_cents"]) for p in pays] == \
                [("captured", o["total_cents"], 0)], (o, pays)
            for it in o["items"]:
                if it["product_id"] in sold:
                    sold[it["product_id"]] += it["quantity"]
        else:
            assert sum(p["captured_cents"] - p["refunded_cents"] for p in pays) == 0, (o, pays)
    # no unit oversold or lost: what is left and what was sold make what there was,
    # once the reservations of the rejected orders are released
    wait_until(lambda: all(shop.stock(p) + sold[p] == start_stock for p in load.products), 30,
               f"stock to balance (sold {sold})")
    p = shop.platform
    for pid in load.products:
        assert p.query("catalog", "SELECT on_hand >= reserved AND reserved >= 0 FROM products"
                                  " WHERE id = ?", (pid,)) == [(True,)]
    ledger = shop.ledger()
    assert ledger["balanced"] is True and ledger["consistent"] is True, ledger
    check_events(shop)


def check_events(shop):
    """Every event a producer committed was relayed (sent_ms set) and reached each of
    its consumers once: in the consumer's inbox, and (notify) one notification for it;
    nothing was dead-lettered."""
    p = shop.platform

    def missing():
        lost = []
        for producer, consumers in CONSUMERS.items():
            if p.query(producer, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") != [(0,)]:
                return [f"{producer}: outbox not yet relayed"]
            rows = p.query(producer, "SELECT id, type FROM souk_outbox")
            for consumer, types in consumers:
                seen = {r[0] for r in p.query(consumer, "SELECT event_id FROM souk_inbox")}
                lost += [f"{consumer} lacks {t} {i}" for i, t in rows if t in types and i not in seen]
        return lost
    last = []

    def none_missing():
        last[:] = missing()
        return not last
    try:
        wait_until(none_missing, 30, "every event consumed", every=1)
    except AssertionError:
        raise AssertionError(f"events not consumed after 30 s: {last[:10]} ({len(last)} in all)")
    for consumer in ("notify", "cart", "catalog"):
        assert p.query(consumer, "SELECT count(*) FROM souk_dead_letters") == [(0,)], consumer
    dup = p.query("notify", "SELECT event_id FROM notifications GROUP BY event_id HAVING count(*) > 1")
    assert dup == [], dup
    inbox = {r[0] for r in p.query("notify", "SELECT event_id FROM souk_inbox")}
    made = {r[0] for r in p.query("notify", "SELECT event_id FROM notifications")}
    assert inbox == made, (inbox ^ made)


def restarted(shop, name, k, old_pid, timeout=30):
    """Replica k of name runs again under a new pid and answers /readyz."""
    url = shop.platform.url(name, k)
    wait_until(lambda: shop.platform.state()[(name, k)]["pid"] not in (0, old_pid)
               and requests.get(url + "/readyz", timeout=1).status_code == 200,
               timeout, f"{name}-{k} back")


def gateways_see(shop, name):
    """Every gateway replica's health probes have seen every replica of name up
    (souk_proxy_upstream_up on its admin listener)."""
    for g in range(shop.platform.replicas("gateway")):
        try:
            text = requests.get(shop.platform.admin_url(g) + "/metrics", timeout=2).text
        except requests.RequestException:
            return False
        ups = re.findall(r'souk_proxy_upstream_up\{upstream="%s",instance="[^"]*"\} (\S+)' % name, text)
        if len(ups) != shop.platform.replicas(name) or any(float(v) != 1 for v in ups):
            return False
    return True


def test_sigkill_one_replica_of_each_stateful_service(shop):
    stock = 400
    load = Load(shop, products(shop, stock))
    with load:
        time.sleep(2)
        for name in STATEFUL:
            old = shop.platform.state()[(name, 1)]["pid"]
            os.kill(old, signal.SIGKILL)
            restarted(shop, name, 1, old)
            time.sleep(0.5)
        time.sleep(1)
    assert load.errors == []
    check_everything(shop, load, stock)


def test_postgres_restart_while_checking_out(shop):
    stock = 400
    load = Load(shop, products(shop, stock))
    with load:
        time.sleep(2)
        before = len(load.acked)
        _databases.cmd("restart")   # pg_ctl restart -m fast: every session closed
        wait_until(lambda: len(load.acked) > before + 3, 30, "checkouts again after the restart")
    assert load.errors == []
    check_everything(shop, load, stock)
    # the services did lose their sessions (else this proved nothing)
    text = requests.get(shop.url("orders") + "/metrics", timeout=5).text
    assert re.search(r"^souk_db_reconnects_total [1-9]", text, re.M), "no reconnect counted"


def test_broker_stop_and_restart_while_checking_out(shop):
    stock = 400
    load = Load(shop, products(shop, stock))
    broker = _transport.rabbit
    with load:
        time.sleep(2)
        broker.stop()
        try:
            n = len(load.acked)
            wait_until(lambda: len(load.acked) > n + 3, 30, "checkouts go on without the broker")
        finally:
            broker.start()
        time.sleep(2)
    assert load.errors == []
    check_everything(shop, load, stock)


def test_rolling_restart_under_load_has_no_client_error(shop):
    stock = 1000
    load = Load(shop, products(shop, stock), customers=6, strict=True)
    with load:
        time.sleep(1)
        for name in STATEFUL + ["gateway"]:
            for k in range(shop.platform.replicas(name)):
                old = shop.platform.state()[(name, k)]["pid"]
                if name == "gateway":   # out of the balancer's rotation, then stopped
                    with load.gw.lock:
                        load.gw.out.add(k)
                    time.sleep(0.5)     # the preStop pause: requests sent meanwhile land
                os.kill(old, signal.SIGTERM)   # drain, exit; souk starts it again
                restarted(shop, name, k, old)
                if name == "gateway":
                    with load.gw.lock:
                        load.gw.out.discard(k)
                else:   # the gateways' health checks put the replica back
                    wait_until(lambda: gateways_see(shop, name), 30, f"the gateways to see {name}-{k}")
        time.sleep(1)
    assert load.errors == [], load.errors[:10]
    check_everything(shop, load, stock)
    assert all(shop.platform.state()[(n, k)]["restarts"] >= 1
               for n in SERVICES for k in range(shop.platform.replicas(n)))
