"""scale: the checkout journey in the scale-out mode beside the local mode (issues 14
and 17). Two platforms side by side: the local one (SQLite, one of each, the events
over HTTP feeds, as the journey in main runs) and the scale-out one (`make run-scale`'s
steps: a private PostgreSQL cluster with a database and role per service, a private
RabbitMQ node, two replicas of every service under souk). Both seeded the same, each
with its own journey users, cards, addresses and stock; interleaved rounds of
bench/journey.lua under wrk against each side's gateway. Per side: checkouts/s,
confirmed/rejected/pending, req/s, p50/p99, CPU per confirmed checkout of each
service (its replicas summed), of PostgreSQL and of RabbitMQ, idle CPU, idle Pss.
Alone: `python3 -m souk_bench.scale` from bench/ (markdown on stdout)."""
import concurrent.futures
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time

from . import config, scenarios
from .config import CONNECTIONS, DEFAULT_PORTS, PHASES, PORT_INDEX, ROOT, SERVICES, log
from .measurement import TICKS, cpu_ticks, loadavg, mem_detail_kb, tree_pids, wait_idle, wrk
from .net import PORTS_HI, PORTS_LO, USED_PORTS, port_free
from .procs import CLEAN
from .stack import Platform

ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", "3"))
DURATION = os.environ.get("BENCH_SCALE_DURATION", "5s")
REPLICAS = int(os.environ.get("BENCH_SCALE_REPLICAS", "2"))
WRK = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d" + DURATION, "--latency"]
WARMUP = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d2s"]
PG = os.path.join(ROOT, "scripts", "pg")
SIDES = ("local", "scale")
ENGINES = ("postgresql", "rabbitmq")   # the scale side's shared engines, measured as services are
STATS_FLUSH_S = 1.2   # PostgreSQL 15 reports an idle backend's counts at most a second late


# ---- process trees and what they cost ----

def reaped_ticks(pid):
    """CPU ticks of a process's children that already exited (PostgreSQL's autovacuum
    workers, a broker's helpers): counted in the parent once reaped."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[13]) + int(fields[14])
    except (OSError, IndexError, ValueError):
        return 0


def group_ticks(pids, engine=False):
    """CPU ticks of a group of process trees; an engine's exited children included."""
    return sum(cpu_ticks(p) + (reaped_ticks(p) if engine else 0) for p in pids)


def group_mem(pids):
    """{pss, anon, rss} in kB summed over every process of the trees (Pss is each
    process's share of its pages, so it adds up across processes)."""
    out = {"pss": 0, "anon": 0, "rss": 0, "procs": 0}
    for root in pids:
        for p in tree_pids(root):
            m = mem_detail_kb(p)
            if m.get("pss") is None:
                continue
            out["procs"] += 1
            for k in ("pss", "anon", "rss"):
                out[k] += m.get(k) or 0
    return out


def alive(pid, comm):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip() == comm
    except OSError:
        return False


def find_epmd(port):
    """The epmd daemon started for the node (detached from it, so not in its tree)."""
    want = ("ERL_EPMD_PORT=%d" % port).encode()
    for d in os.listdir("/proc"):
        if not d.isdigit() or not alive(int(d), "epmd"):
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                if want in f.read().split(b"\0"):
                    return int(d)
        except OSError:
            pass
    return None


# ---- the scale-out side's pieces ----

def instance_port(base, svc, k):
    i = PORT_INDEX[svc]
    return base + i if k == 0 else base + 100 + 10 * i + k


def layout(base, replicas):
    """Every port souk gives the instances at this base (cli/README.md): each replica's
    port, its gRPC port (+1000) or the gateway's admin port (+1100)."""
    ports = []
    for s in SERVICES:
        for k in range(replicas):
            p = instance_port(base, s, k)
            ports += [p, p + (1100 if s == "gateway" else 1000)]
    return ports


