"""Black-box tests of the kafka events transport against librdkafka's mock cluster
(build/bin/kafka-mock, a fresh one per test: a test double of the Kafka protocol,
in memory, not a durable broker): the real users service relaying its outbox with an
idempotent producer, the real notify consuming in its group and mailing a real SMTP
sink, and kcat (a stock client) reading what is on the topics. Run:
/usr/bin/python3 -m pytest tests/e2e/test_events_kafka.py"""
import json
import os
import secrets
import signal
import threading
import time

import pytest
import requests

from brokers import KafkaMock
from conftest import BIN, Service, free_port
from events_helpers import (PASSWORD, SmtpSink, db_rows, envelope, loads, mailed, metric,
                            register, validate_event, wait_for)

TOPIC = "souk.users"
DLQ = "souk.notify.dlq"
CONTENT_TYPE = "application/cloudevents+json"


@pytest.fixture
def kafka():
    k = KafkaMock(BIN, brokers=3).start()
    try:
        yield k
    finally:
        k.stop()


def make_env(tmp_path, kafka, notify_env=None):
    secret = secrets.token_hex(24)
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"notify": secret}))
    os.chmod(clients, 0o600)
    users = Service("users", tmp_path, {"SOUK_CLIENTS_FILE": str(clients), "SOUK_ACCESS_LOG": "false",
                                        "SOUK_EVENTS": kafka.url})
    users.start()
    sink = SmtpSink(tmp_path / "maildir").start()
    env = {"SOUK_USERS_URL": users.url, "SOUK_CLIENT_ID": "notify", "SOUK_CLIENT_SECRET": secret,
           "SOUK_SMTP_URL": sink.url, "SOUK_EVENTS": kafka.url, "SOUK_EVENTS_MAX_ATTEMPTS": "2",
           "SOUK_EVENTS_RETRY_MS": "50", "SOUK_ACCESS_LOG": "false"}
    env.update(notify_env or {})
    notify = Service("notify", tmp_path, env)
    e = type("Env", (), {})()
    e.users, e.notify, e.sink, e.kafka, e.tmp = users, notify, sink, kafka, tmp_path
    e.extra = []
    return e


@pytest.fixture
def env(tmp_path, kafka):
    e = make_env(tmp_path, kafka)
    yield e
    for svc in [e.notify, e.users, *e.extra]:
        svc.kill()
    e.sink.stop()


def start_consumer(svc):
    """Start a consumer and wait until the group gave it partitions (the mock holds a
    group's first join for 3 s, as a broker's group.initial.rebalance.delay.ms does)."""
    svc.start()
    wait_for(lambda: metric(svc, "souk_events_kafka_rebalances_total", kind="assigned") > 0,
             timeout=30, what=f"{svc.name} assigned partitions")


def lag_is_zero(svc, topic=TOPIC):
    return lambda: metric(svc, "souk_events_kafka_consumer_lag", topic=topic) == 0 and \
        f'souk_events_kafka_consumer_lag{{topic="{topic}"}}' in requests.get(svc.url + "/metrics", timeout=10).text


def murmur2_partition(key, partitions):
    """Kafka's default partitioner (the Java client's murmur2): where a key lands."""
    data = key.encode()
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def test_the_mock_tool_answers_each_command_line(kafka):
    kafka.command("topic souk.tool 2")
    meta = json.loads(kafka.kcat("-L", "-t", "souk.tool", "-J").stdout)
    assert [len(t["partitions"]) for t in meta["topics"]] == [2]
    assert len(meta["brokers"]) == 3
    for bad in ("down 4", "down 0", "up", "up 1 2", "topic souk.x", "topic souk.x 0", "topic souk.x two",
                "fly", "x" * 300):
        assert kafka.ask(bad).startswith("error: "), bad
    kafka.command("down 2")
    kafka.command("up 2")
    kafka.command("down all")
    kafka.command("up all")
    assert kafka.proc.poll() is None


