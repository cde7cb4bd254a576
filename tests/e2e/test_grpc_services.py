"""Every RPC of every service (api/proto/souk) from a stock client: Debian's
python3-grpcio with message classes built from the contracts' descriptor set, against
the real users, catalog, cart and payments binaries (protoc has no Python generator
here: the message classes are built at test time from the descriptor set protoc-c
writes of api/proto). Each answer is checked against what the same call answers over
REST (the services answer RPCs with their own HTTP routes: lib/grpc_bridge.c),
errors against their status, code and problem document; and the standard health
service on the gRPC port of every service, orders and notify included."""
import json
import os
import secrets
import uuid

import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.json_format import MessageToDict

from conftest import BUILD, Service, free_port
from users_helpers import ADMIN_EMAIL, ADMIN_PASSWORD, CLIENT_SECRETS, bearer, write_clients

fds = descriptor_pb2.FileDescriptorSet()
for name in ("souk.desc", "kit.desc"):
    with open(os.path.join(BUILD, "gen", "proto", name), "rb") as f:
        fds.MergeFromString(f.read())
M = message_factory.GetMessages(fds.file)
SERVING = 1
ADDRESS = {"name": "Ada Buyer", "line1": "1 Market St", "city": "Springfield",
           "postal_code": "12345", "country": "US"}


def call(svc, path, req_type, resp_type, token=None, timeout=10, **fields):
    """One unary call; returns the decoded reply (or raises grpc.RpcError)."""
    ch = grpc.insecure_channel(svc.grpc_target)
    try:
        fn = ch.unary_unary(path, request_serializer=M[req_type].SerializeToString,
                            response_deserializer=M[resp_type].FromString)
        md = [("authorization", "Bearer " + token)] if token else []
        return fn(M[req_type](**fields), timeout=timeout, metadata=md)
    finally:
        ch.close()


def fails(status, code, *args, **kw):
    """The call fails with this gRPC status and problem code; the problem document."""
    with pytest.raises(grpc.RpcError) as e:
        call(*args, **kw)
    err = e.value
    md = dict(err.trailing_metadata() or ())
    assert err.code() == status, (err.code(), err.details(), md)
    assert md.get("souk-problem-code") == code, md
    return json.loads(md["souk-problem-bin"])


def as_dict(msg):
    """A reply as the REST JSON would show it (field names, every field)."""
    return MessageToDict(msg, preserving_proto_field_name=True, including_default_value_fields=True)


def scalar(v):
    """An AttributeValue as the JSON scalar REST shows (int64 comes as a string)."""
    (kind, x), = v.items()
    return int(x) if kind == "integer_value" else x


def same(reply, rest, skip=()):
    """Every field of the reply equals the REST body's."""
    got = as_dict(reply)
    for k, v in got.items():
        if k in skip:
            continue
        want = rest.get(k)
        if k == "attributes":
            v = {name: scalar(x) for name, x in v.items()}
        elif isinstance(want, int) and not isinstance(want, bool):
            v = int(v)
        assert v == want, (k, v, want)


