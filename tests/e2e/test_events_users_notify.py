"""Black-box: the real users service publishes user.registered through the kit's
outbox and feed; the real notify consumes it (feed transport, real service
tokens) and mails a real SMTP sink. Run:
/usr/bin/python3 -m pytest tests/e2e/test_events_users_notify.py"""
import json
import os
import secrets
import signal
import threading
import time
import uuid

import pytest
import requests

from conftest import Service
from events_helpers import FakeProducer, SmtpSink, validate_event, wait_for

PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path):
    secret = secrets.token_hex(24)
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"notify": secret}))
    os.chmod(clients, 0o600)
    # the feed transport under test, whatever SOUK_TEST_EVENTS says
    users = Service("users", tmp_path, {"SOUK_CLIENTS_FILE": str(clients), "SOUK_ACCESS_LOG": "false",
                                        "SOUK_EVENTS": "feed"})
    users.start()
    others = [FakeProducer("orders"), FakeProducer("payments")]
    sink = SmtpSink(tmp_path / "maildir").start()
    notify = Service("notify", tmp_path, {
        "SOUK_USERS_URL": users.url, "SOUK_ORDERS_URL": others[0].url,
        "SOUK_PAYMENTS_URL": others[1].url, "SOUK_CLIENT_ID": "notify",
        "SOUK_CLIENT_SECRET": secret, "SOUK_SMTP_URL": sink.url, "SOUK_EVENTS": "feed", "SOUK_EVENTS_WAIT": "2",
        "SOUK_ACCESS_LOG": "false"})
    e = type("Env", (), {})()
    e.users, e.notify, e.sink, e.secret = users, notify, sink, secret
    yield e
    notify.kill()
    users.kill()
    sink.stop()
    for p in others:
        p.close()


def register(env, name="Ada"):
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    r = requests.post(env.users.url + "/api/v1/users",
                      json={"email": email, "password": PASSWORD, "name": name}, timeout=30)
    assert r.status_code == 201, r.text
    return email


def token(env, email):
    r = requests.post(env.users.url + "/oauth/token", timeout=30,
                      data={"grant_type": "password", "username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def service_headers(env):
    r = requests.post(env.users.url + "/oauth/token", auth=("notify", env.secret),
                      data={"grant_type": "client_credentials"}, timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def test_registration_delivers_welcome_mail_and_in_app_notification(env):
    env.notify.start()
    email = register(env, "Ada")
    msgs = wait_for(lambda: env.sink.messages(), what="the welcome mail")
    assert [m["To"].addresses[0].addr_spec for m in msgs] == [email]
    assert msgs[0]["Subject"] == "Welcome to souk, Ada"
    h = token(env, email)
    r = wait_for(lambda: (lambda r: r.json()["items"] and r)(
        requests.get(env.notify.url + "/api/v1/notifications", headers=h, timeout=10)),
        what="the in-app notification")
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["type"] == "user.registered" and items[0]["read"] is False
    assert r.json()["next_page_token"] is None
    # another user sees none of it and cannot mark it read
    other = token(env, register(env, "Bob"))
    wait_for(lambda: len(env.sink.messages()) == 2, what="Bob's mail")
    mine = requests.get(env.notify.url + "/api/v1/notifications", headers=other, timeout=10).json()
    assert [i["id"] for i in mine["items"]] != [items[0]["id"]]
    r = requests.post(env.notify.url + f"/api/v1/notifications/{items[0]['id']}/read", headers=other, timeout=10)
    assert r.status_code == 404
    r = requests.post(env.notify.url + f"/api/v1/notifications/{items[0]['id']}/read", headers=h, timeout=10)
    assert r.status_code == 200 and r.json()["read"] is True
    assert requests.get(env.notify.url + "/api/v1/notifications", timeout=10).status_code == 401


def test_twenty_registrations_while_notify_is_stopped(env):
    emails = [register(env, f"U{k}") for k in range(20)]
    env.notify.start()
    wait_for(lambda: len(env.sink.messages()) >= 20, timeout=60, what="20 mails")
    time.sleep(1.5)
    got = sorted(m["To"].addresses[0].addr_spec for m in env.sink.messages())
    assert got == sorted(emails)


def test_feed_needs_a_service_token_and_serves_valid_events(env):
    assert requests.get(env.users.url + "/internal/v1/events", timeout=10).status_code == 401
    h = service_headers(env)
    register(env, "Cy")
    r = requests.get(env.users.url + "/internal/v1/events?after=0", headers=h, timeout=10)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 1
    for it in items:
        validate_event(it["event"])
    assert r.json()["next_after"] == items[-1]["seq"]
    bad = requests.get(env.users.url + "/internal/v1/events?after=-1&wait=99", headers=h, timeout=10)
    assert bad.status_code == 400


def test_long_poll_returns_when_an_event_commits(env):
    h = service_headers(env)
    after = requests.get(env.users.url + "/internal/v1/events", headers=h, timeout=10).json()["next_after"]
    out = {}

    def poll():
        t0 = time.monotonic()
        out["r"] = requests.get(env.users.url + f"/internal/v1/events?after={after}&wait=20",
                                headers=h, timeout=30)
        out["t"] = time.monotonic() - t0

    threads = [threading.Thread(target=poll)]
    # more parked polls than the server has threads: none may hold a pool thread
    extra = [threading.Thread(target=lambda: requests.get(
        env.users.url + f"/internal/v1/events?after={after}&wait=3", headers=h, timeout=30)) for _ in range(8)]
    for t in threads + extra:
        t.start()
    time.sleep(0.5)
    assert requests.get(env.users.url + "/healthz", timeout=2).status_code == 200
    register(env, "Di")
    threads[0].join(timeout=30)
    assert out["r"].status_code == 200 and len(out["r"].json()["items"]) == 1
    assert out["t"] < 5
    for t in extra:
        t.join(timeout=30)


def test_sigkill_of_the_producer_loses_nothing(env):
    env.notify.start()
    emails = []
    for k in range(10):
        emails.append(register(env, f"K{k}"))
    env.users.kill(signal.SIGKILL)
    env.users.start()
    emails.append(register(env, "After"))
    wait_for(lambda: len(env.sink.messages()) >= 11, timeout=60, what="11 mails")
    time.sleep(1.0)
    assert sorted(m["To"].addresses[0].addr_spec for m in env.sink.messages()) == sorted(emails)
