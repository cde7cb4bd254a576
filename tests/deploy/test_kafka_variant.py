"""deploy/kafka, the kafka variant (compose override and kustomize overlay), checked
without containers or a cluster: every service on a kafka:// URL its code accepts,
pointing at the broker's advertised listener; the broker's shape (probes, storage,
non-root); and the topics created being exactly those the code uses, read from the
sources (souk.<producer>, souk.<consumer>.dlq). `make deploy-check` also renders the
overlay and validates it against the Kubernetes schemas, and merges the compose files
with docker-compose."""
import copy
import json
import os
import re
import shutil
import signal
import subprocess

import pytest
import requests
import yaml

import kustomize
from netpol import Cluster
from peers import code_calls, consumes, has_database, publishes

from conftest import BIN, DEPLOY, REPO, SERVICES, free_port, load_yaml, load_yaml_all, wait_until

COMPOSE_URL = "kafka://kafka:9092"


def sources(svc):
    d = os.path.join(REPO, "services", svc)
    return "".join(open(os.path.join(d, f)).read() for f in sorted(os.listdir(d)) if f.endswith(".c"))


def expected_topics():
    """The topics lib/events_kafka.c produces to and dead-letters into."""
    topics = set()
    for svc in SERVICES:
        src = sources(svc)
        if re.search(r"\.publishes\s*=\s*true", src):
            topics.add(f"souk.{svc}")
        if re.search(r"souk_subscription\s+\w+\[\]\s*=\s*\{\s*\{", src):
            topics.add(f"souk.{svc}.dlq")
    return topics


def created_topics(script):
    """The topics a kafka-topics.sh script creates: its `for t in …` lists."""
    out = set()
    for names in re.findall(r"for t in ([\w. ]+); do topic", script):
        out |= set(names.split())
    assert "--create --if-not-exists" in script and "--replication-factor 1" in script
    return out


def override():
    return load_yaml("kafka", "compose.yaml")


def test_the_code_uses_the_topics_the_docs_name():
    assert expected_topics() == {"souk.users", "souk.catalog", "souk.orders", "souk.payments",
                                 "souk.catalog.dlq", "souk.cart.dlq", "souk.notify.dlq"}


def test_compose_override_puts_every_service_on_kafka_after_its_topics():
    base, over = load_yaml("compose.yaml"), override()
    assert set(over["services"]) == set(SERVICES) | {"kafka", "kafka-topics"}
    for svc in SERVICES:
        merged = dict(base["services"][svc]["environment"], **over["services"][svc]["environment"])
        assert merged["SOUK_EVENTS"] == COMPOSE_URL, svc
        assert set(over["services"][svc]["environment"]) == {"SOUK_EVENTS"}, "the override changes only the transport"
        if svc != "gateway":   # the gateway already waits for every service
            assert over["services"][svc]["depends_on"] == {
                "kafka-topics": {"condition": "service_completed_successfully"}}, svc


