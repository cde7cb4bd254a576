"""The kit's gRPC server and client (lib/grpc_*.c) from a stock client: Debian's
python3-grpcio with message classes built from protoc-c's descriptor sets (no
generated Python). The server under test is tests/grpc/testsvc.c, a small service on
the kit; tokens come from a real users service. Covers the health service (Check and
Watch), reflection (a client that knows nothing but the port), auth, deadlines,
unknown methods, bad protobuf, the status mapping with the problem in trailing
metadata, request ids and trace context, the kit's client (replicas, deadlines,
errors), the JSON mapping, metrics, and the drain on SIGTERM."""
import json
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import BUILD, DEAD_PORT, Service, _started, free_port
from users_helpers import CLIENT_SECRETS, claims, install_key, sign, write_clients

GEN = os.path.join(BUILD, "gen")
TESTSVC = os.path.join(BUILD, "tests", "grpc", "testsvc")


def messages(*sets):
    fds = descriptor_pb2.FileDescriptorSet()
    for path in sets:
        with open(os.path.join(GEN, path), "rb") as f:
            fds.MergeFromString(f.read())
    return message_factory.GetMessages(fds.file)


M = messages("proto/kit.desc", "test/test.desc")
Echo, Reply = M["souk.test.v1.EchoRequest"], M["souk.test.v1.EchoReply"]
RelayReq, RelayRep = M["souk.test.v1.RelayRequest"], M["souk.test.v1.RelayReply"]
Sample = M["souk.test.v1.Sample"]
HealthReq, HealthResp = M["grpc.health.v1.HealthCheckRequest"], M["grpc.health.v1.HealthCheckResponse"]
ReflReq = M["grpc.reflection.v1alpha.ServerReflectionRequest"]
ReflResp = M["grpc.reflection.v1alpha.ServerReflectionResponse"]
SERVING, NOT_SERVING = 1, 2


class SvcUnderTest(Service):
    """The test service binary with an HTTP and a gRPC port of its own."""

    def __init__(self, var_dir, env=None):
        self.grpc_port = free_port()
        e = {"SOUK_GRPC_LISTEN": f"127.0.0.1:{self.grpc_port}"}
        e.update(env or {})
        super().__init__("testsvc", var_dir, e)
        self.target = f"127.0.0.1:{self.grpc_port}"

    def start(self, wait=True):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([TESTSVC], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        _started.append(self.proc)
        if wait:
            self.wait_ready()
        return self


def stub(target, method, req=Echo, resp=Reply):
    ch = grpc.insecure_channel(target)
    return ch.unary_unary(method, request_serializer=req.SerializeToString,
                          response_deserializer=resp.FromString)


def rpc_error(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kw)
    return e.value


def trailing(err):
    return {k: v for k, v in (err.trailing_metadata() or ())}


def service_token(users, client):
    r = requests.post(users.url + "/oauth/token", data={
        "grant_type": "client_credentials", "client_id": client,
        "client_secret": CLIENT_SECRETS[client]}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """users (tokens and the JWKS), a back service B, and a front service A whose kit
    client calls B (its peer list starts with an address nobody listens on)."""
    var = tmp_path_factory.mktemp("grpc")
    key = install_key(var, "test-key-1")
    procs = []
    users = Service("users", var, {"SOUK_CLIENTS_FILE": write_clients(var)})
    users.start()
    procs.append(users)
    common = {"SOUK_USERS_URL": users.url, "SOUK_CLIENT_ID": "orders",
              "SOUK_CLIENT_SECRET": CLIENT_SECRETS["orders"], "SOUK_GRPC_DEADLINE_MS": "7000",
              "SOUK_GRPC_MAX_MESSAGE": "4096"}
    back = SvcUnderTest(var, dict(common, SOUK_DB=f"sqlite:{var}/db/back.db")).start()
    procs.append(back)
    front = SvcUnderTest(var, dict(common, SOUK_DB=f"sqlite:{var}/db/front.db",
                              SOUK_TEST_PEER_URL=f"grpc://127.0.0.1:{DEAD_PORT},grpc://{back.target}")).start()
    procs.append(front)
    user_token = sign(key, "test-key-1", claims(sub="usr_01J00000000000000000000001"))
    yield {"users": users, "front": front, "back": back, "user": user_token,
           "orders": service_token(users, "orders"), "cart": service_token(users, "cart")}
    for p in procs:
        p.kill()


def test_health_check_and_watch(rig):
    check = stub(rig["front"].target, "/grpc.health.v1.Health/Check", HealthReq, HealthResp)
    for name in ("", "souk.test.v1.Test", "grpc.health.v1.Health",
                 "grpc.reflection.v1alpha.ServerReflection"):
        assert check(HealthReq(service=name), timeout=5).status == SERVING, name
    err = rpc_error(check, HealthReq(service="souk.nope.v1.Nope"), timeout=5)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    ch = grpc.insecure_channel(rig["front"].target)
    watch = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=HealthReq.SerializeToString,
                            response_deserializer=HealthResp.FromString)
    stream = watch(HealthReq(service=""), timeout=5)
    assert next(stream).status == SERVING
    stream.cancel()
    unknown = watch(HealthReq(service="souk.nope.v1.Nope"), timeout=5)
    assert next(unknown).status == 3  # SERVICE_UNKNOWN, and the call stays open
    unknown.cancel()


def reflect(target, *requests_):
    ch = grpc.insecure_channel(target)
    call = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                            request_serializer=ReflReq.SerializeToString,
                            response_deserializer=ReflResp.FromString)
    return list(call(iter(requests_), timeout=5))


