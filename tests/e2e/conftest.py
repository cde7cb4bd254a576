"""Shared fixtures for black-box tests: start the real service binaries on free
loopback ports, each in its own temporary SOUK_VAR, and stop them by PID.
SOUK_TEST_EVENTS=feed|amqp|kafka picks the event transport of every service a test
starts without choosing one itself (default feed): a fresh kafka-mock cluster per
test, or one private RabbitMQ node whose souk queues are emptied before each test.
SOUK_TEST_RPC=grpc|rest picks how services call each other (default grpc, as `souk
up` runs them): every service serves gRPC on a free port, and under grpc a service
whose SOUK_<PEER>_URL names a service a test started gets SOUK_<PEER>_GRPC_URL too.

SOUK_TEST_MODE=scale runs the same tests in the scale-out mode: every service a test
starts keeps its state in a PostgreSQL database of its own (a role and a database per
service and state directory, on one private cluster for the session), events go
through RabbitMQ, and a platform (souk up) runs two replicas of every service.
SOUK_TEST_GATEWAY_ENGINE=mhd|uv runs every gateway a test starts on that engine (unset: auto)
(SOUK_GATEWAY_ENGINE; `make e2e-gateway-uv`)."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests

from brokers import KafkaMock, RabbitNode, free_port, port_share  # noqa: F401  (tests import it from here)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SOUK_BUILD_DIR", os.path.join(REPO, "build"))
BIN = os.path.join(BUILD, "bin")
sys.path.insert(0, os.path.join(REPO, "scripts"))
import services_table  # noqa: E402  (services.txt)

MODE = os.environ.get("SOUK_TEST_MODE", "local")
if MODE not in ("local", "scale"):
    raise pytest.UsageError(f"SOUK_TEST_MODE={MODE!r}: expected local or scale")
SCALE = MODE == "scale"
SCALE_REPLICAS = 2   # of every service, where a test starts the platform
# payments on a shared database wants its vault key given (every replica the same one)
SCALE_PAYMENTS_KEY = os.urandom(32).hex()




# The supervisor's service order and port layout (services.txt, cli/README.md).
SERVICES = services_table.NAMES
UPSTREAMS = services_table.UPSTREAMS   # the services behind the gateway
PORT_OFFSET = services_table.OFFSET


# The gateway's admin listener (/metrics) defaults to 127.0.0.1 on its port + 1100.
GATEWAY_ADMIN_OFFSET = 1100

# gRPC (souk up): an instance's port + 1000 on every service behind the gateway
# (health on all; RPCs of their own on GRPC_SERVERS, which the others call)
GRPC_PORT_OFFSET = 1000
GRPC_LISTENERS = tuple(UPSTREAMS)
GRPC_SERVERS = ("users", "catalog", "cart", "payments")

DEAD_PORT = 9   # "discard": nothing listens on it here, connections are refused at once


def replica_port(base, name, k):
    if k == 0:
        return base + PORT_OFFSET[name]
    return base + 100 + 10 * PORT_OFFSET[name] + k


def admin_port(base, k=0):
    """The admin listener (SOUK_ADMIN_LISTEN) souk up gives gateway replica k: its
    port + 1100 on 127.0.0.1 (cli/README.md)."""
    return replica_port(base, "gateway", k) + GATEWAY_ADMIN_OFFSET


def free_port_base():
    """A base whose main and replica ports, the gateway's admin ports and the services'
    probe ports (first three replicas) are all free, below the kernel's ephemeral range (32768+): there an
    outgoing connection of anything on the machine can take a port between this check
    and the services' bind."""
    lo, hi = port_share()
    lo += (hi - lo) // 3   # the lower third is free_port()'s
    for _ in range(200):
        base = random.randrange(lo, hi - GATEWAY_ADMIN_OFFSET - 200, 10)
        ports = [replica_port(base, n, k) for n in SERVICES for k in range(3)]
        ports += [admin_port(base, k) for k in range(3)]
        # every service's probe listener (SOUK_PROBE_LISTEN): its port + 1100 too
        ports += [replica_port(base, n, k) + GATEWAY_ADMIN_OFFSET for n in UPSTREAMS for k in range(3)]
        ports += [replica_port(base, n, k) + GRPC_PORT_OFFSET for n in GRPC_LISTENERS for k in range(3)]
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                # as the services and souk up bind: ports in TIME_WAIT after a busy
                # platform are free to them (without it every base of this worker's
                # share looked taken after the scale-out crash tests)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


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


_started = []   # every process a Service started, for the end-of-session sweep


