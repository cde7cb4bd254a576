"""Every kind of log line the services and the supervisor write is ECS-shaped, read
from a real platform run: start-up and seeding, access lines of every service, warnings
(a card that fails transiently, peers not up yet), errors (users refusing to start),
event handlers, the checkout saga (confirmed, rejected, cancelled, shipped), debug lines
(a catalog whose peers are down), and the drain; the supervisor's var/log/souk.log and
`souk seed` with SOUK_LOG_FORMAT=ecs; every configuration a service refuses at start
(one line each, before its logger has a level) and gRPC core's own error line.
Each line must be one JSON object (a plain-text line anywhere fails the whole module),
in the ecs-logging order, with the fields Filebeat and Elasticsearch expect under their
ECS names and types (ecs_schema.py); our own fields sit under souk.* with one JSON type
each (Elasticsearch maps a field once and rejects the lines that disagree); no line
carries a card number. The supervisor's failure paths (a start that fails, a restart,
the ready timeout) write their lines in test_souk_cli.py, which checks them the same way."""
import os
import re
import socket
import subprocess

import pytest
import requests

from conftest import BIN, SERVICES, Service
from ecs_schema import check_line, parse_line
from orders_helpers import CARD_DECLINED, CARD_FLAKY, Shop, bearer, wait_until

NAMES = set(SERVICES) | {"souk"}   # service.name: a service, or the supervisor

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
        return [(source, parse_line(source, t)) for source, t in self.raw]


# Configurations a service refuses at start, one per place of the kit that checks one:
# (service, environment, exit status, text error.message must have). Each writes its
# one ECS line before SOUK_LOG_LEVEL is known, under the service's name.
REFUSED = [
    ("catalog", {"SOUK_THREADS": "0"}, 2, "SOUK_THREADS"),                  # the kit's table
    ("catalog", {"SOUK_LOG_LEVEL": "loud"}, 2, 'SOUK_LOG_LEVEL="loud"'),
    ("catalog", {"SOUK_LISTEN": "[::1]:80"}, 2, "SOUK_LISTEN"),
    ("gateway", {"SOUK_ADMIN_LISTEN": "nowhere"}, 2, 'SOUK_ADMIN_LISTEN="nowhere"'),
    ("gateway", {"SOUK_TLS_CERT": "/nonexistent/cert.pem"}, 2, "SOUK_TLS_KEY"),
    ("catalog", {"SOUK_PROBE_LISTEN": "nowhere"}, 2, 'SOUK_PROBE_LISTEN="nowhere"'),
    ("catalog", {"SOUK_TRACE_SAMPLE_RATIO": "2"}, 2, "SOUK_TRACE_SAMPLE_RATIO"),   # otlp
    ("catalog", {"SOUK_OTLP_ENDPOINT": "ftp://collector"}, 2, "SOUK_OTLP_ENDPOINT"),
    ("cart", {"SOUK_EVENTS": "amqps://souk:pw@127.0.0.1/x"}, 2, "SOUK_EVENTS"),       # events
    # the broker's client library cannot be loaded (dlopen: lib/dl.c); the directory,
    # relative to the service's working directory, holds a librabbitmq.so.4 that is no ELF
    ("cart", {"SOUK_EVENTS": "amqp://souk:pw@127.0.0.1:1/", "LD_LIBRARY_PATH": "broken-lib"}, 2,
     "SOUK_EVENTS=amqp://… needs a library: cannot load librabbitmq.so.4"),
    ("catalog", {"SOUK_JWKS_MAX_AGE_MS": "soon"}, 1, "SOUK_JWKS_MAX_AGE_MS"),         # auth
    ("catalog", {"SOUK_GRPC_LISTEN": "nonsense"}, 1, "SOUK_GRPC_LISTEN"),            # grpc
]


