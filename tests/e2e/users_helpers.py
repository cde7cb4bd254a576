"""Helpers for the identity tests: start the users service (and peers) with a
clients file, register and log in, and make RSA keys the tests own."""
import json
import os
import secrets
import time

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import Service, free_port

ADMIN_EMAIL = "root@souk.test"
ADMIN_PASSWORD = "admin-password-for-tests"
PASSWORD = "correct horse battery"
ISSUER = "souk"  # SOUK_TOKEN_ISSUER's default
AUDIENCE = "souk"
CLIENT_SECRETS = {"catalog": secrets.token_hex(32), "orders": secrets.token_hex(32),
                  "cart": secrets.token_hex(32), "notify": secrets.token_hex(32)}


def write_clients(var):
    os.makedirs(var, exist_ok=True)
    path = os.path.join(str(var), "clients.json")
    with open(path, "w") as f:
        json.dump(CLIENT_SECRETS, f)
    os.chmod(path, 0o600)
    return path


def start_users(services, var, env=None, seed_admin=True, wait=True):
    """users on a free port, with the clients file and (optionally) a seeded admin."""
    e = {"SOUK_CLIENTS_FILE": write_clients(var), "SOUK_ADMIN_EMAIL": ADMIN_EMAIL,
         "SOUK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    e.update(env or {})
    return services("users", env=e, seed=seed_admin, var_dir=var, wait=wait)


def start_catalog(services, var, users, seed=True):
    os.makedirs(var, exist_ok=True)
    env = {"SOUK_USERS_URL": users.url, "SOUK_CLIENT_ID": "catalog",
           "SOUK_CLIENT_SECRET": CLIENT_SECRETS["catalog"],
           # catalog consumes orders' events; no orders runs in these tests
           "SOUK_ORDERS_URL": f"http://127.0.0.1:{free_port()}"}
    return services("catalog", env=env, seed=seed, var_dir=var)


def register(users, email=None, password=PASSWORD, name="Test User"):
    email = email or f"u{secrets.token_hex(6)}@example.com"
    r = requests.post(users.url + "/api/v1/users", json={"email": email, "password": password, "name": name})
    assert r.status_code == 201, r.text
    return email, r.json()


def login(users, email, password=PASSWORD, form=True):
    data = {"grant_type": "password", "username": email, "password": password}
    if form:
        return requests.post(users.url + "/oauth/token", data=data)
    return requests.post(users.url + "/oauth/token", json=data)


def tokens(users, email, password=PASSWORD):
    r = login(users, email, password)
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def admin_token(users):
    return tokens(users, ADMIN_EMAIL, ADMIN_PASSWORD)["access_token"]


def new_rsa_key(kid):
    """(private key, private JWK dict) for an RSA-2048 key the test owns."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return key, jwk


def install_key(var, kid, created=None):
    """Put a key of ours in SOUK_VAR/keys (0600), as an operator would; the users
    service publishes it and, being the newest, signs with it."""
    key, jwk = new_rsa_key(kid)
    jwk["souk_created"] = int(created if created is not None else time.time())
    d = os.path.join(str(var), "keys")
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, kid + ".jwk")
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(jwk, f)
    os.rename(path + ".tmp", path)
    return key


def claims(sub="usr_01J00000000000000000000000", **over):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now, "exp": now + 300,
         "jti": secrets.token_urlsafe(12), "scope": "user", "client_id": "souk-web",
         "roles": ["customer"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(key, kid, payload, alg="RS256", typ="at+jwt"):
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": typ})