class _Transport:
    """The broker behind SOUK_TEST_EVENTS, started when a service first asks for it.
    kafka: a cluster per test (topics and groups start empty); one for the session's
    own fixtures, which start before any test. amqp: one node for the session; each
    test begins with the services' queues deleted (nothing left from the last test)."""

    KINDS = ("feed", "amqp", "kafka")

    def __init__(self):
        self.kind = os.environ.get("SOUK_TEST_EVENTS", "amqp" if SCALE else "feed")
        if self.kind not in self.KINDS:
            raise pytest.UsageError(f"SOUK_TEST_EVENTS={self.kind!r}: expected one of {self.KINDS}")
        self.in_test = False
        self.test_mock = self.session_mock = self.rabbit = None
        self.rabbit_dir = None

    def url(self):
        if self.kind == "kafka":
            if not self.in_test:
                self.session_mock = self.session_mock or KafkaMock(BIN).start()
                return self.session_mock.url
            self.test_mock = self.test_mock or KafkaMock(BIN).start()
            return self.test_mock.url
        if self.kind == "amqp":
            if self.rabbit is None:
                self.rabbit_dir = tempfile.mkdtemp(prefix="souk-rabbit-")
                self.rabbit = RabbitNode(self.rabbit_dir).start()
            return self.rabbit.url
        return None

    def begin_test(self):
        self.in_test = True
        if self.rabbit is not None:
            # what stopped services left; a module's platform still consuming keeps its own
            self.rabbit.delete_queues(*[f"souk.{n}{s}" for n in SERVICES for s in ("", ".dlq")],
                                      if_unused=True)

    def end_test(self):
        self.in_test = False
        if self.test_mock is not None:
            self.test_mock.stop()
            self.test_mock = None

    def close(self):
        if self.session_mock is not None:
            self.session_mock.stop()
        if self.rabbit is not None:
            self.rabbit.close()
            shutil.rmtree(self.rabbit_dir, ignore_errors=True)


_transport = _Transport()


# ---- SOUK_TEST_GATEWAY_ENGINE: the gateway's public listener on mhd or uv ----

# Every gateway a test starts (alone or in a platform) gets it as SOUK_GATEWAY_ENGINE
# through the environment it inherits; a test that sets SOUK_GATEWAY_ENGINE itself wins.
# Unset: the gateway's default, auto (uv, and mhd for a gateway with TLS).
GATEWAY_ENGINES = ("mhd", "uv")
GATEWAY_ENGINE = os.environ.get("SOUK_TEST_GATEWAY_ENGINE", "")
if GATEWAY_ENGINE and GATEWAY_ENGINE not in GATEWAY_ENGINES:
    raise pytest.UsageError(f"SOUK_TEST_GATEWAY_ENGINE={GATEWAY_ENGINE!r}: expected one of {GATEWAY_ENGINES}")
if GATEWAY_ENGINE:
    os.environ["SOUK_GATEWAY_ENGINE"] = GATEWAY_ENGINE

# ---- SOUK_TEST_RPC: calls between services over gRPC or REST ----

RPC_KINDS = ("grpc", "rest")
RPC = os.environ.get("SOUK_TEST_RPC", "grpc")
if RPC not in RPC_KINDS:
    raise pytest.UsageError(f"SOUK_TEST_RPC={RPC!r}: expected one of {RPC_KINDS}")
# Who calls the GRPC_SERVERS over gRPC (orders' saga, the cart's product lookups);
# everything else (the gateway, the feed, keys) stays on HTTP.
GRPC_CALLERS = ("orders", "cart")
_grpc_ports = {}   # HTTP port of a started service -> its gRPC port (kept across restarts)


def grpc_env(name, port, env):
    """SOUK_GRPC_LISTEN on a free port (the same one again for a service restarted on
    its HTTP port), and under SOUK_TEST_RPC=grpc the peers' gRPC lists for a caller."""
    out = {}
    if name in GRPC_LISTENERS and "SOUK_GRPC_LISTEN" not in (env or {}):
        _grpc_ports.setdefault(port, free_port())
        out["SOUK_GRPC_LISTEN"] = f"127.0.0.1:{_grpc_ports[port]}"
    if RPC != "grpc" or name not in GRPC_CALLERS:
        return out
    for peer in GRPC_SERVERS:
        urls = (env or {}).get(f"SOUK_{peer.upper()}_URL", "")
        if not urls or f"SOUK_{peer.upper()}_GRPC_URL" in (env or {}):
            continue
        grpc_urls = []
        for u in urls.split(","):
            host, _, p = u.strip().removeprefix("http://").partition(":")
            if not p.isdigit() or int(p) not in _grpc_ports:
                break   # a fake peer or one not started here: REST it is
            grpc_urls.append(f"grpc://{host}:{_grpc_ports[int(p)]}")
        else:
            out[f"SOUK_{peer.upper()}_GRPC_URL"] = ",".join(grpc_urls)
    return out
