"""Which transport the calls between services took: one checkout, a cancellation and
a declined card on the whole platform (souk up -d), then every peer's counters. Under
SOUK_TEST_RPC=grpc (souk up's default) each call of the saga, of the checkout's reads
and of the cart's product lookups is a gRPC call (grpc_server_handled_total) and the
REST twins answered none; under SOUK_TEST_RPC=rest (SOUK_RPC=rest) the reverse."""
import os
import subprocess

import pytest
import requests

from conftest import BIN, RPC
from orders_helpers import ADDRESS, CARD_DECLINED, Shop, bearer, wait_until

# (peer, gRPC service, method, and the REST route a caller uses instead)
CALLS = [
    ("cart", "souk.cart.v1.Carts", "GetCart", "GET", "/internal/v1/carts/{user_id}"),
    ("users", "souk.users.v1.Users", "GetAddress", "GET",
     "/internal/v1/users/{id}/addresses/{address_id}"),
    # the cart's REST lookup is the public product read (which the test's calls count too)
    ("catalog", "souk.catalog.v1.CatalogInternal", "GetProducts", "GET", "/api/v1/products/{id}"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "Reserve", "POST", "/internal/v1/reservations"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "CommitReservation", "POST",
     "/internal/v1/reservations/{id}/commit"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "ReleaseReservation", "DELETE",
     "/internal/v1/reservations/{id}"),
    ("payments", "souk.payments.v1.Payments", "AuthorizePayment", "POST", "/internal/v1/payments"),
    ("payments", "souk.payments.v1.Payments", "CapturePayment", "POST",
     "/internal/v1/payments/{id}/capture"),
    ("payments", "souk.payments.v1.Payments", "RefundPayment", "POST",
     "/internal/v1/payments/{id}/refunds"),
]


def counted(text, name, **labels):
    """The sum of a counter's series that carry these labels (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path)
    try:
        yield s.up()
    finally:
        s.down()


def test_the_saga_takes_the_configured_transport(shop):
    gw = shop.url("gateway")
    pid = shop.product(price_cents=1200, stock=4)
    c = shop.customer(base=gw)
    shop.add_to_cart(c["token"], pid, 2, base=gw)
    r = requests.post(gw + "/api/v1/users/me/addresses", headers=bearer(c["token"]), json=ADDRESS,
                      timeout=5)
    assert r.status_code == 201, r.text
    r = shop.checkout(c, base=gw, body={"payment_method_id": c["pm"], "address_id": r.json()["id"]})
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    order = r.json()["id"]
    r = requests.post(gw + f"/api/v1/orders/{order}/cancel", headers=bearer(c["token"]), timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    # a declined card: the reservation is released
    d = shop.customer(card=CARD_DECLINED)
    shop.add_to_cart(d["token"], pid, 1)
    r = shop.checkout(d)
    assert r.status_code == 201, r.text
    assert shop.wait_final(d["token"], r.json()["id"])["status"] == "rejected"
    wait_until(lambda: shop.stock(pid) == 4, 15, "stock back after the cancel and the decline")

    # every replica's counters (the scale-out mode runs two of each)
    texts = {name: "\n".join(requests.get(shop.platform.url(name, k) + "/metrics", timeout=5).text
                             for k in range(shop.platform.replicas(name)))
             for name in ("cart", "users", "catalog", "payments")}
    for peer, service, method, verb, route in CALLS:
        rpcs = counted(texts[peer], "grpc_server_handled_total", service=service, method=method)
        ok = counted(texts[peer], "grpc_server_handled_total", service=service, method=method,
                     code="OK")
        rest = counted(texts[peer], "http_requests_total", route=route, method=verb)
        if RPC == "grpc":
            assert ok >= 1 and (rest == 0 or route.startswith("/api/")), (peer, method, ok, rest)
        else:
            assert rpcs == 0 and rest >= 1, (peer, method, rpcs, rest)


def test_souk_refuses_an_unknown_rpc_mode(tmp_path):
    env = dict(os.environ, SOUK_VAR=str(tmp_path), SOUK_BIN_DIR=BIN, SOUK_RPC="soap")
    r = subprocess.run([os.path.join(BIN, "souk"), "up", "-d"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and 'SOUK_RPC="soap": expected grpc or rest' in r.stderr, (r.returncode, r.stderr)
    assert not (tmp_path / "run" / "souk.pid").exists()
