"""What each service needs to find, read from the code itself: the SOUK_<PEER>_URL
variables its sources name, the producers its event subscriptions follow (the feed
transport reads SOUK_<PRODUCER>_URL), and SOUK_USERS_URL (every verifier's JWKS); the
gateway, whose upstreams come from services.txt, needs every service behind it."""
import os
import re

from conftest import REPO, SERVICES, services_table


def required_peers(svc):
    src = _sources(svc)
    peers = {m.lower() for m in re.findall(r"SOUK_([A-Z][A-Z0-9]*)_URL", src)} & set(SERVICES)
    if svc == services_table.EDGE:
        peers |= set(services_table.UPSTREAMS)
    sub = re.search(r"souk_subscription\s+\w+\[\]\s*=\s*\{(.*?)\};", src, re.S)
    if sub:
        peers |= set(re.findall(r'\{\s*"(\w+)",\s*"[\w.]+"', sub.group(1)))
    peers.add("users")
    peers.discard(svc)
    assert peers <= set(SERVICES), (svc, peers)
    return peers


def _sources(svc):
    d = os.path.join(REPO, "services", svc)
    src = ""
    for f in sorted(os.listdir(d)):
        if f.endswith(".c"):
            with open(os.path.join(d, f)) as fh:
                src += fh.read()
    return src


def code_calls(svc):
    """The peers svc calls over HTTP whatever the event transport: the SOUK_<PEER>_URL
    its own sources read, and users (JWKS, service tokens) for every service but users."""
    peers = {m.lower() for m in re.findall(r"SOUK_([A-Z]+)_URL", _sources(svc))} & set(SERVICES)
    if svc == services_table.EDGE:
        peers |= set(services_table.UPSTREAMS)
    if svc != "users":
        peers.add("users")
    peers.discard(svc)
    return peers


def code_rpc_calls(svc):
    """The peers svc calls over gRPC when configured to: the SOUK_<PEER>_GRPC_URL its
    own sources read (docs/grpc.md)."""
    return {m.lower() for m in re.findall(r"SOUK_([A-Z]+)_GRPC_URL", _sources(svc))} & set(SERVICES)


def has_database(svc):
    """A service with migrations keeps state: with PostgreSQL, its own database."""
    d = os.path.join(REPO, "services", svc, "migrations")
    return os.path.isdir(d) and any(f.endswith(".sql") for f in os.listdir(d))


def publishes(svc):
    return re.search(r"\.publishes\s*=\s*true", _sources(svc)) is not None


def consumes(svc):
    sub = re.search(r"souk_subscription\s+\w+\[\]\s*=\s*\{(.*?)\};", _sources(svc), re.S)
    return sub is not None and re.search(r'\{\s*"\w+",', sub.group(1)) is not None
