"""Shared fixtures for black-box tests: start the real service binaries on free
loopback ports, each in its own temporary SOUK_VAR, and stop them by PID."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SOUK_BUILD_DIR", os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")


def free_port():
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_problem(resp, status, code=None):
    """resp is an RFC 9457 problem with this status (and code); returns the body."""
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:500]}"
    assert resp.headers["Content-Type"].startswith("application/problem+json"), resp.headers
    body = resp.json()
    assert body["status"] == status
    assert body["type"] and body["title"]
    if code is not None:
        assert body["code"] == code, body
    return body


class Service:
    """One running service binary. env adds to (and overrides) the defaults."""

    def __init__(self, name, var_dir, env=None, port=None):
        self.name = name
        self.var = str(var_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update({
            "SOUK_LISTEN": f"127.0.0.1:{self.port}",
            "SOUK_VAR": self.var,
            "SOUK_DB": f"sqlite:{self.var}/db/{name}.db",
            "SOUK_LOG_LEVEL": "info",
        })
        self.env.update(env or {})
        self.proc = None
        self.log_path = os.path.join(self.var, "log", f"{name}-{self.port}.log")

    def run(self, *args, check=True):
        """Run a one-shot command of the binary (seed, migrate) with our env."""
        return subprocess.run([os.path.join(BIN, self.name), *args], env=self.env,
                              check=check, capture_output=True, text=True, timeout=60)

    def start(self, wait=True):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, self.name)], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log_tail()}")
            try:
                if requests.get(self.url + "/readyz", timeout=0.5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {timeout}s: {self.log_tail()}")

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_lines(self):
        with open(self.log_path, errors="replace") as f:
            return [json.loads(l) for l in f if l.startswith("{")]

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.kill(signal.SIGTERM)


@pytest.fixture
def services(tmp_path):
    """A factory: services("catalog", env={...}) starts one; all are stopped at the end."""
    started = []

    def start(name, env=None, seed=False, var_dir=None, wait=True):
        svc = Service(name, var_dir or tmp_path, env)
        if seed:
            svc.run("seed")
        started.append(svc)
        return svc.start(wait=wait)

    yield start
    for svc in started:
        svc.kill()


@pytest.fixture(scope="session")
def catalog(tmp_path_factory):
    """One seeded catalog shared by the read-only tests of a session."""
    svc = Service("catalog", tmp_path_factory.mktemp("catalog"))
    svc.run("seed")
    svc.start()
    yield svc
    svc.kill()
