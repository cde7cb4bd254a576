"""The images themselves (make deploy-check only: slow, needs root, podman and
debootstrap): deploy/docker/build-offline builds them with no network inside the
build, then catalog runs seeded and serving on a free port with a read-only root,
as uid 10001, and stops cleanly on SIGTERM; every image runs its migrations; users,
catalog and gateway containers work together (routing, client credentials from the
SOUK_SECRET_* variables). SOUK_DEPLOY_SERVICES picks the images (default: users
catalog gateway; "all" for every service)."""
import secrets
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import DEPLOY, SERVICES, DEAD_PORT, free_port, wait_until  # noqa: E402

BUILD_OFFLINE = os.path.join(DEPLOY, "docker", "build-offline")


def wanted():
    v = os.environ.get("SOUK_DEPLOY_SERVICES", "users catalog gateway").split()
    return SERVICES if v == ["all"] else v


class Podman:
    def __init__(self, store):
        self.store = store
        self.env = dict(os.environ, CONTAINERS_CONF=f"{store}/containers.conf",
                        CONTAINERS_STORAGE_CONF=f"{store}/storage.conf", TMPDIR=f"{store}/tmp")

    def __call__(self, *args, check=True, timeout=120):
        r = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    def cleanup(self):
        self("rm", "-a", "-f", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if f" {self.store}/" in line]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(self.store, ignore_errors=True)


@pytest.fixture(scope="module")
def podman():
    services = wanted()
    store = tempfile.mkdtemp(prefix="souk-podman-")
    p = Podman(store)
    try:
        r = subprocess.run([BUILD_OFFLINE, "-k", "-s", store, *services], capture_output=True, text=True,
                           timeout=3600)
        assert r.returncode == 0, r.stdout + r.stderr
        print(r.stdout, end="")
        sizes = dict(re.findall(r"localhost/souk/(\w+):latest (\d+) MB", r.stdout))
        assert set(sizes) == set(services), r.stdout
        p.sizes = {k: int(v) for k, v in sizes.items()}
        yield p
    finally:
        p.cleanup()


def test_images_are_small_and_carry_no_build_tools(podman):
    for svc, mb in podman.sizes.items():
        assert mb < 200, f"{svc}: {mb} MB"
        image = f"localhost/souk/{svc}:latest"
        r = podman("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c",
                   'id -u; command -v gcc cc make || true; ldd /usr/local/bin/souk-service | grep -c "not found" || true')
        uid, *rest = r.stdout.split()
        assert uid == "10001", svc
        assert rest == ["0"], f"{svc}: build tools or missing libraries: {rest}"
        cfg = podman("image", "inspect", "--format", "{{json .Config.Env}} {{json .Config.ExposedPorts}}", image).stdout
        assert "SOUK_VAR=/var/lib/souk" in cfg and "SOUK_LISTEN=0.0.0.0:80" in cfg, cfg


def test_catalog_container_seeds_serves_and_drains(podman):
    if "catalog" not in podman.sizes:
        pytest.fail("the catalog image is the one this test runs: include it in SOUK_DEPLOY_SERVICES")
    port = free_port()
    image = "localhost/souk/catalog:latest"
    podman("volume", "create", "souk-catalog-test")
    common = ["--network", "host", "--read-only", "--tmpfs", "/tmp", "-v", "souk-catalog-test:/var/lib/souk",
              "-e", f"SOUK_LISTEN=127.0.0.1:{port}", "-e", f"SOUK_ORDERS_URL=http://127.0.0.1:{DEAD_PORT}"]
    seed = podman("run", "--rm", *common, image, "seed", timeout=120)
    podman("run", "-d", "--name", "souk-catalog-test", *common, image)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until("catalog in its container is ready",
                   lambda: requests.get(url + "/readyz", timeout=1).status_code == 200, timeout=30)
        running = podman("inspect", "--format", "{{.State.Running}}", "souk-catalog-test").stdout.strip()
        assert running == "true", "the container exited: something else answers on the port"
        r = requests.get(url + "/api/v1/products", timeout=5)
        assert r.status_code == 200, r.text
        # urllib3 1.26 accepts a short body silently: compare with Content-Length
        assert len(r.content) == int(r.headers["Content-Length"]), (len(r.content), r.headers)
        try:
            body = r.json()
        except ValueError as e:
            pos = getattr(e, "pos", 0)
            logs = podman("logs", "souk-catalog-test").stderr
            pytest.fail(f"products is not JSON ({e}) near {r.content[max(0, pos - 120):pos + 120]!r}; "
                        f"headers {dict(r.headers)}; logs: {logs[-2000:]}")
        items = body["items"] if isinstance(body, dict) else body
        assert len(items) > 0, f"no products after seed: {seed.stdout}{seed.stderr}"
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        assert "http_requests_total" in requests.get(url + "/metrics", timeout=5).text
        top = podman("top", "souk-catalog-test", "user", "args").stdout
        assert "10001" in top or "souk" in top, top
    finally:
        stop = podman("stop", "-t", "15", "souk-catalog-test", check=False)
    code = podman("inspect", "--format", "{{.State.ExitCode}}", "souk-catalog-test").stdout.strip()
    assert stop.returncode == 0 and code == "0", f"catalog did not drain cleanly (exit {code})"
    logs = podman("logs", "souk-catalog-test").stderr + podman("logs", "souk-catalog-test").stdout
    assert '"message":"stopped"' in logs


