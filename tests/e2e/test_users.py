"""Black-box tests of the users service: registration, login, refresh rotation
and reuse detection, revocation, /me, addresses, admin routes, throttling, and
what is (and is not) stored. Run: make e2e PYTEST_ARGS="-k users" """
import json
import os
import stat
import time

import jwt

import pytest
import requests

from conftest import assert_problem
from users_helpers import (ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, admin_token, bearer,
                           install_key, login, register, start_users, tokens)


@pytest.fixture
def users(services, tmp_path):
    return start_users(services, tmp_path / "users")


def test_register_returns_user_without_secrets(users):
    email, u = register(users, name="Ann")
    assert u["id"].startswith("usr_") and u["email"] == email and u["name"] == "Ann"
    assert u["role"] == "customer"
    assert set(u) == {"id", "email", "name", "role", "created_at", "updated_at"}


def test_duplicate_email_any_case_is_409(users):
    email, _ = register(users, email="Dup.User@Example.COM")
    for variant in ["dup.user@example.com", "DUP.USER@EXAMPLE.COM"]:
        r = requests.post(users.url + "/api/v1/users",
                          json={"email": variant, "password": PASSWORD, "name": "X"})
        assert_problem(r, 409, "email_taken")


@pytest.mark.parametrize("password", ["short", "123456789", "1234567890", "aaaaaaaaaaaa", "x" * 129])
def test_weak_password_is_400(users, password):
    r = requests.post(users.url + "/api/v1/users",
                      json={"email": "weak@example.com", "password": password, "name": "W"})
    body = assert_problem(r, 400, "validation_failed")
    assert any(e["field"] == "password" for e in body["errors"])


@pytest.mark.parametrize("email", ["plain", "@example.com", "a@", "a@b", "a b@example.com",
                                   "a@@example.com", "a@example..com", "a" * 250 + "@e.com", ""])
