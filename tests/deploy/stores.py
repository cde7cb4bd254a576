"""PostgreSQL and RabbitMQ on their own test hosts (tests/deploy/netns.py): a private
cluster from scripts/pg listening on the host's address (roles with passwords over TCP
from the bridge's subnet only), and a private RabbitMQ node whose user may log in from
other hosts. Used by the across-hosts and the kube play tests."""
import os
import socket
import subprocess

import netns
from conftest import REPO, SERVICES, wait_until
from peers import has_database

PG = os.path.join(REPO, "scripts", "pg")
RABBIT_BIN = "/usr/lib/rabbitmq/bin"


def on_postgres():
    """The services the deploy tests run on PostgreSQL (with two replicas across hosts):
    every service with a database, unless SOUK_HOSTS_POSTGRES names some ("" for none,
    to run all on SQLite, one replica each). The others keep SQLite."""
    v = os.environ.get("SOUK_HOSTS_POSTGRES")
    if v is None or v.strip() == "all":
        return {s for s in SERVICES if has_database(s)}
    return set(v.replace(",", " ").split())


class Stores:
    """self.net (a netns.Network), self.tmp, self.amqp_password are the subclass's."""

    pg_started = False
    rabbit = None

    def start_postgres(self):
        db = self.net.add("db")
        port = db.run(PG, "start", self.pg_dir, "--listen", db.address, "--allow", str(self.net.subnet),
                      "--port", "5432", timeout=120).stdout.strip()
        self.pg_started = True
        assert port == "5432"
        self.db = db

    def database(self, svc):
        url = netns.run(PG, "createdb", self.pg_dir, svc, timeout=60).stdout.strip()
        pwfile = netns.run(PG, "password-file", self.pg_dir, svc).stdout.strip()
        assert f"@{self.db.address}:5432/" in url, url
        return {"SOUK_DB": url, "SOUK_DB_PASSWORD_FILE": pwfile}

    def start_rabbitmq(self):
        mq = self.net.add("mq")
        base = os.path.join(self.tmp, "rabbitmq")
        os.makedirs(os.path.join(base, "home"))
        with open(os.path.join(base, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        with open(os.path.join(base, "inetrc"), "w") as f:   # the node's own name, inside its host
            f.write('{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n')
        with open(os.path.join(base, "rabbitmq.conf"), "w") as f:
            # a user that may log in from other hosts (guest may not)
            f.write(f"loopback_users = none\ndefault_user = souk\ndefault_pass = {self.amqp_password}\n")
        env = dict(os.environ, HOME=os.path.join(base, "home"), RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"),
                   RABBITMQ_LOG_BASE=os.path.join(base, "log"), RABBITMQ_NODENAME="souk@localhost",
                   RABBITMQ_NODE_IP_ADDRESS=mq.address, RABBITMQ_NODE_PORT="5672",
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, "enabled_plugins"),
                   RABBITMQ_CONFIG_FILE=os.path.join(base, "rabbitmq.conf"), ERL_INETRC=os.path.join(base, "inetrc"))
        out = open(os.path.join(base, "server.out"), "ab")
        self.rabbit = mq.popen([os.path.join(RABBIT_BIN, "rabbitmq-server")], env=env, stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.mq, self.rabbit_env = mq, env
        self.amqp_url = f"amqp://souk:{self.amqp_password}@{mq.address}:5672/%2f"

    def wait_rabbitmq(self):
        def up():
            assert self.rabbit.poll() is None, f"rabbitmq-server exited {self.rabbit.returncode}"
            try:
                with socket.create_connection((self.mq.address, 5672), timeout=0.5):
                    return True
            except OSError:
                return False
        try:   # an Erlang VM's boot on a loaded shared machine has taken over a minute
            wait_until("RabbitMQ's AMQP port", up, timeout=150, interval=0.2)
        except AssertionError as e:
            with open(os.path.join(self.tmp, "rabbitmq", "server.out"), "rb") as f:
                raise AssertionError(f"{e}; rabbitmq-server's output ends: {f.read()[-3000:]!r}") from None

    def stop_stores(self):
        if self.pg_started:
            subprocess.run([PG, "destroy", self.pg_dir], capture_output=True, timeout=120)
        if self.rabbit is not None and self.rabbit.poll() is None:
            self.mq.run(os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", "souk@localhost", "shutdown",
                        env=self.rabbit_env, check=False, timeout=60)