def token_for(users, client):
    r = requests.post(users.url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client,
        "client_secret": CLIENT_SECRETS[client]}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    var = tmp_path_factory.mktemp("grpcsvc")
    clients = write_clients(var)
    procs = []
    users = Service("users", var, {"SOUK_CLIENTS_FILE": clients, "SOUK_ADMIN_EMAIL": ADMIN_EMAIL,
                                   "SOUK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    users.run("seed")
    procs.append(users.start())
    nobody = f"http://127.0.0.1:{free_port()}"
    common = {"SOUK_USERS_URL": users.url, "SOUK_ORDERS_URL": nobody}
    catalog = Service("catalog", var, dict(common, SOUK_CLIENT_ID="catalog",
                                           SOUK_CLIENT_SECRET=CLIENT_SECRETS["catalog"]))
    catalog.run("seed")
    procs.append(catalog.start())
    cart = Service("cart", var, dict(common, SOUK_CATALOG_URL=catalog.url, SOUK_CLIENT_ID="cart",
                                     SOUK_CLIENT_SECRET=CLIENT_SECRETS["cart"]))
    procs.append(cart.start())
    pay = Service("payments", var, common)
    procs.append(pay.start())
    orders = Service("orders", var, dict(common, SOUK_CATALOG_URL=catalog.url, SOUK_CART_URL=cart.url,
                                         SOUK_PAYMENTS_URL=pay.url, SOUK_CLIENT_ID="orders",
                                         SOUK_CLIENT_SECRET=CLIENT_SECRETS["orders"]))
    procs.append(orders.start())
    notify = Service("notify", var, dict(common, SOUK_CLIENT_ID="notify",
                                         SOUK_CLIENT_SECRET=CLIENT_SECRETS["notify"]))
    procs.append(notify.start())
    email, password = f"g{secrets.token_hex(5)}@example.com", "correct horse battery"
    r = requests.post(users.url + "/api/v1/users", json={"email": email, "password": password,
                                                         "name": "Ada"}, timeout=30)
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    r = requests.post(users.url + "/oauth/token", timeout=30,
                      data={"grant_type": "password", "username": email, "password": password})
    assert r.status_code == 200, r.text
    yield {"users": users, "catalog": catalog, "cart": cart, "pay": pay, "orders_svc": orders,
           "notify_svc": notify, "uid": uid,
           "user": r.json()["access_token"], "orders": token_for(users, "orders"),
           "cart_token": token_for(users, "cart"), "notify": token_for(users, "notify")}
    for p in procs:
        p.kill()


def test_health_on_every_port(rig):
    names = {"users": ["souk.users.v1.Users"], "catalog": ["souk.catalog.v1.Catalog",
                                                           "souk.catalog.v1.CatalogInternal"],
             "cart": ["souk.cart.v1.Carts"], "pay": ["souk.payments.v1.Payments"],
             "orders_svc": [], "notify_svc": []}   # no RPCs of their own: health alone
    for svc, served in names.items():
        for name in ["", *served]:
            r = call(rig[svc], "/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest",
                     "grpc.health.v1.HealthCheckResponse", service=name)
            assert r.status == SERVING, (svc, name)
        with pytest.raises(grpc.RpcError) as e:
            call(rig[svc], "/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest",
                 "grpc.health.v1.HealthCheckResponse", service="souk.nope.v1.Nope")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_users_rpcs(rig):
    users, uid = rig["users"], rig["uid"]
    r = requests.post(users.url + "/api/v1/users/me/addresses", json=ADDRESS,
                      headers=bearer(rig["user"]), timeout=10)
    assert r.status_code == 201, r.text
    adr = r.json()["id"]
    rest = requests.get(f"{users.url}/internal/v1/users/{uid}", headers=bearer(rig["orders"]),
                        timeout=10).json()
    u = call(users, "/souk.users.v1.Users/GetUser", "souk.users.v1.GetUserRequest",
             "souk.users.v1.User", rig["orders"], user_id=uid)
    same(u, rest)
    assert u.id == uid and u.role == "customer"
    a = call(users, "/souk.users.v1.Users/GetAddress", "souk.users.v1.GetAddressRequest",
             "souk.users.v1.Address", rig["orders"], user_id=uid, address_id=adr)
    rest = requests.get(f"{users.url}/internal/v1/users/{uid}/addresses/{adr}",
                        headers=bearer(rig["orders"]), timeout=10).json()
    same(a, rest)
    assert a.line1 == "1 Market St" and a.line2 == ""
    # another user's address is not found, like a missing one; the same problem as REST
    other = "usr_01J00000000000000000000009"
    p = fails(grpc.StatusCode.NOT_FOUND, "address_not_found", users,
              "/souk.users.v1.Users/GetAddress", "souk.users.v1.GetAddressRequest",
              "souk.users.v1.Address", rig["orders"], user_id=other, address_id=adr)
    r = requests.get(f"{users.url}/internal/v1/users/{other}/addresses/{adr}",
                     headers=bearer(rig["orders"]), timeout=10)
    assert r.status_code == 404 and r.json()["code"] == p["code"] and p["status"] == 404
    fails(grpc.StatusCode.NOT_FOUND, "user_not_found", users, "/souk.users.v1.Users/GetUser",
          "souk.users.v1.GetUserRequest", "souk.users.v1.User", rig["orders"], user_id=other)
    # the route's access rule: a token, a service one, with users:read
    fails(grpc.StatusCode.UNAUTHENTICATED, "unauthorized", users, "/souk.users.v1.Users/GetUser",
          "souk.users.v1.GetUserRequest", "souk.users.v1.User", user_id=uid)
    fails(grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", users,
          "/souk.users.v1.Users/GetUser", "souk.users.v1.GetUserRequest", "souk.users.v1.User",
          rig["cart_token"], user_id=uid)
    fails(grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", users,
          "/souk.users.v1.Users/GetUser", "souk.users.v1.GetUserRequest", "souk.users.v1.User",
          rig["user"], user_id=uid)
    # an id that cannot be a path segment is refused before any route runs
    p = fails(grpc.StatusCode.INVALID_ARGUMENT, "validation_failed", users,
              "/souk.users.v1.Users/GetAddress", "souk.users.v1.GetAddressRequest",
              "souk.users.v1.Address", rig["orders"], user_id=uid, address_id="a/b")
    assert [e["field"] for e in p["errors"]] == ["address_id"]


def test_catalog_public_reads(rig):
    cat = rig["catalog"]
    rest = requests.get(cat.url + "/api/v1/products?page_size=3&sort=price_asc", timeout=10).json()
    page = call(cat, "/souk.catalog.v1.Catalog/ListProducts", "souk.catalog.v1.ListProductsRequest",
                "souk.catalog.v1.ListProductsResponse", page_size=3, sort="price_asc")
    assert [p.id for p in page.items] == [p["id"] for p in rest["items"]]
    same(page.items[0], rest["items"][0])
    assert page.HasField("next_page_token")
    # the page token is the same one REST hands out: either transport reads the next page
    nxt = call(cat, "/souk.catalog.v1.Catalog/ListProducts", "souk.catalog.v1.ListProductsRequest",
               "souk.catalog.v1.ListProductsResponse", page_size=3, sort="price_asc",
               page_token=page.next_page_token)
    rest2 = requests.get(cat.url + "/api/v1/products", params={
        "page_size": 3, "sort": "price_asc", "page_token": rest["next_page_token"]}, timeout=10).json()
    assert [p.id for p in nxt.items] == [p["id"] for p in rest2["items"]]
    cats = call(cat, "/souk.catalog.v1.Catalog/ListCategories", "souk.catalog.v1.ListCategoriesRequest",
                "souk.catalog.v1.ListCategoriesResponse")
    rest = requests.get(cat.url + "/api/v1/categories", timeout=10).json()
    assert [c.slug for c in cats.items] == [c["slug"] for c in rest["items"]]
    same(cats.items[0], rest["items"][0])
    filtered = call(cat, "/souk.catalog.v1.Catalog/ListProducts", "souk.catalog.v1.ListProductsRequest",
                    "souk.catalog.v1.ListProductsResponse", category=cats.items[0].slug,
                    min_price=0, max_price=10 ** 6, page_size=50)
    assert filtered.items and all(p.category == cats.items[0].slug for p in filtered.items)
    one = call(cat, "/souk.catalog.v1.Catalog/GetProduct", "souk.catalog.v1.GetProductRequest",
               "souk.catalog.v1.Product", id=page.items[0].id)
    same(one, requests.get(cat.url + "/api/v1/products/" + one.id, timeout=10).json())
    word = one.name.split()[0]
    found = call(cat, "/souk.catalog.v1.Catalog/SearchProducts", "souk.catalog.v1.SearchProductsRequest",
                 "souk.catalog.v1.ListProductsResponse", q=word, page_size=100)
    rest = requests.get(cat.url + "/api/v1/products", params={"q": word, "page_size": 100},
                        timeout=10).json()
    assert [p.id for p in found.items] == [p["id"] for p in rest["items"]] and found.items
    fails(grpc.StatusCode.NOT_FOUND, "product_not_found", cat, "/souk.catalog.v1.Catalog/GetProduct",
          "souk.catalog.v1.GetProductRequest", "souk.catalog.v1.Product", id="prd_nope")
    p = fails(grpc.StatusCode.INVALID_ARGUMENT, "validation_failed", cat,
              "/souk.catalog.v1.Catalog/ListProducts", "souk.catalog.v1.ListProductsRequest",
              "souk.catalog.v1.ListProductsResponse", page_size=1000, sort="sideways")
    assert {e["field"] for e in p["errors"]} == {"page_size", "sort"}


def test_catalog_internal_rpcs(rig):
    cat, tok = rig["catalog"], rig["orders"]
    items = requests.get(cat.url + "/api/v1/products?page_size=2&in_stock=true", timeout=10).json()["items"]
    a, b = items[0]["id"], items[1]["id"]
    got = call(cat, "/souk.catalog.v1.CatalogInternal/GetProducts", "souk.catalog.v1.GetProductsRequest",
               "souk.catalog.v1.GetProductsResponse", rig["cart_token"], ids=[b, "prd_missing", a])
    assert [p.id for p in got.items] == [b, a] and list(got.missing_ids) == ["prd_missing"]
    same(got.items[1], requests.get(cat.url + "/api/v1/products/" + a, timeout=10).json())
    rid = "ord_" + uuid.uuid4().hex
    held = call(cat, "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
                "souk.catalog.v1.Reservation", tok, reservation_id=rid, ttl_seconds=60,
                items=[M["souk.catalog.v1.ReservationLine"](product_id=a, quantity=1)])
    assert held.status == "held" and held.items[0].product_id == a and held.items[0].unit_price_cents > 0
    again = call(cat, "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
                 "souk.catalog.v1.Reservation", tok, reservation_id=rid, ttl_seconds=60,
                 items=[M["souk.catalog.v1.ReservationLine"](product_id=a, quantity=1)])
    assert again.reservation_id == rid and again.expires_at == held.expires_at   # idempotent
    done = call(cat, "/souk.catalog.v1.CatalogInternal/CommitReservation",
                "souk.catalog.v1.CommitReservationRequest", "souk.catalog.v1.ReservationState", tok,
                reservation_id=rid)
    assert (done.reservation_id, done.status) == (rid, "committed")
    fails(grpc.StatusCode.FAILED_PRECONDITION, "already_committed", cat,
          "/souk.catalog.v1.CatalogInternal/ReleaseReservation",
          "souk.catalog.v1.ReleaseReservationRequest", "souk.catalog.v1.ReservationState", tok,
          reservation_id=rid)
    rid2 = "ord_" + uuid.uuid4().hex
    call(cat, "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
         "souk.catalog.v1.Reservation", tok, reservation_id=rid2,
         items=[M["souk.catalog.v1.ReservationLine"](product_id=b, quantity=1)])
    gone = call(cat, "/souk.catalog.v1.CatalogInternal/ReleaseReservation",
                "souk.catalog.v1.ReleaseReservationRequest", "souk.catalog.v1.ReservationState", tok,
                reservation_id=rid2)
    assert gone.status == "released"
    p = fails(grpc.StatusCode.FAILED_PRECONDITION, "out_of_stock", cat,
              "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
              "souk.catalog.v1.Reservation", tok, reservation_id="ord_" + uuid.uuid4().hex,
              items=[M["souk.catalog.v1.ReservationLine"](product_id=b, quantity=1000)])
    assert p["items"][0]["product_id"] == b and p["items"][0]["requested"] == 1000
    fails(grpc.StatusCode.NOT_FOUND, "reservation_not_found", cat,
          "/souk.catalog.v1.CatalogInternal/CommitReservation",
          "souk.catalog.v1.CommitReservationRequest", "souk.catalog.v1.ReservationState", tok,
          reservation_id="ord_" + uuid.uuid4().hex)
    p = fails(grpc.StatusCode.INVALID_ARGUMENT, "validation_failed", cat,
              "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
              "souk.catalog.v1.Reservation", tok, reservation_id="ord_x", items=[])
    assert "items" in {e["field"] for e in p["errors"]}
    # the cart may read products, not hold stock
    fails(grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", cat,
          "/souk.catalog.v1.CatalogInternal/Reserve", "souk.catalog.v1.ReserveRequest",
          "souk.catalog.v1.Reservation", rig["cart_token"], reservation_id="ord_y",
          items=[M["souk.catalog.v1.ReservationLine"](product_id=b, quantity=1)])


def test_cart_rpcs(rig):
    cart, cat, uid = rig["cart"], rig["catalog"], rig["uid"]
    ids = [p["id"] for p in requests.get(cat.url + "/api/v1/products?page_size=3&in_stock=true",
                                         timeout=10).json()["items"]]
    for i, pid in enumerate(ids):   # the cart asks the catalog for each (over gRPC by default)
        r = requests.put(f"{cart.url}/api/v1/cart/items/{pid}", json={"quantity": i + 1},
                         headers=bearer(rig["user"]), timeout=10)
        assert r.status_code == 200, r.text
    got = call(cart, "/souk.cart.v1.Carts/GetCart", "souk.cart.v1.GetCartRequest", "souk.cart.v1.Cart",
               rig["orders"], user_id=uid)
    rest = requests.get(f"{cart.url}/internal/v1/carts/{uid}", headers=bearer(rig["orders"]),
                        timeout=10).json()
    assert [i.product_id for i in got.items] == ids == [i["product_id"] for i in rest["items"]]
    assert got.subtotal_cents == rest["subtotal_cents"] and got.currency == rest["currency"]
    same(got.items[2], rest["items"][2])
    # lines written after placed_at stay (the buyer added them again after checking out)
    left = call(cart, "/souk.cart.v1.Carts/ClearCart", "souk.cart.v1.ClearCartRequest",
                "souk.cart.v1.Cart", rig["orders"], user_id=uid, product_ids=[ids[0]],
                placed_at="2000-01-01T00:00:00Z")
    assert [i.product_id for i in left.items] == ids
    left = call(cart, "/souk.cart.v1.Carts/ClearCart", "souk.cart.v1.ClearCartRequest",
                "souk.cart.v1.Cart", rig["orders"], user_id=uid, product_ids=[ids[0]])
    assert [i.product_id for i in left.items] == ids[1:]
    p = fails(grpc.StatusCode.INVALID_ARGUMENT, "validation_failed", cart,
              "/souk.cart.v1.Carts/ClearCart", "souk.cart.v1.ClearCartRequest", "souk.cart.v1.Cart",
              rig["orders"], user_id=uid, product_ids=["nope"], placed_at="yesterday")
    assert {e["field"] for e in p["errors"]} == {"product_ids[0]", "placed_at"}
    # ClearCart needs cart:write, which only orders holds; GetCart cart:read
    fails(grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", cart,
          "/souk.cart.v1.Carts/ClearCart", "souk.cart.v1.ClearCartRequest", "souk.cart.v1.Cart",
          rig["notify"], user_id=uid)
    fails(grpc.StatusCode.NOT_FOUND, "not_found", cart, "/souk.cart.v1.Carts/GetCart",
          "souk.cart.v1.GetCartRequest", "souk.cart.v1.Cart", rig["orders"], user_id="someone")
    empty = call(cart, "/souk.cart.v1.Carts/ClearCart", "souk.cart.v1.ClearCartRequest",
                 "souk.cart.v1.Cart", rig["orders"], user_id=uid)
    assert list(empty.items) == [] and empty.subtotal_cents == 0
    # the REST twin does the same
    r = requests.post(f"{cart.url}/internal/v1/carts/{uid}/clear", json={},
                      headers=bearer(rig["orders"]), timeout=10)
    assert r.status_code == 200 and r.json()["items"] == []


def test_payments_rpcs(rig):
    pay, uid, tok = rig["pay"], rig["uid"], rig["orders"]
    pms = {}
    for number in ("4242424242424242", "4000000000000002"):
        r = requests.post(pay.url + "/api/v1/payment-methods", headers=bearer(rig["user"]), timeout=10,
                          json={"card": {"number": number, "exp_month": 12, "exp_year": 2035,
                                         "cvc": "123", "holder": "Ada"}})
        assert r.status_code == 201, r.text
        pms[number] = r.json()["id"]
    order = "ord_0" + "".join(secrets.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(25))
    auth = dict(idempotency_key=order + ":authorize", order_id=order, user_id=uid,
                payment_method_id=pms["4242424242424242"], amount_cents=2500, currency="USD")
    p = call(pay, "/souk.payments.v1.Payments/AuthorizePayment",
             "souk.payments.v1.AuthorizePaymentRequest", "souk.payments.v1.Payment", tok, **auth)
    assert p.status == "authorized" and p.amount_cents == 2500 and not p.HasField("decline_code")
    again = call(pay, "/souk.payments.v1.Payments/AuthorizePayment",
                 "souk.payments.v1.AuthorizePaymentRequest", "souk.payments.v1.Payment", tok, **auth)
    assert again == p   # the same key answers the first outcome
    # ... and the same key over REST too: one Idempotency-Key space for both transports
    body = {k: v for k, v in auth.items() if k != "idempotency_key"}
    r = requests.post(pay.url + "/internal/v1/payments", json=body, timeout=10,
                      headers={**bearer(tok), "Idempotency-Key": auth["idempotency_key"]})
    assert r.status_code == 201 and r.json()["id"] == p.id and r.headers.get("Idempotent-Replayed") == "true"
    fails(grpc.StatusCode.FAILED_PRECONDITION, "idempotency_key_reused", pay,
          "/souk.payments.v1.Payments/AuthorizePayment", "souk.payments.v1.AuthorizePaymentRequest",
          "souk.payments.v1.Payment", tok, **dict(auth, amount_cents=2600))
    fails(grpc.StatusCode.INVALID_ARGUMENT, "idempotency_key_required", pay,
          "/souk.payments.v1.Payments/AuthorizePayment", "souk.payments.v1.AuthorizePaymentRequest",
          "souk.payments.v1.Payment", tok, **dict(auth, idempotency_key=""))
    cap = call(pay, "/souk.payments.v1.Payments/CapturePayment", "souk.payments.v1.CapturePaymentRequest",
               "souk.payments.v1.Payment", tok, idempotency_key=order + ":capture", payment_id=p.id)
    assert cap.status == "captured" and cap.captured_cents == 2500
    ref = call(pay, "/souk.payments.v1.Payments/RefundPayment", "souk.payments.v1.RefundPaymentRequest",
               "souk.payments.v1.Refund", tok, idempotency_key=order + ":refund", payment_id=p.id,
               amount_cents=1000)
    assert ref.id.startswith("rfd_") and ref.amount_cents == 1000
    assert ref.payment.status == "partially_refunded" and ref.payment.refunded_cents == 1000
    fails(grpc.StatusCode.INVALID_ARGUMENT, "refund_exceeds_captured", pay,
          "/souk.payments.v1.Payments/RefundPayment", "souk.payments.v1.RefundPaymentRequest",
          "souk.payments.v1.Refund", tok, idempotency_key=order + ":refund2", payment_id=p.id,
          amount_cents=5000)
    fails(grpc.StatusCode.FAILED_PRECONDITION, "illegal_transition", pay,
          "/souk.payments.v1.Payments/VoidPayment", "souk.payments.v1.VoidPaymentRequest",
          "souk.payments.v1.Payment", tok, idempotency_key=order + ":void", payment_id=p.id)
    order2 = order[:-1] + ("A" if order[-1] != "A" else "B")
    p2 = call(pay, "/souk.payments.v1.Payments/AuthorizePayment",
              "souk.payments.v1.AuthorizePaymentRequest", "souk.payments.v1.Payment", tok,
              **dict(auth, idempotency_key=order2 + ":authorize", order_id=order2))
    v = call(pay, "/souk.payments.v1.Payments/VoidPayment", "souk.payments.v1.VoidPaymentRequest",
             "souk.payments.v1.Payment", tok, idempotency_key=order2 + ":void", payment_id=p2.id)
    assert v.status == "voided"
    rest = requests.get(pay.url + "/api/v1/payments", headers=bearer(rig["user"]), timeout=10).json()
    mine = {x["id"]: x for x in rest["items"]}
    same(v, mine[p2.id], skip={"user_id", "payment_method_id", "updated_at"})   # not in the buyer's list
    declined = call(pay, "/souk.payments.v1.Payments/AuthorizePayment",
                    "souk.payments.v1.AuthorizePaymentRequest", "souk.payments.v1.Payment", tok,
                    **dict(auth, idempotency_key=order + ":d", payment_method_id=pms["4000000000000002"],
                           order_id=order2[:-1] + "C"))
    assert declined.status == "declined" and declined.decline_code == "card_declined"
    fails(grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope", pay,
          "/souk.payments.v1.Payments/CapturePayment", "souk.payments.v1.CapturePaymentRequest",
          "souk.payments.v1.Payment", rig["cart_token"], idempotency_key="k", payment_id=p.id)
    ledger = requests.get(pay.url + "/internal/v1/ledger", headers=bearer(tok), timeout=10).json()
    assert ledger.get("balanced", True) is not False