_feed_producers = set()   # URLs of the tests' fake feed producers (events_helpers.FakeProducer)


def feed_producer(url):
    """Say that url serves a fake feed: a service following it stays on feed."""
    _feed_producers.add(url)


def events_env(env):
    """{"SOUK_EVENTS": url} for SOUK_TEST_EVENTS, unless env picks a transport itself or
    points the service at a fake feed producer (which only a feed consumer reads)."""
    if env and ("SOUK_EVENTS" in env or any(v in _feed_producers for v in env.values())):
        return {}
    url = _transport.url()
    return {"SOUK_EVENTS": url} if url else {}


@pytest.fixture(autouse=True)
def _events_transport():
    _transport.begin_test()
    yield
    _transport.end_test()   # after the test's own fixtures stopped its services


@pytest.fixture(scope="session", autouse=True)
def _events_transport_session():
    yield
    _transport.close()


@pytest.fixture(scope="session", autouse=True)
def _no_process_outlives_the_session():
    """Belt and braces: a fixture that failed half-way must not leave a service
    running after the session; kill whatever is still alive, by PID."""
    yield
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class _Databases:
    """The scale mode's databases: one private PostgreSQL cluster for the session
    (scripts/pg, started on first use), a role and a database for each service's state
    directory, so a service started again on the same directory finds its state, and
    two tests never share one. Databases are made ahead, a batch at a time in one psql
    session, by a thread of their own: a test takes a ready one (about 0.3 s of the
    server's work each, otherwise spent while the test waits)."""

    PG = os.path.join(REPO, "scripts", "pg")
    BATCH = 8

    def __init__(self):
        self.dir = None
        self.made = {}   # (name, state dir) -> database name
        self.urls = {}   # database name -> its URL
        self.ready = []  # made, not yet taken
        self.n = 0
        self.cond = threading.Condition()
        self.filler = None
        self.failed = None
        self.closing = False

    def cmd(self, command, *args, input=None):
        r = subprocess.run([self.PG, command, self.dir, *args], capture_output=True, text=True,
                           timeout=120, input=input)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/pg {command} failed: {r.stderr}{r.stdout}")
        return r.stdout

    def _fill(self):
        while True:
            with self.cond:
                while len(self.ready) >= self.BATCH and not self.closing:
                    self.cond.wait()
                if self.closing:
                    return
                names = [f"svc_{self.n + i + 1}" for i in range(self.BATCH)]
                self.n += self.BATCH
            try:
                urls = self.cmd("createdb", *names).split()
            except Exception as e:   # said by the next database() call
                with self.cond:
                    self.failed = e
                    self.cond.notify_all()
                return
            with self.cond:
                self.urls.update(zip(names, urls))
                self.ready += names
                self.cond.notify_all()

    def database(self, name, var):
        key = (name, os.path.realpath(str(var)))
        if key in self.made:
            return self.made[key]
        with self.cond:
            if self.dir is None:
                self.dir = tempfile.mkdtemp(prefix="souk-e2e-pg-", dir="/tmp")
                self.cmd("start")
                self.filler = threading.Thread(target=self._fill, daemon=True)
                self.filler.start()
            while not self.ready and self.failed is None:
                self.cond.wait(timeout=120)
            if self.failed is not None:
                raise RuntimeError(f"cannot make a database: {self.failed}")
            db = self.ready.pop(0)
            self.cond.notify_all()
        self.made[key] = db
        return db

    def env(self, name, var, prefix="SOUK_"):
        """{SOUK_DB, SOUK_DB_PASSWORD_FILE} for service name with state in var (prefix:
        "SOUK_<NAME>_" for what souk up hands to that service)."""
        db = self.database(name, var)
        return {f"{prefix}DB": self.urls[db],
                f"{prefix}DB_PASSWORD_FILE": os.path.join(self.dir, "passwords", db)}

    @staticmethod
    def _bind(sql, params, tag, args):
        """sql with each '?' (outside quotes) made a psql variable :'<tag>N' holding its
        value (a quoted literal, so no value is ever SQL); the -v options into args."""
        n = iter(range(1, len(params) + 1))
        text = re.sub(r"'[^']*'|\?", lambda m: m.group(0) if m.group(0) != "?"
                      else f":'{tag}{next(n)}'", sql.strip().rstrip(";"))
        for i, v in enumerate(params, 1):
            args += ["-v", f"{tag}{i}={'' if v is None else v}"]
        return text

    def query(self, db, sql, params=()):
        """Run sql (sqlite3's '?' placeholders) in db as the superuser: the rows of a
        query as tuples (numbers as numbers, NULL as None), else the changed count."""
        args = ["--", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", db]
        text = self._bind(sql, params, "p", args)
        rows = text.split(None, 1)[0].upper() in ("SELECT", "WITH", "VALUES")
        if rows:
            text = f"SELECT coalesce(json_agg(row_to_json(t)), '[]') FROM ({text}) t"
        out = self.cmd("psql", *args, input=text + ";\n").strip()
        if not rows:
            return int(out.split()[-1]) if out.split() and out.split()[-1].isdigit() else 0
        decoder = json.JSONDecoder(object_pairs_hook=lambda pairs: tuple(v for _, v in pairs))
        return [tuple(r) for r in decoder.decode(out.splitlines()[-1])]

    def execute_many(self, db, sql, rows):
        """sql once per row of parameters, in one psql session and one transaction."""
        args = ["--", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", db]
        text = "".join(self._bind(sql, row, f"r{k}_", args) + ";\n" for k, row in enumerate(rows))
        self.cmd("psql", *args, input=text)

    def close(self):
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        if self.filler is not None:
            self.filler.join(timeout=120)
        if self.dir is not None:
            subprocess.run([self.PG, "destroy", self.dir], capture_output=True, timeout=300)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


_databases = _Databases()


@pytest.fixture(scope="session", autouse=True)
def _databases_session():
    yield
    _databases.close()


def sqlite_query(path, sql, params=()):
    import sqlite3
    con = sqlite3.connect(path, timeout=10, isolation_level=None)
    try:
        cur = con.execute(sql, params)
        return cur.fetchall() if cur.description is not None else cur.rowcount
    finally:
        con.close()


class Service:
    """One running service binary. env adds to (and overrides) the defaults."""

    def __init__(self, name, var_dir, env=None, port=None):
        self.name = name
        self.var = str(var_dir)
        events = events_env(env)   # first: a broker it starts binds ports of its own
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        # Peers a test does not start point at a port nothing listens on: a service
        # must run (and fail its calls clearly) without them.
        for peer in SERVICES:
            self.env.setdefault(f"SOUK_{peer.upper()}_URL", f"http://127.0.0.1:{DEAD_PORT}")
        # ...and a gateway among such dead peers is ready at once instead of waiting for
        # them to come (SOUK_UPSTREAM_READY_WAIT_MS; test_gateway_startup.py tests the wait)
        self.env.setdefault("SOUK_UPSTREAM_READY_WAIT_MS", "0")
        self.env.update({
            "SOUK_LISTEN": f"127.0.0.1:{self.port}",
            "SOUK_VAR": self.var,
            "SOUK_DB": f"sqlite:{self.var}/db/{name}.db",
            "SOUK_LOG_LEVEL": "info",
        })
        if SCALE and "SOUK_DB" not in (env or {}):
            self.env.update(_databases.env(name, self.var))
            self.env.setdefault("SOUK_PAYMENTS_KEY", SCALE_PAYMENTS_KEY)
        self.env.update(events)
        self.env.update(grpc_env(name, self.port, env))
        self.env.update(env or {})
        # The token issuer is users, as `souk up` says (cli/child.c): its key set and
        # token endpoint, unless the test names others.
        issuer = self.env["SOUK_USERS_URL"].split(",")
        self.env.setdefault("SOUK_JWKS_URL", ",".join(u + "/.well-known/jwks.json" for u in issuer))
        self.env.setdefault("SOUK_TOKEN_URL", ",".join(u + "/oauth/token" for u in issuer))
        self.grpc_target = self.env.get("SOUK_GRPC_LISTEN") if name in GRPC_LISTENERS else None
        self.proc = None
        self.log_path = os.path.join(self.var, "log", f"{name}-{self.port}.log")

    @property
    def postgres(self):
        return self.env["SOUK_DB"].startswith(("postgres://", "postgresql://"))

    def query(self, sql, params=()):
        """sql (with '?' placeholders) on this service's own database, whichever the
        engine: a query's rows as tuples, else the number of rows changed."""
        if self.postgres:
            return _databases.query(_databases.database(self.name, self.var), sql, params)
        return sqlite_query(self.env["SOUK_DB"][len("sqlite:"):], sql, params)

    def execute_many(self, sql, rows):
        """sql once for each row of parameters, in one transaction, whichever the engine."""
        if self.postgres:
            return _databases.execute_many(_databases.database(self.name, self.var), sql, rows)
        import sqlite3
        con = sqlite3.connect(self.env["SOUK_DB"][len("sqlite:"):], timeout=10)
        with con:
            con.executemany(sql, rows)
        con.close()

    @property
    def admin_url(self):
        """Where the admin listener (/metrics) is, when SOUK_ADMIN_LISTEN names one."""
        addr = self.env.get("SOUK_ADMIN_LISTEN", "")
        return f"http://{addr}" if ":" in addr else None

    def run(self, *args, check=True):
        """Run a one-shot command of the binary (seed, migrate) with our env."""
        return subprocess.run([os.path.join(BIN, self.name), *args], env=self.env,
                              check=check, capture_output=True, text=True, timeout=240 if self.postgres else 60)

    def start(self, wait=True):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, self.name)], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _started.append(self.proc)
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
    """One seeded catalog shared by the read-only tests of a session. On the HTTP feed
    whatever the mode: on the session's broker it would read the queue souk.catalog
    beside every later platform's catalog in this worker, and take (round robin) half
    of their order events (a cancelled order's stock never came back)."""
    svc = Service("catalog", tmp_path_factory.mktemp("catalog"), {"SOUK_EVENTS": "feed"})
    svc.run("seed")
    svc.start()
    yield svc
    svc.kill()


