"""Black-box tests of the amqp events transport: a private RabbitMQ node (one per
module), the real users service relaying its outbox with publisher confirms, the
real notify consuming its durable queue and mailing a real SMTP sink. Run:
/usr/bin/python3 -m pytest tests/e2e/test_events_amqp.py"""
import json
import os
import secrets
import signal
import threading
import time

import pika
import pytest
import requests

from brokers import RabbitNode
from conftest import Service, free_port
from events_helpers import (PASSWORD, SmtpSink, db_rows, envelope, loads, mailed, metric,
                            register, wait_for)

EXCHANGE = "souk.events"
QUEUE = "souk.notify"
DLQ = "souk.notify.dlq"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = RabbitNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        b.start()
        yield b
    finally:
        b.close()


@pytest.fixture
def env(tmp_path, broker):
    if broker.proc.poll() is not None:    # a test that restarted it and failed midway
        broker.start()
    broker.delete_queues(QUEUE, DLQ)      # each test starts from an empty queue
    secret = secrets.token_hex(24)
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"notify": secret}))
    os.chmod(clients, 0o600)
    users = Service("users", tmp_path, {"SOUK_CLIENTS_FILE": str(clients), "SOUK_ACCESS_LOG": "false",
                                        "SOUK_EVENTS": broker.url})
    users.start()
    sink = SmtpSink(tmp_path / "maildir").start()
    notify = Service("notify", tmp_path, {
        "SOUK_USERS_URL": users.url, "SOUK_CLIENT_ID": "notify", "SOUK_CLIENT_SECRET": secret,
        "SOUK_SMTP_URL": sink.url, "SOUK_EVENTS": broker.url, "SOUK_EVENTS_MAX_ATTEMPTS": "2",
        "SOUK_EVENTS_RETRY_MS": "50", "SOUK_ACCESS_LOG": "false"})
    e = type("Env", (), {})()
    e.users, e.notify, e.sink, e.broker = users, notify, sink, broker
    yield e
    notify.kill()
    users.kill()
    sink.stop()


def start_notify(env):
    """Start notify and wait until it consumes its queue (the queue exists from then on)."""
    env.notify.start()
    wait_for(lambda: (env.broker.queue(QUEUE) or (0, 0))[1] == 1, what="notify consuming souk.notify")


def test_registration_delivers_welcome_mail_and_in_app_notification(env):
    start_notify(env)
    email = register(env, "Ada")
    msgs = wait_for(lambda: env.sink.messages(), what="the welcome mail")
    assert [m["To"].addresses[0].addr_spec for m in msgs] == [email]
    assert msgs[0]["Subject"] == "Welcome to souk, Ada"
    r = requests.post(env.users.url + "/oauth/token", timeout=30,
                      data={"grant_type": "password", "username": email, "password": PASSWORD})
    h = {"Authorization": "Bearer " + r.json()["access_token"]}
    r = wait_for(lambda: (lambda r: r.json()["items"] and r)(
        requests.get(env.notify.url + "/api/v1/notifications", headers=h, timeout=10)),
        what="the in-app notification")
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["type"] == "user.registered"
    # the row was marked sent only once confirmed, and the counts say so
    assert [s is not None for (s,) in db_rows(env.users, "SELECT sent_ms FROM souk_outbox")] == [True]
    assert metric(env.users, "souk_events_published_total", type="user.registered") == 1
    assert metric(env.users, "souk_events_amqp_sent_total", type="user.registered") == 1
    assert metric(env.users, "souk_events_amqp_connected", role="relay") == 1
    assert metric(env.notify, "souk_events_amqp_connected", role="consumer") == 1
    assert metric(env.notify, "souk_events_consumed_total", type="user.registered", outcome="ok") == 1
    assert metric(env.users, "souk_events_outbox_backlog") == 0
    # acked after the commit: nothing left in the queue
    wait_for(lambda: env.broker.queue(QUEUE) == (0, 1), what="an empty queue")