def test_compose_broker_advertises_the_address_the_services_use():
    over = override()
    k = over["services"]["kafka"]
    env = {key: str(v) for key, v in k["environment"].items()}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://" + COMPOSE_URL[len("kafka://"):]
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    assert "CONTROLLER://:9093" in env["KAFKA_LISTENERS"] and "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"]
    vol = k["volumes"][0].split(":")
    assert vol[1] == env["KAFKA_LOG_DIRS"] and vol[0] in over["volumes"]
    assert "kafka-broker-api-versions.sh" in " ".join(k["healthcheck"]["test"])
    assert k["restart"] == "unless-stopped"
    topics = over["services"]["kafka-topics"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert topics["image"] == k["image"]
    script = topics["command"][0]
    assert "--bootstrap-server kafka:9092" in script
    assert "$$1" in script and "$1" not in script.replace("$$1", ""), "compose would expand $1"
    assert created_topics(script.replace("$$", "$")) == expected_topics()


def kustomization():
    return load_yaml("kafka", "kustomization.yaml")


def overlay_objects():
    return [o for o in load_yaml_all("kafka", "kafka.yaml")]


def find(kind, name):
    hits = [o for o in overlay_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}"
    return hits[0]


def overlay_url():
    k = kustomization()
    assert k["resources"] == ["../k8s", "kafka.yaml"]
    assert k["namespace"] == load_yaml("k8s", "kustomization.yaml")["namespace"]
    assert "configMapGenerator" not in k, "souk-common reaches every pod: the transport is the Secret's"
    [gen] = k["secretGenerator"]
    assert gen["name"] == "souk-secrets" and gen["behavior"] == "merge"
    lits = dict(l.split("=", 1) for l in gen["literals"])
    assert set(lits) == {"SOUK_EVENTS"}, "the overlay changes only the transport"
    return lits["SOUK_EVENTS"]


def test_overlay_url_names_the_statefulsets_first_pod_through_its_headless_service():
    url = overlay_url()
    m = re.fullmatch(r"kafka://([a-z0-9-]+)-0\.([a-z0-9-]+):(\d+)", url)
    assert m, url
    sts, svc_name, port = find("StatefulSet", m.group(1)), m.group(2), int(m.group(3))
    svc = find("Service", svc_name)
    assert sts["spec"]["serviceName"] == svc_name and svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    [c] = sts["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert {"name": "kafka", "port": port, "targetPort": "kafka"} in svc["spec"]["ports"] and ports["kafka"] == port
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{m.group(1)}-0.{svc_name}:{port}"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == \
        f"{env['KAFKA_NODE_ID']}@{m.group(1)}-0.{svc_name}:{ports['controller']}"


def test_overlay_broker_is_non_root_with_probes_limits_and_its_own_volume():
    sts = find("StatefulSet", "kafka")
    assert sts["spec"]["replicas"] == 1
    pod = sts["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["readinessProbe"]["tcpSocket"]["port"] == "kafka" and "livenessProbe" in c
    assert {"cpu", "memory"} <= set(c["resources"]["limits"]) and {"cpu", "memory"} <= set(c["resources"]["requests"])
    [claim] = sts["spec"]["volumeClaimTemplates"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert {"name": claim["metadata"]["name"], "mountPath": env["KAFKA_LOG_DIRS"]} in c["volumeMounts"]
    images = {i["name"]: i for i in kustomization()["images"]}
    assert c["image"] in images


def test_overlay_job_creates_the_topics_the_code_uses():
    job = find("Job", "kafka-topics")
    pod = job["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert pod["restartPolicy"] == "OnFailure" and job["spec"]["backoffLimit"] >= 5
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and pod["securityContext"]["runAsNonRoot"]
    script = c["args"][0]
    host = overlay_url()[len("kafka://"):]
    assert f"--bootstrap-server {host}" in script
    assert created_topics(script) == expected_topics()
    assert c["image"] == find("StatefulSet", "kafka")["spec"]["template"]["spec"]["containers"][0]["image"]


RENDERERS = ["kubectl", "built-in"]


_RENDERED = {}


def rendered(kdir, how):
    """kdir's documents rendered by how, once per run (a fresh copy each call)."""
    if how == "kubectl" and not kustomize.have_kubectl():
        pytest.skip("kubectl is no Debian package (deploy-check renders with the built-in renderer too)")
    if (kdir, how) not in _RENDERED:
        _RENDERED[kdir, how] = kustomize.render(os.path.join(DEPLOY, kdir), how)
    return copy.deepcopy(_RENDERED[kdir, how])


def events_of(docs, svc):
    """SOUK_EVENTS as svc's containers (and its migrate init container) get it, or None."""
    pod = kustomize.find(docs, "Deployment", svc)["spec"]["template"]["spec"]
    seen = {kustomize.container_env(docs, c).get("SOUK_EVENTS") for c in pod["containers"] + pod.get("initContainers", [])}
    assert len(seen) == 1, (svc, seen)
    return seen.pop()


@pytest.mark.parametrize("how", RENDERERS)
def test_the_transport_is_the_secrets_in_the_base_and_kafka_in_the_overlay(how):
    """Every publisher and consumer reads SOUK_EVENTS, in the base the broker's URL with
    its password, in the overlay the kafka URL; the others get none; the overlay keeps
    every base object but RabbitMQ's, whose password is no one's any more."""
    base, over = rendered("k8s", how), rendered("kafka", how)
    secret = [d for d in base if d["kind"] == "Secret"]
    amqp_password = kustomize.container_env(base, {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {
        "name": secret[0]["metadata"]["name"], "key": "SOUK_RABBITMQ_PASSWORD"}}}]})["P"]
    for svc in SERVICES:
        client = publishes(svc) or consumes(svc)
        assert events_of(base, svc) == (f"amqp://souk:{amqp_password}@rabbitmq:5672/%2f" if client else None), svc
        assert events_of(over, svc) == (overlay_url() if client else None), svc
    names = lambda docs: {(d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs}
    rabbitmq = {o for o in names(base) if o[1].startswith("rabbitmq")}
    assert rabbitmq == {("StatefulSet", "rabbitmq"), ("Service", "rabbitmq"), ("PodDisruptionBudget", "rabbitmq"),
                        ("NetworkPolicy", "rabbitmq"), ("NetworkPolicy", "rabbitmq-clients")}
    assert names(over) == (names(base) - rabbitmq) | {(d["kind"], d["metadata"]["name"]) for d in overlay_objects()}
    assert all(d["metadata"].get("namespace") == "souk" for d in over if d["kind"] != "Namespace")
    assert "rabbitmq" not in json.dumps(over)


def flows_needed(src, dst, port):
    """What the kafka variant must let through: the base's service graph (read from the
    code), each database's service, the broker's clients and the topics Job to its client
    port, the broker to itself (its controller quorum)."""
    if src == "kafka":
        return dst == "kafka"
    if src == "kafka-topics":
        return dst == "kafka" and port == "kafka"
    if src not in SERVICES:
        return False
    if dst == "kafka":
        return port == "kafka" and (publishes(src) or consumes(src))
    if dst == "postgres":
        return has_database(src)
    return dst in code_calls(src)


@pytest.mark.parametrize("how", RENDERERS)
def test_overlay_policies_allow_exactly_the_needed_flows(how):
    cluster = Cluster(rendered("kafka", how))
    assert set(cluster.pods) == set(SERVICES) | {"postgres", "kafka", "kafka-topics"}
    checked = {"http", "postgres", "kafka", "controller"}   # the serving ports (not /metrics')
    for src in cluster.pods:
        for dst in cluster.pods:
            for port in sorted(checked & set(cluster.ports(dst))):
                if src == dst and dst != "kafka":
                    continue
                want = flows_needed(src, dst, port)   # each side exactly, not only their meet
                egress, ingress = cluster.sides(src, dst, port)
                assert egress == want, f"{src}'s egress to {dst}:{port}: {'blocked' if want else 'allowed'}"
                assert ingress == want, f"{dst}'s ingress from {src} on {port}: {'blocked' if want else 'allowed'}"
    for pod in ("kafka", "kafka-topics"):   # both resolve kafka-0.kafka; nothing else leaves
        labels = cluster.labels(pod)
        assert cluster.allowed("Egress", labels, "kube-system", {"k8s-app": "kube-dns"}, 53, {}), pod
        assert not cluster.allowed("Egress", labels, "elsewhere", {"x": "y"}, 9092, {}), pod
    for ns in ("elsewhere", "monitoring", "ingress-nginx"):
        assert not cluster.allowed("Ingress", cluster.labels("kafka"), ns, {"app.kubernetes.io/name": "kafka"}, 9092,
                                   cluster.ports("kafka")), ns


@pytest.mark.parametrize("kdir", ["k8s", "kafka"])
def test_the_built_in_renderer_agrees_with_kubectl(kdir):
    """The built-in renderer (tests without kubectl, the kube play test) gives kubectl's
    documents but for generated names' hash suffixes and the order."""
    if not kustomize.have_kubectl():
        pytest.skip("kubectl is no Debian package")
    def norm(docs):
        for d in docs:   # kubectl wraps a long base64 value over lines (the API server skips them)
            if d["kind"] == "Secret":
                d["data"] = {k: "".join(v.split()) for k, v in d["data"].items()}
        text = re.sub(r"\b(souk-common|postgres-initdb|souk-secrets)-[a-z0-9]{10}\b", r"\1", json.dumps(docs))
        return sorted(json.dumps(d, sort_keys=True, indent=1) for d in json.loads(text))
    assert norm(rendered(kdir, "built-in")) == norm(rendered(kdir, "kubectl"))


def test_the_services_accept_both_variants_urls(tmp_path):
    """The real binary starts with each variant's SOUK_EVENTS (the broker's name does not
    resolve here: librdkafka keeps trying, the service serves)."""
    for url in (COMPOSE_URL, overlay_url()):
        port = free_port()
        env = dict(os.environ, SOUK_EVENTS=url, SOUK_VAR=str(tmp_path / "var"), SOUK_LISTEN=f"127.0.0.1:{port}",
                   SOUK_LOG_LEVEL="warn", SOUK_ACCESS_LOG="false")
        log = open(tmp_path / "users.log", "w")
        proc = subprocess.Popen([os.path.join(BIN, "users")], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(f"users ready with {url}",
                       lambda: proc.poll() is None and requests.get(f"http://127.0.0.1:{port}/readyz",
                                                                     timeout=1).status_code == 200, timeout=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            log.close()
        assert proc.returncode == 0, (tmp_path / "users.log").read_text()
