"""Access tokens: an independent verifier (PyJWT) accepts ours; the kit refuses
every forged or invalid token, both in-process (users) and through the JWKS
fetched over HTTP (catalog); keys rotate without breaking live tokens; service
clients get scoped client-credentials tokens.

The valid-signature-but-bad-claims cases are signed with an RSA key the test
itself installed in SOUK_VAR/keys before starting users: a key on disk there is
trusted by definition, so no test-only switch exists in the binary."""
import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from conftest import assert_problem
from users_helpers import (AUDIENCE, CLIENT_SECRETS, ISSUER, bearer, claims, install_key,
                           new_rsa_key, register, sign, start_catalog, start_users, tokens)

TEST_KID = "test-key-1"


@pytest.fixture
def stack(services, tmp_path):
    """users signing with a key the test owns, and catalog verifying over HTTP."""
    key = install_key(tmp_path / "users", TEST_KID)
    users = start_users(services, tmp_path / "users")
    catalog = start_catalog(services, tmp_path / "catalog", users)
    email, u = register(users)
    return {"users": users, "catalog": catalog, "key": key, "user": u, "email": email}


def b64(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def protected(stack):
    """(service, method, path, body) of routes that need a valid token."""
    return [(stack["users"], "GET", "/api/v1/users/me", None),
            (stack["catalog"], "POST", "/api/v1/products", {})]


def forged(stack):
    key, sub = stack["key"], stack["user"]["id"]
    now = int(time.time())
    good = claims(sub=sub)
    pem = stack["key"].public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    valid = sign(key, TEST_KID, good)
    head, body, sig = valid.split(".")
    hs_head = b64({"alg": "HS256", "typ": "at+jwt", "kid": TEST_KID})
    hs_sig = b64(hmac.new(pem, f"{hs_head}.{body}".encode(), hashlib.sha256).digest())
    stranger, _ = new_rsa_key("stranger")
    flipped = sig[:-4] + ("AAAA" if not sig.endswith("AAAA") else "BBBB")
    return {
        "alg_none": b64({"alg": "none", "typ": "at+jwt", "kid": TEST_KID}) + "." + body + ".",
        "hs256_with_public_key": f"{hs_head}.{body}.{hs_sig}",
        "bad_signature": f"{head}.{body}.{flipped}",
        "expired": sign(key, TEST_KID, claims(sub=sub, iat=now - 1000, nbf=now - 1000, exp=now - 120)),
        "not_yet_valid": sign(key, TEST_KID, claims(sub=sub, nbf=now + 600, exp=now + 900)),
        "wrong_iss": sign(key, TEST_KID, claims(sub=sub, iss="https://evil.example")),
        "wrong_aud": sign(key, TEST_KID, claims(sub=sub, aud="someone-else")),
        "unknown_kid": sign(stranger, "stranger", good),
        "known_kid_other_key": sign(stranger, TEST_KID, good),
        "wrong_typ": sign(key, TEST_KID, good, typ="JWT"),
        "no_exp": sign(key, TEST_KID, claims(sub=sub, exp=None)),
        "garbage": "not-a-token",
        "garbage_dots": "a.b.c",
        "huge": "a" * 9000,
    }


# Why each forgery fails (the error_description), so none passes for the wrong reason.
REASON = {"alg_none": "malformed token", "hs256_with_public_key": "algorithm not allowed",
          "bad_signature": "bad signature", "expired": "token expired",
          "not_yet_valid": "token not yet valid", "wrong_iss": "wrong issuer",
          "wrong_aud": "wrong audience", "unknown_kid": "unknown signing key",
          "known_kid_other_key": "bad signature", "wrong_typ": "typ must be at+jwt",
          "no_exp": "exp and iat are required integers", "garbage": "malformed token",
          "garbage_dots": "malformed token", "huge": "malformed token"}


def test_forged_tokens_are_refused_everywhere(stack):
    tokens_ = forged(stack)
    for svc, method, path, body in protected(stack):
        r = requests.request(method, svc.url + path, json=body)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
        for name, tok in tokens_.items():
            r = requests.request(method, svc.url + path, json=body, headers=bearer(tok))
            assert r.status_code == 401, f"{svc.name} {name}: {r.status_code} {r.text}"
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], name
            assert f'error_description="{REASON[name]}"' in r.headers["WWW-Authenticate"], name
            assert r.json()["code"] == "invalid_token"


