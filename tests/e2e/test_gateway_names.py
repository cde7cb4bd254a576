"""Upstreams named by host name (Kubernetes and compose name their services) and by
IPv6 address, on the gateway's default engine: auto takes the libuv engine for every
http:// upstream, resolving names through the kit's proxy (lib/proxy.c), and keeps
libmicrohttpd for https:// ones. A name that does not resolve is no reason to refuse
the start: its routes answer 503 no_upstream until it resolves, and the log says why
once. A name this file moves resolves through gateway_hosts_shim.c (a getaddrinfo
preloaded into the gateway that reads a hosts file of the test's); the resolver's kept
answers and address order are unit-tested too (tests/unit/services/gateway/resolve.c)."""
import os
import socket
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest
import requests

from conftest import BIN, Service, assert_problem, free_port
from gateway_helpers import Echo, EchoHandler, UpstreamServer, gateway, wait_until


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


class Echo6:
    """The echo upstream on the IPv6 loopback."""

    def __init__(self):
        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        self.server = Server(("::1", 0), EchoHandler)
        self.port = self.server.server_address[1]
        self.url = f"http://[::1]:{self.port}"
        self.server.name, self.server.status, self.server.hits = "echo6", 200, 0
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def messages(gw):
    return [l.get("message") for l in gw.log_lines()]


