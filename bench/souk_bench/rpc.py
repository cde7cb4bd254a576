"""rpc: the checkout's internal calls over gRPC beside the same calls over REST
(issue 15). Two platforms side by side, one with `SOUK_RPC=grpc` (souk up's default)
and one with `SOUK_RPC=rest`, each with the same users, cards, addresses and stock;
interleaved rounds of checkouts (a cart put, then POST /api/v1/orders, which runs the
saga to confirmed) from THREADS client threads. Per mode: checkouts/s, p50/p99 of the
checkout, CPU per checkout of each service, the internal calls each checkout made and
the server's time per internal call (grpc_server_handling_seconds against
http_request_duration_seconds of the REST twins); and each service's idle Pss.
Alone: `python3 -m souk_bench.rpc` from bench/ (markdown on stdout)."""
import concurrent.futures
import json
import os
import secrets
import statistics
import threading
import time

from . import scenarios
from .config import PHASES, SERVICES, log
from .measurement import TICKS, cpu_ticks, mem_detail_kb, wait_idle
from .net import http
from .stack import Platform

MODES = ("grpc", "rest")
ROUNDS = int(os.environ.get("BENCH_RPC_ROUNDS", "3"))
CHECKOUTS = int(os.environ.get("BENCH_RPC_CHECKOUTS", "120"))   # per round and mode
THREADS = int(os.environ.get("BENCH_RPC_THREADS", "4"))
USERS = 2 * THREADS   # a user's next cart put waits for its order.confirmed event to land
PEERS = ("users", "catalog", "cart", "payments")

# The internal calls (peer, gRPC service, method; the REST route callers use instead).
CALLS = [
    ("cart", "souk.cart.v1.Carts", "GetCart", "GET", "/internal/v1/carts/{user_id}"),
    ("users", "souk.users.v1.Users", "GetAddress", "GET", "/internal/v1/users/{id}/addresses/{address_id}"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "GetProducts", "GET", "/api/v1/products/{id}"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "Reserve", "POST", "/internal/v1/reservations"),
    ("catalog", "souk.catalog.v1.CatalogInternal", "CommitReservation", "POST",
     "/internal/v1/reservations/{id}/commit"),
    ("payments", "souk.payments.v1.Payments", "AuthorizePayment", "POST", "/internal/v1/payments"),
    ("payments", "souk.payments.v1.Payments", "CapturePayment", "POST", "/internal/v1/payments/{id}/capture"),
]


