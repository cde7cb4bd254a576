"""main: one benchmark run, step by step: snapshot the binaries, time cold starts,
start the platform and the peers, set up the scenarios' data, run interleaved wrk
rounds, profile where an aim was missed, write bench/RESULTS.md."""
import concurrent.futures
import datetime
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time

from . import config, peers, rpc, scale, scenarios, sizes
from .config import (AIM_CEILING, AIM_CHECKOUTS, AIM_EXPRESS, BENCH, COLD_RUNS, DURATION,
                     IDLE_SETTLE_S, PER_SERVICE, PHASES, QUICK,
                     QUICK_RESULTS, QUICK_SCENARIOS, RESULTS, ROOT, ROUNDS, SERVICES, WARMUP,
                     WARMUP_AT_ONCE, WRK, log)
from .measurement import (TICKS, RssSampler, cpu_ticks, group_rss_kb, loadavg, machine,
                          mem_detail_kb, profile, profile_each, rss_kb, run_at_once, wait_idle,
                          wrk)
from .net import http
from .procs import CLEAN, install
from .report import fmt_ms, write_results
from .stack import Platform, built_services, snapshot_bins


def cold_starts(ctx, tmp, admin):
    """Start the whole platform COLD_RUNS times on a fresh SOUK_VAR, timed to all-ready."""
    cold = []
    for i in range(COLD_RUNS):
        p = Platform(os.path.join(tmp, "cold%d" % i), admin)
        try:
            secs = p.up()
            if secs is None:
                ctx["cold_error"] = "not every service got ready: %s" % p.failed
            else:
                cold.append(secs)
                ctx["cold_mode"], ctx["cold_line"] = p.mode, p.souk_line
        except Exception as e:
            ctx["cold_error"] = str(e)
        finally:
            p.down()
            CLEAN.actions = [a for a in CLEAN.actions if a != p.down]
        if "cold_error" in ctx:
            break
    ctx["cold"] = cold
    log("cold start: %s" % ", ".join("%.2fs" % x for x in cold))


def start_express(ctx, tmp, plat, express_err):
    """(process or None, port or None, why not or None) of the Express peer."""
    if express_err is not None:
        return None, None, express_err
    try:
        express, port = peers.start_express(tmp, os.path.join(plat.var, "db", "catalog.db"))
        ctx["express_ver"], ctx["bsql_ver"] = peers.express_versions()
        return express, port, None
    except Exception as e:
        return None, None, str(e)


def why_missing(ctx, plat, svc):
    return plat.failed.get(svc) and "%s: %s" % (svc, plat.failed[svc]) or \
        ctx["skipped"].get(svc) or "build/bin/%s does not exist yet" % svc


def user_token(ctx, plat, tag):
    """(a user's token through the gateway, or None; why not, or None)."""
    if "gateway" not in plat.ports or "users" not in plat.ports:
        return None, why_missing(ctx, plat, "gateway" if "gateway" not in plat.ports else "users")
    return scenarios.register_and_login(plat.url("gateway"), tag, 9999)


def journey_data(ctx, plat, tag, products, admin, path):
    """Write the journey's data file; None, or why the journey cannot run."""
    needed = [s for s in ("gateway", "users", "cart", "orders", "payments") if s not in plat.ports]
    if needed:
        return "; ".join(why_missing(ctx, plat, x) for x in needed)
    try:
        data = scenarios.prepare_journey(plat.url("gateway"), tag, products, admin)
        scenarios.write_lua(path, data)
        ctx["journey_users"] = data["users"]
    except Exception as e:
        return str(e)
    return None