def test_every_image_runs_its_migrations_on_a_fresh_volume(podman):
    """A new named volume takes the image's /var/lib/souk (owned by 10001), as under compose."""
    for svc in podman.sizes:
        podman("volume", "create", f"souk-migrate-{svc}")
        r = podman("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                   "-v", f"souk-migrate-{svc}:/var/lib/souk",
                   f"localhost/souk/{svc}:latest", "migrate", check=False)
        assert r.returncode == 0, f"{svc} migrate: {r.stdout}{r.stderr}"


def test_users_catalog_and_gateway_containers_work_together(podman):
    """The compose/k8s wiring in miniature, on the host network with free ports:
    users gets every SOUK_SECRET_* and writes its clients file through the entrypoint
    wrapper; the gateway routes to catalog and to users' token endpoint."""
    missing = {"users", "catalog", "gateway"} - set(podman.sizes)
    if missing:
        pytest.fail(f"this test runs users, catalog and gateway: build {sorted(missing)} too")
    ports = {svc: free_port() for svc in ("users", "catalog", "gateway")}
    url = {svc: f"http://127.0.0.1:{p}" for svc, p in ports.items()}
    secret = {svc: secrets.token_hex(32) for svc in SERVICES}
    dead = f"http://127.0.0.1:{DEAD_PORT}"
    base = ["--network", "host", "--read-only", "--tmpfs", "/tmp"]

    def env(svc, **extra):
        e = {"SOUK_LISTEN": f"127.0.0.1:{ports[svc]}", "SOUK_CLIENT_ID": svc,
             "SOUK_CLIENT_SECRET": secret[svc], "SOUK_USERS_URL": url["users"],
             "SOUK_JWKS_URL": url["users"] + "/.well-known/jwks.json",
             "SOUK_TOKEN_URL": url["users"] + "/oauth/token", **extra}
        return [a for k, v in e.items() for a in ("-e", f"{k}={v}")]

    users_env = env("users", SOUK_CLIENTS_FILE="/tmp/clients.json",
                    **{f"SOUK_SECRET_{s.upper()}": v for s, v in secret.items()})
    catalog_env = env("catalog", SOUK_ORDERS_URL=dead)
    gateway_env = env("gateway", SOUK_CATALOG_URL=url["catalog"], SOUK_CART_URL=dead,
                      SOUK_ORDERS_URL=dead, SOUK_PAYMENTS_URL=dead, SOUK_NOTIFY_URL=dead)
    podman("volume", "create", "souk-platform-users")
    podman("volume", "create", "souk-platform-catalog")
    podman("run", "--rm", *base, "-v", "souk-platform-catalog:/var/lib/souk", *catalog_env,
           "localhost/souk/catalog:latest", "seed")
    podman("run", "-d", "--name", "souk-users", *base, "-v", "souk-platform-users:/var/lib/souk", *users_env,
           "--entrypoint", "/usr/local/bin/souk-clients-file", "localhost/souk/users:latest",
           "/usr/local/bin/souk-service", "serve")
    podman("run", "-d", "--name", "souk-catalog", *base, "-v", "souk-platform-catalog:/var/lib/souk",
           *catalog_env, "localhost/souk/catalog:latest")
    podman("run", "-d", "--name", "souk-gateway", *base, *gateway_env,   # the image's anonymous volume
           "localhost/souk/gateway:latest")
    try:
        for svc in ("users", "catalog", "gateway"):
            try:
                wait_until(f"{svc} container ready",
                           lambda: requests.get(url[svc] + "/readyz", timeout=1).status_code == 200, timeout=60)
            except AssertionError as e:
                logs = podman("logs", f"souk-{svc}", check=False)
                pytest.fail(f"{e}; logs: {(logs.stdout + logs.stderr)[-2000:]}")
        r = requests.get(url["gateway"] + "/api/v1/products", timeout=5)
        assert r.status_code == 200, r.text[:500]
        assert r.json()["items"], "the gateway's products list is empty"
        token = url["gateway"] + "/oauth/token"
        r = requests.post(token, data={"grant_type": "client_credentials"}, auth=("catalog", secret["catalog"]),
                          timeout=10)
        assert r.status_code == 200, r.text[:500]
        assert r.json()["token_type"] == "Bearer" and r.json()["access_token"].count(".") == 2
        r = requests.post(token, data={"grant_type": "client_credentials"}, auth=("catalog", secret["cart"]),
                          timeout=10)
        assert r.status_code == 401, r.text[:500]
    finally:
        for name in ("souk-gateway", "souk-catalog", "souk-users"):
            podman("stop", "-t", "15", name, check=False)
