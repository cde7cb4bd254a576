"""The database configuration and the PostgreSQL backend seen from outside (issue 14):
a SOUK_DB that is neither sqlite:PATH nor a postgres:// URL stops a service at once
(exit 2, the variable named, no file created, no password shown); the cart runs on
a private PostgreSQL cluster end to end (its API, the events it consumes, a restart
of the server, the server down and back), and replicas starting together migrate
once."""
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest
import requests

from conftest import BIN, DEAD_PORT, Service, assert_problem, free_port
from events_helpers import FakeProducer, loads, wait_for
from pg_helpers import PgCluster
from users_helpers import (CLIENT_SECRETS, admin_token, bearer, register, start_catalog,
                           start_users, tokens)

SECRET = "pg-Secret-42"

BAD_URLS = [
    "/var/lib/souk/cart.db",              # today's plain path: no longer taken
    "cart.db",
    ":memory:",
    "sqlite:",
    "mysql://souk:" + SECRET + "@127.0.0.1/cart",
    "postgres:/souk:" + SECRET + "@127.0.0.1/cart",   # one slash short
    "postgresql://souk:" + SECRET + "@127.0.0.1:99999/cart",
    "postgres://souk:" + SECRET + "@127.0.0.1/cart?no_such_option=1",
]


@pytest.mark.parametrize("value", BAD_URLS)
def test_a_bad_database_url_stops_the_service(tmp_path, value):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = dict(os.environ)
    env.update({"SOUK_DB": value, "SOUK_VAR": str(tmp_path / "var"),
                "SOUK_LISTEN": f"127.0.0.1:{free_port()}",
                "SOUK_CATALOG_URL": f"http://127.0.0.1:{DEAD_PORT}"})
    r = subprocess.run([os.path.join(BIN, "cart")], env=env, cwd=str(cwd), capture_output=True,
                       text=True, timeout=20)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "SOUK_DB" in out and SECRET not in out, out
    assert os.listdir(cwd) == [] and not (tmp_path / "var").exists(), os.listdir(tmp_path)


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster().start()
    yield cluster
    cluster.destroy()


def start_cart(services, var, pg_env, users, catalog, orders, wait=True):
    env = dict(pg_env)
    env.update({"SOUK_USERS_URL": users.url, "SOUK_CATALOG_URL": catalog.url,
                "SOUK_ORDERS_URL": orders.url, "SOUK_CLIENT_ID": "cart",
                "SOUK_CLIENT_SECRET": CLIENT_SECRETS["cart"]})
    return services("cart", env=env, var_dir=var, wait=wait)


def test_cart_runs_on_postgresql(services, tmp_path, pg):
    users = start_users(services, tmp_path / "u")
    catalog = start_catalog(services, tmp_path / "c", users)
    orders = FakeProducer("orders")
    try:
        cart = start_cart(services, tmp_path / "cart", pg.env("cart"), users, catalog, orders)
        # libpq is loaded (dlopen) by a service on PostgreSQL only (users is on
        # SQLite but in the scale-out mode)
        assert loads(cart, "libpq.so.5") and loads(users, "libpq.so") == users.postgres
        run_cart_on_postgresql(cart, users, catalog, orders, pg, tmp_path)
    finally:
        orders.close()