def idle_cpu(ctx, plat, seconds=5):
    """Each service's CPU per second at rest (probes, long polls, timers), taken off its
    per-route CPU: at 1 ms/s it would otherwise add ~0.3 µs to a request at 3,000 req/s
    but several µs to a checkout."""
    pids = dict(plat.pids)
    wait_idle(list(pids.values()))
    c0 = {n: cpu_ticks(p) for n, p in pids.items()}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    ctx["idle_cpu"] = {n: (cpu_ticks(p) - c0[n]) / TICKS / wall for n, p in pids.items()}
    log("idle CPU ms/s: %s" % {n: round(v * 1e3, 2) for n, v in ctx["idle_cpu"].items()})


def settle(pids):
    """Wait for the processes to go quiet, then IDLE_SETTLE_S more: idle, as a user
    leaving the platform alone would find it."""
    wait_idle(list(pids))
    time.sleep(IDLE_SETTLE_S)


def fresh_memory(ctx, plat):
    """Each service's memory, freshly started (seeded, no request yet but the probes)."""
    settle(plat.pids.values())
    ctx["mem_fresh"] = {name: mem_detail_kb(pid) for name, pid in plat.pids.items()}


def idle_memory(ctx, watched, plat):
    """Idle after the setup's work (the ids fetched, users registered, a checkout)."""
    settle(plat.pids.values())
    ctx["rss_idle"] = {name: group_rss_kb(pid) if "(" in name else rss_kb(pid)
                       for name, pid in watched.items()}
    ctx["mem_idle"] = {name: mem_detail_kb(pid) for name, pid in watched.items() if "(" not in name}
    for s in SERVICES:
        if s not in watched:
            ctx["rss_idle"][s] = None
    log("idle RSS (kB): %s" % ctx["rss_idle"])
    tot = lambda m, k: sum((m.get(s) or {}).get(k) or 0 for s in plat.pids) / 1024
    log("platform Pss fresh %.1f MB (private %.1f), idle after work %.1f MB (private %.1f)" % (
        tot(ctx.get("mem_fresh", {}), "pss"), tot(ctx.get("mem_fresh", {}), "private"),
        tot(ctx["mem_idle"], "pss"), tot(ctx["mem_idle"], "private")))


def measure_once(ctx, s, pids, plat, watched, wrk_log):
    """One wrk run of one scenario, with the CPU of its serving processes."""
    c0 = sum(cpu_ticks(p) for p in pids)
    per0 = {n: cpu_ticks(p) for n, p in plat.pids.items()} if s.key in PER_SERVICE else None
    t0 = time.monotonic()
    with RssSampler({k: v for k, v in watched.items()}) as sampler:
        r = wrk(WRK, s.url, s.script, s.args, wrk_log)
    wall = time.monotonic() - t0
    c1 = sum(cpu_ticks(p) for p in pids)
    if pids and r["requests"]:
        r["cpu_us"] = (c1 - c0) * 1e6 / TICKS / r["requests"]
    n_done = r.get("checkouts") if s.key == "journey" else r["requests"]
    if per0 is not None and n_done:
        # each service's CPU (less its idle rate) per confirmed checkout, or per
        # request of a route alone
        idle = ctx.get("idle_cpu", {})
        for n, p in plat.pids.items():
            us = ((cpu_ticks(p) - per0[n]) / TICKS - idle.get(n, 0.0) * wall) * 1e6 / n_done
            ctx["route_cpu"].setdefault(s.key, {}).setdefault(n, []).append(max(0.0, us))
            if s.key == "journey":
                ctx["journey_cpu"].setdefault(n, []).append(max(0.0, us))
    for k, v in sampler.peak.items():
        ctx["rss_peak"][k] = max(ctx["rss_peak"].get(k, 0), v)
    return r


def warm_ups(live):
    """1 s of load on each scenario but the journey (it warms up in its first round):
    caches, prepared statements, pools, threads. WARMUP_AT_ONCE side by side (nothing is
    measured: each still gets thousands of requests, where a cache needs one), so no
    server gets more than a few scenarios' connections at a time."""
    todo = [s for s in live if s.key != "journey"]
    for i in range(0, len(todo), WARMUP_AT_ONCE):
        run_at_once([WARMUP + ["-s", os.path.join(BENCH, s.script), s.url, "--"] + s.args
                     for s in todo[i:i + WARMUP_AT_ONCE]])


