"""deploy/k8s started by `podman kube play` (root, `make test-deploy`): the service
images built in seconds from this machine's binaries (host_images.py: FROM scratch,
the libraries ldd names, the runtime stage's metadata from deploy/docker/Dockerfile;
the Dockerfile's own build is tested by test_images.py in make deploy-check), in a
podman store of the test's own (a temp dir: every image, pod, container and volume
it makes is there, and is removed with it, pass or fail), the kustomization rendered
with a fresh deploy/gen-secrets file, and every Deployment played as a pod whose network
namespace is wired to a bridge (tests/deploy/netns.py), which stands for a pod network:
each pod has its own address, and the Service names resolve to those addresses through
an /etc/hosts file the test mounts into every container (podman 4.3 writes hostAliases
only into the infra container's hosts file when the pod has no network of its own).
Then a checkout through the gateway: register, log in, a card, a product in the cart,
an order, confirmed (cart calls catalog and orders calls payments over gRPC, between
pods).

What podman 4.3 (Debian 12) plays: Pods, Deployments (one pod each), ConfigMaps in the
same file, hostPath, emptyDir and PVC volumes, init containers. What it does not, and
how the test stands in, the rest of each object played as rendered:
- StatefulSets: PostgreSQL and RabbitMQ run as processes on their own hosts, and the
  databases and roles are made by the same init script the StatefulSet mounts
  (deploy/k8s/initdb), with the same passwords from the Secret;
- Secrets: a secretKeyRef becomes the key's value, a secret volume a hostPath
  directory holding the items it names (mode and owner as the volume would have);
- probes are dropped (podman would run them as healthchecks with curl, which the
  images do not carry): the test polls /readyz; container ports too (podman turns
  them into host port mappings, which a pod without a network refuses); one replica
  (two would share the namespace's address: replicas are the across-hosts test's);
- GRPC_DNS_RESOLVER=native in every container: gRPC's c-ares resolver reads no hosts
  file, so the <peer>-grpc names would not resolve without a DNS server;
- restartPolicy OnFailure (a Deployment's is Always): podman 4.3 gives the pod's
  policy to its init containers too, and restarts `migrate` after it exits 0 until
  removing it fails, so no pod would start;
- Services, NetworkPolicies, PDBs and HPAs are not played (NetworkPolicies are
  checked against the code's call graph in test_k8s_manifests.py)."""
import base64
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from conftest import DEFAULT_PORT, DEPLOY, REPO, SERVICES, wait_until  # noqa: E402
import host_images  # noqa: E402
import kustomize  # noqa: E402
import netns  # noqa: E402
from stores import Stores, on_postgres  # noqa: E402

INIT_SCRIPT = os.path.join(DEPLOY, "k8s", "initdb", "10-souk-databases.sh")
PASSWORD = "correct horse battery"
ADDRESS = {"name": "K", "line1": "1 Market St", "city": "Springfield", "postal_code": "12345", "country": "US"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="podman and network namespaces need root (CI is root)")