def test_upstream_by_host_name_is_served_on_uv(tmp_path, echo):
    """localhost resolves on every machine: auto serves it on libuv, saying which
    addresses the name had, and the request reaches the echo with the URL's Host."""
    named = echo.url.replace("127.0.0.1", "localhost")
    gw = gateway(tmp_path, {"catalog": named}, SOUK_GATEWAY_ENGINE="auto")
    try:
        r = requests.get(gw.url + "/api/v1/products?q=tea", timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/api/v1/products?q=tea", r.text
        assert r.json()["headers"]["host"] == f"localhost:{echo.port}", r.text
        lines = gw.log_lines()
        assert any(l.get("message") == "public listener on libuv" for l in lines), gw.log_tail()
        assert "public listener on libmicrohttpd" not in messages(gw), gw.log_tail()
        resolved = [l for l in lines if l.get("message") == "upstream host resolved"]
        assert resolved and f"127.0.0.1:{echo.port}" in resolved[0]["souk.addresses"], gw.log_tail()
    finally:
        gw.kill()


def test_upstream_by_ipv6_address_is_served_on_uv(tmp_path):
    echo6 = Echo6()
    gw = gateway(tmp_path, {"catalog": echo6.url}, SOUK_GATEWAY_ENGINE="uv")
    try:
        r = requests.get(gw.url + "/api/v1/products/7", timeout=5)
        assert r.status_code == 200 and r.json()["who"] == "echo6", r.text
        assert r.json()["headers"]["host"] == f"[::1]:{echo6.port}", r.text
    finally:
        gw.kill()
        echo6.close()


def test_a_name_that_does_not_resolve_answers_503_and_says_so(tmp_path, echo):
    """.invalid never resolves (RFC 6761). The gateway starts (status 2 is for a
    configuration it cannot serve, and a name may resolve a moment later: compose
    registers a container's name when it starts), its other routes work, this
    upstream's routes answer 503 no_upstream, and one warning names the host."""
    gw = gateway(tmp_path, {"catalog": "http://catalog.invalid:8082", "users": echo.url},
                 SOUK_GATEWAY_ENGINE="auto")
    try:
        for _ in range(3):
            r = requests.get(gw.url + "/api/v1/products", timeout=5)
            assert_problem(r, 503, "no_upstream")
        r = requests.get(gw.url + "/.well-known/jwks.json", timeout=5)
        assert r.status_code == 200 and r.json()["who"] == "echo", r.text
        warned = [l for l in gw.log_lines() if l.get("message") == "upstream host does not resolve"]
        assert len(warned) == 1 and warned[0]["souk.host"] == "catalog.invalid", gw.log_tail()
        assert "public listener on libuv" in messages(gw), gw.log_tail()
    finally:
        gw.kill()


def test_https_upstreams_take_the_mhd_engine(tmp_path, echo):
    """The uv engine speaks plain HTTP to upstreams: auto serves a gateway with an
    https:// upstream on MHD, saying so, and an explicit uv is refused at start."""
    tls = f"https://127.0.0.1:{free_port()}"
    gw = gateway(tmp_path, {"catalog": echo.url, "cart": tls}, SOUK_GATEWAY_ENGINE="auto")
    try:
        r = requests.get(gw.url + "/api/v1/products?q=tea", timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/api/v1/products?q=tea", r.text
        assert any("https:// upstream" in str(l) for l in gw.log_lines()
                   if l.get("message") == "public listener on libmicrohttpd"), gw.log_tail()
    finally:
        gw.kill()
    svc = Service("gateway", tmp_path, {"SOUK_CART_URL": tls, "SOUK_GATEWAY_ENGINE": "uv",
                                        "SOUK_ADMIN_LISTEN": "off"})
    out = subprocess.run([BIN + "/gateway"], env=svc.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "cart has an https:// one" in out.stderr, out.stderr


@pytest.fixture(scope="module")
def hosts_shim(tmp_path_factory):
    """gateway_hosts_shim.c built: a getaddrinfo that reads SOUK_TEST_HOSTS for *.test."""
    out = str(tmp_path_factory.mktemp("shim") / "hosts_shim.so")
    src = os.path.join(os.path.dirname(__file__), "gateway_hosts_shim.c")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", out, src, "-ldl"], check=True,
                   capture_output=True, timeout=60)
    return out


class EchoAt(Echo):
    """The echo upstream on a given loopback address and port."""

    def __init__(self, host, port, name):
        self.port = port
        self.url = f"http://{host}:{port}"
        self.server = UpstreamServer((host, port), EchoHandler)
        self.server.name, self.server.status, self.server.hits = name, 200, 0
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("old_dies", [False, True], ids=["old-stops-accepting", "old-dies"])
def test_a_name_follows_its_addresses(tmp_path, hosts_shim, old_dies):
    """A name with two addresses, the first refusing ([::1], where nothing listens): the
    request is served through the second. Then the name moves to another address (a
    Service recreated, 127.0.0.2) while the old instance stops accepting (its open
    connections still answering) or dies with them: the gateway resolves it again,
    probes and serves the new address, and says so."""
    a = Echo("old")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"svc.test ::1 127.0.0.1\n")
    asan = os.environ.get("ASAN_OPTIONS", "")
    gw = gateway(tmp_path, {"catalog": f"http://svc.test:{a.port}"}, SOUK_GATEWAY_ENGINE="auto",
                 SOUK_UPSTREAM_RESOLVE_MS=1000, LD_PRELOAD=hosts_shim, SOUK_TEST_HOSTS=hosts,
                 # the shim goes before a sanitizer build's runtime
                 ASAN_OPTIONS=(asan + ":" if asan else "") + "verify_asan_link_order=0")
    b = None
    try:
        r = requests.get(gw.url + "/api/v1/products/1", timeout=5)
        assert r.status_code == 200 and r.json()["who"] == "old", r.text
        assert "public listener on libuv" in messages(gw), gw.log_tail()
        first = [l for l in gw.log_lines() if l.get("message") == "upstream host resolved"]
        assert first[0]["souk.addresses"] == f"[::1]:{a.port} 127.0.0.1:{a.port}", gw.log_tail()
        b = EchoAt("127.0.0.2", a.port, "new")
        hosts.write_text(f"svc.test 127.0.0.2\n")
        if old_dies:
            a.close()
        else:
            a.server.shutdown()
            a.server.server_close()

        def served_by_new():
            try:
                r = requests.get(gw.url + "/api/v1/products/1", timeout=5)
                return r.status_code == 200 and r.json()["who"] == "new"
            except requests.RequestException:
                return False
        wait_until(served_by_new, 15, "the gateway to follow the name to 127.0.0.2")
        # and only there: a pooled connection to the old address (whose instance may
        # still answer on it) is not used again once the name has moved
        who = [requests.get(gw.url + "/api/v1/products/1", timeout=5).json()["who"]
               for _ in range(20)]
        assert who == ["new"] * 20, who
        moved = [l for l in gw.log_lines() if l.get("message") == "upstream host resolved"
                 and l.get("souk.addresses") == f"127.0.0.2:{a.port}"]
        assert moved and moved[0]["souk.changed"] is True, gw.log_tail()
    finally:
        gw.kill()
        if b is not None:
            b.close()
