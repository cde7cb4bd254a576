"""config: paths, environment knobs, fixed settings and aims of a benchmark run.

BIN is reassigned once at start (main points it at a snapshot of the binaries), so
other modules read it as config.BIN at call time, never import the name.
"""
import contextlib
import os
import sys
import threading
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
BUILD = os.path.abspath(os.environ.get("SOUK_BUILD_DIR", os.path.join(ROOT, "build")))
BIN = os.path.join(BUILD, "bin")   # copied to a temp dir at start: others may rebuild meanwhile
EXPRESS_DIR = os.path.join(BENCH, "peers", "express")
RESULTS = os.path.join(BENCH, "RESULTS.md")
QUICK_RESULTS = os.path.join(BUILD, "bench", "RESULTS-quick.md")
NOTES = os.path.join(BENCH, "profile-notes.md")   # hand-written analysis, embedded as is

# `make bench QUICK=1`: a two-minute subset for iterating (one round, fewer scenarios,
# no Express, no profiles, the 1.2k and 100k catalogs); it reports to build/bench/.
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "3"))
DURATION = os.environ.get("BENCH_DURATION", "3s" if QUICK else "5s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
WRK = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d" + DURATION, "--latency"]
WARMUP = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d1s"]
WARMUP_AT_ONCE = int(os.environ.get("BENCH_WARMUP_AT_ONCE", "3"))   # warm-ups side by side
QUICK_SCENARIOS = ["ceiling", "catalog", "gateway", "nginx_proxy", "catalog_q", "catalog_cat",
                   "route_browse", "route_cart", "journey", "sizes"]
# scenarios whose CPU is also counted per service (the per-route table of the journey)
PER_SERVICE = ("route_browse", "route_cart", "journey")

# The catalog-size axis (souk_bench/sizes.py): catalogs of these sizes, every list page
# against each, SIZE_ROUNDS interleaved rounds of SIZE_DURATION.
SIZES = [int(x) for x in os.environ.get(
    "BENCH_SIZES", "1200,100000" if QUICK else "1200,100000,1000000").split(",") if x]
SIZE_ROUNDS = int(os.environ.get("BENCH_SIZE_ROUNDS", "1" if QUICK else "3"))
SIZE_DURATION = os.environ.get("BENCH_SIZE_DURATION", "2s")
SIZE_WRK = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d" + SIZE_DURATION, "--latency"]
SIZE_WARMUP = ["wrk", "-t1", "-c8", "-d1s"]

# the supervisor's start order and port index (services.txt, cli/README.md)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import services_table  # noqa: E402
SERVICES = services_table.NAMES
PORT_INDEX = services_table.OFFSET
DEFAULT_PORTS = set(services_table.PORT.values())   # never used here
GATEWAY_OVERRIDES = {"SOUK_RATE_IP_RPS": "0", "SOUK_RATE_USER_RPS": "0", "SOUK_RATE_TOKEN_RPS": "0",
                     "SOUK_RATE_SIGNUP_PER_HOUR": "0",   # it registers JOURNEY_USERS from one address
                     "SOUK_MAX_CONNECTIONS_PER_IP": "0"}   # BENCH_CONNECTIONS may exceed 128
READY_TIMEOUT = 30.0
COLD_RUNS = 1 if QUICK else 3
JOURNEY_USERS = 64                  # see bench/journey.lua for why 64
CART_PRODUCTS = 20
PROFILE_SECONDS = 4                 # perf attaches, then PROFILE_SECONDS - 1 of wrk load
TEST_CARD = "4242424242424242"

# Aims (DESIGN issue 8): reported, never asserted.
AIM_CEILING = 0.6
AIM_EXPRESS = 8.0
AIM_IDLE_RSS_KB = 6 * 1024
AIM_PLATFORM_PSS_KB = 32 * 1024   # issue 17: the seven services idle, gRPC in every one
# Idle memory is read this long after the platform's last CPU use: the kit gives freed
# heap back after SOUK_MEMORY_TRIM_MS (2 s) of quiet, looking once a second.
IDLE_SETTLE_S = 3.5
AIM_COLD_S = 1.0
AIM_CHECKOUTS = 1000.0

T0 = time.time()


def log(msg):
    print("bench [%5.1fs] %s" % (time.time() - T0, msg), flush=True)


class Phases:
    """The wall time of each phase of a run, printed at the end and in RESULTS.md's
    header. A phase that ran in a background thread beside others is marked, so that
    nobody adds it to the total (the total is the wall clock from the start)."""

    def __init__(self):
        self.done = []   # (name, seconds, background)
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, name, background=False):
        t = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - t, background)

    def add(self, name, secs, background=False):
        with self.lock:
            self.done.append((name, secs, background))

    def total(self):
        return time.time() - T0

    def lines(self):
        """'name  12.3 s' lines, then the total."""
        out = ["%-48s %6.1f s%s" % (n, s, "  (in the background, beside the others)" if b else "")
               for n, s, b in self.done]
        out.append("%-48s %6.1f s" % ("total (wall clock)", self.total()))
        return out

    def inline(self):
        """One line for the report: 'name 12 s; …'."""
        return "; ".join("%s %.0f s%s" % (n, s, " (background)" if b else "")
                         for n, s, b in self.done)


PHASES = Phases()
