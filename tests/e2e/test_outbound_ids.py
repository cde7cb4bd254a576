"""Ids that become paths (issue 11, item 1): an id a client sends is checked as an
id of its kind before a service puts it into a call to a peer, and the kit never
lets text change the path or add a query. The attack of the security review,
replayed through the gateway: an address_id that climbs out of the addresses
route to users' event feed, called with orders' own service token."""
import time
import uuid

import pytest
import requests

from conftest import assert_problem
from orders_helpers import ADDRESS, Shop, bearer


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    s = Shop(tmp_path_factory.mktemp("ids"))
    try:
        yield s.up()
    finally:
        s.down()


def place(shop, c, body, base):
    h = {**bearer(c["token"]), "Idempotency-Key": str(uuid.uuid4())}
    return requests.post(base + "/api/v1/orders", headers=h, json={"payment_method_id": c["pm"], **body},
                         timeout=30)


def test_address_id_cannot_climb_to_the_event_feed(shop):
    gw = shop.url("gateway")
    victim = shop.customer()                  # user.registered, with the email, sits in users' outbox
    attacker = shop.customer(base=gw)
    shop.add_to_cart(attacker["token"], shop.product(stock=5), 1, base=gw)
    for address_id in ("../../../events?limit=20", "../../../events", "..%2F..%2F..%2Fevents",
                       "adr_01J00000000000000000000000/../../../../events",
                       "adr_01J00000000000000000000000?x=1", "adr_01J00000000000000000000000#x"):
        t0 = time.monotonic()
        r = place(shop, attacker, {"address_id": address_id}, gw)
        assert victim["email"] not in r.text, r.text
        p = assert_problem(r, 400, "validation_failed")
        assert [e["field"] for e in p["errors"]] == ["address_id"], p
        assert time.monotonic() - t0 < 25       # answered, not parked until a timeout
    # nothing was placed: the attacker has no order that could carry the feed
    r = requests.get(gw + "/api/v1/orders", headers=bearer(attacker["token"]), timeout=5)
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    # a well-formed id that is not theirs is still a clean 400 naming the field
    p = assert_problem(place(shop, attacker, {"address_id": "adr_01J00000000000000000000000"}, gw), 400)
    assert [e["field"] for e in p["errors"]] == ["address_id"], p


def test_wait_in_an_id_does_not_hold_the_saga(shop):
    """"?wait=60" in the field held orders' threads on users' long poll; now it is
    refused before any call is made."""
    c = shop.customer()
    shop.add_to_cart(c["token"], shop.product(stock=5), 1)
    for address_id in ("../../../events?wait=60", "x?wait=60"):
        t0 = time.monotonic()
        p = assert_problem(place(shop, c, {"address_id": address_id}, shop.url("orders")), 400)
        assert [e["field"] for e in p["errors"]] == ["address_id"], p
        assert time.monotonic() - t0 < 25
    # a real address still works after all that
    r = requests.post(shop.url("users") + "/api/v1/users/me/addresses", headers=bearer(c["token"]),
                      json=ADDRESS, timeout=5)
    assert r.status_code == 201, r.text
    r = place(shop, c, {"address_id": r.json()["id"]}, shop.url("orders"))
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    assert r.json()["shipping_address"]["line1"] == ADDRESS["line1"]


def test_payment_and_product_ids_are_checked_by_kind(shop):
    c = shop.customer()
    pid = shop.product(stock=5)
    shop.add_to_cart(c["token"], pid, 1)
    # a payment method id of another kind, or with a path in it
    for pm in ("adr_01J00000000000000000000000", "pm_01J00000000000000000000000/../x", "../pm"):
        h = {**bearer(c["token"]), "Idempotency-Key": str(uuid.uuid4())}
        p = assert_problem(requests.post(shop.url("orders") + "/api/v1/orders", headers=h, timeout=10,
                                         json={"payment_method_id": pm, "shipping_address": ADDRESS}), 400)
        assert [e["field"] for e in p["errors"]] == ["payment_method_id"], p
    # the cart's product id goes into a catalog URL: only a product id gets there
    for bad in ("prd_01J00000000000000000000000%3Fq%3D1", "prd_..", "%2E%2E"):
        r = requests.put(shop.url("cart") + f"/api/v1/cart/items/{bad}", headers=bearer(c["token"]),
                         json={"quantity": 1}, timeout=5)
        assert_problem(r, 404, "product_not_found")
    # orders' internal peers refuse ids of the wrong kind, even with a service token
    svc = bearer(shop.service_token("orders"))
    assert_problem(requests.get(shop.url("cart") + "/internal/v1/carts/not-a-user", headers=svc, timeout=5), 404)
    r = requests.get(shop.url("users") + "/internal/v1/users/" + c["id"] + "/addresses/not-an-address",
                     headers=svc, timeout=5)
    assert_problem(r, 404)
    body = {"order_id": "ord_x", "user_id": c["id"], "payment_method_id": c["pm"], "amount_cents": 100,
            "currency": "USD"}
    p = assert_problem(requests.post(shop.url("payments") + "/internal/v1/payments", json=body, timeout=5,
                                     headers={**svc, "Idempotency-Key": str(uuid.uuid4())}), 400)
    assert [e["field"] for e in p["errors"]] == ["order_id"], p