def refused_configurations(var, collected):
    """Run every REFUSED case at once (and catalog on a gRPC port that is taken: gRPC
    core's own error line), each with its stdout and stderr in one file; collect the
    lines, and return [(case, lines as text)]."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    cases = REFUSED + [("catalog", {"SOUK_GRPC_LISTEN": f"127.0.0.1:{taken.getsockname()[1]}"}, 1,
                        None)]
    runs = []
    try:
        for i, (name, env, status, text) in enumerate(cases):
            d = var / f"refused-{i}"
            # on SQLite and the feed in every test mode: refusing needs no database or
            # broker of its own, and the checks are the same on any
            svc = Service(name, d, env={"SOUK_DB": f"sqlite:{d}/db/{name}.db", "SOUK_EVENTS": "feed",
                                        **env})
            (d / "log").mkdir(parents=True)
            if "LD_LIBRARY_PATH" in env:
                (d / env["LD_LIBRARY_PATH"]).mkdir()
                (d / env["LD_LIBRARY_PATH"] / "librabbitmq.so.4").write_text("not a library\n")
            out = open(d / "log" / "out", "wb")
            runs.append((cases[i], d / "log" / "out",
                         subprocess.Popen([os.path.join(BIN, name)], env=svc.env, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=str(d))))
            out.close()
        results = []
        for case, path, proc in runs:
            assert proc.wait(timeout=30) == case[2], (case, path.read_text(errors="replace"))
            text = path.read_text(errors="replace")
            collected.add_text(f"{case[0]} refusing {case[1]}", text)
            results.append((case, text))
        return results
    finally:
        for _, _, proc in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        taken.close()


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """The platform with debug logs: seeded, a day of shopping compressed, then stopped."""
    var = tmp_path_factory.mktemp("ecs")
    shop = Shop(var)
    shop.platform.env["SOUK_LOG_LEVEL"] = "debug"
    collected = Lines()
    try:
        refused_configurations(var, collected)
        # SOUK_LOG_FORMAT=ecs: souk seed's own lines ("seeding users") are ECS too, on
        # stderr with the services' lines; stdout keeps only what `users seed` tells the
        # person who seeds (the admin account's outcome: a result, not a log line)
        shop.platform.env["SOUK_LOG_FORMAT"] = "ecs"
        seed = shop.platform.souk("seed")
        del shop.platform.env["SOUK_LOG_FORMAT"]
        assert all(l.startswith("users: admin account ") for l in seed.stdout.splitlines()), seed.stdout
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
    for name in sorted(os.listdir(logdir)):   # the services' logs and the supervisor's souk.log
        with open(logdir / name, errors="strict") as f:   # UTF-8, or this raises
            collected.add_text(name, f.read())
    return collected.parsed()


def test_every_line_is_ecs_with_the_right_fields_and_types(lines):
    """ecs_schema.check_line: the base fields in the ecs-logging order, the ECS
    version, a level, who wrote it; every other field ECS's (with its type) or ours."""
    assert len(lines) > 200, len(lines)
    for source, l in lines:
        check_line(source, l, NAMES)


def test_each_refused_configuration_is_one_ecs_error_line(lines):
    for name, env, status, text in REFUSED:
        mine = [l for s, l in lines if s == f"{name} refusing {env}"]
        refused = [l for l in mine if l["message"] == "configuration error"]
        assert len(refused) == 1, (name, env, mine)
        l = refused[0]
        assert l["log.level"] == "error" and l["service.name"] == name, l
        assert text in l["error.message"], (text, l)
        if status == 2:   # refused before it opened anything: its last word
            assert mine[-1] is l, mine
    assert not any("pw@" in l.get("error.message", "") for _, l in lines)   # SOUK_EVENTS's password
    # gRPC core's own error (a port it cannot bind) is a line of ours, not its "E1130 …" text
    grpc = [l for s, l in lines if s.startswith("catalog refusing") and l.get("log.logger") == "grpc"]
    assert any(l["log.level"] == "error" and "Address already in use" in l["message"] and
               l["log.origin.file.name"] and l["log.origin.file.line"] > 0 for l in grpc), grpc


def test_the_supervisor_writes_ecs_too(lines):
    """var/log/souk.log (souk up -d) and souk seed under SOUK_LOG_FORMAT=ecs: service.name
    souk, process.pid on every line; an instance's start, the ready line, the stop."""
    sup = [(s, l) for s, l in lines if l["service.name"] == "souk"]
    assert all(l["event.dataset"] == "souk" and l["process.pid"] > 0 for _, l in sup), sup
    log = [l for s, l in sup if s == "souk.log"]
    started = [l for l in log if "souk.port" in l and "souk.pid" in l]
    instances = {l["souk.instance"] for l in started}   # catalog, catalog-1 with replicas
    assert {re.sub(r"-\d+$", "", i) for i in instances} == set(SERVICES), started
    for l in started:
        assert l["message"] == f'{l["souk.instance"]} port {l["souk.port"]} pid {l["souk.pid"]}', l
    ready = [l for l in log if re.fullmatch(r"all \d+ instances ready in [0-9.]+ s", l["message"])]
    assert len(ready) == 1 and ready[0]["souk.instances"] == len(instances), ready
    assert ready[0]["event.duration"] > 0
    assert any(l["message"].startswith("stopping ") and l["souk.instances"] > 0 for l in log), log[-10:]
    stopped = [l for l in log if " stopped (" in l["message"]]
    assert {l["souk.instance"] for l in stopped} == instances, stopped
    assert all("souk.exit_code" in l or "souk.signal" in l for l in stopped), stopped
    assert log[-1]["message"] == "stopped", log[-1]
    seed = [l["message"] for s, l in sup if s == "seed"]
    assert {f"seeding {name}" for name in SERVICES} <= set(seed) and seed[-1] == "seed done", seed


def test_a_plain_line_fails_the_check():
    """What a service or the supervisor printed before: not a line this test lets by."""
    for plain in ("catalog: configuration error: SOUK_THREADS=0: must be from 1 to 256",
                  "souk: catalog port 8082 pid 123",
                  '{"level":"error","msg":"out of memory"}'):
        with pytest.raises(AssertionError):
            check_line("plain", parse_line("plain", plain), NAMES)


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
