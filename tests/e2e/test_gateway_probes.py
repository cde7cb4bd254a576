"""Health probes under load (the soak's 503 no_upstream, bench/profile-notes.md): a
service answers /readyz on its probe listener (SOUK_PROBE_LISTEN) while every request
thread is busy, the gateway probes there (SOUK_UPSTREAM_PROBE_PORT_OFFSET), and an
instance whose probe only times out is not a dead one: while no instance of its
upstream is healthy it keeps its traffic (a refused connection still ejects)."""
import re
import threading
import pytest
import requests

from conftest import free_port
from gateway_helpers import Echo, EchoHandler, gateway, wait_until
from test_auth_jwks import FakeUsers, FakeUsersHandler, get_cart, start_cart


class HeldJwksHandler(FakeUsersHandler):
    """The key set is held until the test releases it: the service's only request
    thread waits in that fetch (lib/auth.c fetches on an unknown key id)."""

    def do_GET(self):
        if self.path == "/.well-known/jwks.json":
            self.server.held.set()
            self.server.release.wait(10)
        super().do_GET()


def test_probe_listener_answers_while_every_request_thread_waits(services, tmp_path):
    users = FakeUsers()
    users.server.RequestHandlerClass = HeldJwksHandler
    users.server.held, users.server.release = threading.Event(), threading.Event()
    probe = f"127.0.0.1:{free_port()}"
    try:
        cart = start_cart(services, tmp_path, users, SOUK_THREADS=1, SOUK_PROBE_LISTEN=probe)
        token = users.token()
        waiter = threading.Thread(target=lambda: get_cart(cart, token), daemon=True)
        waiter.start()
        assert users.server.held.wait(10), "the cart never fetched the key set"
        # the one request thread now waits for users (2 s timeout, one retry)
        r = requests.get(f"http://{probe}/readyz", timeout=1.5)
        assert r.status_code == 200 and r.json() == {"status": "ready"}
        assert requests.get(f"http://{probe}/healthz", timeout=1.5).status_code == 200
        with pytest.raises(requests.Timeout):    # what the gateway's probe used to meet
            requests.get(cart.url + "/readyz", timeout=0.5)
        # the probe listener serves the probes only
        assert requests.get(f"http://{probe}/metrics", timeout=1.5).status_code == 404
        assert requests.get(f"http://{probe}/api/v1/cart", timeout=1.5).status_code == 404
        users.server.release.set()
        waiter.join(15)
    finally:
        users.server.release.set()
        users.close()


class SlowProbeHandler(EchoHandler):
    """Answers every request at once, but /readyz only after the gateway's 1 s probe
    timeout (a service whose probe waits behind busy request threads)."""

    def _answer(self):
        if self.path == "/readyz":
            self.server.release.wait(5)
        super()._answer()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer


def slow_probe_echo(name):
    echo = Echo(name)
    echo.server.RequestHandlerClass = SlowProbeHandler
    echo.server.release = threading.Event()
    return echo


def up_gauge(gw, upstream):
    text = requests.get(gw.admin_url + "/metrics", timeout=5).text
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'souk_proxy_upstream_up\{upstream="%s",instance="([^"]+)"\} (\S+)' % upstream, text)}


def test_a_lone_instance_whose_probe_times_out_keeps_its_traffic(tmp_path):
    slow = slow_probe_echo("catalog")
    gw = gateway(tmp_path, {"catalog": slow.url}, SOUK_HEALTH_INTERVAL_MS=200,
                 SOUK_RATE_IP_RPS=0)
    try:
        wait_until(lambda: up_gauge(gw, "catalog") == {f"127.0.0.1:{slow.port}": 0.0}, 15,
                   "the probe to time out")
        for _ in range(20):
            r = requests.get(gw.url + "/api/v1/products", timeout=5)
            assert r.status_code == 200, r.text
        assert slow.hits >= 20
    finally:
        slow.server.release.set()
        gw.kill()
        slow.close()


def test_a_refused_instance_is_ejected_beside_a_slow_one(tmp_path):
    """Panic routes to an instance whose probe timed out, never to a refused one."""
    slow = slow_probe_echo("catalog")
    dead = f"http://127.0.0.1:{free_port()}"
    gw = gateway(tmp_path, {"catalog": [dead, slow.url]}, SOUK_HEALTH_INTERVAL_MS=200,
                 SOUK_RATE_IP_RPS=0, SOUK_UPSTREAM_RETRIES=0)
    try:
        wait_until(lambda: set(up_gauge(gw, "catalog").values()) == {0.0}, 15,
                   "both instances down: one refused, one slow")
        for _ in range(20):   # no retries: a request sent to the dead one would fail
            r = requests.get(gw.url + "/api/v1/products", timeout=5)
            assert r.status_code == 200, r.text
    finally:
        slow.server.release.set()
        gw.kill()
        slow.close()


def test_the_gateway_probes_on_the_port_offset(tmp_path):
    """SOUK_UPSTREAM_PROBE_PORT_OFFSET: the probe goes to port + offset (the service's
    probe listener), not to the public port, whose /readyz here says 503."""
    public, probes = sorted((Echo("catalog"), Echo("catalog")), key=lambda e: e.port)  # offset > 0
    for srv in (public.server, probes.server):
        srv.RequestHandlerClass, srv.readyz_hits = CountingHandler, 0
    public.server.ready_status = 503
    gw = gateway(tmp_path, {"catalog": public.url}, SOUK_HEALTH_INTERVAL_MS=100,
                 SOUK_RATE_IP_RPS=0, SOUK_UPSTREAM_PROBE_PORT_OFFSET=probes.port - public.port)
    try:
        wait_until(lambda: probes.server.readyz_hits >= 3, 15, "probes on the offset port")
        assert up_gauge(gw, "catalog") == {f"127.0.0.1:{public.port}": 1.0}
        assert requests.get(gw.url + "/api/v1/products", timeout=5).status_code == 200
        assert public.server.readyz_hits == 0
    finally:
        gw.kill()
        public.close()
        probes.close()


class CountingHandler(EchoHandler):
    """Counts /readyz and answers it with the server's ready_status (200 unless set)."""

    def _answer(self):
        if self.path == "/readyz":
            self.server.readyz_hits += 1
            status = getattr(self.server, "ready_status", 200)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super()._answer()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer
