"""Black-box tests of the `souk` supervisor (cli/) against fake services.

The fake services are small Python HTTP servers written into a temporary bin
directory (SOUK_BIN_DIR); ports come from a free range found by binding.
Run: /usr/bin/python3 -m pytest tests/e2e/test_souk_cli.py
"""
import json
import os
import random
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import SERVICES, admin_port, free_port_base, replica_port
from ecs_schema import ecs_lines

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SOUK_BUILD_DIR", REPO / "build"))
SOUK = BUILD / "bin" / "souk"
FAKES = ["users", "catalog", "gateway"]          # the others stay "not built"
START_TIMEOUT = 20

FAKE_SERVICE = """#!{python}
import http.server, json, os, sys
name = os.environ["SOUK_SERVICE"]
if sys.argv[1:] == ["seed"]:
    with open(os.path.join(os.environ["SOUK_VAR"], "seeded-" + name), "w") as f:
        f.write(os.environ["SOUK_DB"])
    sys.exit(int(os.environ.get("FAKE_SEED_FAIL_" + name, "0")))
host, port = os.environ["SOUK_LISTEN"].rsplit(":", 1)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/readyz":
            if os.environ.get("FAKE_NOT_READY_" + name):
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"ok"
        elif self.path == "/env":
            body = json.dumps({{k: v for k, v in os.environ.items()
                               if k.startswith("SOUK_")}}).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer((host, int(port)), Handler).serve_forever()
"""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Souk:
    """One isolated platform: its own bin dir, var dir and port range."""

    def __init__(self, tmp):
        if not SOUK.exists():
            pytest.fail(f"{SOUK} not built (set SOUK_BUILD_DIR or run make)")
        self.bin = tmp / "bin"
        self.var = tmp / "var"
        self.bin.mkdir()
        for name in FAKES:
            path = self.bin / name
            path.write_text(FAKE_SERVICE.format(python=sys.executable))
            path.chmod(0o755)
        self.base = free_port_base()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SOUK_")}
        self.env.update(SOUK_BIN_DIR=str(self.bin), SOUK_VAR=str(self.var),
                        SOUK_PORT_BASE=str(self.base), SOUK_HOST="127.0.0.1")
        self.seen_pids = set()
        self.foreground = None

    def run(self, *args, env=None, timeout=45):
        return subprocess.run([str(SOUK), *args], env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def up_foreground(self, *args, env=None):
        self.log = open(self.var.parent / "up.out", "w+")
        self.foreground = subprocess.Popen([str(SOUK), "up", *args], env={**self.env, **(env or {})},
                                           stdout=self.log, stderr=subprocess.STDOUT)
        self.seen_pids.add(self.foreground.pid)
        wait_for(lambda: "ready in" in self.output(), START_TIMEOUT, "ready line")

    def output(self):
        return (self.var.parent / "up.out").read_text()

    def state(self):
        rows = {}
        for line in (self.var / "run" / "souk.state").read_text().splitlines():
            name, replica, port, pid, started, restarts, admin = line.split()
            rows[(name, int(replica))] = dict(port=int(port), pid=int(pid),
                                              restarts=int(restarts), admin=int(admin))
            if int(pid) > 0:
                self.seen_pids.add(int(pid))
        return rows

    def supervisor_pid(self):
        try:
            pid = int((self.var / "run" / "souk.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        self.seen_pids.add(pid)
        return pid

    def cleanup(self):
        try:
            self.run("down", timeout=20)
        except Exception:
            pass
        for pid in self.seen_pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.foreground:
            self.foreground.wait(timeout=5)
            self.log.close()


@pytest.fixture
def souk(tmp_path):
    s = Souk(tmp_path)
    try:
        yield s
    finally:
        s.cleanup()


def get(port, path="/readyz"):
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2)


def ready(port):
    try:
        return get(port).status_code == 200
    except requests.ConnectionError:
        return False


def test_help_and_unknown_command(souk):
    r = souk.run("help")
    assert r.returncode == 0 and "usage: souk" in r.stdout
    r = souk.run("frobnicate")
    assert r.returncode == 2 and "usage: souk" in r.stderr
    r = souk.run("status")
    assert r.returncode == 1 and "not running" in r.stdout
    r = souk.run("down")
    assert r.returncode == 0 and "not running" in r.stdout
    r = souk.run("status", env={"SOUK_LOG_FORMAT": "xml"})
    assert r.returncode == 2 and 'SOUK_LOG_FORMAT="xml": expected text or ecs' in r.stderr


def souk_log(souk):
    """var/log/souk.log as dicts, every line checked as ECS (ecs_schema.py): a plain
    line fails the test."""
    return ecs_lines("souk.log", (souk.var / "log" / "souk.log").read_text(), {"souk"})


def test_up_environment_restart_and_down(souk):
    # values from the shell that the supervisor must not pass on as they are; the
    # terminal gets ECS lines (SOUK_LOG_FORMAT=ecs), as var/log/souk.log would
    souk.up_foreground("--replicas", "catalog=2,gateway=2",
                       env={"SOUK_ADMIN_LISTEN": "127.0.0.1:9", "SOUK_TRUSTED_PROXIES": "10.9.9.9",
                            "SOUK_LOG_FORMAT": "ecs"})
    assert "all 5 instances ready" in souk.output()
    rows = souk.state()
    assert set(rows) == {("users", 0), ("catalog", 0), ("catalog", 1), ("gateway", 0),
                         ("gateway", 1)}
    for (name, k), row in rows.items():
        assert row["port"] == replica_port(souk.base, name, k)
        assert get(row["port"]).status_code == 200
        # the gateway's admin listener: loopback, its own port + 1100
        assert row["admin"] == (admin_port(souk.base, k) if name == "gateway" else 0)

    env = get(rows[("catalog", 1)]["port"], "/env").json()
    var = str(souk.var.resolve())
    assert env["SOUK_SERVICE"] == "catalog" and env["SOUK_REPLICA"] == "1"
    assert env["SOUK_LISTEN"] == f"127.0.0.1:{rows[('catalog', 1)]['port']}"
    assert env["SOUK_DB"] == f"sqlite:{var}/db/catalog.db"
    assert env["SOUK_VAR"] == var
    assert env["SOUK_CATALOG_URL"] == ",".join(
        f"http://127.0.0.1:{replica_port(souk.base, 'catalog', k)}" for k in range(2))
    assert env["SOUK_ORDERS_URL"] == f"http://127.0.0.1:{souk.base + 4}"
    # the token issuer is users, and souk says so: the kit reads these two
    users = env["SOUK_USERS_URL"].split(",")
    assert env["SOUK_JWKS_URL"] == ",".join(u + "/.well-known/jwks.json" for u in users)
    assert env["SOUK_TOKEN_URL"] == ",".join(u + "/oauth/token" for u in users)
    clients = Path(env["SOUK_CLIENTS_FILE"])
    assert clients.is_absolute() and stat.S_IMODE(clients.stat().st_mode) == 0o600
    secrets = json.loads(clients.read_text())
    assert set(secrets) == set(SERVICES)
    assert env["SOUK_CLIENT_ID"] == "catalog"
    assert env["SOUK_CLIENT_SECRET"] == secrets["catalog"] and len(secrets["catalog"]) == 64
    # services trust X-Forwarded-For from the gateway only, and get no admin listener;
    # the gateway gets its own admin listener and keeps the shell's proxy setting
    assert env["SOUK_TRUSTED_PROXIES"] == "127.0.0.1"
    assert "SOUK_ADMIN_LISTEN" not in env
    for k in (0, 1):
        gw_env = get(rows[("gateway", k)]["port"], "/env").json()
        assert gw_env["SOUK_ADMIN_LISTEN"] == f"127.0.0.1:{admin_port(souk.base, k)}"
        assert gw_env["SOUK_TRUSTED_PROXIES"] == "10.9.9.9"
    for d in ("log", "db", "run", "mail"):
        assert (souk.var / d).is_dir()
    assert stat.S_IMODE((souk.var / "secrets").stat().st_mode) == 0o700
    assert (souk.var / "log" / "catalog-1.log").exists()

    r = souk.run("status")
    assert r.returncode == 0, r.stderr
    assert "SERVICE" in r.stdout and "catalog-1" in r.stdout and "ADMIN" in r.stdout
    assert r.stdout.count(" yes") == 5
    lines = {line.split()[0]: line.split() for line in r.stdout.splitlines()[2:]}
    assert lines["gateway-1"][-1] == str(admin_port(souk.base, 1)) and lines["users"][-1] == "-"

    # A second supervisor for the same var refuses to start.
    r = souk.run("up", "-d")
    assert r.returncode != 0 and "running" in r.stderr

    # kill -9 a child: restarted within a second, counted in the state.
    old = rows[("users", 0)]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: souk.state()[("users", 0)]["pid"] not in (0, old), 1.5, "restart")
    new = souk.state()[("users", 0)]["pid"]
    assert souk.state()[("users", 0)]["restarts"] == 1
    wait_for(lambda: ready(rows[("users", 0)]["port"]), 5, "restarted users ready")
    assert "users killed by signal 9" in souk.output()
    restart = [l for l in ecs_lines("terminal", souk.output(), {"souk"})
               if l["message"].startswith("users killed by signal 9")]
    assert restart[0]["log.level"] == "warn" and restart[0]["souk.signal"] == 9, restart
    assert restart[0]["souk.pid"] == old and restart[0]["souk.delay_ms"] >= 0
    status = souk.run("status").stdout
    users_line = next(line for line in status.splitlines() if line.startswith("users "))
    assert users_line.split()[2] == str(new) and users_line.split()[4] == "1"

    children = [row["pid"] for row in souk.state().values()]
    r = souk.run("down")
    assert r.returncode == 0 and "stopped" in r.stdout
    assert souk.foreground.wait(timeout=5) == 0
    wait_for(lambda: not any(alive(p) for p in children), 5, "children to exit")
    assert not (souk.var / "run" / "souk.pid").exists()
    assert souk.run("status").returncode == 1


def test_sigterm_to_foreground_supervisor_stops_children(souk):
    souk.up_foreground()
    children = [row["pid"] for row in souk.state().values()]
    souk.foreground.send_signal(signal.SIGINT)
    assert souk.foreground.wait(timeout=12) == 0
    assert not any(alive(p) for p in children)
    # a person's terminal (SOUK_LOG_FORMAT unset): text lines, no JSON
    lines = souk.output().splitlines()
    assert lines and all(l.startswith("souk: ") for l in lines), lines
    assert lines[-1] == "souk: stopped"


def test_daemon_mode_and_supervisor_death(souk):
    t0 = time.monotonic()
    r = souk.run("up", "-d")
    assert r.returncode == 0, r.stderr
    assert "all 3 instances ready" in r.stdout
    assert time.monotonic() - t0 < START_TIMEOUT
    sup = souk.supervisor_pid()
    children = [row["pid"] for row in souk.state().values()]
    assert all(get(row["port"]).ok for row in souk.state().values())
    assert souk.run("status").returncode == 0

    # The supervisor dies hard: its children must not outlive it.
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not any(alive(p) for p in children), 5, "orphans to die")
    assert souk.run("status").returncode == 1

    # A stale pid file does not block the next start.
    r = souk.run("up", "-d")
    assert r.returncode == 0, r.stderr
    souk.state()
    assert souk.run("down").returncode == 0


