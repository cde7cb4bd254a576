"""Secrets never reach a log (issue 11, "secrets in logs"): services started with
credentials in SOUK_SMTP_URL, SOUK_DB and SOUK_EVENTS, made to log (start-up,
failed deliveries, failed connections, configuration errors), and every log line
and stderr grepped. SMTP credentials may come from their own variables (or a file),
and SOUK_SMTP_STARTTLS=require never lets a mail (or a login) cross in clear."""
import os
import subprocess
import threading
import time

import pytest

from conftest import BIN, DEAD_PORT, UPSTREAMS, Service, free_port
from events_helpers import FakeProducer, wait_for

SMTP_SECRET = "smtp-Secret-4711"
DB_SECRET = "db-Secret-0815"
EVENTS_SECRET = "events-Secret-1234"

# the sinks here want a login without TLS on purpose (aiosmtpd warns about that)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class AuthSink:
    """An SMTP server (aiosmtpd, in this process) that offers (or wants) a login,
    records the credentials it was given and the mails it accepted."""

    def __init__(self, required=True):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.logins, self.mails = [], []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.mails.append(envelope.content)
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            sink.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            return AuthResult(success=True)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False,
                                     auth_required=required)
        self.controller.start()

    def stop(self):
        self.controller.stop()


@pytest.fixture
def users_feed():
    p = FakeProducer("users")
    yield p
    p.close()


def notify(tmp_path, users_feed, **env):
    e = {"SOUK_USERS_URL": users_feed.url, "SOUK_EVENTS_WAIT": "2", "SOUK_MAIL_RETRY_MS": "100",
         "SOUK_MAIL_ATTEMPTS": "2", "SOUK_CLIENT_ID": "notify", "SOUK_CLIENT_SECRET": "fake-secret"}
    e.update(env)
    return Service("notify", tmp_path, e)


def registered(users_feed, k):
    users_feed.emit("user.registered", {"user_id": f"usr_{k:026d}", "email": f"user{k}@example.com",
                                        "name": f"User {k}", "registered_at": "2026-01-01T00:00:00.000Z"})


def everything_logged(*dirs, extra=""):
    text = extra
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".log"):
                    with open(os.path.join(root, f), errors="replace") as fh:
                        text += fh.read()
    return text


def test_smtp_credentials_in_the_url_are_never_logged(tmp_path, users_feed):
    """A server that refuses the connection: every attempt fails and is logged."""
    svc = notify(tmp_path, users_feed,
                 SOUK_SMTP_URL=f"smtp://mailer:{SMTP_SECRET}@127.0.0.1:{DEAD_PORT}").start()
    try:
        registered(users_feed, 1)
        wait_for(lambda: sum('"mail delivery failed"' in l for l in open(svc.log_path)) >= 2, 20, what="two failed deliveries logged")
        assert any("mailer started" in l and "***@127.0.0.1" in l for l in open(svc.log_path))
    finally:
        svc.stop()
    text = everything_logged(tmp_path)
    assert "mailer" in text and SMTP_SECRET not in text


def test_smtp_login_from_its_own_variables(tmp_path, users_feed):
    sink = AuthSink()
    pw_file = tmp_path / "smtp-password"
    pw_file.write_text(SMTP_SECRET + "\n")
    os.chmod(pw_file, 0o600)
    svc = notify(tmp_path, users_feed, SOUK_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
                 SOUK_SMTP_USER="mailer", SOUK_SMTP_PASSWORD_FILE=str(pw_file)).start()
    try:
        registered(users_feed, 2)
        wait_for(lambda: sink.mails, 20, what="the mail")
        assert sink.logins == [("mailer", SMTP_SECRET)]
        assert b"user2@example.com" in sink.mails[0]
    finally:
        svc.stop()
        sink.stop()
    text = everything_logged(tmp_path)
    assert "mailer started" in text and SMTP_SECRET not in text
    # the login and the plain connection: said, without the secret
    assert "may cross the network in clear" in text