def series(text, name, **labels):
    """The sum of a metric's series carrying these labels."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            s, v = line.rsplit(" ", 1)
            if all('%s="%s"' % kv in s for kv in labels.items()):
                total += float(v)
    return total


def call_stats(plat, mode):
    """{method: (calls, server seconds)} of the internal calls, read off the peers."""
    texts = {p: http("GET", plat.url(p) + "/metrics")[1] for p in PEERS}
    out = {}
    for peer, service, method, verb, route in CALLS:
        t = texts[peer] if isinstance(texts[peer], str) else ""
        if mode == "grpc":
            n = series(t, "grpc_server_handling_seconds_count", service=service, method=method)
            s = series(t, "grpc_server_handling_seconds_sum", service=service, method=method)
        else:
            n = series(t, "http_request_duration_seconds_count", route=route, method=verb)
            s = series(t, "http_request_duration_seconds_sum", route=route, method=verb)
        out[method] = (n, s)
    return out


class Side:
    """One platform and its shoppers."""

    def __init__(self, tmp, admin, mode):
        self.mode = mode
        self.plat = Platform(os.path.join(tmp, "rpc-" + mode), admin)
        self.plat.env["SOUK_RPC"] = mode
        self.runs = []      # (checkouts, seconds, [latencies], {svc: cpu µs per checkout})
        self.failures = 0

    def up(self, admin, tag):
        self.plat.seed()
        self.plat.up()
        missing = [s for s in SERVICES if s not in self.plat.pids]
        if missing:
            raise RuntimeError("%s platform: %s did not start" % (self.mode, ", ".join(missing)))
        gw = self.gw = self.plat.url("gateway")
        products = scenarios.fetch_products(self.plat.url("catalog"))
        by_stock = sorted(products, key=lambda p: -(p.get("stock_available") or 0))
        self.products = [p["id"] for p in by_stock[:8]]
        admin_token, err = scenarios.token_for(gw, admin[0], admin[1])
        if not admin_token:
            raise RuntimeError("admin token: %s" % err)
        for pid in self.products:
            http("PUT", gw + "/api/v1/products/%s/stock" % pid, {"on_hand": 1000000}, token=admin_token)
        self.users = scenarios.make_users(gw, tag + self.mode, USERS)
        scenarios.trial_checkout(gw, tag + self.mode, self.users[0], self.products[0])
        self.seq = 0

    def checkout(self, user, key):
        """A cart put and a checkout; its seconds, or None when it was not confirmed."""
        t = time.monotonic()
        pid = self.products[secrets.randbelow(len(self.products))]
        st, _ = http("PUT", self.gw + "/api/v1/cart/items/%s" % pid, {"quantity": 1}, token=user["token"])
        if st != 200:
            return None
        st, body = http("POST", self.gw + "/api/v1/orders", json.loads(user["checkout"]),
                        token=user["token"], headers={"Idempotency-Key": key}, timeout=30)
        if st != 201 or not isinstance(body, dict) or body.get("status") != "confirmed":
            return None
        return time.monotonic() - t

    def cart_empty(self, user):
        st, body = http("GET", self.gw + "/api/v1/cart", token=user["token"])
        return st == 200 and isinstance(body, dict) and not body.get("items")

    def round(self, n):
        pids = dict(self.plat.pids)
        wait_idle(list(pids.values()))
        c0 = {s: cpu_ticks(p) for s, p in pids.items()}
        lat, lock, left = [], threading.Lock(), [n]

        def worker(users):
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                    self.seq += 1
                    i, key = self.seq, "rpc-%s-%d" % (self.mode, self.seq)
                u = users[i % len(users)]
                # the confirmed order empties the cart by an event: wait for it, so
                # that a checkout never takes the previous one's line
                deadline = time.monotonic() + 10
                while not self.cart_empty(u) and time.monotonic() < deadline:
                    time.sleep(0.005)
                s = self.checkout(u, key)
                with lock:
                    if s is None:
                        self.failures += 1
                    else:
                        lat.append(s)

        per = [self.users[i::THREADS] for i in range(THREADS)]
        t = time.monotonic()
        threads = [threading.Thread(target=worker, args=(per[i],)) for i in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        secs = time.monotonic() - t
        wait_idle(list(pids.values()))
        cpu = {s: (cpu_ticks(p) - c0[s]) * 1e6 / TICKS / max(len(lat), 1) for s, p in pids.items()}
        self.runs.append((len(lat), secs, lat, cpu))
        log("rpc %-4s round: %d checkouts in %.1fs, p50 %.1f ms, CPU %.0f µs per checkout" % (
            self.mode, len(lat), secs, 1000 * statistics.median(lat) if lat else 0, sum(cpu.values())))


def measure(tmp, admin):
    """Both sides up, ROUNDS interleaved rounds; the results for section()."""
    tag = secrets.token_hex(3)
    sides = [Side(tmp, admin, m) for m in MODES]
    try:
        with PHASES("rpc: two platforms seeded, up, shoppers (side by side)"):
            # setup, nothing measured: both sides at once
            with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
                for f in [pool.submit(s.up, admin, tag) for s in sides]:
                    f.result()
            wait_idle([p for s in sides for p in s.plat.pids.values()])
        with PHASES("rpc: idle memory, %d rounds" % ROUNDS):
            idle = {s.mode: {svc: mem_detail_kb(pid) for svc, pid in s.plat.pids.items()} for s in sides}
            before = {s.mode: call_stats(s.plat, s.mode) for s in sides}
            for _ in range(ROUNDS):
                for s in sides:
                    s.round(CHECKOUTS)
            after = {s.mode: call_stats(s.plat, s.mode) for s in sides}
    finally:
        with PHASES("rpc: teardown"):   # side by side, as they came up
            with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:
                list(pool.map(lambda s: s.plat.down(), sides))
    out = {"rounds": ROUNDS, "checkouts": CHECKOUTS, "threads": THREADS, "idle": idle, "modes": {}}
    for s in sides:
        done = sum(r[0] for r in s.runs)
        calls = {m: (after[s.mode][m][0] - before[s.mode][m][0], after[s.mode][m][1] - before[s.mode][m][1])
                 for m in after[s.mode]}
        lat = sorted(x for r in s.runs for x in r[2])
        out["modes"][s.mode] = {
            "done": done, "failures": s.failures,
            "cps": statistics.median(r[0] / r[1] for r in s.runs if r[1] > 0),
            "p50": lat[len(lat) // 2] if lat else None,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
            "cpu": {svc: statistics.median(r[3][svc] for r in s.runs) for svc in s.runs[0][3]},
            "calls": calls}
    return out


def section(r):
    """RESULTS.md's section for measure()'s results."""
    L = ["## Internal calls: gRPC vs REST (the checkout)", ""]
    L.append("Two platforms side by side, `SOUK_RPC=grpc` (souk up's default) and `SOUK_RPC=rest`, "
             "%d interleaved rounds of %d checkouts each from %d client threads (a cart put, then "
             "`POST /api/v1/orders`, which runs the saga to confirmed; the cart put's product "
             "lookup is an internal call too). Medians of the rounds; CPU from /proc, every thread "
             "of each service (`bench/souk_bench/rpc.py`)." % (r["rounds"], r["checkouts"], r["threads"]))
    L.append("")
    g, s = r["modes"]["grpc"], r["modes"]["rest"]
    L += ["| | gRPC | REST |", "|---|---:|---:|",
          "| checkouts/s | %.1f | %.1f |" % (g["cps"], s["cps"]),
          "| checkout p50 / p99 (ms, cart put included) | %.1f / %.1f | %.1f / %.1f |" % (
              1000 * g["p50"], 1000 * g["p99"], 1000 * s["p50"], 1000 * s["p99"]),
          "| failed checkouts | %d | %d |" % (g["failures"], s["failures"])]
    for svc in sorted(g["cpu"], key=lambda x: -g["cpu"][x]):
        L.append("| CPU per checkout, %s (µs) | %.0f | %.0f |" % (svc, g["cpu"][svc], s["cpu"].get(svc, 0)))
    L.append("| CPU per checkout, all (µs) | %.0f | %.0f |" % (sum(g["cpu"].values()), sum(s["cpu"].values())))
    L += ["", "Server time per internal call (µs: the handler's time as the peer measured it — "
          "`grpc_server_handling_seconds` for gRPC, `http_request_duration_seconds` of the REST "
          "twin — sum over count; REST's product read also counts the page reads of the put):", "",
          "| call | gRPC calls per checkout | gRPC µs per call | REST calls per checkout | REST µs per call |",
          "|---|---:|---:|---:|---:|"]
    for _, _, method, _, _ in CALLS:
        gn, gs = g["calls"][method]
        sn, ss = s["calls"][method]
        L.append("| %s | %.2f | %s | %.2f | %s |" % (
            method, gn / max(g["done"], 1), "%.0f" % (1e6 * gs / gn) if gn else "–",
            sn / max(s["done"], 1), "%.0f" % (1e6 * ss / sn) if sn else "–"))
    L += ["", "Idle Pss per service (MiB), every service serving gRPC on its port in both "
          "(SOUK_RPC only picks what callers use):", "",
          "| service | gRPC Pss | REST Pss |", "|---|---:|---:|"]
    for svc in SERVICES:
        a, b = r["idle"]["grpc"].get(svc, {}), r["idle"]["rest"].get(svc, {})
        if a.get("pss") and b.get("pss"):
            L.append("| %s | %.1f | %.1f |" % (svc, a["pss"] / 1024, b["pss"] / 1024))
    L.append("")
    return L


def main():
    import tempfile
    import shutil
    from .procs import CLEAN, install
    install()
    tmp = tempfile.mkdtemp(prefix="souk-bench-rpc-")
    CLEAN.actions.insert(0, lambda: shutil.rmtree(tmp, ignore_errors=True))
    admin = ("admin-%s@bench.local" % secrets.token_hex(3), "bench-admin-" + secrets.token_hex(8))
    print("\n".join(section(measure(tmp, admin))))


if __name__ == "__main__":
    main()