def run_rounds(ctx, live, serving, plat, watched, wrk_log):
    with PHASES("warm-ups (1 s, %d scenarios side by side)" % WARMUP_AT_ONCE):
        warm_ups(live)
    with PHASES("rounds: %d round(s) × %d scenarios × %s" % (ROUNDS, len(live), DURATION)):
        rounds(ctx, live, serving, plat, watched, wrk_log)


def rounds(ctx, live, serving, plat, watched, wrk_log):
    for rnd in range(ROUNDS):
        for s in live:
            pids = [p for p in serving.get(s.key, []) if p]
            r = measure_once(ctx, s, pids, plat, watched, wrk_log)
            s.runs.append(r)
            if s.key == "route_cart":   # the journey starts from empty carts
                scenarios.empty_carts(plat.url("gateway"), ctx.get("journey_users", []))
            log("round %d %-12s %s req/s p50 %s p99 %s cpu %s µs/req%s" % (
                rnd + 1, s.key, "{:,.0f}".format(r["rps"] or 0), fmt_ms(r["p50"]), fmt_ms(r["p99"]),
                "%.0f" % r["cpu_us"] if r.get("cpu_us") else "–",
                (" non-2xx %d" % r["non2xx"]) if r["non2xx"] else ""))


def profile_missed(ctx, plat, tmp, ids_file, token, journey_file, tag, pool):
    """Profile the serving process of each aim this run missed. The recordings are made
    now; `perf report` of each is left to pool (ctx["profiles"] holds futures until
    finish_profiles)."""
    S = ctx["scenarios"]
    catalog = plat.url("catalog")
    gw = plat.url("gateway") if "gateway" in plat.ports else ""
    direct, ceiling = S["catalog"].median("rps"), S["ceiling"].median("rps")
    express_ok = (not S["express"].why_not and direct and S["express"].median("rps")
                  and direct / S["express"].median("rps") >= AIM_EXPRESS)
    if (direct and ceiling and direct / ceiling < AIM_CEILING) or (not S["express"].why_not and not express_ok):
        ctx["profiles"]["catalog GET /products/{id}"] = profile(
            plat.pids.get("catalog"), "catalog", catalog, "product.lua", [ids_file], tmp, pool)
    eq = S["express_q"].median("rps")
    if not S["express_q"].why_not and eq and (S["catalog_q"].median("rps") or 0) < AIM_EXPRESS * eq:
        ctx["profiles"]["catalog GET /products?q=coffee"] = profile(
            plat.pids.get("catalog"), "catalog-q", catalog, "path.lua", [scenarios.Q], tmp, pool)
    if not S["gateway"].why_not and S["gateway"].median("rps") and S["nginx_proxy"].median("rps") \
            and S["gateway"].median("rps") < S["nginx_proxy"].median("rps"):
        ctx["profiles"]["gateway"] = profile(plat.pids.get("gateway"), "gateway", gw, "product.lua",
                                             [ids_file, token], tmp, pool)
    j = S["journey"]
    if not j.why_not and (j.median("cps") or 0) < AIM_CHECKOUTS and ctx["journey_cpu"]:
        top = sorted(ctx["journey_cpu"], key=lambda n: -statistics.median(ctx["journey_cpu"][n]))
        # the two under one journey load, each by its own perf record
        top = top[:2]
        got = profile_each([(plat.pids.get(name), name + "-journey") for name in top], gw,
                           "journey.lua", [journey_file, tag + "p"], tmp, pool)
        for name, f in zip(top, got):
            ctx["profiles"]["%s during the journey" % name] = f


