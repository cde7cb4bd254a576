"""Helpers for the checkout tests: the whole platform under the supervisor with a
known admin, customers with a saved card and an address, products with stock,
checkout, and the money and stock invariants read back from payments and catalog."""
import json
import os
import secrets
import time
import uuid

import requests

from conftest import SERVICES, Platform

ADMIN_EMAIL = "admin@shop.test"
ADMIN_PASSWORD = "admin-password-for-orders"
PASSWORD = "correct horse battery"
CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_FLAKY = "4000000000000119"   # fails transiently once, then approves
ADDRESS = {"name": "Ada Buyer", "line1": "1 Market St", "city": "Springfield",
           "postal_code": "12345", "country": "US"}
FINAL = {"confirmed", "rejected", "cancelled", "shipped"}


def wait_until(cond, timeout, what, every=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last:
                return last
        except requests.RequestException as e:
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class Shop:
    """The platform (souk up -d) seen by customers, an admin and the tests."""

    def __init__(self, var_dir, env=None):
        self.platform = Platform(var_dir, env={"SOUK_ADMIN_EMAIL": ADMIN_EMAIL,
                                               "SOUK_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})})
        self.var = str(var_dir)

    def up(self):
        self.platform.up()
        for name in SERVICES:
            wait_until(lambda: requests.get(self.url(name) + "/readyz", timeout=1).status_code == 200,
                       20, f"{name} ready")
        self.admin = self.token(ADMIN_EMAIL, ADMIN_PASSWORD)
        gw = self.url("gateway")   # until its health checks have found every upstream
        for path in ("/api/v1/users/me", "/api/v1/cart", "/api/v1/orders", "/api/v1/payment-methods",
                     "/api/v1/categories"):
            wait_until(lambda: requests.get(gw + path, headers=bearer(self.admin), timeout=2).status_code == 200,
                       30, f"gateway route {path}")
        return self

    def down(self):
        self.platform.down()

    def url(self, name):
        return self.platform.url(name)

    # ---- people ----
    def token(self, email, password=PASSWORD):
        r = requests.post(self.url("users") + "/oauth/token",
                          data={"grant_type": "password", "username": email, "password": password}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def service_token(self, client="orders"):
        with open(os.path.join(self.var, "secrets", "clients.json")) as f:
            secret = json.load(f)[client]
        r = requests.post(self.url("users") + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client, secret), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def customer(self, card=CARD_OK, base=None):
        """A registered, logged-in customer with a saved card: a dict."""
        base = base or self.url("users")
        email = f"c{secrets.token_hex(6)}@example.com"
        r = requests.post(base + "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Ada"},
                          timeout=10)
        assert r.status_code == 201, r.text
        tok = self.token(email)
        pm = self.add_card(tok, card)
        return {"email": email, "id": r.json()["id"], "token": tok, "pm": pm}

    def add_card(self, tok, number, base=None):
        r = requests.post((base or self.url("payments")) + "/api/v1/payment-methods", headers=bearer(tok),
                          json={"card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123",
                                         "holder": "Ada Buyer"}}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    # ---- catalog ----
    def product(self, price_cents=1500, stock=10):
        cats = requests.get(self.url("catalog") + "/api/v1/categories", timeout=5).json()["items"]
        r = requests.post(self.url("catalog") + "/api/v1/products", headers=bearer(self.admin), timeout=10,
                          json={"sku": "T-" + secrets.token_hex(6), "name": "Test thing " + secrets.token_hex(3),
                                "price_cents": price_cents, "category": cats[0]["slug"], "on_hand": stock})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def stock(self, product_id):
        r = requests.get(self.url("catalog") + f"/api/v1/products/{product_id}", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["stock_available"]

    # ---- cart and orders ----
    def add_to_cart(self, tok, product_id, qty=1, base=None):
        r = requests.put((base or self.url("cart")) + f"/api/v1/cart/items/{product_id}", headers=bearer(tok),
                         json={"quantity": qty}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def checkout(self, c, key=None, base=None, body=None, timeout=30):
        body = body or {"payment_method_id": c["pm"], "shipping_address": ADDRESS}
        h = {**bearer(c["token"]), "Idempotency-Key": key or str(uuid.uuid4())}
        return requests.post((base or self.url("orders")) + "/api/v1/orders", headers=h, json=body,
                             timeout=timeout)

    def order(self, tok, order_id):
        r = requests.get(self.url("orders") + f"/api/v1/orders/{order_id}", headers=bearer(tok), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_final(self, tok, order_id, timeout=30):
        return wait_until(lambda: (o := self.order(tok, order_id))["status"] in FINAL
                          and not o.get("cancellation_pending") and o, timeout, f"order {order_id} settled")

    def payments(self, tok, order_id):
        r = requests.get(self.url("payments") + "/api/v1/payments", params={"order_id": order_id},
                         headers=bearer(tok), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def ledger(self):
        r = requests.get(self.url("payments") + "/internal/v1/ledger",
                         headers=bearer(self.service_token()), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def mails(self):
        """The mails notify delivered: its .eml files (it writes each under a temporary
        name, .<id>.tmp, and renames it: a listing can name one that is gone a moment later)."""
        d = os.path.join(self.var, "mail")
        out = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.endswith(".eml"):
                with open(os.path.join(d, name), errors="replace") as f:
                    out.append(f.read())
        return out
