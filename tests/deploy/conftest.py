"""Fixtures for the deploy/ checks: the real platform (souk up) on a free port range
after one confirmed and one declined checkout, and a private Prometheus (RECIPES)
scraping it with deploy/prometheus/alerts.yml loaded; both run under a temporary
directory and are stopped by PID."""
import copy
import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
BUILD = os.environ.get("SOUK_BUILD_DIR", os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")
DEAD_PORT = 9   # discard: connections are refused at once
sys.path.insert(0, os.path.join(REPO, "scripts"))
import services_table  # noqa: E402  (services.txt: deploy/'s YAML is checked against it)

SERVICES = sorted(services_table.NAMES)
# DESIGN §1 default ports: used inside containers, never bound by these tests
DEFAULT_PORT = services_table.PORT
# The gateway's admin listener (its /metrics) in containers: its port + 1100
ADMIN_PORT = 9180


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _parse(path):
    with open(path) as f:
        return tuple(d for d in yaml.load_all(f, Loader=LOADER) if d is not None)


def load_yaml(*parts):
    """One YAML document of deploy/ (a fresh copy: tests may modify it)."""
    docs = _parse(os.path.join(DEPLOY, *parts))
    assert len(docs) == 1, parts
    return copy.deepcopy(docs[0])


def load_yaml_all(*parts):
    return copy.deepcopy(list(_parse(os.path.join(DEPLOY, *parts))))


def wait_until(what, fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except (requests.RequestException, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def stop(proc):
    """SIGTERM by PID, then SIGKILL after the drain time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def tmp_root():
    d = tempfile.mkdtemp(prefix="souk-deploy-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# the supervisor's port layout (cli/README.md): base + offset, the gateway at the base
PORT_OFFSET = services_table.OFFSET
GATEWAY_ADMIN_OFFSET = 1100   # the gateway's /metrics: 127.0.0.1, its port + 1100
ADMIN = ("admin@deploy.test", "admin-password-for-deploy-tests")


def free_port_base():
    """Below the ephemeral range (32768+), where any outgoing connection may take a port."""
    for _ in range(200):
        base = random.randrange(20000, 32768 - GATEWAY_ADMIN_OFFSET, 10)
        socks = []
        try:
            for off in [*PORT_OFFSET.values(), GATEWAY_ADMIN_OFFSET]:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + off))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Platform:
    """souk up -d in a temporary SOUK_VAR: urls by service name."""

    def __init__(self, var):
        self.var = var
        self.base = free_port_base()
        self.urls = {svc: f"http://127.0.0.1:{self.base + off}" for svc, off in PORT_OFFSET.items()}
        self.env = dict(os.environ, SOUK_VAR=var, SOUK_PORT_BASE=str(self.base), SOUK_BIN_DIR=BIN,
                        SOUK_LOG_LEVEL="warn", SOUK_ADMIN_EMAIL=ADMIN[0], SOUK_ADMIN_PASSWORD=ADMIN[1])

    def souk(self, *args, check=True):
        r = subprocess.run([os.path.join(BIN, "souk"), *args], env=self.env, capture_output=True, text=True,
                           timeout=90)
        if check and r.returncode != 0:
            try:
                with open(os.path.join(self.var, "log", "souk.log")) as f:
                    log = f.read()[-2000:]
            except OSError:
                log = ""
            raise AssertionError(f"souk {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}\n{log}")
        return r

    def down(self):
        pids = []
        try:
            with open(os.path.join(self.var, "run", "souk.state")) as f:
                pids = [int(line.split()[3]) for line in f if line.strip()]
            with open(os.path.join(self.var, "run", "souk.pid")) as f:
                pids.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        self.souk("down", check=False)
        for pid in pids:   # nothing may outlive the tests
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def checkout(urls, card):
    """A new customer buys one seeded product with this card; returns the order."""
    email = f"d{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery"
    r = requests.post(urls["users"] + "/api/v1/users", json={"email": email, "password": password, "name": "D"},
                      timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(urls["users"] + "/oauth/token", timeout=10,
                      data={"grant_type": "password", "username": email, "password": password})
    assert r.status_code == 200, r.text
    auth = {"Authorization": "Bearer " + r.json()["access_token"]}
    r = requests.post(urls["payments"] + "/api/v1/payment-methods", headers=auth, timeout=10,
                      json={"card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123",
                                     "holder": "D"}})
    assert r.status_code == 201, r.text
    pm = r.json()["id"]
    r = requests.get(urls["catalog"] + "/api/v1/products", params={"in_stock": "true", "page_size": 1},
                     timeout=10)
    product = r.json()["items"][0]["id"]
    r = requests.put(urls["cart"] + f"/api/v1/cart/items/{product}", headers=auth, json={"quantity": 1},
                     timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(urls["orders"] + "/api/v1/orders", timeout=30,
                      headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
                      json={"payment_method_id": pm, "shipping_address": {
                          "name": "D", "line1": "1 Market St", "city": "Springfield", "postal_code": "12345",
                          "country": "US"}})
    assert r.status_code in (201, 202), r.text
    return r.json()


CARD_OK, CARD_DECLINED = "4242424242424242", "4000000000000002"


def checkouts(urls):
    """One confirmed and one declined checkout."""
    assert checkout(urls, CARD_OK)["status"] == "confirmed"
    assert checkout(urls, CARD_DECLINED)["status"] == "rejected"


@pytest.fixture(scope="session")
def platform(tmp_root):
    """The whole platform, seeded, after a confirmed and a declined checkout: orders,
    payments, the saga and events have series for the dashboards and alerts to read
    (a labelled counter appears with its first increment)."""
    p = Platform(os.path.join(tmp_root, "platform"))
    try:
        p.souk("seed")
        p.souk("up", "-d")
        for svc, url in p.urls.items():
            wait_until(f"{svc} /readyz", lambda: requests.get(url + "/readyz", timeout=1).status_code == 200)
        # ready is not yet verifying tokens: each service fetches users' JWKS by itself
        r = requests.post(p.urls["users"] + "/oauth/token", timeout=10,
                          data={"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        admin = {"Authorization": "Bearer " + r.json()["access_token"]}
        for svc, path in (("cart", "/api/v1/cart"), ("payments", "/api/v1/payment-methods"),
                          ("orders", "/api/v1/orders")):
            wait_until(f"{svc} accepting tokens",
                       lambda: requests.get(p.urls[svc] + path, headers=admin, timeout=2).status_code == 200)
        checkouts(p.urls)
        yield p
    finally:
        p.down()


@pytest.fixture(scope="session")
def catalog(platform):
    """The platform's seeded catalog: its base URL."""
    return platform.urls["catalog"]


class Prometheus:
    def __init__(self, url):
        self.url = url

    def query(self, expr):
        """The raw /api/v1/query answer (status success or error)."""
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.text[:200]
        return r.json()

    def series(self, expr):
        body = self.query(expr)
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]


@pytest.fixture(scope="session")
def dead_port():
    """A free port nothing listens on: a scrape target that is down."""
    return free_port()


@pytest.fixture(scope="session")
def prometheus(tmp_root, platform, dead_port):
    """A private Prometheus: one job per service of the platform, named as in the
    compose config, except notify, which points at a dead port (a service that is
    down); deploy's alerts.yml is loaded as is."""
    if shutil.which("prometheus") is None:
        raise RuntimeError("prometheus missing: scripts/setup test installs it")
    d = os.path.join(tmp_root, "prometheus")
    os.makedirs(os.path.join(d, "data"))
    shutil.copy(os.path.join(DEPLOY, "prometheus", "alerts.yml"), d)
    jobs = [{"job_name": svc, "static_configs": [{"targets": [url.split("//")[1]]}]}
            for svc, url in platform.urls.items() if svc not in ("notify", "gateway")]
    # the gateway's /metrics is on its admin listener only, never its public port
    jobs.append({"job_name": "gateway", "static_configs": [
        {"targets": [f"127.0.0.1:{platform.base + GATEWAY_ADMIN_OFFSET}"]}]})
    jobs.append({"job_name": "notify", "static_configs": [{"targets": [f"127.0.0.1:{dead_port}"]}]})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": jobs,
    }
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        yaml.safe_dump(config, f)
    port = free_port()
    log = open(os.path.join(d, "prometheus.log"), "w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={d}/prometheus.yml", f"--storage.tsdb.path={d}/data",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=d)
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        # its API answers 503 (plain text) until the TSDB is open
        wait_until("prometheus ready", lambda: requests.get(prom.url + "/-/ready", timeout=1).status_code == 200)
        # some traffic so http_requests_total has a route beyond /readyz, then the first
        # scrapes (≈5 s after start, RECIPES: poll the query, not /-/ready), and enough
        # of them for rate() over the checkout's counters
        for _ in range(5):
            requests.get(platform.urls["catalog"] + "/api/v1/products", timeout=5)
        wait_until("every live job scraped three times",
                   lambda: len(prom.series('count_over_time(up[1m]) >= 3 and up == 1')) == len(jobs) - 1,
                   timeout=60, interval=0.5)
        # checkouts Prometheus sees happen (increase() over the first ones is 0: their
        # series were born with them), then two scrapes of the result
        checkouts(platform.urls)
        # the end state as Prometheus has it: orders and payments are scraped at their
        # own moments, so wait for each counter (two checkouts per round)
        final = ('sum(orders_transitions_total{status="pending"}) == 4',
                 'sum(orders_transitions_total{status="confirmed"}) == 2',
                 'sum(orders_transitions_total{status="rejected"}) == 2',
                 'sum(payments_total{operation="authorize",outcome="declined"}) == 2',
                 'sum(orders_saga_step_duration_seconds_count{step="capture"}) == 2')
        wait_until("the second checkouts scraped", lambda: all(prom.series(q) for q in final),
                   timeout=30, interval=0.5)
        yield prom
    finally:
        stop(proc)
        log.close()