def test_registration_delivers_welcome_mail_and_in_app_notification(env):
    start_consumer(env.notify)
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
    # marked sent only on the delivery report, and the counts say so
    assert [s is not None for (s,) in db_rows(env.users, "SELECT sent_ms FROM souk_outbox")] == [True]
    assert metric(env.users, "souk_events_published_total", type="user.registered") == 1
    assert metric(env.users, "souk_events_kafka_sent_total", type="user.registered") == 1
    assert metric(env.users, "souk_events_outbox_backlog") == 0
    assert metric(env.notify, "souk_events_consumed_total", type="user.registered", outcome="ok") == 1
    # connected (statistics come every second), and the offset committed after the inbox
    wait_for(lambda: metric(env.users, "souk_events_kafka_brokers_up", role="relay") >= 1,
             what="the relay connected")
    wait_for(lambda: metric(env.notify, "souk_events_kafka_brokers_up", role="consumer") >= 1,
             what="the consumer connected")
    wait_for(lag_is_zero(env.notify), what="the group's offset at the end of souk.users")


def test_only_the_kafka_client_library_is_loaded(env):
    """librdkafka is loaded (dlopen) in kafka mode; librabbitmq is not."""
    assert loads(env.users, "librdkafka.so.1")
    assert not loads(env.users, "librabbitmq.so")


def test_a_stock_client_reads_cloudevents_keyed_by_subject(env):
    emails = [register(env, f"K{k}") for k in range(6)]
    wait_for(lambda: db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)],
             what="every row delivered")
    recs = env.kafka.records(TOPIC)
    assert len(recs) == 6
    events = []
    for r in recs:
        assert r["headers"] == {"content-type": CONTENT_TYPE}, r
        ev = json.loads(r["payload"])   # structured mode: the whole CloudEvent is the value
        validate_event(ev)
        assert ev["type"] == "souk.user.registered" and ev["source"] == "urn:souk:users"
        # the key is the subject (the aggregate), placed as Kafka's own clients place keys
        assert r["key"] == ev["subject"] == ev["data"]["user_id"]
        assert r["partition"] == murmur2_partition(r["key"], 4), r
        events.append(ev)
    assert sorted(e["data"]["email"] for e in events) == sorted(emails)
    assert sorted(e["id"] for e in events) == sorted(i for (i,) in db_rows(env.users, "SELECT id FROM souk_outbox"))


def test_twenty_registrations_while_notify_is_stopped(env):
    start_consumer(env.notify)
    first = register(env, "First")
    wait_for(lambda: len(env.sink.messages()) == 1, what="the first mail")
    wait_for(lag_is_zero(env.notify), what="its offset committed")
    env.notify.stop()   # SIGTERM: it leaves the group
    emails = [register(env, f"U{k}") for k in range(20)]
    # the topic holds them while nobody consumes
    wait_for(lambda: len(env.kafka.records(TOPIC)) == 21, what="21 records on souk.users")
    assert len(env.sink.messages()) == 1
    env.notify.start()
    wait_for(lambda: len(env.sink.messages()) >= 21, timeout=60, what="21 mails")
    wait_for(lag_is_zero(env.notify), what="offsets committed")
    assert mailed(env) == sorted(emails + [first])
    assert db_rows(env.notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(21, 21)]
    # the group resumed after its committed offset: the first event was not read again
    assert metric(env.notify, "souk_events_consumed_total", type="user.registered", outcome="ok") == 20
    assert metric(env.notify, "souk_events_consumed_total", type="user.registered", outcome="duplicate") == 0


