"""Fixtures for the deploy/ checks: a real catalog on a free port and a private
Prometheus (RECIPES) scraping it with deploy/prometheus/alerts.yml loaded; both run
under a temporary directory and are stopped by PID."""
import copy
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")
BUILD = os.environ.get("SOUK_BUILD_DIR", os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")
DEAD_PORT = 9   # discard: connections are refused at once
SERVICES = sorted(d for d in os.listdir(os.path.join(REPO, "services"))
                  if os.path.exists(os.path.join(REPO, "services", d, "main.c")))
# DESIGN §1 default ports: used inside containers, never bound by these tests
DEFAULT_PORT = {"gateway": 8080, "users": 8081, "catalog": 8082, "cart": 8083,
                "orders": 8084, "payments": 8085, "notify": 8086}


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


@pytest.fixture(scope="session")
def catalog(tmp_root):
    """A seeded catalog on a free port; yields its base URL."""
    var = os.path.join(tmp_root, "catalog-var")
    port = free_port()
    env = dict(os.environ, SOUK_VAR=var, SOUK_LISTEN=f"127.0.0.1:{port}",
               SOUK_ORDERS_URL=f"http://127.0.0.1:{DEAD_PORT}", SOUK_LOG_LEVEL="warn")
    binary = os.path.join(BIN, "catalog")
    subprocess.run([binary, "seed"], env=env, check=True, capture_output=True, timeout=60)
    log = open(os.path.join(tmp_root, "catalog.log"), "w")
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("catalog /readyz", lambda: requests.get(url + "/readyz", timeout=1).status_code == 200)
        yield url
    finally:
        stop(proc)
        log.close()


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
def prometheus(tmp_root, catalog, dead_port):
    """A private Prometheus: job catalog scrapes the real catalog, job users points
    at a dead port (a service that is down); deploy's alerts.yml is loaded as is."""
    if shutil.which("prometheus") is None:
        raise RuntimeError("prometheus missing: scripts/setup test installs it")
    d = os.path.join(tmp_root, "prometheus")
    os.makedirs(os.path.join(d, "data"))
    shutil.copy(os.path.join(DEPLOY, "prometheus", "alerts.yml"), d)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "catalog", "static_configs": [{"targets": [catalog.split("//")[1]]}]},
            {"job_name": "users", "static_configs": [{"targets": [f"127.0.0.1:{dead_port}"]}]},
        ],
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
        # some traffic so http_requests_total has a route beyond /readyz, then the first
        # scrapes (≈5 s after start, RECIPES: poll the query, not /-/ready)
        for _ in range(5):
            requests.get(catalog + "/api/v1/products", timeout=5)
        wait_until("catalog scraped twice",
                   lambda: prom.series('count_over_time(up{job="catalog"}[1m]) >= 3'), timeout=60, interval=0.5)
        yield prom
    finally:
        stop(proc)
        log.close()