class Podman:
    """A private podman (as deploy/docker/build-offline makes one): its own config,
    storage and state under STORE; nothing touches /var/lib/containers."""

    def __init__(self, store):
        self.store = store
        for d in ("root", "run", "tmp"):
            os.makedirs(os.path.join(store, d), exist_ok=True)
        with open(os.path.join(store, "containers.conf"), "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
                    f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'events_logfile_path = "{store}/events.log"\n')
        with open(os.path.join(store, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{store}/root"\nrunroot = "{store}/run"\n')
        self.env = dict(os.environ, CONTAINERS_CONF=f"{store}/containers.conf",
                        CONTAINERS_STORAGE_CONF=f"{store}/storage.conf", TMPDIR=f"{store}/tmp")

    def __call__(self, *args, check=True, timeout=180):
        r = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"podman {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    def cleanup(self):
        # side by side: `pod rm -a` takes the pods one after another (~3 s each)
        pods = self("pod", "ps", "-q", check=False).stdout.split()
        with concurrent.futures.ThreadPoolExecutor(max(1, len(pods))) as pool:
            list(pool.map(lambda pod: self("pod", "rm", "-f", "-t", "2", pod, check=False), pods))
        self("pod", "rm", "-a", "-f", "-t", "2", check=False)
        self("rm", "-a", "-f", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if f" {self.store}/" in line]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        shutil.rmtree(self.store, ignore_errors=True)


class Play(Stores):
    def __init__(self, tmp, podman):
        self.tmp, self.podman = tmp, podman
        self.net = netns.Network()
        self.pg_dir = os.path.join(tmp, "pg")
        self.amqp_password = None
        self.hosts = {}

    def secret_values(self, docs):
        (secret,) = [d for d in docs if d["kind"] == "Secret"]
        return {k: base64.b64decode("".join(v.split())).decode() for k, v in secret["data"].items()}

    def make_databases(self, values, dbs):
        """The StatefulSet's first start: the init script as postgres over the socket."""
        sock = netns.run(PG_SCRIPT, "psql", self.pg_dir, "--", "-Atc", "SHOW unix_socket_directories",
                         check=False).stdout.strip()
        data = os.path.realpath(os.path.join(self.pg_dir, "data"))
        env = dict(os.environ, POSTGRES_USER="postgres", PGHOST=sock or os.path.join(data, "sock"), PGPORT="5432",
                   PGDATA=data, SOUK_DATABASES=" ".join(dbs),
                   **{f"SOUK_DB_PASSWORD_{d.upper()}": values[f"SOUK_DB_PASSWORD_{d.upper()}"] for d in dbs})
        r = subprocess.run(["runuser", "-u", "postgres", "--", "sh", INIT_SCRIPT], env=env, capture_output=True,
                           text=True, timeout=120, cwd="/")
        assert r.returncode == 0, r.stdout + r.stderr

    def play(self, path, host):
        """kube play one pod onto its host: podman 4.3 refuses a pod in a named
        namespace, so the pod is made with a private one (--network none), its infra
        container started alone, a veth on the bridge moved into that namespace, and
        then the pod started (init containers first, which reach PostgreSQL)."""
        out = self.podman("kube", "play", "--start=false", "--network", "none", path, timeout=300).stdout.split()
        pod = out[out.index("Pod:") + 1]
        infra = self.podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).stdout.strip()
        self.podman("start", infra)
        pid = int(self.podman("inspect", "--format", "{{.State.Pid}}", infra).stdout)
        self.net.attach(host, pid)
        self.podman("pod", "start", pod, timeout=300)

    def pod_file(self, dep, docs, values, hosts):
        """One Deployment as podman 4.3 plays it (see the module's docstring); hosts:
        the /etc/hosts file every container gets."""
        name = dep["metadata"]["name"]
        dep["spec"]["replicas"] = 1   # two would share this namespace's address and port
        spec = dep["spec"]["template"]["spec"]
        spec["restartPolicy"] = "OnFailure"
        spec["volumes"].append({"name": "cluster-dns", "hostPath": {"path": hosts, "type": "File"}})
        # podman 4.3 makes an emptyDir a named volume called by the volume's name: every
        # pod's "data" would be one volume (and pods played side by side race to make
        # it), so each pod's gets the pod's name in front, as its own in a cluster
        own = {v["name"]: f"{name}-{v['name']}" for v in spec["volumes"] if "emptyDir" in v}
        for vol in spec["volumes"]:
            vol["name"] = own.get(vol["name"], vol["name"])
        for vol in spec.get("volumes", []):
            if "secret" in vol:
                d = os.path.join(self.tmp, "secrets", name, vol["name"])
                os.makedirs(d)
                for item in vol["secret"]["items"]:
                    path = os.path.join(d, item["path"])
                    with open(path, "w") as f:
                        f.write(values[item["key"]])
                    os.chown(path, 0, spec["securityContext"]["fsGroup"])
                    os.chmod(path, vol["secret"].get("defaultMode", 0o644))
                os.chmod(d, 0o755)
                del vol["secret"]
                vol["hostPath"] = {"path": d, "type": "Directory"}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            if name not in on_postgres():   # not ported yet: SQLite in the pod's emptyDir
                c["env"] = [e for e in c["env"] if e["name"] not in ("SOUK_DB", "SOUK_DB_PASSWORD_FILE")]
            c.pop("readinessProbe", None)
            c.pop("livenessProbe", None)
            c.pop("ports", None)   # podman publishes them, which a pod without a network refuses
            c["volumeMounts"] = [{**m, "name": own.get(m["name"], m["name"])} for m in c["volumeMounts"]] + [{"name": "cluster-dns", "mountPath": "/etc/hosts", "readOnly": True}]
            # gRPC's own resolver (c-ares) asks a DNS server and reads no hosts file: the
            # system's does (a cluster's DNS answers both)
            c["env"] = c["env"] + [{"name": "GRPC_DNS_RESOLVER", "value": "native"}]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    del e["valueFrom"]
                    e["value"] = values[ref["key"]]
        maps = [d for d in docs if d["kind"] == "ConfigMap"]
        path = os.path.join(self.tmp, f"{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(maps + [dep], f, sort_keys=False)
        return path


PG_SCRIPT = os.path.join(REPO, "scripts", "pg")


def sweep_stale():
    """What a run killed before its cleanup left (its PID is in the names): the pods
    and containers in its podman store, the store's mounts, its temp dirs. The
    network namespaces are netns.sweep_stale()'s."""
    top = tempfile.gettempdir()
    for d in sorted(os.listdir(top)):
        m = re.fullmatch(r"souk-kube-(podman-)?(\d+)-\w+", d)
        if not m or netns._alive(int(m.group(2))):
            continue
        if m.group(1):
            Podman(os.path.join(top, d)).cleanup()
        shutil.rmtree(os.path.join(top, d), ignore_errors=True)


def root_is_a_mount():
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/" for line in f)


@pytest.fixture(scope="module")
def played():
    if not root_is_a_mount():
        # podman unpacks a layer by making "/" private and pivoting, and runc exec
        # enters a container through its mount namespace's root: neither works in a
        # plain chroot (podman import: "remount /, flags: 0x44000: invalid argument").
        # Skipped there, loudly, as the root-only tests are without root: this is the
        # machine's limit, not the manifests' (CI and a real host have a mounted root)
        pytest.skip("/ is not a mount point (a plain chroot?): podman needs a root it can pivot from "
                    "(unshare -m, a bind of the root onto itself, pivot_root)")
    netns.sweep_stale()
    sweep_stale()
    tmp = tempfile.mkdtemp(prefix=f"souk-kube-{os.getpid()}-")
    os.chmod(tmp, 0o755)
    podman = Podman(tempfile.mkdtemp(prefix=f"souk-kube-podman-{os.getpid()}-"))
    play = Play(tmp, podman)
    t0 = time.monotonic()

    def stamp(what):   # where the time goes, in the test's output (-s)
        print(f"kube play test: {what} at {time.monotonic() - t0:.0f} s")
    try:
        # the manifests with fresh secrets, as an operator would render them
        k8s = os.path.join(tmp, "k8s")
        shutil.copytree(os.path.join(DEPLOY, "k8s"), k8s)
        with open(os.path.join(k8s, "secrets.env"), "w") as f:
            f.write(subprocess.run([os.path.join(DEPLOY, "gen-secrets")], capture_output=True, text=True,
                                   check=True).stdout)
        docs = kustomize.render(k8s)
        values = play.secret_values(docs)
        # the stores' hosts, with the Secret's passwords
        play.amqp_password = values["SOUK_RABBITMQ_PASSWORD"]
        play.start_rabbitmq()
        play.start_postgres()
        stamp("PostgreSQL up, RabbitMQ starting")
        # the images while RabbitMQ boots
        host_images.build(podman, tmp, SERVICES, DEFAULT_PORT)
        stamp("images built")
        deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        assert set(deps) == set(SERVICES)
        (pg,) = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "postgres"]
        pg_env = {e["name"]: e.get("value") for e in pg["spec"]["template"]["spec"]["containers"][0]["env"]}
        play.make_databases(values, pg_env["SOUK_DATABASES"].split())
        for svc in SERVICES:   # their addresses now (the names' file), their namespaces podman's
            play.hosts[svc] = play.net.plan(svc)
        # every Service's name (a service's, its headless <name>-grpc one, the stores')
        # to the address of the pod it selects
        address = {"postgres": play.db.address, "rabbitmq": play.mq.address,
                   **{svc: h.address for svc, h in play.hosts.items()}}
        names = [(address[d["spec"]["selector"]["app.kubernetes.io/name"]], d["metadata"]["name"])
                 for d in docs if d["kind"] == "Service"]
        assert {n for _, n in names} >= set(address), names
        hosts = os.path.join(tmp, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1\tlocalhost\n" + "".join(f"{a}\t{n}\n" for a, n in names))
        os.chmod(hosts, 0o644)
        play.wait_rabbitmq()
        stamp("PostgreSQL and RabbitMQ up")
        paths = {svc: play.pod_file(deps[svc], docs, values, hosts) for svc in SERVICES}
        with concurrent.futures.ThreadPoolExecutor(len(SERVICES)) as pool:   # as a cluster would
            for f in [pool.submit(play.play, paths[svc], play.hosts[svc]) for svc in SERVICES]:
                f.result()
        stamp("pods played, migrations done")
        for svc in SERVICES:
            url = f"http://{play.hosts[svc].address}:{DEFAULT_PORT[svc]}/readyz"

            def ready(url=url, svc=svc):
                main = container(podman, svc)
                state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", main).stdout.split()
                assert state[0] != "exited", f"{svc}: {state} {logs(podman, svc)}"
                return requests.get(url, timeout=2).status_code == 200
            wait_until(f"{svc}'s pod ready", ready, timeout=120, interval=0.5)
        # seeding, as deploy/README.md tells an operator to (kubectl exec)
        stamp("pods ready")
        podman("exec", container(podman, "catalog"), "souk-service", "seed", timeout=120)
        stamp("seeded")
        yield play
    finally:
        try:   # the pods first: services whose stores went away first would retry and log
            podman.cleanup()
            stamp("pods and podman's store removed")
        finally:
            try:
                play.stop_stores()
                stamp("stores stopped")
            finally:
                play.net.teardown()
                left = play.net.leftovers()
                shutil.rmtree(tmp, ignore_errors=True)
                assert not left, f"left behind: {left}"


def container(podman, svc):
    """The service's container in the pod kube play made of its Deployment."""
    names = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    mine = [n for n in names if n.startswith(f"{svc}-pod") and n.endswith(f"-{svc}")]
    assert len(mine) == 1, (svc, names)
    return mine[0]


def logs(podman, svc):
    r = podman("logs", container(podman, svc), check=False)
    return (r.stdout + r.stderr)[-2000:]


def counted(text, name, **labels):
    """The sum of a counter's series that carry these labels (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
    return total


def bearer(tok):
    return {"Authorization": f"Bearer {tok}"}


def test_every_pod_migrated_once_and_runs_as_the_manifest_says(played):
    for svc in SERVICES:
        name = container(played.podman, svc)
        top = played.podman("top", name, "user", "args").stdout
        assert "10001" in top or "souk" in top, top
        inspect = played.podman("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", name).stdout
        assert inspect.strip() == "true", svc
    # each pod its own emptyDir (see pod_file), none shared
    volumes = played.podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert {f"{svc}-data" for svc in SERVICES} <= set(volumes) and "data" not in volumes, volumes
    # each service's own role, on its own database only
    r = subprocess.run([PG_SCRIPT, "psql", played.pg_dir, "--", "-Atc",
                        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres','template0','template1')"
                        " ORDER BY 1"], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == sorted(s for s in SERVICES if s != "gateway"), r.stdout + r.stderr
    for svc in on_postgres():   # its tables are in its database, made by its role
        r = subprocess.run([PG_SCRIPT, "psql", played.pg_dir, "--", "-d", svc, "-Atc",
                            "SELECT tableowner FROM pg_tables WHERE tablename = 'schema_migrations'"],
                           capture_output=True, text=True, timeout=60)
        assert r.stdout.split() == [svc], r.stdout + r.stderr


def test_a_checkout_through_the_played_manifests(played):
    gw = f"http://{played.hosts['gateway'].address}:{DEFAULT_PORT['gateway']}"
    email = f"k{uuid.uuid4().hex[:12]}@example.com"
    r = requests.post(gw + "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "K"}, timeout=15)
    assert r.status_code == 201, r.text
    r = requests.post(gw + "/oauth/token", data={"grant_type": "password", "username": email, "password": PASSWORD},
                      timeout=15)
    assert r.status_code == 200, r.text
    tok = r.json()["access_token"]
    r = requests.post(gw + "/api/v1/payment-methods", headers=bearer(tok), timeout=15,
                      json={"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040,
                                     "cvc": "123", "holder": "K"}})
    assert r.status_code == 201, r.text
    pm = r.json()["id"]
    r = requests.get(gw + "/api/v1/products", params={"in_stock": "true", "page_size": 1}, timeout=15)
    assert r.status_code == 200 and r.json()["items"], r.text
    product = r.json()["items"][0]["id"]
    r = requests.put(gw + f"/api/v1/cart/items/{product}", headers=bearer(tok), json={"quantity": 1}, timeout=15)
    assert r.status_code == 200, r.text
    r = requests.post(gw + "/api/v1/orders", timeout=30, headers={**bearer(tok), "Idempotency-Key": str(uuid.uuid4())},
                      json={"payment_method_id": pm, "shipping_address": ADDRESS})
    assert r.status_code in (201, 202), r.text
    order = r.json()
    if order["status"] != "confirmed":
        order = wait_until("the order confirmed", lambda: (o := requests.get(
            gw + f"/api/v1/orders/{order['id']}", headers=bearer(tok), timeout=10).json())["status"] == "confirmed"
            and o, timeout=30)
    assert order["status"] == "confirmed", order
    # the saga's calls went pod to pod over gRPC, by the <peer>-grpc Service names
    for svc, service, method in [("catalog", "souk.catalog.v1.CatalogInternal", "Reserve"),
                                 ("payments", "souk.payments.v1.Payments", "AuthorizePayment")]:
        text = requests.get(f"http://{played.hosts[svc].address}:{DEFAULT_PORT[svc]}/metrics", timeout=10).text
        assert counted(text, "grpc_server_handled_total", service=service, method=method, code="OK") >= 1, \
            f"{svc}: no {method} over gRPC"
