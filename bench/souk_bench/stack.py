"""stack: the souk platform under test. Every built service on a free block of
ports with its state in a temp SOUK_VAR, started with `souk up -d` (what users run)
or, if the supervisor cannot, the binaries directly with the environment souk would
give them."""
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

from . import config
from .config import GATEWAY_OVERRIDES, PORT_INDEX, READY_TIMEOUT, SERVICES, log
from .net import free_block, http, wait_ready
from .procs import CLEAN


def service_env(var, base, admin):
    env = dict(os.environ)
    env.update({
        "SOUK_VAR": var,
        "SOUK_PORT_BASE": str(base),
        "SOUK_BIN_DIR": config.BIN,
        "SOUK_HOST": "127.0.0.1",
        "SOUK_ADMIN_EMAIL": admin[0],
        "SOUK_ADMIN_PASSWORD": admin[1],
    })
    # The one change from the defaults: the gateway's per-address and per-user rate
    # limits (200 and 100 req/s) would turn a load from one address into 429s, and
    # its cap of 128 connections per address would refuse BENCH_CONNECTIONS above it.
    env.update(GATEWAY_OVERRIDES)
    for k in ("SOUK_REPLICAS", "SOUK_LISTEN", "SOUK_DB", "SOUK_SERVICE", "SOUK_CLIENT_ID",
              "SOUK_CLIENT_SECRET", "SOUK_CLIENTS_FILE"):
        env.pop(k, None)
    for s in SERVICES:
        env.pop("SOUK_%s_URL" % s.upper(), None)
    return env


def snapshot_bins(src, dst):
    """Copy the binaries, each once it is stable (not being linked right now) and runs;
    returns (dst, {name: why skipped})."""
    os.makedirs(dst)
    skipped = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        for _ in range(20):
            st = os.stat(path)
            if time.time() - st.st_mtime > 2:
                shutil.copy2(path, os.path.join(dst, name))
                if os.stat(path).st_mtime == st.st_mtime:
                    break
            time.sleep(0.5)
        out = os.path.join(dst, name)
        try:
            rc = subprocess.run([out, "--help"], capture_output=True, timeout=5).returncode
            ok = rc in (0, 1, 2)
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, rc = False, e
        if not ok:
            skipped[name] = "build/bin/%s does not run (%s)" % (name, rc)
            os.unlink(out)
    return dst, skipped


def built_services():
    return [s for s in SERVICES if os.access(os.path.join(config.BIN, s), os.X_OK)]


