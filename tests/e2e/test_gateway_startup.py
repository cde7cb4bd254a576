"""The gateway's start-up readiness (lib/proxy.c, souk_proxy_ready): /readyz says
ready only once every upstream has answered a probe, so a route works the moment
the gateway is ready; later outages of an upstream cost only its own routes."""
import threading
import time

import requests

from conftest import UPSTREAMS, Service, free_port
from gateway_helpers import Echo, EchoHandler, UpstreamServer, wait_until, web_copy



def status(url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


class Late:
    """An echo upstream on a port chosen now and served only when start() is called."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self):
        self.server = UpstreamServer(("127.0.0.1", self.port), EchoHandler)
        self.server.name, self.server.status, self.server.hits = "late", 200, 0
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if self.server:
            self.server.stop()  # and its open connections: the gateway's pool must not reach it
            self.server = None


def close_all(servers):
    """Close in parallel: each shutdown waits out its server's 0.5 s poll."""
    threads = [threading.Thread(target=s.close) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def start_gateway(tmp_path, urls, **env):
    e = {f"SOUK_{n.upper()}_URL": u for n, u in urls.items()}
    e["SOUK_WEB_DIR"] = str(web_copy(tmp_path))
    e.update({k: str(v) for k, v in env.items()})
    return Service("gateway", tmp_path, e).start(wait=False)


def test_not_ready_until_every_upstream_answered_then_ready_for_good(tmp_path):
    others = {n: Echo(n) for n in UPSTREAMS if n != "catalog"}
    late = Late()
    gw = None
    try:
        gw = start_gateway(tmp_path, {**{n: e.url for n, e in others.items()}, "catalog": late.url},
                           SOUK_UPSTREAM_READY_WAIT_MS=60000)
        wait_until(lambda: status(gw.url + "/healthz") == 200, 15, "gateway alive")
        # alive, but catalog has never answered: not ready (several looks, not one)
        for _ in range(5):
            r = requests.get(gw.url + "/readyz", timeout=2)
            assert r.status_code == 503, r.text
            time.sleep(0.05)
        late.start()
        wait_until(lambda: status(gw.url + "/readyz") == 200, 30, "gateway ready once catalog answers")
        # ready means routable: the very next catalog request reaches it
        r = requests.get(gw.url + "/api/v1/products", timeout=5)
        assert r.status_code == 200 and r.json()["who"] == "late", r.text

        # later, catalog goes away: its routes fail fast, the gateway stays ready
        late.close()
        wait_until(lambda: status(gw.url + "/api/v1/products") == 503, 30, "catalog routes 503")
        assert requests.get(gw.url + "/api/v1/products", timeout=5).json()["code"] == "no_upstream"
        assert status(gw.url + "/readyz") == 200
        assert status(gw.url + "/.well-known/jwks.json") == 200   # other routes unaffected
    finally:
        if gw:
            gw.kill()
        close_all([late, *others.values()])


def test_ready_after_the_wait_even_if_an_upstream_never_comes(tmp_path):
    echo = Echo("catalog")
    dead = f"http://127.0.0.1:{free_port()}"
    gw = None
    try:
        urls = {n: dead for n in UPSTREAMS}
        urls["catalog"] = echo.url
        gw = start_gateway(tmp_path, urls, SOUK_UPSTREAM_READY_WAIT_MS=2000)
        wait_until(lambda: status(gw.url + "/healthz") == 200, 15, "gateway alive")
        t0 = time.monotonic()
        assert status(gw.url + "/readyz") == 503
        wait_until(lambda: status(gw.url + "/readyz") == 200, 30, "ready after the wait")
        assert time.monotonic() - t0 < 20   # the wait ended (2 s asked; a busy machine is slow)
        assert status(gw.url + "/api/v1/products") == 200
        assert any("not up after the start-up wait" in l.get("message", "")
                   and l.get("souk.upstream") == "users" for l in gw.log_lines())
    finally:
        if gw:
            gw.kill()
        echo.close()
