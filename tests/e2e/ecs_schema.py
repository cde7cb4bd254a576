"""What an ECS log line of souk is, as tests/e2e/test_log_ecs.py checks every kind of
line the platform writes (and test_souk_cli.py the supervisor's failure paths): one JSON
object, in the ecs-logging order, with the fields Filebeat and Elasticsearch expect
under their ECS names and types; our own fields under souk.*."""
import ipaddress
import json
import re
from datetime import datetime

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


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
    return dict(pairs)


def parse_line(source, text):
    """One line as a dict; an AssertionError naming the source when it is not one
    JSON object (a plain-text line fails here)."""
    try:
        line = json.loads(text, object_pairs_hook=no_duplicates)
    except (ValueError, AssertionError) as e:
        raise AssertionError(f"{source}: not one JSON object ({e}): {text[:300]}")
    assert isinstance(line, dict), f"{source}: not a JSON object: {text[:300]}"
    return line


def check_line(source, l, names):
    """The base fields in order and every field an ECS one or ours, of its type;
    names: the service.name values allowed."""
    keys = list(l)
    assert keys[:3] == ["@timestamp", "log.level", "message"], (source, keys[:4])
    assert ecs_type_ok("date", l["@timestamp"]), (source, l)
    assert l["ecs.version"] == ECS_VERSION, (source, l)
    assert l["log.level"] in LEVELS, (source, l)
    assert l["service.name"] in names, (source, l)
    assert l["event.dataset"] in (l["service.name"], l["service.name"] + ".access"), (source, l)
    assert isinstance(l["message"], str) and l["message"], (source, l)
    for key, value in l.items():
        if key in ECS:
            assert ecs_type_ok(ECS[key], value), f"{source}: {key}={value!r} is not an ECS {ECS[key]}"
        else:
            assert CUSTOM.fullmatch(key), f"{source}: {key} is neither an ECS field nor souk.*: {l}"
        if key in HEX:
            assert HEX[key].fullmatch(value), (source, key, value)
    if "event.duration" in l:
        assert l["event.duration"] >= 0


def ecs_lines(source, text, names):
    """Every non-blank line of text, parsed and checked (check_line)."""
    out = []
    for t in text.splitlines():
        if t.strip():
            out.append(parse_line(source, t))
            check_line(source, out[-1], names)
    return out
