"""The platform across hosts (issue 14; root, `make test-deploy`): PostgreSQL, RabbitMQ
and every replica of every service each in its own network namespace on a bridge,
each with its own address (tests/deploy/netns.py). A service binds its host's address
(SOUK_LISTEN), finds its peers by address (SOUK_<PEER>_URL, every replica
comma-separated), trusts X-Forwarded-For from the gateways' addresses only, and
reaches PostgreSQL and the broker over the bridge: 127.0.0.1 inside a namespace is
that namespace's alone, so nothing can lean on it. Checkouts go through each gateway;
then orders and payments are cut apart (nft drop in every orders namespace) for 10 s
while checkouts are placed, and once healed every saga settles, every confirmed order
was charged exactly once, nothing else was charged, and the ledger balances.
SOUK_HOSTS_POSTGRES: the services on PostgreSQL with two replicas (default: every service
with a database; names to pick some, "" for none); the others run one replica on SQLite
in their own namespace."""
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest
import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import BIN, DEFAULT_PORT, SERVICES, wait_until  # noqa: E402
from peers import code_calls, consumes, publishes  # noqa: E402
import netns  # noqa: E402
from stores import Stores, on_postgres  # noqa: E402

CARD_OK = "4242424242424242"
FINAL = {"confirmed", "rejected", "cancelled", "shipped"}
PASSWORD = "correct horse battery"
ADDRESS = {"name": "D", "line1": "1 Market St", "city": "Springfield", "postal_code": "12345", "country": "US"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI is root)")


