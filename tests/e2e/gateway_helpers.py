"""Helpers for the gateway's black-box tests: an echo upstream that reports what it
received (to see exactly which headers the gateway forwards), the gateway started
against given upstreams, and raw HTTP for paths a client library would normalise."""
import json
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import REPO, UPSTREAMS, Service, free_port


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/readyz":
            out, status = b'{"status":"ready"}', 200
        else:
            status = self.server.status
            out = json.dumps({
                "method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"), "who": self.server.name,
            }).encode()
        self.server.hits += self.path != "/readyz"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("ETag", '"echo-1"')
        self.send_header("X-Souk-Internal", "secret")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

    def log_message(self, *args):
        pass


class UpstreamServer(ThreadingHTTPServer):
    """A threading HTTP server whose stop() is an upstream's death: the listener and
    every open connection closed (shutdown() alone leaves the handler threads serving
    the kept-alive connections a gateway pools, so the upstream would still answer)."""
    daemon_threads = True

    def __init__(self, addr, handler):
        self.conns, self.conns_lock = set(), threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def stop(self):
        self.shutdown()
        self.server_close()
        with self.conns_lock:
            for c in list(self.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Echo:
    """An upstream on a free port answering every request with what it saw."""

    def __init__(self, name="echo", status=200):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = UpstreamServer(("127.0.0.1", self.port), EchoHandler)
        self.server.name, self.server.status, self.server.hits = name, status, 0
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self):
        return self.server.hits

    def close(self):
        self.server.stop()


def wait_until(cond, timeout, what):
    """Poll cond until it holds; fail naming what was awaited after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def web_copy(tmp_path):
    """A copy of web/ under tmp_path, with a secret file beside it (outside the root)."""
    web = tmp_path / "web"
    shutil.copytree(os.path.join(REPO, "web"), web)
    (tmp_path / "secret.txt").write_text("TOP-SECRET-OUTSIDE-WEB\n")
    return web


def gateway(tmp_path, upstreams, wait=True, **env):
    """Start the gateway with SOUK_<NAME>_URL for each upstream (name → url or list);
    services not given point at a closed port; its admin listener (/metrics) on a free
    port, gw.admin_url, unless env says otherwise. Returns the Service (caller kills it)."""
    dead = f"http://127.0.0.1:{free_port()}"
    e = {f"SOUK_{n.upper()}_URL": dead for n in UPSTREAMS}
    for name, url in upstreams.items():
        e[f"SOUK_{name.upper()}_URL"] = ",".join(url) if isinstance(url, (list, tuple)) else url
    e["SOUK_WEB_DIR"] = str(web_copy(tmp_path))
    e["SOUK_ADMIN_LISTEN"] = f"127.0.0.1:{free_port()}"
    e["SOUK_UPSTREAM_READY_WAIT_MS"] = "0"   # ready at once, though most upstreams are dead
    e.update({k: str(v) for k, v in env.items()})
    gw = Service("gateway", tmp_path, e)
    return gw.start(wait=wait)


def raw_get(port, target, headers=""):
    """GET with the request target sent byte for byte; returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
