"""procs: every process a run starts is recorded and stopped on exit, normal or not
(SIGINT/SIGTERM/SIGHUP), by PID, each in its own process group; cleanup actions
(souk down, removing the temp dir) run last-in first-out."""
import atexit
import os
import signal
import subprocess
import sys

from .config import log


class Cleanup:
    def __init__(self):
        self.procs = []      # Popen objects, each in its own session (process group)
        self.actions = []    # callables, run last-in first-out

    def spawn(self, argv, env=None, out=None, cwd=None):
        f = open(out, "ab") if out else subprocess.DEVNULL
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
        if out:
            f.close()
        self.procs.append(p)
        return p

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def run(self):
        while self.actions:
            try:
                self.actions.pop()()
            except Exception as e:   # keep cleaning up whatever one step did
                log("cleanup: %s" % e)
        for p in list(self.procs):
            self.stop(p)


CLEAN = Cleanup()


def on_signal(signum, frame):
    log("signal %d: cleaning up" % signum)
    sys.exit(128 + signum)


def install():
    """Clean up at exit and on the signals that end a run."""
    atexit.register(CLEAN.run)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