def test_control_token_signed_by_installed_key_is_accepted(stack):
    """The forgeries above fail for their defect, not for the key: the same claims,
    properly signed, pass (users: /me; catalog: admin claim gets past auth)."""
    good = sign(stack["key"], TEST_KID, claims(sub=stack["user"]["id"]))
    assert requests.get(stack["users"].url + "/api/v1/users/me", headers=bearer(good)).status_code == 200
    admin = sign(stack["key"], TEST_KID, claims(sub=stack["user"]["id"], roles=["admin"]))
    r = requests.post(stack["catalog"].url + "/api/v1/products", json={}, headers=bearer(admin))
    assert_problem(r, 400, "validation_failed")          # past auth, into validation


def test_issued_tokens_verify_with_pyjwt_jwks_client(stack):
    users = stack["users"]
    at = tokens(users, stack["email"])["access_token"]
    header = jwt.get_unverified_header(at)
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt" and header["kid"] == TEST_KID
    client = jwt.PyJWKClient(users.url + "/.well-known/jwks.json")
    key = client.get_signing_key_from_jwt(at)
    c = jwt.decode(at, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER,
                   options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss", "aud"]})
    assert c["sub"] == stack["user"]["id"] and c["roles"] == ["customer"] and c["scope"] == "user"
    assert c["exp"] - c["iat"] == 900


def test_user_token_works_at_catalog_and_role_is_enforced(stack):
    at = tokens(stack["users"], stack["email"])["access_token"]
    r = requests.post(stack["catalog"].url + "/api/v1/products", json={}, headers=bearer(at))
    assert_problem(r, 403)


def test_key_rotation_keeps_old_tokens_valid(services, tmp_path):
    var = tmp_path / "users"
    users = start_users(services, var)
    catalog = start_catalog(services, tmp_path / "catalog", users)
    email, _ = register(users)
    old = tokens(users, email)["access_token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    install_key(var, "rotated-key", created=time.time())       # newer: becomes the signer
    time.sleep(1.2)                                             # users re-reads its key dir each second
    kids = {k["kid"] for k in requests.get(users.url + "/.well-known/jwks.json").json()["keys"]}
    assert kids == {old_kid, "rotated-key"}                     # the old key is still published
    new = tokens(users, email)["access_token"]
    assert jwt.get_unverified_header(new)["kid"] == "rotated-key"
    for t in (old, new):
        assert requests.get(users.url + "/api/v1/users/me", headers=bearer(t)).status_code == 200
    # catalog cached the old JWKS; the unknown kid makes it refetch once
    adm = tokens(users, "root@souk.test", "admin-password-for-tests")["access_token"]
    assert jwt.get_unverified_header(adm)["kid"] == "rotated-key"
    r = requests.post(catalog.url + "/api/v1/products", json={}, headers=bearer(adm))
    assert_problem(r, 400, "validation_failed")


def test_client_credentials_scopes(services, tmp_path):
    users = start_users(services, tmp_path / "users")
    url = users.url + "/oauth/token"
    r = requests.post(url, data={"grant_type": "client_credentials"}, auth=("orders", CLIENT_SECRETS["orders"]))
    assert r.status_code == 200, r.text
    t = r.json()
    assert "refresh_token" not in t
    assert set(t["scope"].split()) >= {"catalog:reserve", "payments:charge", "catalog:read"}
    c = jwt.decode(t["access_token"], options={"verify_signature": False})
    assert c["sub"] == c["client_id"] == "orders" and "roles" not in c
    # client_secret_post, narrowed scope
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": "cart",
                                 "client_secret": CLIENT_SECRETS["cart"], "scope": "catalog:read"})
    assert r.status_code == 200 and r.json()["scope"] == "catalog:read"
    r = requests.post(url, data={"grant_type": "client_credentials", "client_id": "cart",
                                 "client_secret": CLIENT_SECRETS["cart"], "scope": "payments:charge"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = requests.post(url, data={"grant_type": "client_credentials"}, auth=("orders", CLIENT_SECRETS["cart"]))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    # a service token is not a user: /me refuses it; users:read routes need the scope
    email, u = register(users)
    svc = r = requests.post(url, data={"grant_type": "client_credentials"},
                            auth=("notify", CLIENT_SECRETS["notify"])).json()["access_token"]
    assert_problem(requests.get(users.url + "/api/v1/users/me", headers=bearer(svc)), 403)
    r = requests.get(users.url + f"/internal/v1/users/{u['id']}", headers=bearer(svc))
    assert r.status_code == 200 and r.json()["email"] == email
    cart = requests.post(url, data={"grant_type": "client_credentials"},
                         auth=("cart", CLIENT_SECRETS["cart"])).json()["access_token"]
    r = requests.get(users.url + f"/internal/v1/users/{u['id']}", headers=bearer(cart))
    assert_problem(r, 403)
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    user_at = tokens(users, email)["access_token"]
    assert_problem(requests.get(users.url + f"/internal/v1/users/{u['id']}", headers=bearer(user_at)), 403)