def started_pids(text):
    """Pids from the supervisor's start lines: "souk: <name> port N pid P" on a
    terminal, or in ECS (var/log/souk.log; SOUK_LOG_FORMAT=ecs) souk.pid beside souk.port."""
    pids = []
    for line in text.splitlines():
        if line.startswith("{"):
            l = json.loads(line)
            if "souk.port" in l and "souk.pid" in l:
                pids.append(l["souk.pid"])
        elif line.startswith("souk: ") and " port " in line and " pid " in line:
            pids.append(int(line.rsplit(" pid ", 1)[1]))
    return pids


def test_a_service_failing_at_start_stops_the_start_with_its_own_error(souk):
    crash = souk.bin / "cart"
    crash.write_text("#!/bin/sh\n"
                     "echo 'cart: configuration error: SOUK_FROB: expected an integer' >&2\n"
                     "echo '{\"log.level\":\"info\",\"message\":\"noise\"}'\n"
                     "echo '{\"log.level\":\"error\",\"message\":\"start failed\","
                     "\"error.message\":\"no frob\"}'\n"
                     "exit 3\n")
    crash.chmod(0o755)
    t0 = time.monotonic()
    r = souk.run("up", "-d", timeout=60)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 10     # at once: not after the 30 s ready timeout
    assert "cart exited with status 3 before it was ready" in r.stderr, r.stderr
    assert "SOUK_FROB: expected an integer" in r.stderr and "start failed (no frob)" in r.stderr
    assert "noise" not in r.stderr
    log = (souk.var / "log" / "souk.log").read_text()
    assert "restarting" not in log                     # never retried
    failed = [l for l in souk_log(souk) if "before it was ready" in l["message"]]
    assert failed[0]["log.level"] == "error" and failed[0]["souk.instance"] == "cart", failed
    assert failed[0]["file.path"].endswith("/log/cart.log")
    assert "SOUK_FROB: expected an integer" in failed[0]["error.message"]
    skipped = [l for l in souk_log(souk) if "souk.skipped" in l]
    assert skipped[0]["souk.skipped"] == "orders payments notify", skipped   # not built
    pids = started_pids(log)
    assert len(pids) == 3                              # users, catalog, cart; gateway never
    assert not any(alive(p) for p in pids)             # what was started is stopped
    assert souk.run("status").returncode == 1


