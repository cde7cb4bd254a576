"""The platform under the supervisor: souk up starts every built service, the
gateway routes to all of them as soon as souk says ready, and a service killed with
SIGKILL comes back by itself with its data intact."""
import json
import os
import signal
import time
import uuid

import requests

from conftest import BIN, REPO, Platform


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def product_ids(base_url):
    ids, token = [], None
    while True:
        params = {"page_size": 100, **({"page_token": token} if token else {})}
        body = requests.get(base_url + "/api/v1/products", params=params, timeout=5).json()
        ids += [i["id"] for i in body["items"]]
        token = body["next_page_token"]
        if not token:
            return ids


def test_every_route_works_as_soon_as_souk_up_returns(tmp_path):
    """`souk up -d` returns once the gateway can route to every service: the first
    request to each one through the gateway is answered by that service, never a
    503 no_upstream from a gateway still waiting for its first good probe."""
    p = Platform(tmp_path, env={"SOUK_RATE_IP_RPS": "0"})
    try:
        p.souk("up", "-d")
        gw = p.url("gateway")
        s = requests.Session()

        def ok(method, path, **kw):
            r = s.request(method, gw + path, timeout=10, **kw)
            assert r.status_code in (200, 201), (method, path, r.status_code, r.text[:300])
            return r

        ok("GET", "/api/v1/products?page_size=1")   # catalog
        ok("GET", "/.well-known/jwks.json")         # users
        email = f"early-{uuid.uuid4().hex[:12]}@example.com"
        ok("POST", "/api/v1/users", json={"email": email, "password": "correct horse battery",
                                          "name": "Early"})
        token = ok("POST", "/oauth/token", data={"grant_type": "password", "username": email,
                                                 "password": "correct horse battery"}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        for path in ("/api/v1/cart", "/api/v1/orders", "/api/v1/payment-methods",
                     "/api/v1/notifications", "/api/v1/users/me"):
            ok("GET", path, headers=auth)
    finally:
        p.down()


def test_a_second_platform_on_taken_ports_stops_at_once_and_says_why(tmp_path):
    """A second `souk up` on the ports of a running one (another clone's `make run`):
    its first service cannot listen, the start stops at once with that reason on the
    terminal and a nonzero exit, nothing of it keeps running, the first is untouched."""
    first = Platform(tmp_path / "first")
    second = Platform(tmp_path / "second")
    second.base = first.base
    second.env["SOUK_PORT_BASE"] = str(first.base)
    try:
        first.souk("up", "-d")
        t0 = time.monotonic()
        r = second.souk("up", "-d", check=False)
        assert r.returncode != 0
        assert time.monotonic() - t0 < 10
        port = first.base + 1
        assert f"users: port {port} is in use" in r.stderr and "souk status" in r.stderr, r.stderr
        assert second.souk("status", check=False).returncode == 1
        assert not os.path.exists(os.path.join(second.var, "run", "souk.pid"))
        assert requests.get(first.url("gateway") + "/api/v1/products", timeout=5).status_code == 200
    finally:
        second.down()
        first.down()


def access_client(log_path, request_id):
    """The client address the service's access log gave the request."""
    with open(log_path) as f:
        for line in f:
            if request_id in line and '.access"' in line:   # event.dataset <service>.access
                return json.loads(line)["client.ip"]
    return None


def test_services_take_the_client_address_from_the_gateway_only(tmp_path):
    """souk up passes the gateway's address as SOUK_TRUSTED_PROXIES to the services:
    they believe X-Forwarded-For from it (as from 127.0.0.1 here), while the gateway,
    facing the clients, believes nobody's."""
    p = Platform(tmp_path)
    try:
        p.souk("up", "-d")
        log = os.path.join(p.var, "log")
        # through the gateway: a client's own X-Forwarded-For is not taken anywhere
        r = requests.get(p.url("gateway") + "/api/v1/products", timeout=5,
                         headers={"X-Forwarded-For": "203.0.113.7", "X-Request-Id": "req-via-gateway"})
        assert r.status_code == 200
        for name in ("gateway", "catalog"):   # written once each answer is sent
            wait_until(lambda: access_client(os.path.join(log, f"{name}.log"), "req-via-gateway"),
                       5, f"{name}'s access line")
        assert access_client(os.path.join(log, "gateway.log"), "req-via-gateway") == "127.0.0.1"
        assert access_client(os.path.join(log, "catalog.log"), "req-via-gateway") == "127.0.0.1"
        # from the gateway's address (any local process here): the service believes it
        r = requests.get(p.url("catalog") + "/api/v1/products", timeout=5,
                         headers={"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "req-as-gateway"})
        assert r.status_code == 200
        wait_until(lambda: access_client(os.path.join(log, "catalog.log"), "req-as-gateway"), 5,
                   "catalog's access line")
        assert access_client(os.path.join(log, "catalog.log"), "req-as-gateway") == "203.0.113.9"
    finally:
        p.down()


def test_sigkill_catalog_comes_back_with_data(platform):
    platform.up()
    catalog = platform.url("catalog")
    before = product_ids(catalog)
    assert len(before) >= 1000
    old = platform.state()[("catalog", 0)]
    os.kill(old["pid"], signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: platform.state()[("catalog", 0)]["pid"] != old["pid"]
               and requests.get(catalog + "/readyz", timeout=0.5).status_code == 200,
               10, "catalog to come back")
    back_in = time.monotonic() - t0
    assert back_in < 5, back_in
    assert platform.state()[("catalog", 0)]["restarts"] == old["restarts"] + 1
    assert product_ids(catalog) == before
    status = platform.souk("status")
    assert "catalog" in status.stdout


def test_every_built_service_is_up_and_ready(platform):
    platform.up()
    # the services among the binaries (build/bin also holds souk and tools such as kafka-mock)
    built = [n for n in os.listdir(BIN) if os.access(os.path.join(BIN, n), os.X_OK)
             and os.path.exists(os.path.join(REPO, "services", n, "main.c"))]
    assert len(built) >= 7, built
    state = platform.state()
    for name in built:
        assert (name, 0) in state, name
        r = requests.get(platform.url(name) + "/readyz", timeout=2)
        assert r.status_code == 200, (name, r.text)


def test_replicas_behind_the_gateway_survive_a_sigkill(tmp_path):
    """souk up with two catalog replicas: the gateway learns both from the supervisor,
    and killing one during a stream of reads costs the clients nothing."""
    import threading

    p = Platform(tmp_path, env={"SOUK_REPLICAS": "catalog=2", "SOUK_RATE_IP_RPS": "0"})
    try:
        p.up()
        state = p.state()
        assert ("catalog", 1) in state
        gw = p.url("gateway")
        # until the gateway's health checks have found a catalog replica
        wait_until(lambda: requests.get(gw + "/api/v1/products", timeout=2).status_code == 200, 30,
                   "the gateway routing the catalog")
        ids = product_ids(gw)[:50]
        errors, done = [], threading.Event()
        count = [0]

        def reader():
            s = requests.Session()
            i = 0
            while not done.is_set():
                try:
                    r = s.get(f"{gw}/api/v1/products/{ids[i % len(ids)]}", timeout=5)
                    if r.status_code != 200:
                        errors.append(r.status_code)
                except requests.RequestException as e:
                    errors.append(repr(e))
                count[0] += 1
                i += 1

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: count[0] >= 100, 60, "100 reads before the kill")
        os.kill(state[("catalog", 0)]["pid"], signal.SIGKILL)
        after_kill = count[0]   # reads go on after it: counted, not timed (a busy machine is slow)
        wait_until(lambda: count[0] - after_kill >= 100, 60, "100 reads after the kill")
        done.set()
        for t in threads:
            t.join()
        assert errors == [], errors[:5]
        # both replicas served: the gateway knew them from the supervisor
        metrics = requests.get(p.admin_url() + "/metrics", timeout=5).text
        served = {line.split('instance="')[1].split('"')[0] for line in metrics.splitlines()
                  if line.startswith("souk_proxy_upstream_requests_total{")
                  and 'upstream="catalog"' in line and 'code="2xx"' in line}
        ports = {str(state[("catalog", k)]["port"]) for k in (0, 1)}
        assert {i.rsplit(":", 1)[-1] for i in served} >= ports, (served, ports)
    finally:
        p.down()
