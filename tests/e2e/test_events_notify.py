"""Black-box tests of the kit's feed consumer and the notify service: real notify
binary, fake producers serving feeds, a real SMTP sink. Run:
/usr/bin/python3 -m pytest tests/e2e/test_events_notify.py"""
import os
import signal
import time

import pytest

from conftest import Service
from events_helpers import FakeProducer, SmtpSink, wait_for


@pytest.fixture
def producers():
    ps = {name: FakeProducer(name) for name in ("users", "orders", "payments")}
    yield ps
    for p in ps.values():
        p.close()


@pytest.fixture
def sink(tmp_path):
    s = SmtpSink(tmp_path / "maildir").start()
    yield s
    s.stop()


def notify_service(tmp_path, producers, smtp_url, **extra):
    env = {
        "SOUK_USERS_URL": producers["users"].url,
        "SOUK_ORDERS_URL": producers["orders"].url,
        "SOUK_PAYMENTS_URL": producers["payments"].url,
        "SOUK_SMTP_URL": smtp_url,
        "SOUK_EVENTS": "feed",   # the fake producers serve feeds, whatever SOUK_TEST_EVENTS says
        "SOUK_EVENTS_WAIT": "2",
        "SOUK_EVENTS_MAX_ATTEMPTS": "2",
        "SOUK_EVENTS_RETRY_MS": "50",
        "SOUK_MAIL_RETRY_MS": "100",
        "SOUK_ACCESS_LOG": "false",
        "SOUK_CLIENT_ID": "notify",
        "SOUK_CLIENT_SECRET": "fake-secret",
    }
    env.update(extra)
    return Service("notify", tmp_path / "notify", env)


def db_rows(svc, sql, *args):
    return svc.query(sql, args)


def register(producers, k, email=None, name=None):
    uid = f"usr_{k:026d}"
    producers["users"].emit("user.registered",
                            {"user_id": uid, "email": email or f"user{k}@example.com",
                             "name": name or f"User {k}", "registered_at": "2026-01-01T00:00:00.000Z"},
                            subject=uid)
    return uid


@pytest.fixture
def notify(tmp_path, producers, sink):
    svc = notify_service(tmp_path, producers, sink.url)
    yield svc
    svc.kill()


def test_registration_sends_a_welcome_mail_and_keeps_a_notification(notify, producers, sink):
    notify.start()
    uid = register(producers, 1, email="ada@example.com", name="Ada")
    msgs = wait_for(lambda: sink.messages(), what="a welcome mail")
    assert len(msgs) == 1
    m = msgs[0]
    assert m["To"].addresses[0].addr_spec == "ada@example.com"
    assert m["Subject"] == "Welcome to souk, Ada"
    assert "ada@example.com" in m.get_content()
    rows = db_rows(notify, "SELECT user_id, type, subject, read FROM notifications")
    assert rows == [(uid, "user.registered", "Welcome to souk, Ada", 0)]
    # the mail is sent before its delivery is marked sent: wait for the mark
    wait_for(lambda: db_rows(notify, "SELECT status, attempts FROM deliveries") == [("sent", 1)],
             what="the delivery marked sent")


def test_order_event_mails_the_address_learnt_from_registration(notify, producers, sink):
    notify.start()
    uid = register(producers, 2, email="bob@example.com", name="Bob")
    producers["orders"].emit("order.confirmed",
                             {"order_id": "ord_1", "user_id": uid, "total_cents": 12345,
                              "currency": "USD", "items": []}, subject="ord_1")
    msgs = wait_for(lambda: len(sink.messages()) == 2 and sink.messages(), what="two mails")
    subjects = sorted(m["Subject"] for m in msgs)
    assert subjects == ["Welcome to souk, Bob", "Your order ord_1 is confirmed"]
    body = [m for m in msgs if "confirmed" in m["Subject"]][0].get_content()
    assert "123.45 USD" in body and "Hello Bob" in body


def test_twenty_registrations_while_notify_is_down_give_exactly_twenty_mails(notify, producers, sink):
    notify.start()
    register(producers, 100)
    wait_for(lambda: len(sink.messages()) == 1, what="the first mail")
    notify.stop()
    for k in range(101, 121):
        register(producers, k)
    notify.start()
    wait_for(lambda: len(sink.messages()) >= 21, timeout=30, what="21 mails")
    time.sleep(1.5)   # anything doubled would show up now
    to = sorted(m["To"].addresses[0].addr_spec for m in sink.messages())
    assert len(to) == 21
    assert len(set(to)) == 21
    assert db_rows(notify, "SELECT count(*) FROM notifications") == [(21,)]


