"""Private message brokers for the black-box tests, each under a temporary directory
and stopped by PID: a RabbitMQ node (RECIPES) and librdkafka's mock Kafka cluster
(build/bin/kafka-mock: a test double of the Kafka protocol, kept in memory, not a
durable broker). Used by the events tests and by conftest's SOUK_TEST_EVENTS switch."""
import json
import os
import random
import select
import signal
import socket
import subprocess
import time
import uuid


PORTS_LO, PORTS_HI = 20000, 32700   # below the kernel's ephemeral range (32768+)


def port_share():
    """This test process's share [lo, hi) of the test ports. pytest-xdist's workers run
    side by side, and a port one of them found free stays free to the others until its
    service binds it: disjoint shares make that race impossible (seen: a platform's
    souk up finding its users port taken, a service answering another one's /readyz).
    The lower part of a share is free_port()'s, the upper part platforms' port ranges'."""
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    w = os.environ.get("PYTEST_XDIST_WORKER", "gw0")   # gw0, gw1, ...
    k = int(w[2:]) if w[2:].isdigit() else 0
    size = (PORTS_HI - PORTS_LO) // max(n, 1)
    return PORTS_LO + k * size, PORTS_LO + (k + 1) * size


_cursor = []


def free_port():
    """A loopback port nobody listens on right now, from this process's share, taken in
    turn (a port handed out is not handed out again before the share wraps, bound or
    not yet). Below the kernel's ephemeral range (32768+): a port the kernel hands out
    for bind(0) is one it may hand any outgoing connection on the machine before our
    service binds it (seen: a gRPC listener's "Address already in use")."""
    lo, hi = port_share()
    hi = lo + (hi - lo) // 3
    if not _cursor:
        _cursor.append(random.randrange(lo, hi))
    for _ in range(hi - lo):
        port = _cursor[0]
        _cursor[0] = lo if port + 1 >= hi else port + 1
        with socket.socket() as s:
            # as the services bind: a port whose old connections wait in TIME_WAIT is
            # free to them (without it, a busy test's ports looked taken for 60 s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {lo}-{hi}")


_free_port = free_port


class KafkaMock:
    """build/bin/kafka-mock N: N brokers on loopback ports; commands on its stdin
    (down ID|all, up ID|all, topic NAME PARTITIONS), each answered by one line."""

    def __init__(self, bin_dir, brokers=3):
        self.binary = os.path.join(bin_dir, "kafka-mock")
        self.brokers = brokers
        self.proc = None
        self.bootstrap = None
        self.url = None

    def start(self):
        self.proc = subprocess.Popen([self.binary, str(self.brokers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.bootstrap = self._line(15)
        assert self.bootstrap.count(":") == self.brokers, self.bootstrap
        self.url = "kafka://" + self.bootstrap
        return self

    def _line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError("kafka-mock did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"kafka-mock exited {self.proc.poll()}")
        return line.strip()

    def ask(self, line):
        """Send one line; returns the one-line answer."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._line(15)

    def command(self, line):
        """Send one command; returns its answer, which must be "ok"."""
        answer = self.ask(line)
        assert answer == "ok", f"{line}: {answer}"
        return answer

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()

    # ---- a stock client: kcat (Debian's kafkacat) ----
    def kcat(self, *args, data=None, timeout=30):
        return subprocess.run(["kcat", "-b", self.bootstrap, *args], input=data, capture_output=True,
                              timeout=timeout, check=True)

    def produce(self, topic, value, key=None, headers=()):
        """One record, value as bytes, through kcat -P (binary-safe: -D with a delimiter
        the value never holds)."""
        args = ["-P", "-t", topic, "-D", "\x1e", "-X", "message.max.bytes=4000000"]
        if key is not None:
            args += ["-k", key]
        for k, v in headers:
            args += ["-H", f"{k}={v}"]
        self.kcat(*args, data=value)

    def records(self, topic):
        """Every record on the topic, as kcat -J gives them (key, payload, headers…),
        in (partition, offset) order."""
        out = self.kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J",
                        "-X", "fetch.message.max.bytes=4000000").stdout
        recs = [json.loads(l) for l in out.decode(errors="replace").splitlines() if l.strip()]
        for r in recs:   # ["k1","v1","k2","v2"] → {"k1": "v1", …}
            h = r.get("headers") or []
            r["headers"] = dict(zip(h[0::2], h[1::2]))
        return sorted(recs, key=lambda r: (r["partition"], r["offset"]))


RABBIT_BIN = "/usr/lib/rabbitmq/bin"
RABBIT_START_TIMEOUT = 60


class RabbitNode:
    """A private RabbitMQ node on loopback ports, its files under one directory. ports
    (amqp, dist, epmd) and node name it again on the same ports and files (make
    run-scale keeps its node between runs); free ports and a fresh name by default."""

    def __init__(self, base, ports=None, node=None):
        self.base = str(base)
        amqp, dist, epmd = ports or (_free_port(), _free_port(), _free_port())
        self.port = amqp
        self.node = node or f"souk-test-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        plugins = os.path.join(self.base, "enabled_plugins")
        os.makedirs(os.path.join(self.base, "home"), exist_ok=True)
        with open(plugins, "w") as f:
            f.write("[].\n")
        # Erlang must resolve the node's host without /etc/hosts (a bare debootstrap
        # root has none): name it in the node's own resolver table.
        inetrc = os.path.join(self.base, "inetrc")
        with open(inetrc, "w") as f:
            f.write('{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n')
        self.env = dict(os.environ)
        self.env.update({
            "HOME": os.path.join(self.base, "home"),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist),
            "ERL_EPMD_PORT": str(epmd),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_ENABLED_PLUGINS_FILE": plugins,
            "ERL_INETRC": inetrc,
        })
        self.proc = None

    def start(self):
        out = open(os.path.join(self.base, "server.out"), "ab")
        # its own session: the node's helpers (inet_gethost…) die with its group
        self.proc = subprocess.Popen([os.path.join(RABBIT_BIN, "rabbitmq-server")], env=self.env,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + RABBIT_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rabbitmq did not open its AMQP port")

    def ctl(self, *args, timeout=60):
        return subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", self.node, *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self):
        """rabbitmqctl shutdown; the process (group) is killed by id if it lingers."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.ctl("shutdown")
                self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def close(self):
        try:
            self.stop()
        finally:
            subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, timeout=30)

    def connect(self):
        import pika   # only the amqp tests need it
        return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.port,
                                                                 connection_attempts=3, retry_delay=1))

    def queue(self, name):
        """(messages ready, consumers) of a queue, or None when it does not exist."""
        import pika
        conn = self.connect()
        try:
            ok = conn.channel().queue_declare(name, passive=True)
            return ok.method.message_count, ok.method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return None
        finally:
            if conn.is_open:
                conn.close()

    def delete_queues(self, *names, if_unused=False):
        """Delete these queues; with if_unused, not one a consumer still reads (the
        broker refuses, 406), nor then its ".dlq": a module's platform outlives a test."""
        import pika
        conn = self.connect()
        try:
            ch = conn.channel()
            kept = set()
            for n in names:
                if n.endswith(".dlq") and n[:-4] in kept:
                    continue
                try:
                    ch.queue_delete(n, if_unused=if_unused)
                except pika.exceptions.ChannelClosedByBroker:   # in use: keep it
                    kept.add(n)
                    ch = conn.channel()
        finally:
            conn.close()
