"""measurement: what a run reads off the machine. wrk's output, the CPU time and
memory of the serving processes (/proc), perf profiles, and the machine itself."""
import concurrent.futures
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time

from .config import BENCH, CONNECTIONS, PROFILE_SECONDS, ROOT
from .procs import CLEAN

# ---- memory and CPU of processes ----


def rss_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def mem_detail_kb(pid):
    """VmRSS, RssAnon (anonymous: heap, stacks, and library pages written to), Pss (its
    share of everything) and private (pages no other process maps: what the process
    costs whoever else runs on the machine, unlike Pss)."""
    out = {"rss": rss_kb(pid), "anon": rss_kb(pid, "RssAnon"), "pss": None, "private": None}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
                elif line.startswith(("Private_Clean:", "Private_Dirty:")):
                    out["private"] = (out["private"] or 0) + int(line.split()[1])
    except OSError:
        pass
    return out


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """user + system CPU ticks of a process tree (all threads, workers included)."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_idle(pids, quiet=0.06, timeout=10.0):
    """Wait until the processes have used no CPU for `quiet` seconds (or timeout): after
    wrk stops, a server can still be working through the requests it had queued, and
    that work must not be counted against (or compete with) the next measurement."""
    deadline = time.monotonic() + timeout
    total = lambda: sum(cpu_ticks(p) for p in pids)
    last, since = total(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = total()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def tree_pids(pid):
    """pid and its descendants (nginx workers, node's helpers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def group_rss_kb(pid):
    vals = [rss_kb(p) for p in tree_pids(pid)]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


class RssSampler:
    """Samples the RSS of named processes while a load runs; keeps the maximum."""

    def __init__(self, procs):
        self.procs = procs          # name -> pid
        self.peak = {}
        self._stop = threading.Event()
        self._t = None

    def __enter__(self):
        self._stop.clear()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()
        return self

    def _loop(self):
        while not self._stop.wait(0.25):
            for name, pid in self.procs.items():
                v = group_rss_kb(pid)
                if v is not None and v > self.peak.get(name, 0):
                    self.peak[name] = v

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


# ---- wrk ----

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "errors": 0, "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"JOURNEY checkouts=(\d+) rejected=(\d+) other=(\d+) duration_us=(\d+)", out)
    if m:
        c, rej, oth, us = (int(x) for x in m.groups())
        r.update(checkouts=c, rejected=rej, pending=oth, cps=c / (us / 1e6) if us else 0.0)
    m = re.search(r"JOURNEY-BAD (.*)", out)
    if m and m.group(1).strip():
        r["bad_detail"] = m.group(1).strip()
    return r


def run_at_once(cmds, timeout=60):
    """Start every command at once (output discarded: warm-ups, nothing measured) and
    wait for all of them; one still running after timeout seconds is killed."""
    ps = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
          for c in cmds]
    for p in ps:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wrk(base_args, url, script, args, log_to):
    cmd = base_args + ["-s", os.path.join(BENCH, script), url, "--"] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    with open(log_to, "a") as f:
        f.write("$ %s\n%s%s\n" % (" ".join(cmd), r.stdout, r.stderr))
    return parse_wrk(r.stdout)


# ---- profiling ----

def profile(pid, name, url, script, args, tmp, pool=None):
    """perf record -g on one process under a short load: the top symbols, or a reason.
    With pool (an executor), the recording is done at once and `perf report` (reading
    the samples back, no measuring) is submitted to it: then a future of that pair."""
    return profile_each([(pid, name)], url, script, args, tmp, pool)[0]


def profile_each(targets, url, script, args, tmp, pool=None):
    """profile() of each (pid, name) of targets, all recorded under the same load (one
    perf record per process): a list in the order of targets."""
    out = []
    for data, err in profile_record(targets, url, script, args, tmp):
        if err is not None:
            result = (None, err)
        elif pool is not None:
            out.append(pool.submit(perf_report, data))
            continue
        else:
            result = perf_report(data)
        if pool is not None:
            f = concurrent.futures.Future()
            f.set_result(result)
            result = f
        out.append(result)
    return out


def profile_record(targets, url, script, args, tmp):
    """[(perf data file, None) or (None, why not)] of each (pid, name) of targets under
    one short load."""
    if shutil.which("perf") is None:
        return [(None, "perf is not installed")] * len(targets)
    recs = []
    for pid, name in targets:
        data = os.path.join(tmp, "perf-%s.data" % name)
        rec = subprocess.Popen(["perf", "record", "-F", "999", "--call-graph", "dwarf,16384", "-o",
                                data, "-p", str(pid), "--",
                                "sleep", str(PROFILE_SECONDS)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        CLEAN.procs.append(rec)
        recs.append((rec, data))
    time.sleep(0.3)
    cmd = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d%ds" % (PROFILE_SECONDS - 1), "-s",
           os.path.join(BENCH, script), url, "--"] + args
    subprocess.run(cmd, capture_output=True, timeout=60)
    for rec, _ in recs:   # the load is over: what is left of the sleep records an idle process
        try:
            os.kill(rec.pid, signal.SIGINT)   # perf's Ctrl-C: it writes the data and ends
        except ProcessLookupError:
            pass
    out = []
    for rec, data in recs:
        _, err = rec.communicate(timeout=60)
        CLEAN.procs.remove(rec)
        # stopped by SIGINT, perf record ends its workload (the sleep) by SIGTERM and then
        # itself by that signal, once the data is written: its own line says it was
        written = "Captured and wrote" in err and os.path.exists(data) and os.path.getsize(data) > 0
        if rec.returncode != 0 and not written:
            out.append((None, "perf record failed: %s" % err.strip()[-200:]))
        else:
            out.append((data, None))
    return out


def perf_report(data):
    """(the top user-space symbols of a perf data file, None)."""
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "-g", "none",
                          "--percent-limit", "1.5", "--sort", "sym"],
                         capture_output=True, text=True, timeout=300)
    # user-space frames with names; the kernel's TCP path shows up under sendmsg/recv
    lines = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")
             and "[k]" not in l and not re.search(r"\] 0x[0-9a-f]+\s*$", l)]
    head = ["children   self  symbol"]
    return head + lines[:40], None


# ---- the machine ----

def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "os": ver(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "wrk": ver(["wrk", "-v"]), "nginx": ver(["nginx", "-v"]), "node": ver(["node", "--version"]),
        "commit": ver(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
    }