def run_cart_on_postgresql(cart, users, catalog, orders, pg, tmp_path):
    email, user = register(users)
    h = bearer(tokens(users, email)["access_token"])
    products = requests.get(catalog.url + "/api/v1/products", params={"page_size": 2},
                            timeout=5).json()["items"]
    p1, p2 = products[0], products[1]
    for p, qty in ((p1, 2), (p2, 3)):
        r = requests.put(cart.url + f"/api/v1/cart/items/{p['id']}", headers=h,
                         json={"quantity": qty}, timeout=10)
        assert r.status_code == 200, r.text
    body = requests.get(cart.url + "/api/v1/cart", headers=h, timeout=5).json()
    lines = {line["product_id"]: line for line in body["items"]}
    assert lines[p1["id"]]["line_total_cents"] == 2 * p1["price_cents"]
    assert body["subtotal_cents"] == 2 * p1["price_cents"] + 3 * p2["price_cents"]
    # the lines live in PostgreSQL, and no SQLite file was made
    assert pg.psql("cart", "SELECT count(*) FROM cart_items") == (0, "2")
    assert not (tmp_path / "cart" / "db").exists()
    assert_problem(requests.put(cart.url + f"/api/v1/cart/items/{p1['id']}", headers=h,
                                json={"quantity": 100}, timeout=5), 400)

    # product.updated from the catalog's feed reprices the line
    adm = bearer(admin_token(users))
    url = catalog.url + f"/api/v1/products/{p1['id']}"
    etag = requests.get(url, timeout=5).headers["ETag"]
    r = requests.patch(url, json={"price_cents": p1["price_cents"] + 100},
                       headers={**adm, "If-Match": etag}, timeout=5)
    assert r.status_code == 200, r.text

    def price():
        items = requests.get(cart.url + "/api/v1/cart", headers=h, timeout=5).json()["items"]
        return {i["product_id"]: i["unit_price_cents"] for i in items}.get(p1["id"])
    wait_for(lambda: price() == p1["price_cents"] + 100, 20, what="the line repriced")

    # order.confirmed from orders' feed takes the ordered line out
    orders.emit("order.confirmed", {
        "order_id": "ord_01J0000000000000000000000P", "user_id": user["id"], "total_cents": 1,
        "currency": "USD", "items": [{"product_id": p2["id"], "quantity": 3}],
        "placed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})

    def ids():
        return [i["product_id"] for i in
                requests.get(cart.url + "/api/v1/cart", headers=h, timeout=5).json()["items"]]
    wait_for(lambda: ids() == [p1["id"]], 20, what="the ordered line removed")
    assert pg.psql("cart", "SELECT count(*) FROM souk_inbox") == (0, "2")  # both events

    # a restart of the server closes every session: the next requests reconnect
    pg.restart()
    for _ in range(6):   # more than the server's threads: each reconnects
        r = requests.get(cart.url + "/api/v1/cart", headers=h, timeout=5)
        assert r.status_code == 200, r.text
    assert requests.get(cart.url + "/readyz", timeout=5).status_code == 200

    # the server down: 503 problems and not ready, never a crash; back: it works
    pg.stop()
    try:
        for _ in range(4):
            r = requests.get(cart.url + "/api/v1/cart", headers=h, timeout=10)
            assert_problem(r, 503, "unavailable")
            assert int(r.headers["Retry-After"]) > 0
            assert_problem(requests.put(cart.url + f"/api/v1/cart/items/{p2['id']}", headers=h,
                                        json={"quantity": 1}, timeout=10), 503, "unavailable")
        assert requests.get(cart.url + "/readyz", timeout=10).status_code == 503
        assert cart.proc.poll() is None
    finally:
        pg.cmd("start")
    wait_for(lambda: requests.get(cart.url + "/api/v1/cart", headers=h, timeout=5).status_code == 200,
             20, what="the cart back")
    r = requests.put(cart.url + f"/api/v1/cart/items/{p2['id']}", headers=h, json={"quantity": 1},
                     timeout=10)
    assert r.status_code == 200 and len(r.json()["items"]) == 2, r.text
    wait_for(lambda: requests.get(cart.url + "/readyz", timeout=5).status_code == 200, 20,
             what="ready again")
    metrics = requests.get(cart.url + "/metrics", timeout=5).text
    assert metric(metrics, "souk_db_reconnects_total") >= 1
    assert metric(metrics, 'souk_db_errors_total{kind="unavailable"}') >= 1
    text = open(cart.log_path).read()
    assert '"database connection lost"' in text and '"database reconnected"' in text
    assert pg.password_file("cart") not in text and open(pg.password_file("cart")).read().strip() not in text


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {name} in /metrics")


def test_replicas_migrate_once_and_keep_to_their_database(services, tmp_path, pg):
    env = pg.env("cart_replicas")   # its peers are not needed to start
    replicas = [services("cart", env=env, var_dir=tmp_path / f"r{i}", wait=False) for i in range(2)]
    for r in replicas:
        r.wait_ready()
    applied = ["001_cart.sql", "002_products.sql"]
    assert pg.psql("cart_replicas", "SELECT name FROM schema_migrations ORDER BY name") == (0, "\n".join(applied))
    logs = [open(r.log_path).read().count('"migration applied"') for r in replicas]
    assert sorted(logs) == [0, len(applied)], logs   # one replica applied them all
    # a service's role reaches its own database only
    pg.createdb("cart")
    rc, out = pg.psql("cart", "SELECT 1", user="cart_replicas")
    assert rc != 0 and "permission denied" in out, out