def free_layout(replicas):
    """A base whose whole layout is free, in the bench's port range, never 8080-8086."""
    for _ in range(2000):
        base = random.randrange(PORTS_LO, PORTS_HI - 1400)
        ports = layout(base, replicas)
        if any(p in USED_PORTS or p in DEFAULT_PORTS for p in ports):
            continue
        if all(port_free(p) for p in ports):
            USED_PORTS.update(ports)
            return base
    raise RuntimeError("no free port layout for %d replicas" % replicas)


class Cluster:
    """A private PostgreSQL cluster (scripts/pg) under dir; stopped at exit, and its
    postmaster killed by PID if the fast shutdown did not end it."""

    def __init__(self, d):
        self.dir = d
        self.pid = None

    def pg(self, *args):
        r = subprocess.run([PG] + list(args), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("scripts/pg %s: %s" % (args[0], (r.stderr or r.stdout).strip()[-300:]))
        return r.stdout.strip()

    def start(self):
        CLEAN.actions.append(self.stop)
        self.pg("start", self.dir)
        with open(os.path.join(os.path.realpath(os.path.join(self.dir, "data")), "postmaster.pid")) as f:
            self.pid = int(f.readline())
        return self

    def backends(self):
        """{database: [pid of each client backend]} of the services' databases: which
        service's statements a backend's CPU is spent on."""
        out = {}
        q = ("SELECT pid, datname FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND datname IS NOT NULL")
        for line in self.pg("psql", self.dir, "--", "-At", "-F", " ", "-d", "postgres", "-c", q).splitlines():
            pid, db = line.split()
            if db in SERVICES:
                out.setdefault(db, []).append(int(pid))
        return out

    def xacts(self):
        """{database: transactions committed or rolled back so far}. A backend reports its
        counts when it goes idle, at most once a second: read after a quiet second."""
        q = "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database WHERE datname IS NOT NULL"
        out = {}
        for line in self.pg("psql", self.dir, "--", "-At", "-F", " ", "-d", "postgres", "-c", q).splitlines():
            db, n = line.split()
            if db in SERVICES:
                out[db] = int(n)
        return out

    def stop(self):
        subprocess.run([PG, "destroy", self.dir], capture_output=True, timeout=60)
        if self.pid and alive(self.pid, "postgres"):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Broker:
    """tests/e2e/brokers.py's private RabbitMQ node under dir; closed at exit (its
    process group killed by PID if rabbitmqctl cannot stop it)."""

    def __init__(self, d):
        sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
        from brokers import RabbitNode
        self.node = RabbitNode(d)
        self.epmd_port = int(self.node.env["ERL_EPMD_PORT"])
        self.epmd = None

    def start(self):
        CLEAN.actions.append(self.node.close)
        self.node.start()
        return self

    def pids(self):
        if self.epmd is None:
            self.epmd = find_epmd(self.epmd_port)
        return [p for p in (self.node.proc.pid, self.epmd) if p]


class ScalePlatform(Platform):
    """Every service REPLICAS times under `souk up -d`, each on its own PostgreSQL
    database and role, events on the broker: make run-scale's environment, on free
    ports and with its own copy of the binaries (so that the two sides share no
    executable pages and each one's Pss is its own)."""

    def __init__(self, var, admin, bin_dir, cluster, broker):
        super().__init__(var, admin)
        USED_PORTS.difference_update(range(self.base, self.base + 7))
        self.base = free_layout(REPLICAS)
        self.ports = {s: instance_port(self.base, s, 0) for s in self.services}
        self.bin = bin_dir
        self.instances = {}   # service -> [pid of each replica]
        self.env.update({"SOUK_PORT_BASE": str(self.base), "SOUK_BIN_DIR": bin_dir,
                         "SOUK_REPLICAS": ",".join("%s=%d" % (s, REPLICAS) for s in SERVICES),
                         "SOUK_READY_TIMEOUT": "180", "SOUK_EVENTS": broker.node.url,
                         "SOUK_PAYMENTS_KEY": secrets.token_hex(32)})
        names = list(SERVICES)   # the gateway too: the kit's tables (idempotency, leases)
        urls = cluster.pg("createdb", cluster.dir, *names).splitlines()
        if len(urls) != len(names):
            raise RuntimeError("scripts/pg createdb printed %d URLs for %d services" % (len(urls), len(names)))
        for name, url in zip(names, urls):
            self.env["SOUK_%s_DB" % name.upper()] = url
            self.env["SOUK_%s_DB_PASSWORD_FILE" % name.upper()] = cluster.pg("password-file", cluster.dir, name)

    def seed(self):
        os.makedirs(self.var, exist_ok=True)
        with open(os.path.join(self.var, "seed.log"), "ab") as f:
            rc = subprocess.call([os.path.join(self.bin, "souk"), "seed"], env=self.env, stdout=f,
                                 stderr=subprocess.STDOUT, timeout=600)
        if rc != 0:
            raise RuntimeError("souk seed failed (%d): see %s/seed.log" % (rc, self.var))

    def up(self):
        CLEAN.actions.append(self.down)
        t = time.monotonic()
        try:
            r = subprocess.run([os.path.join(self.bin, "souk"), "up", "-d"], env=self.env,
                               capture_output=True, text=True, timeout=300)
            rc, out = r.returncode, (r.stdout + r.stderr).strip()
        except subprocess.TimeoutExpired:
            rc, out = -1, "timed out"
        secs = time.monotonic() - t
        self.mode = "souk up -d"
        self._read_state()
        if rc != 0:
            raise RuntimeError("souk up -d (scale-out) failed (%s): %s" % (rc, out[-400:]))
        ready = [l for l in out.splitlines() if "ready" in l]
        self.souk_line = ready[-1] if ready else ""
        return secs

    def _read_state(self):
        self.instances = {}
        try:
            with open(os.path.join(self.var, "run", "souk.state")) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 4 and int(parts[3]) > 0:
                        self.instances.setdefault(parts[0], []).append(int(parts[3]))
                        if parts[1] == "0":
                            self.pids[parts[0]] = int(parts[3])
        except (OSError, ValueError):
            pass

    def down(self):
        try:
            subprocess.run([os.path.join(self.bin, "souk"), "down"], env=self.env,
                           capture_output=True, timeout=60)
        except subprocess.TimeoutExpired:
            pass
        pids = [p for ps in self.instances.values() for p in ps]
        try:
            with open(os.path.join(self.var, "run", "souk.pid")) as f:
                pids.insert(0, int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        for pid in pids:   # whatever is left (a supervisor that would not stop): by PID
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.pids, self.instances = {}, {}


# ---- one side: its platform, its journey, its rounds ----

class Side:
    def __init__(self, name, plat, engines=None, cluster=None):
        self.name = name
        self.cluster = cluster         # PostgreSQL: its backends' CPU split by database
        self.backends = {}
        self.plat = plat
        self.engines = engines or {}   # "postgresql"/"rabbitmq" -> callable giving its pids
        self.runs = []                 # wrk results with "cpu": {group: µs per checkout}
        self.idle_cpu = {}             # group -> CPU seconds per second at rest
        self.mem = {}                  # group -> {pss, anon, rss, procs}
        self.startup = None
        self.quiet_at = None   # when it went quiet after its last load; None: not seen yet

    def groups(self):
        """group -> (pids, is_engine): each service's replicas, then the engines."""
        inst = getattr(self.plat, "instances", None) or {s: [p] for s, p in self.plat.pids.items()}
        out = {s: (inst[s], False) for s in SERVICES if s in inst}
        for e, pids in self.engines.items():
            out[e] = (pids(), True)
        for db, pids in self.backends.items():   # a part of "postgresql", not added to it
            out["pg:" + db] = (pids, False)
        return out

    def xacts(self):
        if self.cluster is None:
            return {}
        wait_idle(self.all_pids(), timeout=5)
        # PostgreSQL 15 flushes a backend's counts at most once a second: read 1.2 s after
        # this side went quiet after its last load (a round that follows this side's own
        # reading after its previous round, or the other side's round, waits no more)
        if self.quiet_at is None:
            self.quiet_at = time.monotonic()
        time.sleep(max(0.0, self.quiet_at + STATS_FLUSH_S - time.monotonic()))
        return self.cluster.xacts()

    def refresh_backends(self):
        if self.cluster is not None:
            self.backends = self.cluster.backends()

    def ticks(self):
        return {g: group_ticks(p, e) for g, (p, e) in self.groups().items()}

    def all_pids(self):
        return [p for g, (ps, _) in self.groups().items() if not g.startswith("pg:") for p in ps]

    def prepare(self, tag, admin, tmp):
        missing = [s for s in SERVICES if s not in self.plat.pids]
        if missing:
            raise RuntimeError("%s platform: %s did not start" % (self.name, ", ".join(missing)))
        self.gw = self.plat.url("gateway")
        products = scenarios.fetch_products(self.plat.url("catalog"))
        data = scenarios.prepare_journey(self.gw, tag + self.name, products, admin)
        self.data_file = os.path.join(tmp, "journey-%s.lua" % self.name)
        scenarios.write_lua(self.data_file, data)
        self.products = len(products)
        log("scale: %s side ready, %d products, %d journey users" % (self.name, len(products), len(data["users"])))

    def measure_idle(self, seconds=5):
        wait_idle(self.all_pids(), timeout=5)
        self.refresh_backends()
        self.mem = {g: group_mem(p) for g, (p, _) in self.groups().items()}
        c0, t0 = self.ticks(), time.monotonic()
        time.sleep(seconds)
        c1, wall = self.ticks(), time.monotonic() - t0
        self.idle_cpu = {g: (c1[g] - c0[g]) / TICKS / wall for g in c0}

    def warm_up(self, tag):
        subprocess.run(WARMUP + ["-s", os.path.join(config.BENCH, "journey.lua"), self.gw, "--",
                                 self.data_file, tag + self.name + "w"], capture_output=True, timeout=60)
        self.quiet_at = None

    def round(self, tag, n, wrk_log):
        wait_idle(self.all_pids(), timeout=5)
        self.refresh_backends()
        x0 = self.xacts()
        c0, t0 = self.ticks(), time.monotonic()
        r = wrk(WRK, self.gw, "journey.lua", [self.data_file, "%s%s%d" % (tag, self.name, n)], wrk_log)
        c1, wall = self.ticks(), time.monotonic() - t0
        self.quiet_at = None
        done = r.get("checkouts") or 0
        x1 = self.xacts()
        r["xacts"] = {db: (x1[db] - x0[db]) / done for db in x1 if db in x0} if done else {}
        c0 = {g: v for g, v in c0.items() if g in c1}
        r["cpu"] = {g: max(0.0, ((c1[g] - c0[g]) / TICKS - self.idle_cpu.get(g, 0.0) * wall) * 1e6 / done)
                    if done else None for g in c0}
        self.runs.append(r)
        total = sum(v for g, v in r["cpu"].items() if v and not g.startswith("pg:"))
        log("scale: round %d %-5s %.0f checkouts/s (%d confirmed, %d rejected, %d pending), "
            "%s req/s, p50 %s p99 %s ms, CPU %s µs per checkout%s" % (
                n + 1, self.name, r.get("cps") or 0, done, r.get("rejected", 0), r.get("pending", 0),
                "{:,.0f}".format(r["rps"] or 0), r["p50"], r["p99"],
                "%.0f" % total if done else "–",
                (" non-2xx %d" % r["non2xx"]) if r["non2xx"] else ""))

    def result(self):
        med = lambda f: statistics.median([r[f] for r in self.runs if r.get(f) is not None] or [0])
        groups = list(self.runs[0]["cpu"]) if self.runs else []
        cpu = {}
        for g in groups:
            vals = [r["cpu"][g] for r in self.runs if r["cpu"].get(g) is not None]
            cpu[g] = statistics.median(vals) if vals else None
        xacts = {}
        for db in (self.runs[0].get("xacts") or {}) if self.runs else {}:
            vals = [r["xacts"][db] for r in self.runs if db in r.get("xacts", {})]
            xacts[db] = statistics.median(vals)
        return {"xacts": xacts, "cps": med("cps"), "rps": med("rps"), "p50": med("p50"), "p99": med("p99"),
                "rounds_cps": [r.get("cps") or 0 for r in self.runs],
                "confirmed": sum(r.get("checkouts", 0) for r in self.runs),
                "rejected": sum(r.get("rejected", 0) for r in self.runs),
                "pending": sum(r.get("pending", 0) for r in self.runs),
                "bad": "; ".join(r["bad_detail"] for r in self.runs if r.get("bad_detail")),
                "errors": sum(r.get("errors", 0) for r in self.runs),
                "cpu": cpu, "idle_cpu": self.idle_cpu, "mem": self.mem,
                "replicas": {g: len(p) for g, (p, e) in self.groups().items()
                             if not e and not g.startswith("pg:")},
                "connections": {db: len(p) for db, p in self.backends.items()},
                "startup": self.startup, "products": self.products}


def measure(tmp, admin, wrk_log=None):
    """Both sides up, ROUNDS interleaved rounds; the results for section()."""
    tag = secrets.token_hex(3)
    wrk_log = wrk_log or os.path.join(tmp, "wrk-scale.log")
    load_before = loadavg()
    n0 = len(CLEAN.actions)
    try:
        return _measure(tmp, admin, tag, wrk_log, load_before)
    finally:   # everything this started, stopped now (a full run goes on after it)
        t = time.monotonic()
        teardown(CLEAN.actions[n0:])
        while len(CLEAN.actions) > n0:   # whatever a step added meanwhile, last first
            try:
                CLEAN.actions.pop()()
            except Exception as e:
                log("scale: cleanup: %s" % e)
        PHASES.add("scale: teardown", time.monotonic() - t)


def teardown(actions):
    """Run the cleanup actions this section registered: the platforms (souk down) side by
    side first, then the rest (PostgreSQL, RabbitMQ) side by side. Each leaves
    CLEAN.actions once done, so a signal meanwhile still runs what is left."""
    def one(a):
        try:
            a()
        except Exception as e:
            log("scale: cleanup: %s" % e)
        if a in CLEAN.actions:
            CLEAN.actions.remove(a)
    downs = [a for a in actions if isinstance(getattr(a, "__self__", None), Platform)]
    for group in (downs, [a for a in actions if a not in downs]):
        with concurrent.futures.ThreadPoolExecutor(max(1, len(group))) as pool:
            list(pool.map(one, group))


def start_engines(tmp, admin):
    """The scale-out side's own binaries, its PostgreSQL cluster and RabbitMQ node started
    side by side (each registered for cleanup), and its platform seeded as soon as
    PostgreSQL is up (`souk seed` needs the databases, not the broker: a service's seed
    only configures its events); (cluster, broker, platform)."""
    t = time.monotonic()
    broker = Broker(os.path.join(tmp, "scale-rabbitmq"))   # its ports and URL, not started

    def pg_and_seed():
        bin_scale = os.path.join(tmp, "bin-scale")
        shutil.copytree(config.BIN, bin_scale)
        cluster = Cluster(os.path.join(tmp, "scale-pg")).start()
        log("scale: PostgreSQL up in %.1fs (postmaster %d)" % (time.monotonic() - t, cluster.pid))
        t_seed = time.monotonic()
        plat = ScalePlatform(os.path.join(tmp, "scale-var"), admin, bin_scale, cluster, broker)
        plat.seed()
        log("scale: scale-out side seeded in %.1fs" % (time.monotonic() - t_seed))
        return cluster, plat

    def rabbit():
        broker.start()
        log("scale: RabbitMQ up in %.1fs" % (time.monotonic() - t))
    # each waits mostly on its own start-up
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(pg_and_seed), pool.submit(rabbit)]
        concurrent.futures.wait(futures)
    futures[1].result()
    cluster, plat = futures[0].result()
    return cluster, broker, plat


def _measure(tmp, admin, tag, wrk_log, load_before):
    # the local side: one of each on SQLite, as main's journey runs
    local = Platform(os.path.join(tmp, "scale-local"), admin)
    USED_PORTS.update(p + d for p in range(local.base, local.base + 7) for d in (1000, 1100))
    for k in [k for k in local.env if k.startswith("SOUK_") and k.endswith(("_DB", "_DB_PASSWORD_FILE"))]:
        del local.env[k]
    local.env.pop("SOUK_EVENTS", None)
    # its own copy of the services too: in a full run main's platform runs the snapshot
    # (its pages would lower this side's Pss)
    local.env["SOUK_BIN_DIR"] = os.path.join(tmp, "bin-local")
    shutil.copytree(config.BIN, local.env["SOUK_BIN_DIR"])
    sides = [Side("local", local)]
    with PHASES("scale: local side seeded, up"):
        local.seed()
        sides[0].startup = local.up()
    # the scale-out side's engines boot in the background from here, and its databases are
    # seeded, while the local side's shoppers register (nothing is measured meanwhile: the
    # local side's start is timed above, its idle reading comes once the engines are up
    # and the seed is done, before any scale-out service starts)
    boot_pool = concurrent.futures.ThreadPoolExecutor(1)
    boot = boot_pool.submit(start_engines, tmp, admin)
    boot_pool.shutdown(wait=False)
    try:
        with PHASES("scale: local side's journey users (beside: PostgreSQL and RabbitMQ "
                    "booting, then the scale-out side's seed)"):
            sides[0].prepare(tag, admin, tmp)
    except BaseException:
        # the engines registered for cleanup before measure() stops what this started
        concurrent.futures.wait([boot])
        raise
    with PHASES("scale: waiting for PostgreSQL, RabbitMQ, the scale-out side's seed"):
        cluster, broker, plat = boot.result()
    with PHASES("scale: local side idle (memory, 5 s CPU)"):
        sides[0].measure_idle()   # before the scale-out side's services exist: they share no page
    with PHASES("scale: scale-out side up, journey users"):
        scale = Side("scale", plat, {"postgresql": lambda: [cluster.pid], "rabbitmq": broker.pids},
                     cluster)
        sides.append(scale)
        scale.startup = plat.up()
        log("scale: %s" % plat.souk_line)
        scale.prepare(tag, admin, tmp)
    with PHASES("scale: scale-out side idle (memory, 5 s CPU)"):
        scale.measure_idle()
    with PHASES("scale: warm-ups, %d rounds × 2 sides × %s" % (ROUNDS, DURATION)):
        # the two sides' warm-ups side by side (nothing is measured; each platform is its
        # own: each still checks out hundreds of times)
        with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
            for f in [pool.submit(s.warm_up, tag) for s in sides]:
                f.result()
        for n in range(ROUNDS):
            for s in (sides if n % 2 == 0 else sides[::-1]):
                s.round(tag, n, wrk_log)
    return {"rounds": ROUNDS, "duration": DURATION, "connections": CONNECTIONS, "replicas": REPLICAS,
            "load_before": load_before, "load_after": loadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "sides": {s.name: s.result() for s in sides}}


# ---- the report ----

def _cell(v, fmt="%.0f"):
    return "–" if v is None else fmt % v


def section(r):
    """RESULTS.md's section for measure()'s results."""
    lo, sc = r["sides"]["local"], r["sides"]["scale"]
    L = ["## The journey in the scale-out mode (PostgreSQL, %d replicas, RabbitMQ) beside the local mode" %
         r["replicas"], ""]
    L += ["Two platforms side by side on the same machine, seeded the same (`souk seed`: %d products "
             "each), each with its own 64 journey users, cards, addresses and stock: **local** — `souk up`'s "
             "default, one process per service on its SQLite file, events over the HTTP feeds; "
             "**scale-out** — `make run-scale`'s steps on free ports: a private PostgreSQL 15 cluster "
             "(`scripts/pg`, one database and role per service, fsync off as there), a private RabbitMQ "
             "node (`SOUK_EVENTS=amqp://…`), every service %d times under souk (`SOUK_REPLICAS`), gRPC "
             "between services on both. `bench/journey.lua` (browse 10 : cart 3 : checkout 1) under "
             "`wrk -t1 -c%d -d%s --latency`, %d interleaved rounds (the order alternating) after a 2 s warm-up each, medians "
             "reported; wrk drives each side's gateway replica 0 (a client reaches one gateway; the "
             "gateway spreads the calls over every replica of the services behind it). Load average "
             "%s before, %s after (2 cores shared with other work: compare the two columns, not runs). "
             "`bench/souk_bench/scale.py`." % (
                 lo["products"], r["replicas"], r["connections"], r["duration"], r["rounds"],
                 r["load_before"], r["load_after"]), ""]
    L += ["| | local (SQLite, 1 each) | scale-out (PostgreSQL, %d each, RabbitMQ) | scale-out ÷ local |" %
          r["replicas"], "|---|---:|---:|---:|"]

    def ratio(a, b):
        return "%.2f×" % (b / a) if a and b else ""
    L.append("| checkouts/s | %.0f | %.0f | %s |" % (lo["cps"], sc["cps"], ratio(lo["cps"], sc["cps"])))
    L.append("| rounds (checkouts/s) | %s | %s | |" % (", ".join("%.0f" % x for x in lo["rounds_cps"]),
                                                      ", ".join("%.0f" % x for x in sc["rounds_cps"])))
    L.append("| confirmed / rejected / pending (all rounds) | %d / %d / %d | %d / %d / %d | |" % (
        lo["confirmed"], lo["rejected"], lo["pending"], sc["confirmed"], sc["rejected"], sc["pending"]))
    L.append("| req/s (all steps) | {:,.0f} | {:,.0f} | {} |".format(lo["rps"], sc["rps"], ratio(lo["rps"], sc["rps"])))
    L.append("| p50 / p99 (every request of the journey) | %.1f / %.1f ms | %.1f / %.1f ms | %s / %s |" % (
        lo["p50"], lo["p99"], sc["p50"], sc["p99"], ratio(lo["p50"], sc["p50"]), ratio(lo["p99"], sc["p99"])))
    L.append("| non-2xx / socket errors | %s / %d | %s / %d | |" % (
        lo["bad"] or "none", lo["errors"], sc["bad"] or "none", sc["errors"]))
    L.append("| start, `souk up -d` to every instance ready | %s s | %s s (after the cluster and the node) | |" % (
        _cell(lo["startup"], "%.1f"), _cell(sc["startup"], "%.1f")))
    L += ["", "CPU per confirmed checkout (µs of user + system CPU over the whole journey of 14 requests, "
          "each group's idle rate taken off; a service's replicas summed; PostgreSQL is the postmaster "
          "and every backend, RabbitMQ the node's processes and epmd), and at rest:", "",
          "| | local µs/checkout | scale-out µs/checkout | scale-out − local | local idle ms/s | scale-out idle ms/s |",
          "|---|---:|---:|---:|---:|---:|"]
    groups = [g for g in list(SERVICES) + list(ENGINES) if g in lo["cpu"] or g in sc["cpu"]]
    tl = ts = il = isc = 0.0
    for g in groups:
        a, b = lo["cpu"].get(g), sc["cpu"].get(g)
        ia, ib = lo["idle_cpu"].get(g), sc["idle_cpu"].get(g)
        tl += a or 0
        ts += b or 0
        il += ia or 0
        isc += ib or 0
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            g, _cell(a), _cell(b), "%+.0f" % ((b or 0) - (a or 0)) if b is not None else "–",
            _cell(ia * 1e3 if ia is not None else None, "%.1f"), _cell(ib * 1e3 if ib is not None else None, "%.1f")))
    L.append("| **all** | **%.0f** | **%.0f** | **%+.0f** (%s) | %.1f | %.1f |" % (
        tl, ts, ts - tl, ratio(tl, ts), il * 1e3, isc * 1e3))
    split = [g for g in sorted(sc["cpu"], key=lambda g: -(sc["cpu"][g] or 0)) if g.startswith("pg:")]
    if split:
        L += ["", "PostgreSQL's CPU per confirmed checkout by database: the client backends connected to "
              "each service's database (sessions: one per thread of each replica that uses the database); "
              "the rest of the row above is the postmaster, the WAL writer, the checkpointer, the "
              "autovacuum workers and backends that came and went. Transactions are `pg_stat_database`'s "
              "commits and rollbacks during the round (a statement outside a transaction is one; idle "
              "work included), a lower bound on the statements, and so on the round trips:", "",
              "| database | sessions | µs/checkout | idle ms/s | transactions/checkout | µs/transaction |",
              "|---|---:|---:|---:|---:|---:|"]
        for g in split:
            ib, x = sc["idle_cpu"].get(g), sc.get("xacts", {}).get(g[3:])
            L.append("| %s | %s | %s | %s | %s | %s |" % (
                g[3:], sc["connections"].get(g[3:], "–"), _cell(sc["cpu"][g]),
                _cell(ib * 1e3 if ib is not None else None, "%.1f"), _cell(x, "%.1f"),
                _cell(sc["cpu"][g] / x if x and sc["cpu"][g] is not None else None)))
        L.append("| (the rest) | | %.0f | | | |" % max(0.0, (sc["cpu"].get("postgresql") or 0) -
                                                   sum(sc["cpu"][g] or 0 for g in split)))
    L += ["", "Idle memory (MiB, after the journey's setup, before the rounds; Pss: each process's share "
          "of the pages it maps, summed over a group's processes; anon: anonymous memory. The "
          "local side is measured before the scale-out side's services start (its PostgreSQL and RabbitMQ "
          "already run, idle: they map none of souk's files, only system libraries), and each side runs its own copy of "
          "the binaries, so neither shares an executable page with the other or with another platform "
          "of a full run; anon is RssAnon, "
          "which counts a page a forked process still shares copy-on-write with its parent in each of "
          "them — PostgreSQL's backends — so only Pss adds up across processes):", "",
          "| | local Pss | local anon | scale-out Pss | scale-out anon | scale-out processes |",
          "|---|---:|---:|---:|---:|---:|"]
    tot = [0, 0, 0, 0]
    for g in groups:
        a, b = lo["mem"].get(g) or {}, sc["mem"].get(g) or {}
        vals = [a.get("pss"), a.get("anon"), b.get("pss"), b.get("anon")]
        for i, v in enumerate(vals):
            tot[i] += v or 0
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            g, *(_cell(v / 1024 if v else None, "%.1f") for v in vals), b.get("procs", "–")))
    L.append("| **all** | **%.1f** | **%.1f** | **%.1f** | **%.1f** | |" % tuple(v / 1024 for v in tot))
    L += ["", "A reading of these numbers (by hand) is in the notes below, § *The scale-out journey*.", ""]
    return L


def main():
    import tempfile
    from .procs import install
    from .stack import snapshot_bins
    install()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is not installed (run scripts/setup bench)" % tool)
    tmp = tempfile.mkdtemp(prefix="souk-bench-scale-")
    CLEAN.actions.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    config.BIN, skipped = snapshot_bins(config.BIN, os.path.join(tmp, "bin"))
    if skipped:
        sys.exit("bench: %s" % "; ".join(skipped.values()))
    admin = ("admin-%s@bench.local" % secrets.token_hex(3), "bench-admin-" + secrets.token_hex(8))
    out, sys.stdout = sys.stdout, sys.stderr   # the progress log on stderr, the markdown alone on stdout
    try:
        r = measure(tmp, admin)
    finally:
        sys.stdout = out
    print("\n".join(section(r)))


if __name__ == "__main__":
    main()