class Cluster(Stores):
    """Hosts, stores and services; stop() leaves nothing behind."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.net = netns.Network()
        self.pg_dir = os.path.join(tmp, "pg")
        self.pg_started = False
        self.rabbit = None
        self.procs = {}     # host name -> Popen
        self.replicas = {}  # service -> [Host]
        self.pg = on_postgres()
        self.secrets = {s: secrets.token_hex(32) for s in SERVICES}
        self.amqp_password = secrets.token_hex(16)
        self.payments_key = secrets.token_hex(32)

    # ---- services ----
    def plan(self):
        for svc in SERVICES:
            n = 2 if svc in self.pg or svc == "gateway" else 1
            self.replicas[svc] = [self.net.add(f"{svc[:5]}{i + 1}") for i in range(n)]

    def url(self, svc):
        return ",".join(f"http://{h.address}:{DEFAULT_PORT[svc]}" for h in self.replicas[svc])

    def env(self, svc, host):
        var = os.path.join(self.tmp, "var", host.name)   # each host its own files
        os.makedirs(var, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOUK_")}
        env.update(SOUK_VAR=var, SOUK_LISTEN=f"{host.address}:{DEFAULT_PORT[svc]}", SOUK_LOG_LEVEL="warn",
                   SOUK_CLIENT_ID=svc, SOUK_CLIENT_SECRET=self.secrets[svc], SOUK_PAYMENTS_KEY=self.payments_key,
                   SOUK_TRUSTED_PROXIES=",".join(h.address for h in self.replicas["gateway"]))
        for peer in code_calls(svc) | ({"users"} if svc != "users" else set()):
            env[f"SOUK_{peer.upper()}_URL"] = self.url(peer)
        # the token issuer: users' key set and token endpoint, on every replica
        env["SOUK_JWKS_URL"] = ",".join(u + "/.well-known/jwks.json" for u in self.url("users").split(","))
        env["SOUK_TOKEN_URL"] = ",".join(u + "/oauth/token" for u in self.url("users").split(","))
        if svc == "gateway":
            for peer in SERVICES:
                if peer != "gateway":
                    env[f"SOUK_{peer.upper()}_URL"] = self.url(peer)
        if publishes(svc) or consumes(svc):
            env["SOUK_EVENTS"] = self.amqp_url
        if svc in self.pg:
            env.update(self.dbs[svc])
        if svc == "users":
            path = os.path.join(var, "clients.json")
            with open(path, "w") as f:
                json.dump(self.secrets, f)
            os.chmod(path, 0o600)
            env["SOUK_CLIENTS_FILE"] = path
        return env

    def start(self):
        self.start_rabbitmq()        # its boot overlaps PostgreSQL's and the hosts'
        self.start_postgres()
        self.dbs = {svc: self.database(svc) for svc in sorted(self.pg)}
        self.plan()
        self.wait_rabbitmq()
        first = self.replicas["catalog"][0]
        first.run(os.path.join(BIN, "catalog"), "seed", env=self.env("catalog", first), timeout=120)
        for svc in SERVICES:
            for host in self.replicas[svc]:
                log = open(os.path.join(self.tmp, f"{host.name}.log"), "ab")
                self.procs[host.name] = host.popen([os.path.join(BIN, svc), "serve"], env=self.env(svc, host),
                                                   stdout=log, stderr=subprocess.STDOUT)
                log.close()
        for svc in SERVICES:
            for host in self.replicas[svc]:
                url = f"http://{host.address}:{DEFAULT_PORT[svc]}/readyz"
                proc = self.procs[host.name]

                def ready(url=url, proc=proc, host=host):
                    assert proc.poll() is None, f"{host.name} exited {proc.returncode}: {self.log(host.name)}"
                    return requests.get(url, timeout=2).status_code == 200
                wait_until(f"{host.name} ready at {host.address}", ready, timeout=90, interval=0.2)

    def log(self, name, n=3000):
        try:
            with open(os.path.join(self.tmp, f"{name}.log"), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def stop(self):
        try:
            for p in self.procs.values():   # SIGTERM by PID; Network.teardown waits and kills
                if p.poll() is None:
                    p.terminate()
            for p in self.procs.values():
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            self.stop_stores()
        finally:
            self.net.teardown()   # whatever is left in a namespace dies by PID, then the links


@pytest.fixture(scope="module")
def cluster():
    netns.sweep_stale()
    tmp = tempfile.mkdtemp(prefix="souk-hosts-")
    os.chmod(tmp, 0o755)
    c = Cluster(tmp)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        left = c.net.leftovers()
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"left behind: {left}"


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def customer(gw):
    """A new customer with a card and one product in the cart, through gateway gw."""
    email = f"h{uuid.uuid4().hex[:12]}@example.com"
    r = requests.post(gw + "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "H"}, timeout=15)
    assert r.status_code == 201, r.text
    r = requests.post(gw + "/oauth/token", data={"grant_type": "password", "username": email, "password": PASSWORD},
                      timeout=15)
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]
    # services verify tokens with users' JWKS, fetched by each replica on its own
    r = wait_until("a card saved", lambda: (x := requests.post(
        gw + "/api/v1/payment-methods", headers=bearer(tok), timeout=15,
        json={"card": {"number": CARD_OK, "exp_month": 12, "exp_year": 2040, "cvc": "123", "holder": "H"}}))
        .status_code == 201 and x, timeout=30)
    pm = r.json()["id"]
    r = requests.get(gw + "/api/v1/products", params={"in_stock": "true", "page_size": 1}, timeout=15)
    assert r.status_code == 200, r.text
    product = r.json()["items"][0]["id"]
    r = requests.put(gw + f"/api/v1/cart/items/{product}", headers=bearer(tok), json={"quantity": 1}, timeout=15)
    assert r.status_code == 200, r.text
    return {"token": tok, "pm": pm}


def place(gw, c, timeout=30):
    return requests.post(gw + "/api/v1/orders", timeout=timeout,
                         headers={**bearer(c["token"]), "Idempotency-Key": str(uuid.uuid4())},
                         json={"payment_method_id": c["pm"], "shipping_address": ADDRESS})


def orders_of(gw, c):
    r = requests.get(gw + "/api/v1/orders", headers=bearer(c["token"]), timeout=15)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def charges(gw, c, order_id):
    r = requests.get(gw + "/api/v1/payments", params={"order_id": order_id}, headers=bearer(c["token"]),
                     timeout=15)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def gateways(cluster):
    return [f"http://{h.address}:{DEFAULT_PORT['gateway']}" for h in cluster.replicas["gateway"]]


def test_every_host_has_its_own_address_and_binds_it(cluster):
    addrs = [h.address for h in cluster.net.hosts.values()]
    assert len(addrs) == len(set(addrs))
    assert all(not a.startswith("127.") for a in addrs)
    for svc in SERVICES:
        for host in cluster.replicas[svc]:
            # the listening socket is the host's address, not a wildcard or loopback
            out = host.run("ss", "-Htln", check=False).stdout
            assert f"{host.address}:{DEFAULT_PORT[svc]}" in out, f"{host.name}: {out}"
    assert len(cluster.replicas["gateway"]) == 2
    for svc in cluster.pg:
        assert len(cluster.replicas[svc]) == 2, svc


def test_checkout_through_each_gateway(cluster):
    for gw in gateways(cluster):
        c = customer(gw)
        r = place(gw, c)
        assert r.status_code in (201, 202), r.text
        order = r.json()
        if order["status"] not in FINAL:
            order = wait_until("the order settled", lambda: (o := requests.get(
                gw + f"/api/v1/orders/{order['id']}", headers=bearer(c["token"]), timeout=10).json())
                ["status"] in FINAL and o, timeout=30)
        assert order["status"] == "confirmed", order
        assert [(p["status"], p["captured_cents"]) for p in charges(gw, c, order["id"])] == \
            [("captured", order["total_cents"])]


def service_token(cluster, client="orders"):
    users = cluster.url("users").split(",")[0]
    r = requests.post(users + "/oauth/token", data={"grant_type": "client_credentials"},
                      auth=(client, cluster.secrets[client]), timeout=15)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_partition_between_orders_and_payments_heals_with_every_saga_final_and_one_charge(cluster):
    gws = gateways(cluster)
    customers = [customer(gws[i % 2]) for i in range(4)]
    orders_hosts, payments_hosts = cluster.replicas["orders"], cluster.replicas["payments"]
    answers = {}

    def checkout(i):
        try:
            answers[i] = place(gws[i % 2], customers[i], timeout=60)
        except requests.RequestException as e:   # the client gave up: the order may exist
            answers[i] = e

    for h in orders_hosts:
        h.drop(payments_hosts)
    cut = time.monotonic()
    try:
        # payments cannot be reached from orders (its packets vanish: no refusal, timeouts)
        probe = orders_hosts[0].run("timeout", "3", "bash", "-c",
                                    f"exec 3<>/dev/tcp/{payments_hosts[0].address}/{DEFAULT_PORT['payments']}",
                                    check=False)
        assert probe.returncode != 0, "the partition lets orders reach payments"
        threads = [threading.Thread(target=checkout, args=(i,)) for i in range(len(customers))]
        for t in threads:
            t.start()
        time.sleep(max(0.0, 10 - (time.monotonic() - cut)))   # the fault lasts 10 s, by definition
    finally:
        for h in orders_hosts:
            h.heal()
    for t in threads:
        t.join(timeout=90)
    for i, a in answers.items():
        if not isinstance(a, Exception):
            assert a.status_code in (201, 202, 503, 504), (i, a.status_code, a.text)

    # every order each customer has reaches a final status; one charge for a confirmed one
    for i, c in enumerate(customers):
        gw = gws[i % 2]
        mine = wait_until(f"customer {i}'s orders settled",
                          lambda: (o := orders_of(gw, c)) and all(x["status"] in FINAL for x in o) and o,
                          timeout=90, interval=0.5)
        assert len(mine) == 1, mine   # one Idempotency-Key, one order
        for order in mine:
            pays = charges(gw, c, order["id"])
            captured = [p for p in pays if p["status"] == "captured"]
            if order["status"] == "confirmed":
                assert [p["captured_cents"] for p in captured] == [order["total_cents"]], (order, pays)
            else:
                assert not captured, (order, pays)
    # the partition delays, it does not decline: every order of a good card goes through
    statuses = [o["status"] for c in customers for o in orders_of(gws[0], c)]
    assert statuses == ["confirmed"] * len(customers), statuses
    payments = cluster.url("payments").split(",")[0]
    r = requests.get(payments + "/internal/v1/ledger", headers=bearer(service_token(cluster)), timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["balanced"] is True and r.json()["consistent"] is True, r.json()
