"""The gateway over two real catalog replicas: a SIGKILL mid-stream costs no client
an error, both down answers 503 fast while other routes work, and a replica that
comes back gets traffic again without restarting the gateway."""
import re
import threading
import time

import pytest
import requests

from conftest import Service, assert_problem, free_port
from gateway_helpers import Echo, gateway, wait_until


@pytest.fixture
def replicas(tmp_path):
    """Two catalog processes on one seeded database (as `souk up` runs replicas)."""
    # the catalog consumes orders' events: a producer that is down is only retried
    env = {"SOUK_DB": f"sqlite:{tmp_path}/db/catalog.db",
           "SOUK_ORDERS_URL": f"http://127.0.0.1:{free_port()}"}
    first = Service("catalog", tmp_path, env)
    first.run("seed")
    reps = [first.start(), Service("catalog", tmp_path, env).start()]
    yield reps
    for r in reps:
        r.kill()



def stream(url, stop, results, delay=0.002):
    """GET url until stop is set; record (status, problem code or None)."""
    s = requests.Session()
    while not stop.is_set():
        try:
            r = s.get(url, timeout=5)
            results.append((r.status_code, r.text[:200] if r.status_code != 200 else None))
        except requests.RequestException as e:   # a client-visible failure
            results.append((0, repr(e)))
        time.sleep(delay)


def upstream_counts(gw):
    text = requests.get(gw.admin_url + "/metrics", timeout=5).text
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'souk_proxy_upstream_requests_total\{upstream="catalog",instance="([^"]+)",code="2xx"\} (\S+)',
        text)}


def test_replica_killed_mid_stream_then_both_down_then_back(tmp_path, replicas):
    users = Echo("users")
    gw = gateway(tmp_path, {"catalog": [r.url for r in replicas], "users": users.url},
                 SOUK_RATE_IP_RPS=0)
    try:
        url = gw.url + "/api/v1/products?page_size=2"
        stop, results = threading.Event(), []
        workers = [threading.Thread(target=stream, args=(url, stop, results)) for _ in range(4)]
        for w in workers:
            w.start()
        wait_until(lambda: (lambda c: len(c) == 2 and min(c.values()) > 10)(upstream_counts(gw)),
                   30, "both replicas serving")
        replicas[0].kill()                                              # SIGKILL
        # requests keep flowing after the kill (counted, not timed: a busy machine is slow)
        after_kill = len(results)
        wait_until(lambda: len(results) - after_kill >= 200, 60, "200 requests after the kill")
        stop.set()
        for w in workers:
            w.join()
        bad = [r for r in results if r[0] != 200]
        assert bad == [], bad[:5]

        # both down: a fast 503 problem, while users' routes still work
        replicas[1].kill()
        for _ in range(10):
            t0 = time.monotonic()
            r = requests.get(url, timeout=5)
            elapsed = time.monotonic() - t0
            assert_problem(r, 503)
            # fast: no connect attempt or retry wait (those take seconds); a bound loose
            # enough for a busy machine
            assert elapsed < 1.0, elapsed
        assert r.json()["code"] == "no_upstream"
        ok = requests.get(gw.url + "/.well-known/jwks.json", timeout=5)
        assert ok.status_code == 200 and ok.json()["who"] == "users"

        # one comes back on its port: traffic returns with no gateway restart
        back = Service("catalog", tmp_path, replicas[0].env, port=replicas[0].port).start()
        replicas.append(back)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if requests.get(url, timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("catalog traffic did not return")
        assert all(requests.get(url, timeout=5).status_code == 200 for _ in range(20))
    finally:
        gw.kill()
        users.close()


def test_post_without_idempotency_key_is_not_retried(tmp_path):
    """A 503 from the only instance reaches the client as is for a POST; a GET is
    retried on the other instance."""
    failing, healthy = Echo("failing", status=503), Echo("healthy")
    gw = gateway(tmp_path, {"users": [failing.url, healthy.url]}, SOUK_RATE_IP_RPS=0,
                 SOUK_RATE_SIGNUP_PER_HOUR=0, SOUK_BREAKER_FAILURES=1000)
    try:
        for _ in range(6):
            r = requests.get(gw.url + "/.well-known/jwks.json", timeout=5)
            assert r.status_code == 200 and r.json()["who"] == "healthy"
        posts = [requests.post(gw.url + "/api/v1/users", json={}, timeout=5) for _ in range(6)]
        assert {p.status_code for p in posts} == {200, 503}   # some went to the failing one
        before = failing.hits
        keyed = [requests.post(gw.url + "/api/v1/users", json={}, headers={"Idempotency-Key": f"k{i}"},
                               timeout=5) for i in range(6)]
        assert all(k.status_code == 200 and k.json()["who"] == "healthy" for k in keyed)
        assert failing.hits > before                            # it was tried, then retried
    finally:
        gw.kill()
        failing.close()
        healthy.close()


def test_breaker_opens_on_a_failing_instance(tmp_path):
    failing, healthy = Echo("failing", status=500), Echo("healthy")
    gw = gateway(tmp_path, {"catalog": [failing.url, healthy.url]}, SOUK_RATE_IP_RPS=0,
                 SOUK_BREAKER_FAILURES=3, SOUK_BREAKER_OPEN_MS=60000)
    try:
        codes = [requests.get(gw.url + "/api/v1/categories", timeout=5).status_code
                 for _ in range(30)]
        assert codes.count(500) == 3         # a 500 is passed on, not retried...
        assert failing.hits == 3             # ...and after 3 the breaker keeps it out
        assert codes[-20:] == [200] * 20
    finally:
        gw.kill()
        failing.close()
        healthy.close()
