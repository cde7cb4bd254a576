"""net: free loopback ports (never 8080-8086) and one-shot HTTP requests (stdlib)."""
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from .config import DEFAULT_PORTS, READY_TIMEOUT

USED_PORTS = set()


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# The bench's ports: below the test suite's (20000-32700, tests/e2e/brokers.py), so a
# bench run beside the tests cannot take a port a test found free before its service
# binds it; below the kernel's ephemeral range (32768+) for the same reason.
PORTS_LO, PORTS_HI = 10000, 19900


def free_block(n, offsets=(0,)):
    """n consecutive free ports in the bench's range, never 8080-8086; with offsets,
    the block moved by each of them too (souk up's gRPC ports at + 1000, the gateway's
    admin and the services' probe listeners at + 1100)."""
    for _ in range(2000):
        base = random.randrange(PORTS_LO, PORTS_HI - n - max(offsets))
        block = [p + o for o in offsets for p in range(base, base + n)]
        if any(p in USED_PORTS or p in DEFAULT_PORTS for p in block):
            continue
        if all(port_free(p) for p in block):
            USED_PORTS.update(block)
            return base
    raise RuntimeError("no free port block")


def free_port():
    return free_block(1)


def http(method, url, body=None, token=None, form=False, headers=None, timeout=10):
    """(status, parsed JSON or raw text) for one request; never raises on HTTP errors."""
    h = dict(headers or {})
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def wait_ready(urls, timeout=READY_TIMEOUT):
    """Poll every URL until each answers 200; the seconds it took, or None."""
    t = time.monotonic()
    pending = set(urls)
    while pending and time.monotonic() - t < timeout:
        for u in list(pending):
            if http("GET", u, timeout=1)[0] == 200:
                pending.discard(u)
        if pending:
            time.sleep(0.01)
    return None if pending else time.monotonic() - t