class Platform:
    """Every built service on ports base..base+6, state under var. Started with
    `souk up -d` (what users run); if the supervisor cannot, the binaries directly."""

    def __init__(self, var, admin):
        self.var = var
        self.admin = admin
        self.base = free_block(7, (0, 1000, 1100))   # gRPC, admin and probe ports too
        self.env = service_env(var, self.base, admin)
        self.services = built_services()
        self.ports = {s: self.base + PORT_INDEX[s] for s in self.services}
        self.pids = {}
        self.mode = None
        self.souk_line = ""
        self.direct = []
        self.failed = {}    # service -> why it is not part of the run

    def url(self, svc):
        return "http://127.0.0.1:%d" % self.ports[svc]

    def seed(self):
        os.makedirs(self.var, exist_ok=True)
        log_path = os.path.join(self.var, "seed.log")
        if os.access(os.path.join(config.BIN, "souk"), os.X_OK):
            with open(log_path, "ab") as f:
                rc = subprocess.call([os.path.join(config.BIN, "souk"), "seed"], env=self.env,
                                     stdout=f, stderr=subprocess.STDOUT, timeout=300)
            if rc == 0:
                return
            log("souk seed failed (%d, see %s): seeding the catalog directly" % (rc, log_path))
        env = dict(self.env, SOUK_DB="sqlite:%s/db/catalog.db" % self.var)
        os.makedirs(os.path.join(self.var, "db"), exist_ok=True)
        with open(log_path, "ab") as f:
            subprocess.check_call([os.path.join(config.BIN, "catalog"), "seed"], env=env, stdout=f,
                                  stderr=subprocess.STDOUT, timeout=300)

    def up(self):
        """Start; the wall-clock seconds until every service was ready."""
        souk = os.path.join(config.BIN, "souk")
        if os.access(souk, os.X_OK):
            t = time.monotonic()
            try:
                r = subprocess.run([souk, "up", "-d"], env=self.env, capture_output=True,
                                   text=True, timeout=READY_TIMEOUT + 15)
                rc, out = r.returncode, (r.stdout + r.stderr).strip()
            except subprocess.TimeoutExpired:
                rc, out = -1, "timed out"
            secs = time.monotonic() - t
            CLEAN.actions.append(self.down)
            if rc == 0:
                self.mode = "souk up -d"
                ready = [l for l in out.splitlines() if "ready" in l]
                self.souk_line = ready[-1] if ready else ""
                self._read_state()
                return secs
            log("souk up -d failed (%s): %s; starting the binaries directly" % (rc, out[-300:]))
            self.down()
        return self._up_direct()

    def _read_state(self):
        path = os.path.join(self.var, "run", "souk.state")
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 4 and parts[1] == "0" and int(parts[3]) > 0:
                        self.pids[parts[0]] = int(parts[3])
        except OSError:
            pass

    def _client_secrets(self):
        """The clients file souk would write, created once; (path, {service: secret})."""
        secrets_dir = os.path.join(self.var, "secrets")
        os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
        clients = os.path.join(secrets_dir, "clients.json")
        if not os.path.exists(clients):
            fd = os.open(clients, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({s: secrets.token_hex(32) for s in SERVICES}, f)
        with open(clients) as f:
            return clients, json.load(f)

    def _up_direct(self):
        self.mode = "binaries started directly"
        os.makedirs(os.path.join(self.var, "log"), exist_ok=True)
        clients, secret = self._client_secrets()
        t = time.monotonic()
        for s in self.services:
            env = dict(self.env)
            env.update({
                "SOUK_SERVICE": s, "SOUK_REPLICA": "0",
                "SOUK_LISTEN": "127.0.0.1:%d" % self.ports[s],
                "SOUK_DB": "sqlite:%s/db/%s.db" % (self.var, s),
                "SOUK_CLIENT_ID": s, "SOUK_CLIENT_SECRET": secret.get(s, ""),
                "SOUK_CLIENTS_FILE": clients,
            })
            for peer in SERVICES:   # every peer, as souk does: a missing one is a dead port
                env["SOUK_%s_URL" % peer.upper()] = "http://127.0.0.1:%d" % (self.base + PORT_INDEX[peer])
            p = CLEAN.spawn([os.path.join(config.BIN, s)], env=env,
                            out=os.path.join(self.var, "log", "%s.log" % s))
            self.direct.append(p)
            self.pids[s] = p.pid
        waited = wait_ready([self.url(s) + "/readyz" for s in self.services])
        secs = time.monotonic() - t
        if waited is None:
            self._drop_unready()
            return None
        return secs

    def _drop_unready(self):
        """Keep the services that got ready; stop the others and say which."""
        for s, p in zip(list(self.services), list(self.direct)):
            if http("GET", self.url(s) + "/readyz", timeout=1)[0] != 200:
                self.failed[s] = "not ready after %ds (see its log)" % READY_TIMEOUT
                CLEAN.stop(p)
                self.direct.remove(p)
                self.services.remove(s)
                del self.ports[s], self.pids[s]
        log("not ready, stopped: %s" % ", ".join(self.failed))
        if "catalog" not in self.services:
            raise RuntimeError("the catalog did not get ready (logs in %s/log)" % self.var)

    def down(self):
        if self.mode == "binaries started directly":
            for p in reversed(self.direct):
                CLEAN.stop(p)
            self.direct = []
        else:
            souk = os.path.join(config.BIN, "souk")
            try:
                subprocess.run([souk, "down"], env=self.env, capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass
            # whatever is left (a supervisor that would not stop): by PID
            pidfile = os.path.join(self.var, "run", "souk.pid")
            pids = list(self.pids.values())
            try:
                with open(pidfile) as f:
                    pids.insert(0, int(f.read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.pids = {}