def test_twenty_registrations_while_notify_is_stopped(env):
    start_notify(env)
    env.notify.stop()
    emails = [register(env, f"U{k}") for k in range(20)]
    # the durable queue holds them while nobody consumes
    wait_for(lambda: env.broker.queue(QUEUE) == (20, 0), what="20 messages queued")
    assert mailed(env) == []
    env.notify.start()
    wait_for(lambda: len(env.sink.messages()) >= 20, timeout=60, what="20 mails")
    time.sleep(1.5)   # anything doubled would show up now
    assert mailed(env) == sorted(emails)
    assert db_rows(env.notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(20, 20)]


def test_broker_restart_while_users_register_loses_nothing(env):
    start_notify(env)
    emails, errors, done = [], [], threading.Event()

    def keep_registering():
        k = 0
        while not done.is_set() or k < 10:
            try:
                emails.append(register(env, f"R{k}"))
            except Exception as e:   # noqa: BLE001 - reported below
                errors.append(e)
            k += 1
            time.sleep(0.05)

    t = threading.Thread(target=keep_registering)
    t.start()
    try:
        wait_for(lambda: len(emails) >= 3, what="some registrations")
        env.broker.stop()
        time.sleep(1.0)          # registrations go on against the outbox alone
        n_down = len(emails)
        env.broker.start()
        time.sleep(1.0)
    finally:
        done.set()
        t.join(timeout=60)
    assert errors == []
    assert len(emails) > n_down >= 3
    wait_for(lambda: len(env.sink.messages()) >= len(emails), timeout=60, what=f"{len(emails)} mails")
    time.sleep(1.5)
    assert mailed(env) == sorted(emails)
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)]
    # both sides noticed the restart and came back by themselves
    assert metric(env.users, "souk_events_amqp_connects_total", role="relay", outcome="ok") >= 2
    assert metric(env.notify, "souk_events_amqp_connects_total", role="consumer", outcome="ok") >= 2
    assert metric(env.users, "souk_events_amqp_connected", role="relay") == 1
    wait_for(lambda: metric(env.notify, "souk_events_amqp_connected", role="consumer") == 1,
             what="the consumer connected")


def publish_raw(broker, routing_key, body, message_id):
    conn = broker.connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(EXCHANGE, routing_key, body,
                         pika.BasicProperties(delivery_mode=2, message_id=message_id,
                                              content_type="application/cloudevents+json"))
    finally:
        conn.close()


def test_failing_event_is_dead_lettered_and_the_others_flow(env):
    start_notify(env)
    # a well-formed event notify's handler always refuses (no valid address), and a
    # message that is not even JSON, both from "users" on the real exchange
    bad = envelope("users", "user.registered", {"user_id": "usr_bad", "email": "not-an-address",
                                                "name": "No Mail"}, subject="usr_bad")
    publish_raw(env.broker, "user.registered", json.dumps(bad).encode(), bad["id"])
    publish_raw(env.broker, "user.registered", b"\x00not json", "junk")
    good = [register(env, f"G{k}") for k in range(3)]
    wait_for(lambda: len(env.sink.messages()) == 3, what="the good mails")
    wait_for(lambda: (env.broker.queue(DLQ) or (0, 0))[0] == 2, what="two dead letters")
    assert mailed(env) == sorted(good)
    # the broker's dead-letter queue has the refused event itself, after 2 attempts
    conn = env.broker.connect()
    try:
        ch = conn.channel()
        bodies = []
        for _ in range(2):
            method, props, body = ch.basic_get(DLQ, auto_ack=False)
            bodies.append(body)
            assert props.headers["x-death"][0]["queue"] == QUEUE
            assert props.headers["x-death"][0]["reason"] == "rejected"
    finally:
        conn.close()   # unacked: they stay in the dead-letter queue
    assert sorted(bodies, key=len) == sorted([b"\x00not json", json.dumps(bad).encode()], key=len)
    rows = db_rows(env.notify, "SELECT event_id, type, attempts FROM souk_dead_letters WHERE type != 'malformed'")
    assert rows == [(bad["id"], "user.registered", 2)]
    assert db_rows(env.notify, "SELECT count(*) FROM notifications WHERE user_id = 'usr_bad'") == [(0,)]
    assert metric(env.notify, "souk_events_amqp_dead_lettered_total", type="user.registered") == 2
    assert metric(env.notify, "souk_events_amqp_redelivered_total", type="user.registered") >= 1
    assert env.broker.queue(QUEUE) == (0, 1)
    # a message over the consumer's size cap is dead-lettered unread
    publish_raw(env.broker, "user.registered", b"{" + b" " * (1024 * 1024) + b"}", "huge")
    wait_for(lambda: (env.broker.queue(DLQ) or (0, 0))[0] == 3, what="the huge message dead-lettered")
    assert metric(env.notify, "souk_events_amqp_dead_lettered_total", type="user.registered") == 3


