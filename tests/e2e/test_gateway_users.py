"""The identity routes through the gateway with the real users service: register,
log in, /me with a token verified at the edge (and again by users), forged identity
headers without effect, /internal refused, per-user rate limits, and users routes
working while the catalog is down."""
import re

import pytest
import requests

from conftest import assert_problem
from gateway_helpers import gateway
from users_helpers import admin_token, bearer, register, start_users, tokens


@pytest.fixture
def platform(services, tmp_path):
    users = start_users(services, tmp_path / "users")
    gw = gateway(tmp_path / "gw", {"users": users.url},
                 SOUK_RATE_USER_RPS=2, SOUK_RATE_USER_BURST=8)
    yield users, gw
    gw.kill()


@pytest.fixture(autouse=True)
def _mkdir(tmp_path):
    (tmp_path / "gw").mkdir()


def test_register_login_me_through_the_gateway(platform):
    users, gw = platform
    email, u = register(gw, name="Via Gateway")
    tok = tokens(gw, email)
    assert tok["token_type"] == "Bearer"
    me = requests.get(gw.url + "/api/v1/users/me", headers=bearer(tok["access_token"]), timeout=5)
    assert me.status_code == 200 and me.json()["id"] == u["id"]
    jwks = requests.get(gw.url + "/.well-known/jwks.json", timeout=5)
    assert jwks.status_code == 200 and jwks.json()["keys"]
    assert requests.get(gw.url + "/.well-known/openid-configuration", timeout=5).status_code == 200


def test_forged_identity_headers_have_no_effect(platform):
    users, gw = platform
    _, ann = register(gw, name="Ann")
    email_bob, bob = register(gw, name="Bob")
    tok = tokens(gw, email_bob)["access_token"]
    forged = {"X-User-Id": ann["id"], "X-Souk-User": ann["id"], "X-Forwarded-User": ann["id"],
              "X-Souk-Role": "admin", "X-Auth-Request-User": ann["id"], "X-Souk-Scope": "users:read"}
    me = requests.get(gw.url + "/api/v1/users/me", headers={**bearer(tok), **forged}, timeout=5)
    assert me.status_code == 200 and me.json()["id"] == bob["id"]
    # no token plus forged headers: refused at the edge
    assert_problem(requests.get(gw.url + "/api/v1/users/me", headers=forged, timeout=5), 401)
    # a customer is not an admin, whatever the headers say
    r = requests.get(gw.url + "/api/v1/users", headers={**bearer(tok), **forged}, timeout=5)
    assert_problem(r, 403)
    # the internal user lookup does not exist from outside, even with a token
    r = requests.get(gw.url + f"/internal/v1/users/{ann['id']}", headers=bearer(tok), timeout=5)
    assert_problem(r, 404)


def test_bad_tokens_refused_early(platform):
    users, gw = platform
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."]:
        r = requests.get(gw.url + "/api/v1/users/me", headers=bearer(token), timeout=5)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_admin_route_with_admin_token(platform):
    users, gw = platform
    tok = admin_token(gw)
    r = requests.get(gw.url + "/api/v1/users", headers=bearer(tok), timeout=5)
    assert r.status_code == 200 and "items" in r.json()


def test_per_user_rate_limit(platform):
    users, gw = platform
    email, _ = register(gw)
    tok = tokens(gw, email)["access_token"]
    codes = [requests.get(gw.url + "/api/v1/users/me", headers=bearer(tok), timeout=5)
             for _ in range(12)]
    statuses = [c.status_code for c in codes]
    assert statuses[:8] == [200] * 8 and 429 in statuses[8:], statuses
    limited = next(c for c in codes if c.status_code == 429)
    assert_problem(limited, 429, "rate_limited")
    assert limited.headers["RateLimit-Policy"].startswith('"user";q=8;')
    assert re.fullmatch(r"\d+", limited.headers["Retry-After"])
    # another user (same address) is not limited by the first one's bucket
    email2, _ = register(gw)
    tok2 = tokens(gw, email2)["access_token"]
    assert requests.get(gw.url + "/api/v1/users/me", headers=bearer(tok2), timeout=5).status_code == 200


def test_users_routes_work_while_catalog_is_down(services, tmp_path):
    users = start_users(services, tmp_path / "users")
    gw = gateway(tmp_path / "gw", {"users": users.url})   # catalog points at a closed port
    try:
        assert_problem(requests.get(gw.url + "/api/v1/products", timeout=5), 503, "no_upstream")
        email, _ = register(gw)
        tok = tokens(gw, email)["access_token"]
        assert requests.get(gw.url + "/api/v1/users/me", headers=bearer(tok), timeout=5).status_code == 200
    finally:
        gw.kill()