def test_sigkill_between_commit_and_publish_loses_nothing(env):
    start_consumer(env.notify)
    # the relay reaches no broker: rows commit and stay unsent
    env.users.kill()
    good_url = env.users.env["SOUK_EVENTS"]
    env.users.env["SOUK_EVENTS"] = f"kafka://127.0.0.1:{free_port()}"
    env.users.start()
    emails = [register(env, f"K{k}") for k in range(5)]
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(5,)]
    assert metric(env.users, "souk_events_outbox_backlog") == 5
    assert metric(env.users, "souk_events_kafka_brokers_up", role="relay") == 0
    env.users.kill(signal.SIGKILL)
    env.users.env["SOUK_EVENTS"] = good_url
    env.users.start()
    emails.append(register(env, "After"))
    wait_for(lambda: len(env.sink.messages()) >= 6, timeout=60, what="6 mails")
    wait_for(lag_is_zero(env.notify), what="offsets committed")
    assert mailed(env) == sorted(emails)
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)]
    assert db_rows(env.notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(6, 6)]
    # each event once on the topic: the first producer never reached a broker
    assert len(env.kafka.records(TOPIC)) == 6


def test_poison_event_goes_to_the_dead_letter_topic_while_others_flow(env):
    start_consumer(env.notify)
    # a well-formed event notify's handler always refuses (no valid address), and a
    # record that is not even JSON, both on users' topic
    bad = envelope("users", "user.registered", {"user_id": "usr_bad", "email": "not-an-address",
                                                "name": "No Mail"}, subject="usr_bad")
    env.kafka.produce(TOPIC, json.dumps(bad).encode(), key="usr_bad", headers=[("content-type", CONTENT_TYPE)])
    env.kafka.produce(TOPIC, b"\x00not json", key="junk")
    good = [register(env, f"G{k}") for k in range(3)]
    wait_for(lambda: len(env.sink.messages()) == 3, what="the good mails")
    wait_for(lambda: len(env.kafka.records(DLQ)) == 2, what="two dead letters")
    assert mailed(env) == sorted(good)
    dead = {r["key"]: r for r in env.kafka.records(DLQ)}
    assert json.loads(dead["usr_bad"]["payload"]) == bad          # the record itself
    assert dead["usr_bad"]["headers"]["content-type"] == CONTENT_TYPE   # its headers kept
    assert dead["junk"]["payload"] == "\x00not json"
    for r in dead.values():   # and where it came from
        assert r["headers"]["souk.dlq.topic"] == TOPIC
        assert r["headers"]["souk.dlq.group"] == "souk.notify"
        src = [s for s in env.kafka.records(TOPIC) if s["key"] == r["key"]]
        assert [(s["partition"], s["offset"]) for s in src] == \
            [(int(r["headers"]["souk.dlq.partition"]), int(r["headers"]["souk.dlq.offset"]))]
    rows = db_rows(env.notify, "SELECT event_id, type, attempts FROM souk_dead_letters WHERE type != 'malformed'")
    assert rows == [(bad["id"], "user.registered", 2)]
    assert db_rows(env.notify, "SELECT count(*) FROM notifications WHERE user_id = 'usr_bad'") == [(0,)]
    assert metric(env.notify, "souk_events_kafka_dead_lettered_total", topic=TOPIC) == 2
    assert metric(env.notify, "souk_events_kafka_retried_total", topic=TOPIC) >= 1
    # past them: the group's offsets reach the end of the topic
    wait_for(lag_is_zero(env.notify), what="offsets committed past the dead letters")
    # a record over the consumer's size cap goes to the dead-letter topic unread
    env.kafka.produce(TOPIC, b"{" + b" " * (1024 * 1024) + b"}", key="huge")
    wait_for(lambda: len(env.kafka.records(DLQ)) == 3, what="the huge record dead-lettered")
    huge = [r for r in env.kafka.records(DLQ) if r["key"] == "huge"][0]
    assert huge["payload"] is None and huge["headers"]["souk.dlq.reason"] == "over the size cap"
    assert metric(env.notify, "souk_events_kafka_dead_lettered_total", topic=TOPIC) == 3