def test_malformed_email_is_400(users, email):
    r = requests.post(users.url + "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "M"})
    body = assert_problem(r, 400, "validation_failed")
    assert any(e["field"] == "email" for e in body["errors"])


def test_register_rejects_unknown_fields_like_role(users):
    r = requests.post(users.url + "/api/v1/users",
                      json={"email": "role@example.com", "password": PASSWORD, "name": "R", "role": "admin"})
    assert_problem(r, 400, "validation_failed")


@pytest.mark.parametrize("form", [True, False])
def test_password_grant_form_and_json(users, form):
    email, u = register(users)
    r = login(users, email.upper(), form=form)      # the email matches in any case
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["token_type"] == "Bearer" and t["expires_in"] == 900 and t["scope"] == "user"
    assert t["access_token"].count(".") == 2 and len(t["refresh_token"]) >= 40
    assert r.headers["Cache-Control"] == "no-store"
    me = requests.get(users.url + "/api/v1/users/me", headers=bearer(t["access_token"]))
    assert me.status_code == 200 and me.json()["id"] == u["id"]


def test_wrong_password_and_unknown_user_look_the_same(users):
    email, _ = register(users)
    a = login(users, email, "wrong password here")
    b = login(users, "nobody@example.com", "wrong password here")
    assert a.status_code == b.status_code == 400
    assert a.json()["error"] == b.json()["error"] == "invalid_grant"
    assert a.json()["detail"] == b.json()["detail"]


def test_token_endpoint_errors(users):
    r = requests.post(users.url + "/oauth/token", data={"grant_type": "magic"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = requests.post(users.url + "/oauth/token", data={"username": "a@b.c"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(users.url + "/oauth/token", data="grant_type=password&grant_type=password",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = requests.post(users.url + "/oauth/token", data={"grant_type": "client_credentials",
                                                        "client_id": "orders", "client_secret": "nope" * 8})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(users.url + "/oauth/token", data={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


def test_refresh_rotates(users):
    email, _ = register(users)
    t1 = tokens(users, email)
    r = requests.post(users.url + "/oauth/token",
                      data={"grant_type": "refresh_token", "refresh_token": t1["refresh_token"]})
    assert r.status_code == 200, r.text
    t2 = r.json()
    assert t2["refresh_token"] != t1["refresh_token"]
    assert requests.get(users.url + "/api/v1/users/me", headers=bearer(t2["access_token"])).status_code == 200
    # the new one works once more (JSON body this time)
    r = requests.post(users.url + "/oauth/token",
                      json={"grant_type": "refresh_token", "refresh_token": t2["refresh_token"]})
    assert r.status_code == 200


def test_reuse_of_rotated_refresh_token_revokes_the_family(users):
    email, _ = register(users)
    t1 = tokens(users, email)
    other_session = tokens(users, email)       # another login: another family
    refresh = lambda rt: requests.post(users.url + "/oauth/token",
                                       data={"grant_type": "refresh_token", "refresh_token": rt})
    t2 = refresh(t1["refresh_token"]).json()
    r = refresh(t1["refresh_token"])            # replay of the rotated token
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = refresh(t2["refresh_token"])            # the legitimate successor is dead too
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert refresh(other_session["refresh_token"]).status_code == 200


def test_revoke(users):
    email, _ = register(users)
    t = tokens(users, email)
    r = requests.post(users.url + "/oauth/revoke", data={"token": t["refresh_token"]})
    assert r.status_code == 200
    r = requests.post(users.url + "/oauth/token",
                      data={"grant_type": "refresh_token", "refresh_token": t["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # RFC 7009: an unknown token is not an error
    assert requests.post(users.url + "/oauth/revoke", data={"token": "unknown"}).status_code == 200
    assert requests.post(users.url + "/oauth/revoke", data={}).status_code == 400


def test_me_get_and_patch_name_only(users):
    email, u = register(users, name="Old")
    at = tokens(users, email)["access_token"]
    r = requests.patch(users.url + "/api/v1/users/me", json={"name": "New"}, headers=bearer(at))
    assert r.status_code == 200 and r.json()["name"] == "New"
    for change in [{"role": "admin"}, {"email": "evil@example.com"}, {"name": "X", "role": "admin"},
                   {"password_hash": "x"}]:
        r = requests.patch(users.url + "/api/v1/users/me", json=change, headers=bearer(at))
        assert_problem(r, 400, "validation_failed")
    me = requests.get(users.url + "/api/v1/users/me", headers=bearer(at)).json()
    assert me["role"] == "customer" and me["email"] == email and me["name"] == "New"
    assert me["addresses"] == []


def test_addresses_are_per_user(users):
    e1, _ = register(users)
    e2, _ = register(users)
    a1, a2 = tokens(users, e1)["access_token"], tokens(users, e2)["access_token"]
    addr = {"name": "Ann", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
    r = requests.post(users.url + "/api/v1/users/me/addresses", json=addr, headers=bearer(a1))
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    assert aid.startswith("adr_")
    bad = dict(addr, country="usa")
    assert_problem(requests.post(users.url + "/api/v1/users/me/addresses", json=bad, headers=bearer(a1)), 400)
    assert [a["id"] for a in requests.get(users.url + "/api/v1/users/me/addresses", headers=bearer(a1)).json()["items"]] == [aid]
    assert requests.get(users.url + "/api/v1/users/me/addresses", headers=bearer(a2)).json()["items"] == []
    # another user's address is 404, not 403
    assert_problem(requests.delete(users.url + f"/api/v1/users/me/addresses/{aid}", headers=bearer(a2)), 404)
    assert requests.delete(users.url + f"/api/v1/users/me/addresses/{aid}", headers=bearer(a1)).status_code == 204


def test_admin_routes(users):
    email, u = register(users)
    user_at = tokens(users, email)["access_token"]
    for method, path, body in [("GET", "/api/v1/users", None),
                               ("PATCH", f"/api/v1/users/{u['id']}", {"role": "admin"})]:
        r = requests.request(method, users.url + path, json=body)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(requests.request(method, users.url + path, json=body, headers=bearer(user_at)), 403)
    adm = admin_token(users)
    listing = requests.get(users.url + "/api/v1/users?page_size=1", headers=bearer(adm))
    assert listing.status_code == 200 and len(listing.json()["items"]) == 1
    nxt = listing.json()["next_page_token"]
    assert nxt
    page2 = requests.get(users.url + "/api/v1/users", params={"page_size": 1, "page_token": nxt}, headers=bearer(adm))
    assert page2.status_code == 200 and page2.json()["items"][0]["id"] != listing.json()["items"][0]["id"]
    r = requests.patch(users.url + f"/api/v1/users/{u['id']}", json={"role": "admin"}, headers=bearer(adm))
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert_problem(requests.patch(users.url + f"/api/v1/users/{u['id']}", json={"role": "root"},
                                  headers=bearer(adm)), 400)
    # the promoted user's next login carries the role
    at = tokens(users, email)["access_token"]
    assert requests.get(users.url + "/api/v1/users", headers=bearer(at)).status_code == 200


def test_login_throttled_per_account(services, tmp_path):
    users = start_users(services, tmp_path / "u", env={"SOUK_LOGIN_MAX_FAILURES": "3"})
    email, _ = register(users)
    for _ in range(3):
        assert login(users, email, "wrong password!!").status_code == 400
    r = login(users, email)                        # even the right password waits now
    assert_problem(r, 429, "too_many_attempts")
    assert 0 < int(r.headers["Retry-After"]) <= 900
    other, _ = register(users)                     # another account is not affected
    assert login(users, other).status_code == 200


def test_login_throttled_per_address(services, tmp_path):
    users = start_users(services, tmp_path / "u",
                        env={"SOUK_LOGIN_MAX_FAILURES_ADDR": "4", "SOUK_LOGIN_WINDOW": "60"})
    email, _ = register(users)
    for i in range(4):                            # spraying different accounts
        assert login(users, f"victim{i}@example.com", "guess guess guess").status_code == 400
    r = login(users, email)
    assert_problem(r, 429, "too_many_attempts")
    assert 0 < int(r.headers["Retry-After"]) <= 60


def test_hashes_are_argon2id_and_never_returned(users, tmp_path):
    email, u = register(users)
    t = tokens(users, email)
    adm = admin_token(users)
    bodies = [requests.get(users.url + "/api/v1/users/me", headers=bearer(t["access_token"])).text,
              requests.get(users.url + "/api/v1/users?page_size=100", headers=bearer(adm)).text]
    hashes = [h for (h,) in users.query("SELECT password_hash FROM users")]
    stored = [h for (h,) in users.query("SELECT token_hash FROM refresh_tokens")]
    assert len(hashes) == 2
    for h in hashes:
        assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), h
    assert t["refresh_token"] not in stored         # only its hash is kept
    for body in bodies:
        for secret in hashes + stored:
            assert secret not in body
        assert "argon2" not in body and "password" not in body


def test_discovery_and_jwks(users):
    d = requests.get(users.url + "/.well-known/openid-configuration").json()
    assert d["issuer"] == "souk"
    assert set(d["grant_types_supported"]) == {"password", "refresh_token", "client_credentials"}
    keys = requests.get(users.url + "/.well-known/jwks.json").json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["kid"] for k in keys)
    for k in keys:                                  # public parts only
        assert not set(k) & {"d", "p", "q", "dp", "dq", "qi"}


def test_signing_keys_live_in_the_database(users):
    rows = users.query("SELECT kid, jwk FROM signing_keys")
    published = {k["kid"] for k in requests.get(users.url + "/.well-known/jwks.json").json()["keys"]}
    assert rows and {kid for kid, _ in rows} == published
    assert all("d" in json.loads(jwk) for _, jwk in rows)          # the private key, here only
    d = os.path.join(users.var, "keys")                              # the drop box stays empty
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700 and not os.listdir(d)


def same_database(svc):
    """env that puts another replica of svc on svc's own database."""
    return {k: v for k, v in svc.env.items() if k in ("SOUK_DB", "SOUK_DB_PASSWORD_FILE")}


def test_replicas_sign_with_one_key_set_and_an_operator_key_reaches_both(services, tmp_path):
    """Two users replicas on one database, each with a state directory of its own (as
    two pods), started together on an empty key table: one key is made, both publish
    it, and a token one signs is good at the other. A key an operator drops into one
    replica's SOUK_VAR/keys is imported, signs on both, and its file is gone."""
    a = start_users(services, tmp_path / "a", seed_admin=True)
    a.kill()
    a.query("DELETE FROM signing_keys")
    a = start_users(services, tmp_path / "a", seed_admin=False, wait=False)
    b = start_users(services, tmp_path / "b", env=same_database(a), seed_admin=False, wait=False)
    a.wait_ready()
    b.wait_ready()
    assert len(a.query("SELECT kid FROM signing_keys")) == 1

    def jwks(svc):
        return sorted(k["kid"] for k in requests.get(svc.url + "/.well-known/jwks.json").json()["keys"])

    assert jwks(a) == jwks(b)
    token = tokens(a, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
    assert requests.get(b.url + "/api/v1/users/me", headers=bearer(token)).status_code == 200

    install_key(tmp_path / "b", "operator-key", created=time.time())
    deadline = time.monotonic() + 10
    while jwks(a) != jwks(b) or "operator-key" not in jwks(a):
        assert time.monotonic() < deadline, (jwks(a), jwks(b))
        time.sleep(0.1)
    assert not os.listdir(tmp_path / "b" / "keys")
    for svc in (a, b):
        t = tokens(svc, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]
        assert jwt.get_unverified_header(t)["kid"] == "operator-key"
        other = b if svc is a else a
        r = requests.get(other.url + "/api/v1/users/me", headers=bearer(t))
        assert r.status_code == 200, r.text


def test_seed_generates_a_password_when_none_given(services, tmp_path):
    var = tmp_path / "gen"
    users = start_users(services, var, env={"SOUK_ADMIN_PASSWORD": "", "SOUK_ADMIN_EMAIL": ""}, seed_admin=False)
    out = users.run("seed").stdout
    path = os.path.join(users.var, "admin-password")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    password = open(path).read().strip()
    assert len(password) >= 16 and password in out and "admin@souk.local" in out
    at = tokens(users, "admin@souk.local", password)["access_token"]
    assert requests.get(users.url + "/api/v1/users", headers=bearer(at)).status_code == 200
    assert "already exists" in users.run("seed").stdout      # idempotent
