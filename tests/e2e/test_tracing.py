"""Traces (docs/tracing.md): one checkout through the gateway, seen by a small OTLP/HTTP
receiver (the collector's intake: JSON POSTed to /v1/traces) and by the gateway's admin
trace view. The checkout must be one trace with spans from the gateway, orders,
catalog, payments, cart and notify, every span's parent in the trace (across the
order.confirmed event to notify and cart too), in valid OTLP JSON with the semantic
conventions' attributes; the admin view must return the same spans and links; and a
collector that went away must cost the platform nothing but dropped-span counts."""
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import free_port
from orders_helpers import Shop, bearer, wait_until

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
DIGITS = re.compile(r"^[0-9]+$")
VALUE_KINDS = {"stringValue", "intValue", "boolValue", "doubleValue"}
CHECKOUT_SERVICES = {"gateway", "orders", "catalog", "payments", "cart", "notify"}


class Receiver:
    """OTLP/HTTP JSON intake on a free port: keeps every request's body, answers 200."""

    def __init__(self):
        self.bodies, self.bad = [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/json":
                    outer.bad.append((self.path, self.headers.get("Content-Type")))
                try:
                    outer.bodies.append(json.loads(raw))
                except ValueError as e:
                    outer.bad.append(("not JSON", str(e), raw[:200]))
                out = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("Connection", "close")   # once closed, the receiver is gone
                self.end_headers()
                self.wfile.write(out)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self, trace_id):
        """{span_id: (service, span)} of one trace, from every body received."""
        out = {}
        for body in list(self.bodies):
            for rs in body["resourceSpans"]:
                svc = attrs(rs["resource"]["attributes"])["service.name"]
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        if sp["traceId"] == trace_id:
                            out[sp["spanId"]] = (svc, sp)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def attrs(kvs):
    """OTLP [{key, value: {xValue: v}}] as {key: v}; fails on a malformed one."""
    out = {}
    for kv in kvs:
        assert set(kv) == {"key", "value"}, kv
        (kind, v), = kv["value"].items()
        assert kind in VALUE_KINDS, kv
        if kind == "intValue":
            assert isinstance(v, str) and re.match(r"^-?[0-9]+$", v), kv   # int64: a string
        elif kind == "stringValue":
            assert isinstance(v, str), kv
        elif kind == "boolValue":
            assert isinstance(v, bool), kv
        out[kv["key"]] = v
    return out


def check_otlp(body):
    """One ExportTraceServiceRequest as protobuf's JSON mapping spells it."""
    assert set(body) == {"resourceSpans"}, body.keys()
    for rs in body["resourceSpans"]:
        res = attrs(rs["resource"]["attributes"])
        assert res["service.name"] and res["service.namespace"] == "souk", res
        assert "service.instance.id" in res and "telemetry.sdk.name" in res, res
        for ss in rs["scopeSpans"]:
            assert ss["scope"]["name"] == "souk"
            for sp in ss["spans"]:
                assert HEX32.match(sp["traceId"]) and HEX16.match(sp["spanId"]), sp
                assert "parentSpanId" not in sp or HEX16.match(sp["parentSpanId"]), sp
                assert sp["kind"] in (1, 2, 3, 4, 5) and sp["name"], sp
                assert DIGITS.match(sp["startTimeUnixNano"]) and DIGITS.match(sp["endTimeUnixNano"]), sp
                assert int(sp["endTimeUnixNano"]) >= int(sp["startTimeUnixNano"]), sp
                attrs(sp["attributes"])
                for ev in sp["events"]:
                    assert DIGITS.match(ev["timeUnixNano"]) and ev["name"], ev
                    attrs(ev["attributes"])
                for ln in sp["links"]:
                    assert HEX32.match(ln["traceId"]) and HEX16.match(ln["spanId"]), ln
                assert sp["status"] == {} or sp["status"]["code"] in (1, 2), sp


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """The platform exporting to a receiver, one confirmed checkout through the gateway:
    (shop, receiver, order, trace id)."""
    receiver = Receiver()
    shop = Shop(tmp_path_factory.mktemp("traced"))
    shop.platform.env.update({"SOUK_OTLP_ENDPOINT": receiver.url, "SOUK_OTLP_INTERVAL_MS": "100",
                              "SOUK_OTLP_TIMEOUT_MS": "1000"})
    try:
        shop.up()
        gw = shop.url("gateway")
        pid = shop.product(price_cents=900, stock=5)
        c = shop.customer(base=gw)
        shop.add_to_cart(c["token"], pid, 1, base=gw)
        r = shop.checkout(c, base=gw)
        assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
        order = r.json()
        assert "trace_id" not in order   # the buyer does not see it
        r = requests.get(gw + f"/api/v1/orders/{order['id']}", headers=bearer(shop.admin), timeout=10)
        assert r.status_code == 200, r.text
        trace_id = r.json()["trace_id"]
        assert HEX32.match(trace_id)
        yield shop, receiver, order, trace_id
    finally:
        shop.down()
        receiver.close()