def test_a_taken_port_stops_the_start_and_says_so(souk):
    port = replica_port(souk.base, "catalog", 0)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        for args in (["up", "-d"], ["up"]):            # detached, then in the foreground
            r = souk.run(*args, timeout=60)
            out = r.stdout + r.stderr
            assert r.returncode != 0, out
            assert f"catalog: port {port} is in use" in r.stderr, out
            assert "souk status" in r.stderr
            if args == ["up", "-d"]:   # the file says it too, with the port as a field
                taken = [l for l in souk_log(souk) if l.get("souk.port") == port and "in use" in l["message"]]
                assert taken and taken[0]["log.level"] == "error", souk_log(souk)
            else:                      # a person's terminal: text
                assert not any(l.startswith("{") for l in out.splitlines()), out
            pids = started_pids(out if args == ["up"] else
                                (souk.var / "log" / "souk.log").read_text())
            assert pids and not any(alive(p) for p in pids)
            assert souk.run("status").returncode == 1
    finally:
        squatter.close()


def test_a_port_held_by_a_passing_connection_only_delays_the_start(souk):
    """The local end of an outgoing connection can hold a port in the kernel's
    ephemeral range for a moment: no server is there, so the instance is restarted
    like a crash instead of failing the start."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    for _ in range(50):
        holder = socket.socket()
        # closed with a reset: no TIME_WAIT keeps the port after the release
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:   # the connection's local end is our port; without SO_REUSEADDR (else
            # the service's bind would share it) a port in TIME_WAIT after an
            # earlier platform is taken: then the test moves to another base
            holder.bind(("127.0.0.1", replica_port(souk.base, "catalog", 0)))
            break
        except OSError:
            holder.close()
            souk.base = free_port_base()
            souk.env["SOUK_PORT_BASE"] = str(souk.base)
    else:
        pytest.fail("no base whose catalog port is free of TIME_WAIT")
    holder.connect(server.getsockname())
    peer, _ = server.accept()
    log = souk.var / "log" / "souk.log"

    def release_after_the_first_failure():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if log.exists() and "catalog exited with status" in log.read_text():
                break
            time.sleep(0.02)
        holder.close()
        peer.close()

    release = threading.Thread(target=release_after_the_first_failure)
    release.start()
    try:
        r = souk.run("up", "-d")
        assert r.returncode == 0, r.stdout + r.stderr
        assert souk.state()[("catalog", 0)]["restarts"] >= 1
        restart = [l for l in souk_log(souk) if "restarting in" in l["message"]]
        assert restart[0]["log.level"] == "warn" and restart[0]["souk.instance"] == "catalog", restart
        assert restart[0]["souk.exit_code"] != 0 and restart[0]["souk.uptime_ms"] >= 0
    finally:
        release.join()
        holder.close()
        peer.close()
        server.close()


def test_daemon_fails_when_a_running_service_never_gets_ready(souk):
    t0 = time.monotonic()
    r = souk.run("up", "-d", env={"FAKE_NOT_READY_catalog": "1", "SOUK_READY_TIMEOUT": "2"})
    assert r.returncode != 0
    assert 2 <= time.monotonic() - t0 < 15
    assert "not ready after 2 s: catalog" in r.stderr, r.stderr
    late = [l for l in souk_log(souk) if "souk.not_ready" in l]
    assert late[0]["souk.not_ready"] == "catalog" and late[0]["log.level"] == "error", late
    log = (souk.var / "log" / "souk.log").read_text()
    pids = started_pids(log)
    assert len(pids) == 2 and not any(alive(p) for p in pids)   # users, catalog
    assert souk.run("status").returncode == 1


def test_seed_runs_each_service_and_reuses_secrets(souk):
    r = souk.run("seed")
    assert r.returncode == 0, r.stderr
    var = souk.var.resolve()
    for name in FAKES:
        assert (var / f"seeded-{name}").read_text() == f"sqlite:{var}/db/{name}.db"
    secrets = (var / "secrets" / "clients.json").read_text()

    r = souk.run("seed", env={"FAKE_SEED_FAIL_catalog": "4"})
    assert r.returncode != 0
    assert "catalog" in r.stderr
    assert (var / "secrets" / "clients.json").read_text() == secrets