def test_brokers_down_and_back_while_users_register_loses_nothing(env):
    start_consumer(env.notify)
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
        env.kafka.command("down all")   # every connection cut, new ones refused
        try:
            wait_for(lambda: metric(env.users, "souk_events_kafka_brokers_up", role="relay") == 0,
                     what="the relay noticed")
            n_down = len(emails)
            wait_for(lambda: len(emails) >= n_down + 5, what="registrations against the outbox alone")
            assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL")[0][0] >= 5
        finally:
            env.kafka.command("up all")
    finally:
        done.set()
        t.join(timeout=60)
    assert errors == []
    wait_for(lambda: len(env.sink.messages()) >= len(emails), timeout=60, what=f"{len(emails)} mails")
    wait_for(lag_is_zero(env.notify), timeout=30, what="offsets committed")
    assert mailed(env) == sorted(emails)
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)]
    assert db_rows(env.notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == \
        [(len(emails), len(emails))]
    # both sides saw the outage and came back by themselves
    assert metric(env.users, "souk_events_kafka_errors_total", role="relay", error="_TRANSPORT") + \
        metric(env.users, "souk_events_kafka_errors_total", role="relay", error="_ALL_BROKERS_DOWN") >= 1
    wait_for(lambda: metric(env.users, "souk_events_kafka_brokers_up", role="relay") >= 1,
             what="the relay reconnected")
    wait_for(lambda: metric(env.notify, "souk_events_kafka_brokers_up", role="consumer") >= 1,
             what="the consumer reconnected")


def test_one_broker_down_and_back_loses_nothing(env):
    """Broker 1 leads some partitions (and maybe the group's coordinator) and goes away
    without a leader election (the mock keeps it leader): what cannot reach it waits in
    the producer and the outbox. Back up, everything arrives, once."""
    start_consumer(env.notify)
    warm = register(env, "Warm")   # the topic exists, its leaders are known
    wait_for(lambda: len(env.sink.messages()) == 1, what="the first mail")
    env.kafka.command("down 1")
    try:
        emails = [register(env, f"D{k}") for k in range(12)]
    finally:
        env.kafka.command("up 1")
    wait_for(lambda: len(env.sink.messages()) == 13, timeout=60, what="13 mails")
    wait_for(lag_is_zero(env.notify), timeout=30, what="offsets committed")
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(0,)]
    assert mailed(env) == sorted(emails + [warm])
    assert db_rows(env.notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(13, 13)]


def test_a_rebalance_hands_partitions_over_without_loss_or_double_effect(env, tmp_path):
    """Two notify replicas in one group (one database between them, as replicas on
    PostgreSQL share one): the second joining and the first leaving move partitions;
    every event takes effect exactly once. Short session timeouts (a properties file)
    keep the mock's rebalances quick."""
    props = tmp_path / "kafka.properties"
    props.write_text("# test timings: the mock waits a session timeout before it re-elects\n"
                     "session.timeout.ms = 3000\nheartbeat.interval.ms=500\n")
    env.notify.env["SOUK_EVENTS_KAFKA_CONFIG"] = str(props)
    start_consumer(env.notify)
    second = Service("notify", tmp_path, {k: v for k, v in env.notify.env.items() if k != "SOUK_LISTEN"})
    env.extra.append(second)
    first_batch = [register(env, f"A{k}") for k in range(10)]
    second.start()
    wait_for(lambda: metric(second, "souk_events_kafka_rebalances_total", kind="assigned") > 0,
             timeout=30, what="the second replica assigned partitions")
    more = [register(env, f"B{k}") for k in range(5)]
    held = metric(second, "souk_events_kafka_rebalances_total", kind="assigned")
    env.notify.stop()   # leaves: its partitions go to the second, offsets committed first
    more += [register(env, f"C{k}") for k in range(5)]
    # the first one's share (12 partitions over 3 topics, shared by two) came over
    wait_for(lambda: metric(second, "souk_events_kafka_rebalances_total", kind="assigned") >= held + 6,
             timeout=30, what="the second replica taking over the first one's partitions")
    emails = first_batch + more
    wait_for(lambda: db_rows(second, "SELECT count(*) FROM notifications") == [(20,)], timeout=60,
             what="20 notifications")
    wait_for(lag_is_zero(second), timeout=30, what="offsets committed")
    assert db_rows(second, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(20, 20)]
    assert len(emails) == 20