def complete(receiver, trace_id):
    """The trace once every service's part of it came, with the event to notify and cart
    handled, and users' answer to notify's call while handling it (each process exports
    on its own clock: users' span may come after notify's), every parent there."""
    spans = receiver.spans(trace_id)
    services = {svc for svc, _ in spans.values()}
    consumed = {svc for svc, sp in spans.values() if sp["kind"] == 5 and sp["name"] == "process order.confirmed"}
    # and every span's parent came too: a parent ends after its children, and may
    # come in the exporter's next batch (seen in the scale-out mode)
    closed = all(sp.get("parentSpanId") is None or sp["parentSpanId"] in spans
                 for _, sp in spans.values())
    ok = CHECKOUT_SERVICES | {"users"} <= services and {"notify", "cart"} <= consumed and closed
    return spans if ok else None


def test_one_checkout_is_one_trace_across_every_service(traced):
    shop, receiver, order, trace_id = traced
    spans = wait_until(lambda: complete(receiver, trace_id), 20, "every service's spans of the checkout")
    assert not receiver.bad, receiver.bad
    for body in receiver.bodies:
        check_otlp(body)
    # one root, the gateway's server span of POST /api/v1/orders; every other parent is there
    roots = [(svc, sp) for svc, sp in spans.values() if "parentSpanId" not in sp]
    assert len(roots) == 1, roots
    svc, root = roots[0]
    assert svc == "gateway" and root["kind"] == 2, root
    a = attrs(root["attributes"])
    assert a["http.request.method"] == "POST" and a["http.response.status_code"] == "201", a
    for svc, sp in spans.values():
        assert sp.get("parentSpanId") is None or sp["parentSpanId"] in spans, (svc, sp["name"])
    by_kind = lambda svc, kind: [sp for s, sp in spans.values() if s == svc and sp["kind"] == kind]
    # orders serves the checkout as a child of the gateway's proxy call
    (served,) = [sp for sp in by_kind("orders", 2) if sp["name"] == "POST /api/v1/orders"]
    proxy_call = spans[served["parentSpanId"]]
    assert proxy_call[0] == "gateway" and proxy_call[1]["kind"] == 3
    assert attrs(served["attributes"])["http.route"] == "/api/v1/orders"
    # saga steps are children of the checkout, their calls children of the steps
    steps = {sp["name"]: sp for sp in by_kind("orders", 1) if sp["name"].startswith("saga ")}
    assert {"saga reserve", "saga authorize", "saga commit", "saga capture"} <= set(steps), steps.keys()
    for step in steps.values():
        assert spans[step["parentSpanId"]][1] is served
    for svc in ("catalog", "payments"):
        for sp in by_kind(svc, 2):
            call = spans[sp["parentSpanId"]]
            assert call[0] == "orders" and call[1]["kind"] == 3, (svc, sp["name"])
            assert attrs(call[1]["attributes"])["server.port"], call
    # order.confirmed: produced in orders' last step, consumed by notify and cart as its children
    (produced,) = [sp for sp in by_kind("orders", 4) if sp["name"] == "create order.confirmed"]
    assert attrs(produced["attributes"])["messaging.destination.name"] == "order.confirmed"
    assert spans[produced["parentSpanId"]][1] is steps["saga capture"]
    for svc in ("notify", "cart"):
        (consumed,) = [sp for sp in by_kind(svc, 5) if sp["name"] == "process order.confirmed"]
        assert consumed["parentSpanId"] == produced["spanId"], svc
        assert consumed["links"] == [{"traceId": trace_id, "spanId": produced["spanId"]}]
        a = attrs(consumed["attributes"])
        assert a["messaging.system"] and a["messaging.message.id"], a
    # notify's call to users while handling it is in the trace too
    assert any(svc == "users" for svc, _ in spans.values())