def test_reflection_lets_a_client_with_nothing_but_the_port_call(rig):
    target = rig["front"].target
    [listed] = reflect(target, ReflReq(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert names == {"souk.test.v1.Test", "grpc.health.v1.Health",
                     "grpc.reflection.v1alpha.ServerReflection"}
    by_symbol, by_method, by_file, missing = reflect(
        target, ReflReq(file_containing_symbol="souk.test.v1.Test"),
        ReflReq(file_containing_symbol="souk.test.v1.Test.Ping"),
        ReflReq(file_by_filename="grpc/health/v1/health.proto"),
        ReflReq(file_containing_symbol="souk.test.v1.Nope"))
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert [descriptor_pb2.FileDescriptorProto.FromString(b).name
            for b in by_file.file_descriptor_response.file_descriptor_proto] == ["grpc/health/v1/health.proto"]
    # a fresh pool from what reflection sent: no .desc file, no generated code
    pool = descriptor_pool.DescriptorPool()
    for raw in by_symbol.file_descriptor_response.file_descriptor_proto:
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(raw))
    assert by_method.file_descriptor_response.file_descriptor_proto == \
        by_symbol.file_descriptor_response.file_descriptor_proto
    svc = pool.FindServiceByName("souk.test.v1.Test")
    ping = svc.FindMethodByName("Ping")
    factory = message_factory.MessageFactory(pool)
    req_cls = factory.GetPrototype(ping.input_type)
    resp_cls = factory.GetPrototype(ping.output_type)
    call = stub(target, f"/{svc.full_name}/{ping.name}", req_cls, resp_cls)
    assert call(req_cls(text="found by reflection"), timeout=5).text == "found by reflection"


def test_contracts_descriptor_set_has_every_service():
    """The descriptor set a Python client loads for the platform's contracts."""
    fds = descriptor_pb2.FileDescriptorSet()
    with open(os.path.join(GEN, "proto", "souk.desc"), "rb") as f:
        fds.MergeFromString(f.read())
    services = {f"{fd.package}.{s.name}" for fd in fds.file for s in fd.service}
    assert services == {"souk.users.v1.Users", "souk.catalog.v1.Catalog",
                        "souk.catalog.v1.CatalogInternal", "souk.cart.v1.Carts",
                        "souk.payments.v1.Payments"}
    msgs = message_factory.GetMessages(fds.file)
    p = msgs["souk.catalog.v1.Product"](id="prd_x", price_cents=1999)
    p.attributes["brand"].string_value = "Acme"
    assert msgs["souk.catalog.v1.Product"].FromString(p.SerializeToString()) == p


def test_auth_missing_invalid_and_wrong_scope(rig):
    target = rig["front"].target
    echo = stub(target, "/souk.test.v1.Test/Echo")
    cases = [
        (None, grpc.StatusCode.UNAUTHENTICATED, "unauthorized"),
        ("Bearer not-a-token", grpc.StatusCode.UNAUTHENTICATED, "invalid_token"),
        ("Basic b3JkZXJzOng=", grpc.StatusCode.UNAUTHENTICATED, "invalid_token"),
        ("Bearer " + rig["cart"], grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope"),
        ("Bearer " + rig["user"], grpc.StatusCode.PERMISSION_DENIED, "insufficient_scope"),
    ]
    for auth, code, problem in cases:
        md = [("authorization", auth)] if auth else []
        err = rpc_error(echo, Echo(text="x"), timeout=5, metadata=md)
        assert err.code() == code, (auth, err.details())
        assert trailing(err)["souk-problem-code"] == problem
    ok = echo(Echo(text="hi"), timeout=5, metadata=[("authorization", "Bearer " + rig["orders"])])
    assert ok.text == "hi" and ok.caller == "orders" and "users:read" in ok.scope.split()
    whoami = stub(target, "/souk.test.v1.Test/Whoami")
    assert whoami(Echo(), timeout=5, metadata=[("authorization", "Bearer " + rig["user"])]).caller \
        == "usr_01J00000000000000000000001"
    err = rpc_error(whoami, Echo(), timeout=5, metadata=[("authorization", "Bearer " + rig["orders"])])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_deadlines(rig):
    ping = stub(rig["front"].target, "/souk.test.v1.Test/Ping")
    t0 = time.monotonic()
    err = rpc_error(ping, Echo(sleep_ms=5000), timeout=0.3)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 3
    # the handler sees the caller's deadline (the core's clocks agree to some ms), and
    # SOUK_GRPC_DEADLINE_MS (7 s) without one or with a longer one
    assert 1000 < ping(Echo(), timeout=3).deadline_ms <= 3050
    assert 5000 < ping(Echo()).deadline_ms <= 7000
    assert 5000 < ping(Echo(), timeout=60).deadline_ms <= 7000


def test_a_held_worker_does_not_hold_the_calls_behind_it(rig):
    # one worker waits in the core's queue; a second joins while a handler holds it
    ping = stub(rig["front"].target, "/souk.test.v1.Test/Ping")

    def sleeping():
        with open(rig["front"].log_path) as f:
            return f.read().count("rpc sleeping")

    before = sleeping()
    slow = ping.future(Echo(text="slow", sleep_ms=3000), timeout=10)
    deadline = time.monotonic() + 10
    while sleeping() == before:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ping(Echo(text="quick"), timeout=2.5).text == "quick"
    assert not slow.done()  # answered while the slow one still ran
    assert slow.result().text == "slow"


def test_unknown_method_is_unimplemented(rig):
    ch = grpc.insecure_channel(rig["front"].target)
    for path in ("/souk.test.v1.Test/Nope", "/souk.nope.v1.Nope/Ping", "/x"):
        err = rpc_error(ch.unary_unary(path), b"", timeout=5)
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED, path
        assert trailing(err)["souk-problem-code"] == "unimplemented"


BAD_PROTOBUF = [
    b"\x0a\x05\xff\xfe\xfd\xfc\xfb",       # text: not UTF-8
    b"\x0a\x03a\x00b",                     # text: holds NUL
    b"\x0a\x10abc",                        # a length past the end
    b"\x10",                               # a truncated varint
    b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a varint of eleven bytes
    b"\x0b\x0c",                           # a group (not proto3)
    b"\x0f",                               # wire type 7
    b"\x00\x01",                           # field number 0
    b"\x08\x01",                           # text (a string) sent as a varint
    b"\x12\x02ab",                         # sleep_ms (an int32) sent as bytes
]


def test_bad_protobuf_is_invalid_argument_and_the_server_lives_on(rig):
    ch = grpc.insecure_channel(rig["front"].target)
    raw = ch.unary_unary("/souk.test.v1.Test/Ping")
    for body in BAD_PROTOBUF:
        err = rpc_error(raw, body, timeout=5)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (body, err.details())
        assert trailing(err)["souk-problem-code"] == "malformed_message"
    mirror = ch.unary_unary("/souk.test.v1.Test/Mirror")
    for body in (b"\xa2\x01\x03\x0a\x01\xff",   # sub.name: not UTF-8, one level down
                 b"\xba\x01\x05\x0a\x01k\x12\x00\xff"):  # a map entry cut short
        assert rpc_error(mirror, body, timeout=5).code() == grpc.StatusCode.INVALID_ARGUMENT
    # over SOUK_GRPC_MAX_MESSAGE (4096): refused before any handler
    err = rpc_error(raw, b"\x0a\x90\x27" + b"a" * 5008, timeout=5)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    check = stub(rig["front"].target, "/grpc.health.v1.Health/Check", HealthReq, HealthResp)
    assert check(HealthReq(), timeout=5).status == SERVING


MAPPING = [
    (400, "validation_failed", grpc.StatusCode.INVALID_ARGUMENT),
    (401, "invalid_token", grpc.StatusCode.UNAUTHENTICATED),
    (403, "insufficient_scope", grpc.StatusCode.PERMISSION_DENIED),
    (404, "product_not_found", grpc.StatusCode.NOT_FOUND),
    (409, "out_of_stock", grpc.StatusCode.FAILED_PRECONDITION),
    (409, "illegal_transition", grpc.StatusCode.FAILED_PRECONDITION),
    (409, "idempotency_key_in_use", grpc.StatusCode.ABORTED),
    (409, "email_taken", grpc.StatusCode.ALREADY_EXISTS),
    (412, "precondition_failed", grpc.StatusCode.FAILED_PRECONDITION),
    (429, "rate_limited", grpc.StatusCode.RESOURCE_EXHAUSTED),
    (500, "internal", grpc.StatusCode.INTERNAL),
    (503, "unavailable", grpc.StatusCode.UNAVAILABLE),
    (504, "upstream_timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
]


def test_problem_codes_map_to_statuses_with_the_problem_in_trailing_metadata(rig):
    ping = stub(rig["front"].target, "/souk.test.v1.Test/Ping")
    for status, code, grpc_code in MAPPING:
        err = rpc_error(ping, Echo(fail_status=status, fail_code=code), timeout=5)
        assert err.code() == grpc_code, (status, code, err.code())
        assert err.details() == f"asked to fail with {status}"
        md = trailing(err)
        assert md["souk-problem-code"] == code
        doc = json.loads(md["souk-problem-bin"])
        assert doc["status"] == status and doc["code"] == code
        assert doc["type"] == f"urn:souk:problem:{code}"
        assert doc["items"] == [{"product_id": "prd_x", "available": 0}]  # extension members too


def test_request_id_and_trace_context(rig):
    ping = stub(rig["front"].target, "/souk.test.v1.Test/Ping")
    trace = "0af7651916cd43dd8448eb211c80319c"
    reply, call = ping.with_call(Echo(), timeout=5, metadata=[
        ("x-request-id", "req-from-test-1"), ("traceparent", f"00-{trace}-b7ad6b7169203331-01")])
    assert reply.request_id == "req-from-test-1"
    assert ("x-request-id", "req-from-test-1") in call.initial_metadata()
    assert reply.traceparent.startswith(f"00-{trace}-") and not reply.traceparent.endswith("b7ad6b7169203331-01")
    # malformed ones are replaced, never passed on
    reply = ping(Echo(), timeout=5, metadata=[("x-request-id", "bad id!"), ("traceparent", "00-zz")])
    assert reply.request_id.startswith("req_") and len(reply.traceparent) == 55


def relay(rig, outer_timeout=10, **kw):
    call = stub(rig["front"].target, "/souk.test.v1.Test/Relay", RelayReq, RelayRep)
    return call(RelayReq(**kw), timeout=outer_timeout, metadata=[
        ("x-request-id", "relay-1"), ("traceparent", "00-11111111111111111111111111111111-2222222222222222-01")])


def test_client_calls_a_peer_with_token_trace_and_deadline(rig):
    for _ in range(4):  # the dead first replica is skipped or retried past, every time
        r = relay(rig, echo=Echo(text="via A"), timeout_ms=3000, retries=1)
        assert r.code == 0 and r.status == 200 and r.answered and r.kit_error == "", r
        assert r.reply.text == "via A" and r.reply.caller == "orders"
        assert r.reply.request_id == "relay-1"
        assert r.reply.traceparent.startswith("00-11111111111111111111111111111111-")
        assert 0 < r.reply.deadline_ms <= 3050
    # the peer's problem, as the kit's client reports it
    r = relay(rig, echo=Echo(fail_status=409, fail_code="out_of_stock"), retries=1)
    assert (r.code, r.status, r.problem_code, r.answered) == (9, 409, "out_of_stock", True)
    assert r.kit_error == "conflict"
    r = relay(rig, echo=Echo(fail_status=404, fail_code="product_not_found"), retries=1, json=True)
    assert (r.status, r.problem_code, r.answered) == (404, "product_not_found", True)
    assert json.loads(r.body_json)["code"] == "product_not_found"
    r = relay(rig, echo=Echo(text="json"), retries=1, json=True)
    assert r.status == 200 and json.loads(r.body_json)["text"] == "json"
    # the call's own deadline, then the caller's: never longer than the call being served
    r = relay(rig, echo=Echo(sleep_ms=3000), timeout_ms=300, retries=1)
    # (the peer gives up at the same deadline: its own 504 may come first, so answered varies)
    assert (r.code, r.kit_error) == (grpc.StatusCode.DEADLINE_EXCEEDED.value[0], "timed out")
    t0 = time.monotonic()
    try:  # the peer's call ends with ours: whichever of the two the caller sees first
        r = relay(rig, echo=Echo(sleep_ms=5000), timeout_ms=60000, retries=1, outer_timeout=0.5)
        assert r.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 3


def test_client_with_no_live_replica_says_unavailable(rig, tmp_path):
    lone = SvcUnderTest(tmp_path, {"SOUK_USERS_URL": rig["users"].url,
                              "SOUK_TEST_PEER_URL": f"grpc://127.0.0.1:{DEAD_PORT}"}).start()
    try:
        call = stub(lone.target, "/souk.test.v1.Test/Relay", RelayReq, RelayRep)
        r = call(RelayReq(echo=Echo(), retries=2), timeout=10)
        assert (r.code, r.answered, r.kit_error) == (grpc.StatusCode.UNAVAILABLE.value[0], False, "unavailable")
        r = call(RelayReq(echo=Echo(), json=True), timeout=10)
        assert (r.status, r.answered, r.kit_error) == (0, False, "unavailable")
    finally:
        lone.kill()


def test_json_mapping_round_trips_every_field_kind(rig):
    mirror = stub(rig["front"].target, "/souk.test.v1.Test/Mirror", Sample, Sample)
    s = Sample(i32=-5, i64=-(2**62), u32=4000000000, u64=2**63 - 1, s32=-7, s64=-(2**40), f32=7,
               f64=9, sf32=-3, sf64=-4, d=1.5, f=0.25, b=True, s="héllo ☃", by=b"\x00\x01\xff",
               color=2, ri=[1, -2, 3], rs=["a", ""], note="", rd=[0.5, -1.0], colors=[1, 2])
    s.counts["x"] = 5
    s.sub.name = "sub"
    s.subs.add(name="a", n=1)
    s.subs.add()
    s.attributes["k"].string_value = "v"
    s.attributes["n"].integer_value = -7
    s.attributes["d"].number_value = 2.5
    s.attributes["b"].bool_value = False
    s.names[3] = "three"
    s.names[-1] = "minus one"
    assert mirror(s, timeout=5) == s
    empty = mirror(Sample(), timeout=5)
    assert empty == Sample() and not empty.HasField("note") and not empty.HasField("sub")


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or line.startswith(f"{name}{{{want},"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_per_rpc(rig):
    ping = stub(rig["front"].target, "/souk.test.v1.Test/Ping")
    before = requests.get(rig["front"].url + "/metrics", timeout=5).text
    ping(Echo(), timeout=5)
    rpc_error(ping, Echo(fail_status=404, fail_code="product_not_found"), timeout=5)
    relay(rig, echo=Echo(), retries=1)

    def ready():
        text = requests.get(rig["front"].url + "/metrics", timeout=5).text
        ok = metric(text, "grpc_server_handled_total", service="souk.test.v1.Test", method="Ping", code="OK")
        was = metric(before, "grpc_server_handled_total", service="souk.test.v1.Test", method="Ping", code="OK") or 0
        return text if ok is not None and ok >= was + 1 else None
    text = None
    for _ in range(250):  # the metric is counted when the answer has gone out
        text = ready()
        if text:
            break
        time.sleep(0.02)
    assert text, "grpc_server_handled_total did not count the call"
    assert metric(text, "grpc_server_handled_total", service="souk.test.v1.Test", method="Ping",
                  code="NOT_FOUND") >= 1
    assert metric(text, "grpc_server_handling_seconds_count", service="souk.test.v1.Test", method="Ping") >= 2
    assert metric(text, "grpc_client_handled_total", service="souk.test.v1.Test", method="Echo",
                  code="OK") >= 1
    lines = [json.loads(l) for l in open(rig["front"].log_path) if '"souk.grpc_status"' in l]
    assert any(l["url.path"] == "/souk.test.v1.Test/Ping" and l["souk.grpc_status"] == "NOT_FOUND"
               for l in lines)


def test_sigterm_drains_a_call_in_flight(tmp_path):
    svc = SvcUnderTest(tmp_path, {"SOUK_DRAIN_SECONDS": "10"}).start()
    ping = stub(svc.target, "/souk.test.v1.Test/Ping")
    out = {}

    def slow():
        try:
            out["reply"] = ping(Echo(text="finished", sleep_ms=800), timeout=10)
        except grpc.RpcError as e:
            out["error"] = e

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 10
    while "rpc sleeping" not in open(svc.log_path).read():
        assert time.monotonic() < deadline, svc.log_tail()
        time.sleep(0.01)
    svc.proc.send_signal(signal.SIGTERM)
    t.join(15)
    assert "error" not in out, out.get("error")
    assert out["reply"].text == "finished"
    assert svc.proc.wait(15) == 0
    log = open(svc.log_path).read()
    assert "gRPC stopped" in log and "drain deadline passed" not in log
    err = rpc_error(ping, Echo(), timeout=2)
    assert err.code() == grpc.StatusCode.UNAVAILABLE  # nobody listens any more
