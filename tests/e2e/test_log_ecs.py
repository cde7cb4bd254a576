"""Every kind of log line the services write is ECS-shaped, read from a real platform
run: start-up and seeding, access lines of every service, warnings (a card that fails
transiently, peers not up yet), errors (users refusing to start), event handlers, the
checkout saga (confirmed, rejected, cancelled, shipped), debug lines (a catalog whose
peers are down), and the drain.
Each line must be one JSON object, in the ecs-logging order, with the fields Filebeat
and Elasticsearch expect under their ECS names and types; our own fields sit under
souk.* with one JSON type each (Elasticsearch maps a field once and rejects the lines
that disagree); no line carries a card number.
The supervisor's own var/log/souk.log is plain text and not checked here."""
import ipaddress
import json
import os
import re
from datetime import datetime

import pytest
import requests

from conftest import SERVICES, Service
from orders_helpers import CARD_DECLINED, CARD_FLAKY, Shop, bearer, wait_until

ECS_VERSION = "8.11.0"
LEVELS = {"debug", "info", "warn", "error"}

# The ECS 8.11 fields souk may write, with their Elasticsearch types (names and types as
# in ECS's generated/ecs/ecs_flat.yml; identical in 9.4). A dotted key outside this table
# and outside souk.* fails the test: add the field here only after checking it in ECS.
ECS = {
    "@timestamp": "date", "message": "match_only_text", "tags": "keyword[]", "labels": "object",
    "ecs.version": "keyword",
    "log.level": "keyword", "log.logger": "keyword", "log.origin.file.name": "keyword",
    "log.origin.file.line": "long", "log.origin.function": "keyword",
    "service.name": "keyword", "service.version": "keyword", "service.environment": "keyword",
    "service.node.name": "keyword", "service.id": "keyword", "service.address": "keyword",
    "event.dataset": "keyword", "event.duration": "long", "event.action": "keyword",
    "event.kind": "keyword", "event.category": "keyword[]", "event.type": "keyword[]",
    "event.outcome": "keyword", "event.id": "keyword", "event.reason": "keyword",
    "event.code": "keyword", "event.provider": "keyword", "event.sequence": "long",
    "event.start": "date", "event.end": "date", "event.created": "date",
    "error.message": "match_only_text", "error.code": "keyword", "error.type": "keyword",
    "error.id": "keyword", "error.stack_trace": "wildcard",
    "trace.id": "keyword", "span.id": "keyword", "transaction.id": "keyword",
    "http.request.id": "keyword", "http.request.method": "keyword",
    "http.request.body.bytes": "long", "http.request.bytes": "long",
    "http.request.mime_type": "keyword", "http.request.referrer": "keyword",
    "http.response.status_code": "long", "http.response.body.bytes": "long",
    "http.response.bytes": "long", "http.response.mime_type": "keyword", "http.version": "keyword",
    "url.path": "wildcard", "url.full": "wildcard", "url.original": "wildcard",
    "url.query": "keyword", "url.scheme": "keyword", "url.domain": "keyword", "url.port": "long",
    "client.ip": "ip", "client.address": "keyword", "client.port": "long",
    "server.ip": "ip", "server.address": "keyword", "server.port": "long",
    "user.id": "keyword", "user.name": "keyword", "user.email": "keyword", "user.roles": "keyword[]",
    "file.path": "keyword", "file.name": "keyword", "file.directory": "keyword",
    "process.pid": "long", "process.name": "keyword", "process.exit_code": "long",
    "process.thread.id": "long", "process.thread.name": "keyword",
    "host.name": "keyword", "host.hostname": "keyword",
}
CUSTOM = re.compile(r"souk\.[a-z0-9_]+")          # ECS naming: lowercase, words joined by _
HEX = {"trace.id": re.compile(r"[0-9a-f]{32}"), "span.id": re.compile(r"[0-9a-f]{16}")}