def test_the_admin_sees_the_same_trace_assembled_by_the_gateway(traced):
    shop, receiver, order, trace_id = traced
    spans = wait_until(lambda: complete(receiver, trace_id), 20, "every service's spans of the checkout")
    gw = shop.url("gateway")
    diff = []

    def same():
        """The admin's view once it and the receiver agree (a span just ended is in its
        ring at once, at the receiver within an export interval)."""
        r = requests.get(gw + f"/api/v1/admin/traces/{trace_id}", headers=bearer(shop.admin), timeout=20)
        assert r.status_code == 200, r.text
        view = r.json()
        got = {s["span_id"]: (s["service"], s.get("parent_span_id")) for s in view["spans"]}
        want = {sid: (svc, sp.get("parentSpanId")) for sid, (svc, sp) in receiver.spans(trace_id).items()}
        diff[:] = [(k, got.get(k), want.get(k)) for k in set(got) ^ set(want)]
        return view if got == want else None
    view = wait_until(same, 10, f"the admin's view and the receiver's spans to agree: {diff}")
    assert view["trace_id"] == trace_id and view["unreachable"] == [], view["unreachable"]
    check_otlp({"resourceSpans": view["resourceSpans"]})
    # a tree in depth-first order: the root first, every span right under its parent's subtree
    assert view["spans"][0]["depth"] == 0 and view["spans"][0]["service"] == "gateway"
    seen = {}
    for s in view["spans"]:
        if s.get("parent_span_id"):
            assert s["parent_span_id"] in seen and s["depth"] == seen[s["parent_span_id"]] + 1, s
        seen[s["span_id"]] = s["depth"]
    # admins only; a trace id or nothing
    c = shop.customer(base=gw)
    r = requests.get(gw + f"/api/v1/admin/traces/{trace_id}", headers=bearer(c["token"]), timeout=10)
    assert r.status_code == 403, r.text
    assert requests.get(gw + f"/api/v1/admin/traces/{trace_id}", timeout=10).status_code == 401
    for bad in ("0" * 32, "ABC", trace_id.upper(), trace_id + "0"):
        r = requests.get(gw + f"/api/v1/admin/traces/{bad}", headers=bearer(shop.admin), timeout=10)
        assert r.status_code == 400 and r.headers["Content-Type"] == "application/problem+json", (bad, r.text)
    r = requests.get(gw + f"/api/v1/admin/traces/{'ab' * 16}", headers=bearer(shop.admin), timeout=20)
    assert r.status_code == 200 and r.json()["spans"] == [], r.text
    # the services' own route is not public at the gateway
    r = requests.get(gw + f"/internal/v1/traces/{trace_id}", headers=bearer(shop.admin), timeout=10)
    assert r.status_code == 404 or "resourceSpans" not in r.text


def test_a_cancel_traces_its_refund_under_itself_not_under_the_checkout(traced):
    shop, receiver, order, trace_id = traced
    wait_until(lambda: complete(receiver, trace_id), 20, "every service's spans of the checkout")
    gw = shop.url("gateway")
    mine = secrets.token_hex(16)   # the caller's trace: the gateway continues it
    r = requests.post(gw + f"/api/v1/orders/{order['id']}/cancel", timeout=30,
                      headers={**bearer(shop.admin), "traceparent": f"00-{mine}-{secrets.token_hex(8)}-01"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    def view(tid):
        r = requests.get(gw + f"/api/v1/admin/traces/{tid}", headers=bearer(shop.admin), timeout=20)
        assert r.status_code == 200, r.text
        return r.json()["spans"]
    refund = wait_until(lambda: [s for s in view(mine) if s["name"] == "saga refund"], 20, "the refund step")
    assert refund[0]["service"] == "orders"
    assert all(not s["name"].startswith("saga refund") for s in view(trace_id))
    o = requests.get(gw + f"/api/v1/orders/{order['id']}", headers=bearer(shop.admin), timeout=10).json()
    assert o["trace_id"] == trace_id   # still the checkout's


def test_a_dead_collector_costs_only_dropped_spans(traced):
    shop, receiver, order, trace_id = traced
    wait_until(lambda: complete(receiver, trace_id), 20, "the first checkout exported")
    receiver.close()   # the collector goes away: its port refuses

    def dropped_by(name):   # summed over the replicas (the scale-out mode runs two of each)
        return sum(metric(requests.get(shop.platform.url(name, k) + "/metrics", timeout=5).text,
                          "souk_trace_spans_dropped_total", reason="export_failed")
                   for k in range(shop.platform.replicas(name)))
    before = {s: dropped_by(s) for s in ("orders", "catalog")}
    gw = shop.url("gateway")
    pid = shop.product(price_cents=700, stock=5)
    c = shop.customer(base=gw)
    shop.add_to_cart(c["token"], pid, 1, base=gw)
    r = shop.checkout(c, base=gw)
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text

    def dropped():
        now = {s: dropped_by(s) for s in before}
        return all(now[s] > before[s] for s in before) and now
    wait_until(dropped, 20, "dropped spans counted")
    # the trace is still there for the admin, from the rings
    r = requests.get(gw + f"/api/v1/orders/{r.json()['id']}", headers=bearer(shop.admin), timeout=10)
    r = requests.get(gw + f"/api/v1/admin/traces/{r.json()['trace_id']}", headers=bearer(shop.admin), timeout=20)
    assert r.status_code == 200 and {s["service"] for s in r.json()["spans"]} >= {"gateway", "orders", "catalog"}