def test_sigkill_mid_stream_loses_and_doubles_nothing(notify, producers, sink):
    notify.start()
    for k in range(200, 240):
        register(producers, k)
    wait_for(lambda: len(sink.messages()) >= 3, what="some mails")
    notify.kill(signal.SIGKILL)
    notify.start()
    wait_for(lambda: len(db_rows(notify, "SELECT 1 FROM deliveries WHERE status = 'sent'")) == 40,
             timeout=30, what="40 deliveries sent")
    assert db_rows(notify, "SELECT count(*), count(DISTINCT event_id) FROM notifications") == [(40, 40)]
    # SMTP may repeat a mail cut off by the kill between send and record (at least
    # once), but every one of the 40 arrived
    assert len({m["To"].addresses[0].addr_spec for m in sink.messages()}) == 40


def test_duplicate_event_is_applied_once(notify, producers, sink):
    notify.start()
    env = producers["users"].emit("user.registered",
                                  {"user_id": "usr_dup", "email": "dup@example.com", "name": "Dup"})
    producers["users"].add(env)          # the same event again, as a redelivery would
    register(producers, 3)               # and a later one, to know both were read
    wait_for(lambda: len(sink.messages()) >= 2, what="two mails")
    time.sleep(1.0)
    assert sorted(m["To"].addresses[0].addr_spec for m in sink.messages()) == ["dup@example.com", "user3@example.com"]
    assert db_rows(notify, "SELECT count(*) FROM souk_inbox") == [(2,)]


def test_poison_event_is_dead_lettered_and_the_feed_goes_on(notify, producers, sink):
    notify.start()
    bad = producers["users"].emit("user.registered", {"user_id": "usr_bad", "name": "No Mail"}
                                  | {"email": "not-an-address"})
    register(producers, 4)
    wait_for(lambda: len(sink.messages()) == 1, what="the good mail")
    assert sink.messages()[0]["To"].addresses[0].addr_spec == "user4@example.com"
    rows = db_rows(notify, "SELECT event_id, type, attempts FROM souk_dead_letters")
    assert rows == [(bad["id"], "user.registered", 2)]
    assert db_rows(notify, "SELECT count(*) FROM notifications WHERE user_id = 'usr_bad'") == [(0,)]


def test_smtp_failures_are_retried_with_backoff_and_recorded(tmp_path, producers):
    sink = SmtpSink(tmp_path / "late-maildir")        # port chosen, nothing listening yet
    svc = notify_service(tmp_path, producers, sink.url)
    try:
        svc.start()
        register(producers, 5, email="eve@example.com")
        wait_for(lambda: db_rows(svc, "SELECT count(*) FROM delivery_attempts WHERE ok = 0")[0][0] >= 2,
                 what="two failed attempts")
        status, attempts, err = db_rows(svc, "SELECT status, attempts, last_error FROM deliveries")[0]
        assert status == "pending" and attempts >= 2 and "smtp" in err
        sink.start()
        wait_for(lambda: sink.messages(), timeout=30, what="the mail after the sink came up")
        wait_for(lambda: db_rows(svc, "SELECT status FROM deliveries") == [("sent",)],
                 what="the delivery marked sent")
        assert db_rows(svc, "SELECT ok FROM delivery_attempts ORDER BY id DESC LIMIT 1") == [(1,)]
    finally:
        svc.kill()
        sink.stop()


def test_mail_files_when_no_smtp_url(tmp_path, producers):
    svc = notify_service(tmp_path, producers, "")
    try:
        svc.start()
        register(producers, 6, email="f@example.com", name="Fay")
        maildir = os.path.join(svc.var, "mail")
        files = wait_for(lambda: [f for f in os.listdir(maildir) if f.endswith(".eml")]
                         if os.path.isdir(maildir) else None, what="a mail file")
        with open(os.path.join(maildir, files[0])) as f:
            text = f.read()
        assert "To: <f@example.com>" in text and "Subject: Welcome to souk, Fay" in text
    finally:
        svc.kill()