def ecs_type_ok(kind, v):
    if kind in ("keyword", "match_only_text", "wildcard"):
        return isinstance(v, str)
    if kind == "keyword[]":
        return isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
    if kind == "long":
        return isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63
    if kind == "date":
        try:
            datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
            return True
        except (TypeError, ValueError):
            return False
    if kind == "ip":
        try:
            ipaddress.ip_address(v)
            return True
        except (TypeError, ValueError):
            return False
    if kind == "object":
        return isinstance(v, dict)
    raise AssertionError(f"no check for ECS type {kind}")


def json_kind(v):
    """The mapping Elasticsearch would infer for a value, coarsely."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "long"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return "null"


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
    return dict(pairs)


def luhn(digits):
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


class Lines:
    """Every line collected, with where it came from."""

    def __init__(self):
        self.raw = []      # (source, text)

    def add_text(self, source, text):
        for t in text.splitlines():
            if t.strip():
                self.raw.append((source, t))

    def parsed(self):
        out = []
        for source, t in self.raw:
            try:
                out.append((source, json.loads(t, object_pairs_hook=no_duplicates)))
            except (ValueError, AssertionError) as e:
                raise AssertionError(f"{source}: not one JSON object ({e}): {t[:300]}")
        return out


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """The platform with debug logs: seeded, a day of shopping compressed, then stopped."""
    var = tmp_path_factory.mktemp("ecs")
    shop = Shop(var)
    shop.platform.env["SOUK_LOG_LEVEL"] = "debug"
    collected = Lines()
    try:
        seed = shop.platform.souk("seed")
        # souk seed prints its own progress ("souk: seeding users") on stdout; the
        # services' lines go to stderr
        collected.add_text("seed", seed.stderr)
        shop.up()   # seeds again (idempotent, nothing new), starts, waits for every route
        gw = shop.url("gateway")
        pid = shop.product(price_cents=1200, stock=3)
        # a confirmed checkout through the gateway: reservation, payment, events, mail
        c = shop.customer(base=gw)
        shop.add_to_cart(c["token"], pid, 1, base=gw)
        r = shop.checkout(c, base=gw)
        assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
        confirmed = r.json()["id"]
        wait_until(lambda: requests.get(gw + "/api/v1/cart", headers=bearer(c["token"]), timeout=5)
                   .json()["items"] == [], 15, "cart emptied by order.confirmed")
        # shipped by the admin; a second order cancelled (refund, restock event)
        r = requests.post(gw + f"/api/v1/orders/{confirmed}/ship", headers=bearer(shop.admin), timeout=10)
        assert r.status_code == 200, r.text
        shop.add_to_cart(c["token"], pid, 1, base=gw)
        r = shop.checkout(c, base=gw)
        assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
        r = requests.post(gw + f"/api/v1/orders/{r.json()['id']}/cancel", headers=bearer(c["token"]), timeout=30)
        assert r.status_code == 200, r.text
        # a declined card (rejected) and one that fails transiently first (saga retry, warnings)
        for card, want in ((CARD_DECLINED, "rejected"), (CARD_FLAKY, "confirmed")):
            d = shop.customer(card=card, base=gw)
            shop.add_to_cart(d["token"], pid, 1, base=gw)
            r = shop.checkout(d, base=gw)
            assert r.status_code in (201, 202), r.text
            assert shop.wait_final(d["token"], r.json()["id"])["status"] == want
        # what clients get wrong: a bad body, no route, a card number and a non-UTF-8 byte in a URL
        r = requests.post(gw + "/api/v1/users", data=b"{not json", timeout=5,
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert requests.get(gw + "/api/v1/nothing/4242424242424242/x%FFy", timeout=5).status_code == 404
        assert requests.get(shop.url("catalog") + "/api/v1/products/%FF", timeout=5).status_code in (400, 404)
        # an error: users refusing to start without its clients file
        broken = Service("users", var / "broken", env={"SOUK_CLIENTS_FILE": str(var / "missing.json")})
        broken.start(wait=False)
        assert broken.proc.wait(timeout=20) != 0
        with open(broken.log_path, errors="replace") as f:
            collected.add_text("users (broken)", f.read())
        # debug lines: a catalog whose peers are all down logs each failed call (the
        # platform's own come and go with the start-up order)
        # (on feed whatever SOUK_TEST_EVENTS says: its failing calls are the feed's)
        lonely = Service("catalog", var / "lonely", env={"SOUK_LOG_LEVEL": "debug", "SOUK_CLIENT_ID": "catalog",
                                                       "SOUK_CLIENT_SECRET": "0" * 64, "SOUK_EVENTS": "feed"})
        lonely.start()
        try:
            wait_until(lambda: any(l.get("log.level") == "debug" for l in lonely.log_lines()), 15,
                       "a debug line from the lonely catalog")
        finally:
            lonely.stop()
        with open(lonely.log_path, errors="replace") as f:
            collected.add_text("catalog (peers down)", f.read())
    finally:
        shop.down()   # SIGTERM: draining, stopped
    logdir = var / "log"
    for name in sorted(os.listdir(logdir)):
        if name == "souk.log":
            continue   # the supervisor's plain-text log (cli/)
        with open(logdir / name, errors="strict") as f:   # UTF-8, or this raises
            collected.add_text(name, f.read())
    return collected.parsed()


def test_every_line_has_the_ecs_base_fields_in_order(lines):
    assert len(lines) > 200, len(lines)
    for source, l in lines:
        keys = list(l)
        assert keys[:3] == ["@timestamp", "log.level", "message"], (source, keys[:4])
        assert l["ecs.version"] == ECS_VERSION, (source, l)
        assert l["log.level"] in LEVELS, (source, l)
        assert l["service.name"] in SERVICES, (source, l)
        assert l["event.dataset"] in (l["service.name"], l["service.name"] + ".access"), (source, l)
        assert isinstance(l["message"], str) and l["message"], (source, l)


def test_every_field_is_ecs_or_ours_with_the_right_type(lines):
    for source, l in lines:
        for key, value in l.items():
            if key in ECS:
                assert ecs_type_ok(ECS[key], value), f"{source}: {key}={value!r} is not an ECS {ECS[key]}"
            else:
                assert CUSTOM.fullmatch(key), f"{source}: {key} is neither an ECS field nor souk.*: {l}"
            if key in HEX:
                assert HEX[key].fullmatch(value), (source, key, value)
        if "event.duration" in l:
            assert l["event.duration"] >= 0


def test_our_fields_keep_one_type_each(lines):
    seen = {}
    for source, l in lines:
        for key, value in l.items():
            if key.startswith("souk."):
                seen.setdefault(key, {}).setdefault(json_kind(value), (source, l["message"]))
    mixed = {k: v for k, v in seen.items() if len(v) > 1}
    assert not mixed, f"fields whose type differs between lines (Elasticsearch rejects one of them): {mixed}"


def test_access_lines_of_every_service(lines):
    access = [(s, l) for s, l in lines if l["event.dataset"].endswith(".access")]
    assert {l["service.name"] for _, l in access} == set(SERVICES)
    for source, l in access:
        for key in ("http.request.id", "trace.id", "span.id", "http.request.method", "url.path",
                    "http.response.status_code", "http.response.body.bytes", "event.duration", "client.ip"):
            assert key in l, (source, key, l)
        assert 100 <= l["http.response.status_code"] <= 599, l
        assert l["url.path"].startswith("/"), l
        # a gRPC call's line (docs/grpc.md) ends with its gRPC status, an HTTP one's with the code
        outcome = l.get("souk.grpc_status", l["http.response.status_code"])
        assert l["message"] == f'{l["http.request.method"]} {l["url.path"]} {outcome}'
    # the gateway passes its trace on: the upstream's access line has the same trace.id
    # and the gateway's span as parent, so the ids differ per hop
    by_trace = {}
    for _, l in access:
        by_trace.setdefault(l["trace.id"], []).append(l)
    hops = [ls for ls in by_trace.values() if {"gateway", "orders"} <= {l["service.name"] for l in ls}]
    assert hops, "no trace.id shared by the gateway's and orders' access lines"
    assert all(len({l["span.id"] for l in ls}) == len(ls) for ls in hops)
    paths = [l["url.path"] for _, l in access if l["http.response.status_code"] == 404]
    assert any("XXXXXXXXXXXXXXXX" in p and "\ufffd" in p for p in paths), paths


def test_every_kind_of_line_is_there(lines):
    def having(**want):
        return [(s, l) for s, l in lines if all(l.get(k.replace("__", ".")) == v for k, v in want.items())]

    # start-up and seeding, per service
    for svc in SERVICES:
        assert having(message="listening", service__name=svc), svc
        assert having(message="stopped", service__name=svc), svc
    assert having(message="migration applied")
    assert having(message="demo catalog seeded")
    # warnings and errors, with their error fields under ECS names
    warns = [l for _, l in lines if l["log.level"] == "warn"]
    assert any(l["message"] == "saga step failed transiently" for l in warns), warns[:5]
    assert any(l["message"] == "processor failed transiently" for l in warns), warns[:5]
    errors = [l for _, l in lines if l["log.level"] == "error"]
    assert any(l["message"] == "cannot read SOUK_CLIENTS_FILE" and l["error.message"] for l in errors), errors
    assert having(message="start failed", service__name="users")
    assert any(l["log.level"] == "debug" and l["message"] == "call failed" and l["url.full"]
               and l["error.message"] for _, l in lines)
    # events handled, and the saga
    assert having(message="cart emptied by order", service__name="cart")
    settled = {l.get("souk.status") for _, l in having(message="order settled")}
    assert {"confirmed", "rejected"} <= settled, settled
    for message in ("order placed", "order shipped", "order cancellation started", "payment authorized",
                    "payment declined", "user registered", "payment method added"):
        assert having(message=message), message
    # a line logged inside a request carries that request's context
    placed = having(message="order placed")[0][1]
    assert placed["http.request.id"] and placed["trace.id"] and placed["span.id"]


def strings(v):
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


# Trace context is random hex: a 16-digit span id is all decimal digits about once in
# 2,000 and then passes Luhn one time in ten, so it is not a card number to look for.
TRACE_FIELDS = ("trace.id", "span.id", "parent.id", "transaction.id")
TRACEPARENT = re.compile(r"\b[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b")


def test_no_line_carries_a_card_number(lines):
    """DESIGN §7: 13 to 19 digits, maybe split by spaces or dashes, passing Luhn, in any
    string (not inside a hex id or a ULID, where digits sit between letters, nor in the
    trace context)."""
    card = re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])")
    for source, l in lines:
        fields = {k: v for k, v in l.items() if k not in TRACE_FIELDS}
        for text in strings(fields):
            text = TRACEPARENT.sub("", text)
            for run in card.findall(text):
                assert not luhn(re.sub(r"\D", "", run)), f"{source}: a card number in {l}"


def expand_keys(flat):
    """What Filebeat's ndjson parser does with expand_keys: true — "a.b": 1 becomes
    {"a": {"b": 1}} — refusing, as Filebeat does, a key that is both a value and a prefix."""
    out = {}
    for key, value in flat.items():
        parts = key.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
            assert isinstance(cur, dict), f"{key}: {p} is already a value"
        assert parts[-1] not in cur, f"{key} collides with another key's prefix"
        cur[parts[-1]] = value
    return out


def test_filebeat_expands_every_line_without_conflict(lines):
    """Filebeat adds its own objects (log.file.path, input, agent, host, container) and
    merges ours over them: ours must never be a plain value where it has an object."""
    filebeat_objects = {"log", "input", "agent", "host", "container", "kubernetes", "ecs", "event"}
    for source, l in lines:
        doc = expand_keys(l)
        for key in filebeat_objects & set(doc):
            assert isinstance(doc[key], dict), (source, key, doc[key])
        assert set(k for k, v in doc.items() if not isinstance(v, dict)) <= {"@timestamp", "message", "tags"}, \
            (source, doc)
        assert doc["log"]["level"] == l["log.level"] and doc["service"]["name"] == l["service.name"]
