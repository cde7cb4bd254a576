"""Helpers for the events and notify black-box tests: a fake producer serving a
feed (and a token endpoint) the way a souk service does, an SMTP sink
(aiosmtpd writing a Maildir), the JSON Schemas of api/events/, and what the
broker transports' tests share (registering users, mails, rows, metrics)."""
import email
import email.policy
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone

import jsonschema
import requests

from conftest import REPO, feed_producer, free_port

SCHEMAS = os.path.join(REPO, "api", "events")
PASSWORD = "correct horse battery"


def schema_for(event_type):
    with open(os.path.join(SCHEMAS, event_type + ".json")) as f:
        return json.load(f)


def validate_event(envelope):
    """envelope is a souk CloudEvent and its data matches its type's schema."""
    t = envelope["type"]
    assert t.startswith("souk."), t
    jsonschema.validate(envelope, schema_for(t[len("souk."):]))


def envelope(producer, event_type, data, subject=None, event_id=None):
    return {
        "specversion": "1.0",
        "id": event_id or "evt_" + uuid.uuid4().hex[:26].upper(),
        "source": "urn:souk:" + producer,
        "type": "souk." + event_type,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


class FakeProducer:
    """GET /internal/v1/events?after=&wait=&limit= over an in-memory outbox, with
    long polls, plus POST /oauth/token so a consumer can get a service token."""

    def __init__(self, name):
        self.name = name
        self.events = []            # (seq, envelope)
        self.cond = threading.Condition()
        self.requests = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        feed_producer(self.url)   # whoever follows it is a feed consumer, whatever SOUK_TEST_EVENTS says
        producer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def reply(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                if u.path != "/internal/v1/events":
                    return self.reply(404, {"status": 404})
                q = urllib.parse.parse_qs(u.query)
                after = int(q.get("after", ["0"])[0])
                wait = min(int(q.get("wait", ["0"])[0]), 60)
                limit = int(q.get("limit", ["100"])[0])
                producer.requests += 1
                deadline = time.monotonic() + wait
                with producer.cond:
                    while True:
                        items = [{"seq": s, "event": e} for s, e in producer.events if s > after][:limit]
                        left = deadline - time.monotonic()
                        if items or left <= 0:
                            break
                        producer.cond.wait(left)
                nxt = items[-1]["seq"] if items else after
                self.reply(200, {"items": items, "next_after": nxt})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                if self.path == "/oauth/token":
                    return self.reply(200, {"access_token": "fake-service-token", "token_type": "Bearer",
                                            "expires_in": 900, "scope": "events:read"})
                self.reply(404, {"status": 404})

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def emit(self, event_type, data, subject=None, event_id=None):
        env = envelope(self.name, event_type, data, subject, event_id)
        validate_event(env)
        self.add(env)
        return env

    def add(self, env):
        with self.cond:
            self.events.append((len(self.events) + 1, env))
            self.cond.notify_all()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """aiosmtpd with the Mailbox handler: every mail becomes a Maildir file."""

    def __init__(self, directory, port=None):
        self.dir = str(directory)
        self.port = port or free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "aiosmtpd.handlers.Mailbox", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import socket
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp sink did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def messages(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.dir, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
                    out.append(email.message_from_bytes(f.read(), policy=email.policy.default))
        return out


def wait_for(pred, timeout=20.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


# ---- shared by the broker transports' tests (env has .users and .sink) ----

def register(env, name="Ada"):
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    r = requests.post(env.users.url + "/api/v1/users",
                      json={"email": email, "password": PASSWORD, "name": name}, timeout=30)
    assert r.status_code == 201, r.text
    return email


def mailed(env):
    return sorted(m["To"].addresses[0].addr_spec for m in env.sink.messages())


def db_rows(svc, sql, *args):
    """The rows of sql on the service's own database (SQLite or PostgreSQL)."""
    return svc.query(sql, args)


def metric(svc, name, **labels):
    """The value of one sample of the service's /metrics (0 when absent)."""
    text = requests.get(svc.url + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.compile("^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)$", re.M)
    m = pat.search(text)
    return float(m.group(1)) if m else 0.0


def mapped_libraries(svc):
    """The shared libraries a running service has mapped (file names, versions and all)."""
    with open(f"/proc/{svc.proc.pid}/maps") as f:
        return {os.path.basename(l.split()[-1]) for l in f if ".so" in l.split()[-1]}


def loads(svc, prefix):
    """Whether the running service has a library whose file name starts with prefix."""
    return any(l.startswith(prefix) for l in mapped_libraries(svc))
