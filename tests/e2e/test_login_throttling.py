"""Login throttling on the real client address (issue 11, item 3). Behind the
gateway every login used to come from the gateway's address, so one client's 50
failures locked everybody out, and 5 wrong passwords from anyone locked the account.
Now users believes X-Forwarded-For from the gateway only (SOUK_TRUSTED_PROXIES),
and counts per address, per (account, address), and per account only as a delay.
Clients here connect from distinct loopback addresses (127.0.0.2, .3, …)."""
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import assert_problem
from gateway_helpers import gateway
from users_helpers import PASSWORD, register, start_users


class From(HTTPAdapter):
    """Connections from a chosen source address (any of 127/8 works on Linux)."""

    def __init__(self, ip):
        self.ip = ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.ip, 0)
        return super().init_poolmanager(*args, **kwargs)


def client(ip):
    s = requests.Session()
    s.mount("http://", From(ip))
    return s


def login(session, base, email, password, headers=None):
    return session.post(base + "/oauth/token", headers=headers or {}, timeout=30,
                        data={"grant_type": "password", "username": email, "password": password})


@pytest.fixture
def edge(services, tmp_path):
    """users trusting the gateway's address, and the gateway in front (its own
    /oauth/token bucket off, so every attempt reaches users)."""
    users = start_users(services, tmp_path / "users", env={"SOUK_TRUSTED_PROXIES": "127.0.0.1"})
    (tmp_path / "gw").mkdir()
    gw = gateway(tmp_path / "gw", {"users": users.url}, SOUK_RATE_TOKEN_RPS=0)
    yield users, gw
    gw.kill()


def test_fifty_failures_from_one_address_lock_out_only_that_address(edge):
    users, gw = edge
    owner, _ = register(users)
    attacker = client("127.0.0.2")
    guesses = [f"nobody{i}-{secrets.token_hex(3)}@example.com" for i in range(50)]
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda e: login(attacker, gw.url, e, "guess guess guess").status_code,
                              guesses))
    assert codes == [400] * 50, codes
    # the per-address limit still works: the 51st from there is refused, right password or not
    r = login(attacker, gw.url, owner, PASSWORD)
    assert_problem(r, 429, "too_many_attempts")
    assert 0 < int(r.headers["Retry-After"]) <= 900
    # ...and only there: the owner, elsewhere, logs in
    r = login(client("127.0.0.3"), gw.url, owner, PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["access_token"]


def test_a_strangers_wrong_passwords_do_not_lock_the_owner_out(edge):
    users, gw = edge
    owner, _ = register(users)
    stranger = client("127.0.0.4")
    for _ in range(5):
        assert login(stranger, gw.url, owner, "not the password!").status_code == 400
    # the stranger's address is done with this account for the window...
    assert_problem(login(stranger, gw.url, owner, PASSWORD), 429, "too_many_attempts")
    # ...the owner is not
    r = login(client("127.0.0.3"), gw.url, owner, PASSWORD)
    assert r.status_code == 200, r.text
    # nor is the stranger with an account of their own
    other, _ = register(users)
    assert login(stranger, gw.url, other, PASSWORD).status_code == 200


def test_a_client_cannot_pick_its_address(edge):
    """X-Forwarded-For from a client is not believed, by the gateway or by users
    (the gateway replaces it with the address it saw)."""
    users, gw = edge
    owner, _ = register(users)
    sprayer = client("127.0.0.5")
    for i in range(5):
        forged = {"X-Forwarded-For": f"198.51.100.{i}"}
        assert login(sprayer, gw.url, owner, "not the password!", forged).status_code == 400
    r = login(sprayer, gw.url, owner, PASSWORD, {"X-Forwarded-For": "198.51.100.99"})
    assert_problem(r, 429, "too_many_attempts")


def test_account_backstop_slows_but_never_locks(services, tmp_path):
    """Failures of one account from many addresses: past SOUK_LOGIN_DELAY_AFTER every
    attempt waits (1 s, doubling, capped), but the right password still gets in.
    The addresses come in X-Forwarded-For from a trusted peer (the test plays the
    gateway); from an untrusted peer the header counts for nothing."""
    users = start_users(services, tmp_path / "u", env={
        "SOUK_TRUSTED_PROXIES": "127.0.0.1", "SOUK_LOGIN_DELAY_AFTER": "2",
        "SOUK_LOGIN_DELAY_MAX_MS": "1000"})
    owner, _ = register(users)
    plain = requests.Session()
    for i in range(4):
        r = login(plain, users.url, owner, "not the password!", {"X-Forwarded-For": f"10.0.0.{i + 1}"})
        assert r.status_code == 400, r.text
    t0 = time.monotonic()
    r = login(plain, users.url, owner, PASSWORD, {"X-Forwarded-For": "10.0.1.1"})
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 >= 1.0          # it waited out the delay: a backstop, not a lock
    # the same header from a peer users does not trust is ignored: the peer is counted
    strict = start_users(services, tmp_path / "s", env={
        "SOUK_TRUSTED_PROXIES": "10.9.9.9", "SOUK_LOGIN_MAX_FAILURES_ADDR": "3"})
    for i in range(3):
        assert login(plain, strict.url, f"x{i}@example.com", "guess guess guess",
                     {"X-Forwarded-For": f"10.0.2.{i}"}).status_code == 400
    r = login(plain, strict.url, "y@example.com", "guess guess guess", {"X-Forwarded-For": "10.0.3.1"})
    assert_problem(r, 429, "too_many_attempts")


def test_bad_trusted_proxies_stop_the_service(tmp_path):
    from conftest import Service
    svc = Service("users", tmp_path, {"SOUK_TRUSTED_PROXIES": "127.0.0.1, gateway.local"})
    r = svc.run("migrate", check=False)
    assert r.returncode == 2
    assert "SOUK_TRUSTED_PROXIES" in r.stderr and "gateway.local" in r.stderr
