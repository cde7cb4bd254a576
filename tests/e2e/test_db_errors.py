"""A failed database step is an error answer, never a partial list or a silent loss
(issue 11, "swallowed database errors"), and every one is the same answer (issue 12,
souk_handler_db_error): busy → 503 "busy" with Retry-After, a constraint → 409
"conflict", anything else → 500 "internal". The test makes the service's own SQLite
database fail where it wants, deterministically: a table is swapped for a view
whose row marked 'boom' raises an error when it is read (abs() of the smallest
integer overflows), a trigger raises that error or refuses a write, or the test
holds the write lock."""
import os
import sqlite3

import pytest
import requests

import conftest
from conftest import Service, assert_problem
from events_helpers import FakeProducer, SmtpSink, wait_for
from users_helpers import admin_token, bearer, login, register, start_users, tokens

ADDR = {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
OVERFLOW = "abs(-9223372036854775807 - 1)"   # a runtime error at the row that reaches it


@pytest.fixture(autouse=True)
def _on_sqlite(monkeypatch):
    """The faults here are made in SQLite files; in the scale mode too these services
    run on SQLite (PostgreSQL's failures: tests/unit/lib/db.c, test_db_postgres.py)."""
    monkeypatch.setattr(conftest, "SCALE", False)


def db(svc, name):
    con = sqlite3.connect(os.path.join(svc.var, "db", f"{name}.db"), timeout=10, isolation_level=None)
    return con


def poison(con, table, columns, marker_column):
    """Replace table by a view of it whose rows with marker_column = 'boom' fail."""
    cols = ", ".join(f"CASE WHEN {marker_column} = 'boom' THEN {OVERFLOW} ELSE {c} END AS {c}"
                     if c == marker_column else c for c in columns)
    con.execute(f"ALTER TABLE {table} RENAME TO {table}_real")
    con.execute(f"CREATE VIEW {table} AS SELECT {cols} FROM {table}_real")


def test_lists_fail_whole_not_partial(services, tmp_path):
    users = start_users(services, tmp_path / "u")
    email, _ = register(users)
    tok = tokens(users, email)["access_token"]
    adm = admin_token(users)
    for line1 in ("1 Good St", "boom"):
        r = requests.post(users.url + "/api/v1/users/me/addresses", headers=bearer(tok),
                          json={**ADDR, "line1": line1}, timeout=5)
        assert r.status_code == 201, r.text
    register(users, name="boom")
    con = db(users, "users")
    poison(con, "addresses", ["id", "user_id", "name", "line1", "line2", "city", "region",
                              "postal_code", "country", "phone", "created_at"], "line1")
    poison(con, "users", ["id", "email", "email_norm", "name", "password_hash", "role",
                          "created_at", "updated_at"], "name")
    con.close()
    # the addresses: once as a list, once inside /me (an error a retry does not cure: 500)
    assert_problem(requests.get(users.url + "/api/v1/users/me/addresses", headers=bearer(tok), timeout=5),
                   500, "internal")
    assert_problem(requests.get(users.url + "/api/v1/users/me", headers=bearer(tok), timeout=5),
                   500, "internal")
    # the admin's list of accounts
    assert_problem(requests.get(users.url + "/api/v1/users", headers=bearer(adm), timeout=5),
                   500, "internal")
    # a page that stops before the bad row is still a good page
    r = requests.get(users.url + "/api/v1/users", params={"page_size": 1}, headers=bearer(adm), timeout=5)
    assert r.status_code == 200 and len(r.json()["items"]) == 1, r.text


def test_login_is_not_checked_when_the_attempt_cannot_be_counted(services, tmp_path):
    users = start_users(services, tmp_path / "u")
    email, _ = register(users)
    con = db(users, "users")
    for when in ("INSERT", "UPDATE"):
        con.execute(f"CREATE TRIGGER no_count_{when.lower()} BEFORE {when} ON login_failures"
                    f" BEGIN SELECT {OVERFLOW}; END")
    # a guess would not be counted: it is not checked either
    assert_problem(login(users, email, "a guess, uncounted"), 500, "internal")
    assert_problem(login(users, email), 500, "internal")
    con.execute("DROP TRIGGER no_count_insert")
    con.execute("DROP TRIGGER no_count_update")
    con.close()
    assert login(users, email).status_code == 200


def test_a_constraint_is_409_and_a_held_lock_is_503_busy(services, tmp_path):
    users = start_users(services, tmp_path / "u")
    email, _ = register(users)
    me = users.url + "/api/v1/users/me"
    auth = bearer(tokens(users, email)["access_token"])
    con = db(users, "users")
    con.execute("CREATE TRIGGER no_rename BEFORE UPDATE OF name ON users WHEN NEW.name = 'Taken'"
                " BEGIN SELECT RAISE(ABORT, 'name taken'); END")
    body = assert_problem(requests.patch(me, json={"name": "Taken"}, headers=auth, timeout=5),
                          409, "conflict")
    assert "Retry-After" not in requests.patch(me, json={"name": "Taken"}, headers=auth, timeout=5).headers
    assert body["detail"].startswith("cannot update the account")
    # the test holds the write lock past the service's busy timeout (5 s)
    con.execute("BEGIN IMMEDIATE")
    try:
        r = requests.patch(me, json={"name": "Ada"}, headers=auth, timeout=30)
    finally:
        con.execute("ROLLBACK")
    assert_problem(r, 503, "busy")
    assert r.headers["Retry-After"] == "1"
    assert requests.patch(me, json={"name": "Ada"}, headers=auth, timeout=5).status_code == 200
    con.close()
    # logged once each, with the request's id
    lines = [l for l in users.log_lines() if l.get("message") == "database step failed"]
    assert [l["http.response.status_code"] for l in lines] == [409, 409, 503], lines
    assert all(l.get("http.request.id") for l in lines), lines


def test_notify_says_when_a_sent_mail_is_not_recorded(tmp_path):
    users_feed = FakeProducer("users")
    sink = SmtpSink(tmp_path / "maildir").start()
    svc = Service("notify", tmp_path, {
        "SOUK_USERS_URL": users_feed.url, "SOUK_SMTP_URL": sink.url, "SOUK_EVENTS_WAIT": "2",
        "SOUK_CLIENT_ID": "notify", "SOUK_CLIENT_SECRET": "fake-secret"}).start()
    try:
        con = db(svc, "notify")
        con.execute("CREATE TRIGGER not_sent BEFORE UPDATE OF status ON deliveries WHEN NEW.status = 'sent'"
                    " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
        users_feed.emit("user.registered", {"user_id": "usr_" + "0" * 26, "email": "ada@example.com",
                                            "name": "Ada", "registered_at": "2026-01-01T00:00:00.000Z"})
        wait_for(lambda: any("mail sent but not recorded" in l for l in open(svc.log_path)), 20,
                 what="the error about the unrecorded mail")
        con.execute("DROP TRIGGER not_sent")
        # nothing is lost: the mail is recorded as sent once the database takes it
        wait_for(lambda: con.execute("SELECT status FROM deliveries").fetchall() == [("sent",)], 20,
                 what="the delivery recorded")
        assert len(os.listdir(os.path.join(sink.dir, "new"))) >= 1
        con.close()
    finally:
        svc.stop()
        sink.stop()
        users_feed.close()