def test_sigkill_between_commit_and_publish_loses_nothing(env):
    start_notify(env)
    # the relay cannot reach a broker: rows commit and stay unsent
    env.users.kill()
    good_url = env.users.env["SOUK_EVENTS"]
    env.users.env["SOUK_EVENTS"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f"
    env.users.start()
    emails = [register(env, f"K{k}") for k in range(5)]
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(5,)]
    assert metric(env.users, "souk_events_outbox_backlog") == 5
    assert metric(env.users, "souk_events_amqp_connected", role="relay") == 0
    env.users.kill(signal.SIGKILL)
    env.users.env["SOUK_EVENTS"] = good_url
    env.users.start()
    emails.append(register(env, "After"))
    wait_for(lambda: len(env.sink.messages()) >= 6, timeout=60, what="6 mails")
    time.sleep(1.0)
    assert mailed(env) == sorted(emails)
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)]
    # in commit order: the notifications carry the events' order
    order = [r[0] for r in db_rows(env.users, "SELECT id FROM souk_outbox ORDER BY seq")]
    got = [r[0] for r in db_rows(env.notify, "SELECT n.event_id FROM notifications n JOIN deliveries d"
                                         " ON d.notification_id = n.id ORDER BY d.id")]
    assert got == order


def test_retention_prunes_only_confirmed_rows(env):
    start_notify(env)
    env.users.kill()
    good_url = env.users.env["SOUK_EVENTS"]
    env.users.env.update({"SOUK_EVENTS": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2f",
                          "SOUK_EVENTS_RETENTION": "1"})
    env.users.start()
    emails = [register(env, f"P{k}") for k in range(2)]
    time.sleep(2.5)   # past the retention, and the pruner ran at least once
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(2,)]
    env.users.kill()
    env.users.env["SOUK_EVENTS"] = good_url
    env.users.start()
    wait_for(lambda: len(env.sink.messages()) >= 2, what="2 mails")
    # once confirmed they may go, and do
    wait_for(lambda: db_rows(env.users, "SELECT count(*) FROM souk_outbox") == [(0,)], timeout=10,
             what="confirmed rows pruned")
    assert mailed(env) == sorted(emails)


def test_bad_amqp_url_refuses_to_start(tmp_path):
    svc = Service("users", tmp_path, {"SOUK_EVENTS": "amqp://guest:s3cret-pw@127.0.0.1:notaport/x",
                                      "SOUK_ACCESS_LOG": "false"})
    try:
        svc.start(wait=False)
        assert svc.proc.wait(timeout=15) != 0
        log = svc.log_tail(50)
        assert "SOUK_EVENTS is not an amqp://" in log
        assert "s3cret-pw" not in log   # the password never reaches a log
    finally:
        svc.kill()


def test_only_the_chosen_broker_library_is_loaded(env, tmp_path):
    """librabbitmq is loaded (dlopen) in amqp mode only, librdkafka not at all; a service
    on the feed maps neither (bench/profile-notes.md, memory)."""
    assert loads(env.users, "librabbitmq.so.4")
    assert not loads(env.users, "librdkafka.so")
    feed = Service("users", tmp_path / "feed", {"SOUK_EVENTS": "feed", "SOUK_ACCESS_LOG": "false"})
    try:
        feed.start()
        assert not loads(feed, "librabbitmq.so") and not loads(feed, "librdkafka.so")
    finally:
        feed.kill()
