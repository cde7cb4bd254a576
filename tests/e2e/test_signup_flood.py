"""Registration floods don't take login down (issue 11, item 4). Each sign-up costs
an argon2id hash; 400 of them from one address parked users' request threads, its
/readyz missed the gateway's probe (1 s) and every users route got 503. Now hashes
run on their own threads behind a bounded queue: a full queue is a 503 with
Retry-After at once, logins go first, /readyz never waits. And the gateway gives
sign-up its own strict per-address bucket."""
import secrets
import threading
import time

import pytest
import requests

from conftest import assert_problem
from gateway_helpers import gateway
from users_helpers import PASSWORD, login, register, start_users

FLOODERS = 48
PROBE_TIMEOUT = 1.0   # the gateway's health probe gives /readyz this long (lib/proxy.c)


def flood(url, stop, seen):
    s = requests.Session()
    while not stop.is_set():
        try:
            r = s.post(url + "/api/v1/users", timeout=30, json={
                "email": f"flood-{secrets.token_hex(8)}@example.com", "password": PASSWORD, "name": "F"})
            seen.append((r.status_code, r.headers.get("Retry-After"), r.headers.get("Content-Type")))
        except requests.RequestException as e:
            seen.append((0, None, str(e)))


def test_signup_flood_leaves_readyz_and_login_answering(services, tmp_path):
    users = start_users(services, tmp_path / "u")
    owner, _ = register(users)
    stop, seen = threading.Event(), []
    threads = [threading.Thread(target=flood, args=(users.url, stop, seen), daemon=True)
               for _ in range(FLOODERS)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 2 * FLOODERS and time.monotonic() < deadline:   # the flood is on
            time.sleep(0.05)
        for _ in range(5):
            r = requests.get(users.url + "/readyz", timeout=PROBE_TIMEOUT)
            assert r.status_code == 200
            assert requests.get(users.url + "/healthz", timeout=PROBE_TIMEOUT).status_code == 200
            r = requests.post(users.url + "/oauth/token", timeout=5, data={
                "grant_type": "password", "username": owner, "password": PASSWORD})
            assert r.status_code == 200, r.text
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    codes = {c for c, _, _ in seen}
    assert codes <= {201, 503}, codes
    assert 201 in codes                              # sign-ups still happen, at the hashing rate
    busy = [(ra, ct) for c, ra, ct in seen if c == 503]
    assert busy and all(ra == "1" and ct.startswith("application/problem+json") for ra, ct in busy)


def test_the_gateway_limits_signups_per_address(services, tmp_path):
    users = start_users(services, tmp_path / "u")
    (tmp_path / "gw").mkdir()
    gw = gateway(tmp_path / "gw", {"users": users.url}, SOUK_RATE_SIGNUP_PER_HOUR=60,
                 SOUK_RATE_SIGNUP_BURST=3)
    try:
        codes = []
        for i in range(5):
            r = requests.post(gw.url + "/api/v1/users", timeout=10, json={
                "email": f"s{i}-{secrets.token_hex(4)}@example.com", "password": PASSWORD, "name": "S"})
            codes.append(r)
        assert [r.status_code for r in codes] == [201, 201, 201, 429, 429], [r.text for r in codes]
        p = assert_problem(codes[3], 429, "rate_limited")
        assert "signup" in p["detail"]
        assert 1 <= int(codes[3].headers["Retry-After"]) <= 60
        assert '"signup"' in codes[3].headers["RateLimit-Policy"]
        # logins and reads from the same address are not the sign-up bucket's business
        email, _ = register(users)
        r = requests.post(gw.url + "/oauth/token", timeout=10,
                          data={"grant_type": "password", "username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert requests.get(gw.url + "/.well-known/jwks.json", timeout=5).status_code == 200
    finally:
        gw.kill()