class Later:
    """An executor's submit() that holds the jobs until release(): the `perf report`s
    start once every recording is done, not beside the next one."""

    def __init__(self, pool):
        self.pool, self.jobs = pool, []

    def submit(self, fn, *args):
        f = concurrent.futures.Future()
        self.jobs.append((f, fn, args))
        return f

    def release(self):
        def run(f, fn, args):
            try:
                f.set_result(fn(*args))
            except Exception as e:
                f.set_exception(e)
        for f, fn, args in self.jobs:
            self.pool.submit(run, f, fn, args)
        self.jobs = []


def finish_profiles(ctx, pool, started):
    """Wait for the `perf report`s left to pool; ctx["profiles"] as the report wants it.
    Once: a second call does nothing."""
    if ctx.get("profiles_done"):
        return
    ctx["profiles_done"] = True
    pool.shutdown(wait=True)
    if started is not None and ctx["profiles"]:
        PHASES.add("profiles: perf report", time.monotonic() - started, background=True)
    ctx["profiles"] = {k: (f.result() if hasattr(f, "result") else f)
                       for k, f in ctx["profiles"].items()}


def main():
    install()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit("bench: %s is not installed (run scripts/setup bench)" % tool)
    if not os.access(os.path.join(config.BIN, "catalog"), os.X_OK):
        sys.exit("bench: %s/catalog is missing (run make)" % config.BIN)
    tmp = tempfile.mkdtemp(prefix="souk-bench-")
    CLEAN.actions.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    # a snapshot of the binaries: a rebuild during the run cannot mix versions or
    # confuse perf's symbols
    with PHASES("binaries snapshot"):
        config.BIN, skipped = snapshot_bins(config.BIN, os.path.join(tmp, "bin"))
    wrk_log = os.path.join(tmp, "wrk.log")
    tag = secrets.token_hex(4)
    admin = ("admin-%s@bench.local" % tag, "bench-admin-" + secrets.token_hex(8))
    ctx = {"machine": machine(), "date": datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC"), "profiles": {}, "rss_peak": {}, "load_before": loadavg(),
           "journey_cpu": {}, "route_cpu": {}, "size_seed_secs": {}, "size_rss_kb": {}, "size_db_mb": {}}
    only = [k for k in os.environ.get("BENCH_ONLY", "").split(",") if k] or \
        (QUICK_SCENARIOS if QUICK else [])
    log("temp dir %s; services built: %s" % (tmp, ", ".join(built_services())))
    ctx["missing"] = [s for s in SERVICES if s not in built_services()]
    ctx["skipped"] = skipped

    if only and not any(k.startswith("express") for k in only):
        express_err = "left out by %s" % ("QUICK=1" if QUICK else "BENCH_ONLY")
    else:
        with PHASES("Express peer: npm (cached after the first run)"):
            express_err = peers.prepare_express(tmp) if shutil.which("node") else "node is not installed"
    with PHASES("cold starts (%d, up and down)" % COLD_RUNS):
        cold_starts(ctx, tmp, admin)

    # the platform under load: seeded, then started
    with PHASES("platform: seed, up"):
        plat = Platform(os.path.join(tmp, "var"), admin)
        plat.seed()
        plat.up()
    ctx["platform_mode"], ctx["port_base"] = plat.mode, plat.base
    log("platform up (%s) on base port %d: %s" % (plat.mode, plat.base, plat.pids))
    with PHASES("memory, freshly started (quiet + %.1f s)" % IDLE_SETTLE_S):
        fresh_memory(ctx, plat)
    setup_t = time.monotonic()
    catalog = plat.url("catalog")
    products = scenarios.fetch_products(catalog)
    ids_file = os.path.join(tmp, "ids.lua")
    scenarios.write_lua(ids_file, [p["id"] for p in products])
    st, sample = http("GET", catalog + "/api/v1/products/" + products[0]["id"])
    ctx["body_len"] = len(json.dumps(sample, separators=(",", ":")).encode())
    log("%d products, a product is about %d bytes" % (len(products), ctx["body_len"]))

    with PHASES("peers: nginx, Express"):
        nginx, ceiling_port, proxy_port = peers.start_nginx(tmp, plat.ports["catalog"], ctx["body_len"])
        express, express_port, express_err = start_express(ctx, tmp, plat, express_err)
    ctx["failed"] = plat.failed
    token, gw_err = user_token(ctx, plat, tag)
    journey_file = os.path.join(tmp, "journey-data.lua")
    journey_err = journey_data(ctx, plat, tag, products, admin, journey_file)
    PHASES.add("setup: product ids, a token, %d journey users" % config.JOURNEY_USERS,
               time.monotonic() - setup_t)

    u = lambda port: "http://127.0.0.1:%d" % port
    gw = plat.url("gateway") if "gateway" in plat.ports else ""
    sc = scenarios.build(catalog, gw, u(ceiling_port), u(proxy_port),
                         u(express_port) if express else "", ids_file, token, gw_err,
                         express_err, journey_file, journey_err, tag)
    ctx["scenarios"] = {s.key: s for s in sc}
    for s in sc:   # BENCH_ONLY=catalog,journey: a subset, while working on one thing
        if only and s.key not in only and not s.why_not:
            s.why_not = "left out by %s" % ("QUICK=1" if QUICK else "BENCH_ONLY")
    live = [s for s in sc if not s.why_not]

    watched = dict(plat.pids)
    watched["nginx (master + workers)"] = nginx.pid
    if express:
        watched["express (node)"] = express.pid
    with PHASES("memory, idle after the setup (quiet + %.1f s)" % IDLE_SETTLE_S):
        idle_memory(ctx, watched, plat)
    serving = scenarios.serving_pids(plat.pids, nginx.pid, express.pid if express else None)
    if any(s.key in PER_SERVICE for s in live):
        with PHASES("idle CPU (5 s)"):
            idle_cpu(ctx, plat)
    run_rounds(ctx, live, serving, plat, watched, wrk_log)
    # perf report reads the recordings back while the size axis sets up (nothing is
    # measured then); it is done before the axis's first round
    reports = concurrent.futures.ThreadPoolExecutor(2)
    reports_t = None
    if not QUICK:
        with PHASES("profiles: perf record (%d s of load each)" % (config.PROFILE_SECONDS - 1)):
            later = Later(reports)
            profile_missed(ctx, plat, tmp, ids_file, token, journey_file, tag, later)
        reports_t = time.monotonic()
        later.release()
    joined = lambda: finish_profiles(ctx, reports, reports_t)
    if not only or "sizes" in only:
        try:
            sizes.run(ctx, tmp, wrk_log, before_rounds=joined)
        except Exception as e:   # report what was measured, and why the rest was not
            ctx["size_error"] = str(e)
            log("catalog-size axis: %s" % e)
    joined()   # a no-op when the axis did it
    if not only or "rpc" in only:   # gRPC vs REST between services: two platforms of its own
        try:
            ctx["rpc"] = rpc.measure(tmp, admin)
        except Exception as e:
            ctx["rpc_error"] = str(e)
            log("internal calls gRPC vs REST: %s" % e)
    if not only or "scale" in only:   # the journey in the scale-out mode beside the local one
        try:
            ctx["scale"] = scale.measure(tmp, admin, wrk_log)
        except Exception as e:
            ctx["scale_error"] = str(e)
            log("the scale-out journey: %s" % e)
    out = QUICK_RESULTS if QUICK else RESULTS
    os.makedirs(os.path.dirname(out), exist_ok=True)
    ctx["phases"] = PHASES
    t = time.monotonic()
    write_results(ctx, out)   # the write itself is in the total, not in the line
    PHASES.add("RESULTS written", time.monotonic() - t)
    log("wrote %s" % os.path.relpath(out, ROOT))
    log("wall time by phase:")
    for line in PHASES.lines():
        print("    " + line, flush=True)