def test_retention_prunes_only_delivered_rows(env):
    start_consumer(env.notify)
    env.users.kill()
    good_url = env.users.env["SOUK_EVENTS"]
    env.users.env.update({"SOUK_EVENTS": f"kafka://127.0.0.1:{free_port()}", "SOUK_EVENTS_RETENTION": "1"})
    env.users.start()
    emails = [register(env, f"P{k}") for k in range(2)]
    time.sleep(2.5)   # past the retention, and the pruner ran at least once
    assert db_rows(env.users, "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL") == [(2,)]
    env.users.kill()
    env.users.env["SOUK_EVENTS"] = good_url
    env.users.start()
    wait_for(lambda: len(env.sink.messages()) >= 2, what="2 mails")
    # once delivered they may go, and do
    wait_for(lambda: db_rows(env.users, "SELECT count(*) FROM souk_outbox") == [(0,)], timeout=10,
             what="delivered rows pruned")
    assert mailed(env) == sorted(emails)


@pytest.mark.parametrize("url,why", [
    ("kafka://guest:s3cret-pw@127.0.0.1:9092", "credentials do not belong in the URL"),
    ("kafka://127.0.0.1:notaport", "broker 1: the port must be a number"),
    ("kafka://127.0.0.1:9092,:9093", "broker 2: the host is missing"),
    ("kafka://127.0.0.1:9092/topic?x=s3cret-pw", "unexpected text after the port"),
    ("kafak://guest:s3cret-pw@127.0.0.1:9092", "expected feed, amqp://… or kafka://…"),
])
def test_bad_kafka_url_refuses_to_start(tmp_path, url, why):
    svc = Service("users", tmp_path, {"SOUK_EVENTS": url, "SOUK_ACCESS_LOG": "false"})
    try:
        svc.start(wait=False)
        rc = svc.proc.wait(timeout=15)
        assert rc != 0
        if url.startswith("kafak://"):
            assert rc == 2, "a configuration error, said before the database is opened"
        log = svc.log_tail(50)
        assert why in log, log
        assert "SOUK_EVENTS" in log
        assert "s3cret-pw" not in log   # what could be a password never reaches a log
    finally:
        svc.kill()


@pytest.mark.parametrize("props,why", [
    ("sasl.password=hunter2-s3cret\nno.such.property = 1\n", "unknown property no.such.property"),
    ("sasl.password=hunter2-s3cret\nlinger.ms=soon\n", "invalid value for linger.ms"),
    ("sasl.password=hunter2-s3cret\nsecurity.protocol=sasl_ssl\nsasl.mechanisms=NOPE\n",
     "librdkafka refused the configuration: Unsupported SASL mechanism: NOPE"),
    ("sasl.password=hunter2-s3cret\njust words\n", "line 2: expected key=value"),
])
def test_bad_kafka_properties_refuse_to_start(tmp_path, props, why):
    f = tmp_path / "kafka.properties"
    f.write_text(props)
    svc = Service("users", tmp_path, {"SOUK_EVENTS": "kafka://127.0.0.1:9092", "SOUK_EVENTS_KAFKA_CONFIG": str(f),
                                      "SOUK_ACCESS_LOG": "false"})
    try:
        svc.start(wait=False)
        assert svc.proc.wait(timeout=15) != 0
        log = svc.log_tail(50)
        assert "SOUK_EVENTS_KAFKA_CONFIG" in log and why in log, log
        assert "hunter2" not in log
    finally:
        svc.kill()