class Platform:
    """The whole platform under the real supervisor (souk up -d) in a temporary
    SOUK_VAR on a free port range; stopped with souk down, then by PID."""

    def __init__(self, var_dir, env=None):
        self.var = str(var_dir)
        events = events_env(env)   # first: a broker it starts binds ports of its own
        self.base = free_port_base()
        self.env = dict(os.environ)
        self.env.update({"SOUK_VAR": self.var, "SOUK_PORT_BASE": str(self.base),
                         "SOUK_BIN_DIR": BIN, "SOUK_RPC": RPC})
        if SCALE:   # every service on a database of its own, two replicas of each
            for name in SERVICES:
                self.env.update(_databases.env(name, self.var, prefix=f"SOUK_{name.upper()}_"))
            self.env["SOUK_REPLICAS"] = ",".join(f"{n}={SCALE_REPLICAS}" for n in SERVICES)
            self.env.setdefault("SOUK_PAYMENTS_KEY", SCALE_PAYMENTS_KEY)
        self.env.update(events)
        self.env.update(env or {})

    def souk(self, *args, timeout=60, check=True):
        return subprocess.run([os.path.join(BIN, "souk"), *args], env=self.env, check=check,
                              capture_output=True, text=True, timeout=timeout)

    def url(self, name, k=0):
        return f"http://127.0.0.1:{replica_port(self.base, name, k)}"

    def replicas(self, name):
        """How many instances of name souk runs."""
        for item in self.env.get("SOUK_REPLICAS", "").split(","):
            if item.startswith(name + "="):
                return int(item.split("=")[1])
        return 1

    def query(self, name, sql, params=()):
        """sql on service name's database (see Service.query)."""
        url = self.env.get(f"SOUK_{name.upper()}_DB")
        if url:
            return _databases.query(_databases.database(name, self.var), sql, params)
        return sqlite_query(os.path.join(self.var, "db", f"{name}.db"), sql, params)

    def admin_url(self, k=0):
        """The gateway's admin listener (its /metrics): loopback, its port + 1100; souk
        says which in its state file."""
        return f"http://127.0.0.1:{self.state()[('gateway', k)]['admin']}"

    def state(self):
        """{(name, replica): {"port", "pid", "restarts", "admin"}} from the supervisor's
        state file (admin: the admin listener's port, 0 when none)."""
        out = {}
        with open(os.path.join(self.var, "run", "souk.state")) as f:
            for line in f:
                name, rep, port, pid, _started, restarts, admin = line.split()[:7]
                out[(name, int(rep))] = {"port": int(port), "pid": int(pid), "restarts": int(restarts),
                                         "admin": int(admin)}
        return out

    def up(self):
        self.souk("seed")
        self.souk("up", "-d")
        return self

    def down(self):
        pids = []
        try:
            pids = [v["pid"] for v in self.state().values()]
            with open(os.path.join(self.var, "run", "souk.pid")) as f:
                pids.append(int(f.read().split()[0]))
        except (OSError, ValueError):
            pass
        self.souk("down", check=False)
        for pid in pids:   # belt and braces: nothing may outlive the test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def platform(tmp_path):
    p = Platform(tmp_path)
    yield p
    p.down()
