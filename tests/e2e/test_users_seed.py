"""`users seed` never takes over an account (issue 11, item 2): it used to make the
account registered under SOUK_ADMIN_EMAIL an admin, keeping its password, so
whoever registered that email first became the admin. Now it creates the admin
only when absent, refuses (exit non-zero, with the reason) when the email is a
customer's, and leaves an existing admin as it is. Also through `souk seed`."""

import requests

from conftest import Platform, Service
from users_helpers import PASSWORD, bearer, login, register, start_users, tokens

EMAIL = "boss@shop.test"


def role_of(users, email):
    """(role, password hash) of email's account on users' database (a Service, or a
    Platform's), or None."""
    sql, args = "SELECT role, password_hash FROM users WHERE email_norm = ?", (email.lower(),)
    rows = users.query("users", sql, args) if isinstance(users, Platform) else users.query(sql, args)
    return rows[0] if rows else None


def test_seed_refuses_an_email_a_customer_registered(services, tmp_path):
    users = start_users(services, tmp_path / "u", seed_admin=False,
                        env={"SOUK_ADMIN_EMAIL": EMAIL, "SOUK_ADMIN_PASSWORD": "the-operators-password"})
    register(users, email=EMAIL.upper())           # the same email, another case: first come
    before = role_of(users, EMAIL)
    r = users.run("seed", check=False)
    assert r.returncode != 0, r.stdout
    assert "belongs to an existing customer account" in r.stderr and EMAIL in r.stderr, r.stderr
    assert role_of(users, EMAIL) == before == ("customer", before[1])   # role and password untouched
    # the registrant is still a customer, with their own password; the operator's does nothing
    tok = tokens(users, EMAIL, PASSWORD)
    assert "admin" not in tok["scope"].split()
    assert requests.get(users.url + "/api/v1/users", headers=bearer(tok["access_token"]),
                        timeout=5).status_code == 403
    assert login(users, EMAIL, "the-operators-password").status_code == 400


def test_seed_leaves_an_existing_admin_unchanged(services, tmp_path):
    users = start_users(services, tmp_path / "u", seed_admin=False,
                        env={"SOUK_ADMIN_EMAIL": EMAIL, "SOUK_ADMIN_PASSWORD": "first-admin-password"})
    first = users.run("seed")
    assert "created" in first.stdout
    before = role_of(users, EMAIL)
    users.env["SOUK_ADMIN_PASSWORD"] = "second-admin-password"
    again = users.run("seed")                       # exit 0
    assert "left unchanged" in again.stdout, again.stdout
    assert role_of(users, EMAIL) == before
    assert login(users, EMAIL, "first-admin-password").status_code == 200
    assert login(users, EMAIL, "second-admin-password").status_code == 400


def test_souk_seed_stops_on_a_taken_admin_email(tmp_path):
    """The supervisor's seed runs the service's: a refusal stops it with the reason
    on the terminal; another email seeds as before."""
    p = Platform(tmp_path, env={"SOUK_ADMIN_EMAIL": EMAIL, "SOUK_ADMIN_PASSWORD": "admin-password-1"})
    # a customer registered that email on this platform's users database
    users = Service("users", tmp_path, {"SOUK_ADMIN_EMAIL": "", "SOUK_ADMIN_PASSWORD": ""})
    users.start()
    try:
        register(users, email=EMAIL)
    finally:
        users.stop()
    r = p.souk("seed", check=False)
    assert r.returncode != 0
    assert "belongs to an existing customer account" in r.stderr and "seeding users failed" in r.stderr, \
        r.stdout + r.stderr
    assert role_of(p, EMAIL)[0] == "customer"
    p.env["SOUK_ADMIN_EMAIL"] = "other-boss@shop.test"
    r = p.souk("seed", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert role_of(p, "other-boss@shop.test")[0] == "admin"