def test_starttls_required_sends_nothing_in_clear(tmp_path, users_feed):
    sink = AuthSink(required=False)                 # speaks no STARTTLS, takes mail without a login
    svc = notify(tmp_path, users_feed, SOUK_SMTP_URL=f"smtp://127.0.0.1:{sink.port}",
                 SOUK_SMTP_USER="mailer", SOUK_SMTP_PASSWORD=SMTP_SECRET,
                 SOUK_SMTP_STARTTLS="require").start()
    try:
        registered(users_feed, 3)
        wait_for(lambda: any('"mail delivery failed"' in l for l in open(svc.log_path)), 20, what="the refused delivery")
        assert sink.mails == [] and sink.logins == []
    finally:
        svc.stop()
        sink.stop()
    assert SMTP_SECRET not in everything_logged(tmp_path)


def test_bad_smtp_settings_stop_notify(tmp_path, users_feed):
    for env, why in [({"SOUK_SMTP_STARTTLS": "maybe"}, "SOUK_SMTP_STARTTLS"),
                     ({"SOUK_SMTP_USER": "mailer"}, "SOUK_SMTP_USER"),
                     ({"SOUK_SMTP_USER": "m", "SOUK_SMTP_PASSWORD_FILE": str(tmp_path / "nope")},
                      "SOUK_SMTP_PASSWORD_FILE")]:
        svc = notify(tmp_path, users_feed, SOUK_SMTP_URL=f"smtp://127.0.0.1:{DEAD_PORT}", **env)
        svc.start(wait=False)
        assert svc.proc.wait(timeout=20) != 0
        assert why in svc.log_tail(), svc.log_tail()


def run_logged(name, tmp_path, env, timeout=20):
    """Run a binary with env (cwd in tmp_path: a bad SOUK_DB may create files) until it
    exits or has logged that it listens; return everything it wrote."""
    e = dict(os.environ)
    for peer in UPSTREAMS:
        e[f"SOUK_{peer.upper()}_URL"] = f"http://127.0.0.1:{DEAD_PORT}"
    e.update({"SOUK_LISTEN": f"127.0.0.1:{free_port()}", "SOUK_VAR": str(tmp_path),
              "SOUK_GRPC_LISTEN": f"127.0.0.1:{free_port()}"})   # not the default 9083 others may hold
    e.update(env)
    out = tmp_path / f"{name}.out"
    with open(out, "wb") as f:
        p = subprocess.Popen([os.path.join(BIN, name)], env=e, stdout=f, stderr=subprocess.STDOUT,
                             cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            text = out.read_text(errors="replace")
            if '"listening"' in text and ("amqp" not in str(env) or "amqp: cannot reach" in text):
                break
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=20)
    return out.read_text(errors="replace")


def test_database_and_broker_urls_are_never_logged(tmp_path):
    # a database URL with a password (not a backend this build has: it fails, or
    # opens it as a file; either way it logs)
    (tmp_path / "db").mkdir()
    text = run_logged("cart", tmp_path / "db",
                      {"SOUK_DB": f"postgres://souk:{DB_SECRET}@127.0.0.1:{DEAD_PORT}/souk"})
    assert "souk" in text and DB_SECRET not in text, text
    # a broker that is not there: the consumer keeps failing to connect, and says so
    (tmp_path / "amqp").mkdir()
    text = run_logged("cart", tmp_path / "amqp", {
        "SOUK_DB": f"sqlite:{tmp_path}/amqp/cart.db",
        "SOUK_EVENTS": f"amqp://souk:{EVENTS_SECRET}@127.0.0.1:{DEAD_PORT}/souk"})
    assert "amqp: cannot reach the broker" in text and EVENTS_SECRET not in text, text
    # a transport this build does not know: a configuration error that names it
    (tmp_path / "bad").mkdir()
    text = run_logged("cart", tmp_path / "bad", {
        "SOUK_DB": f"sqlite:{tmp_path}/bad/cart.db",
        "SOUK_EVENTS": f"amqps://souk:{EVENTS_SECRET}@127.0.0.1:{DEAD_PORT}/souk"})
    assert "SOUK_EVENTS" in text and "***@127.0.0.1" in text and EVENTS_SECRET not in text, text
