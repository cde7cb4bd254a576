"""deploy/kafka, the kafka variant (compose override and kustomize overlay), checked
without containers or a cluster: every service on a kafka:// URL its code accepts,
pointing at the broker's advertised listener; the broker's shape (probes, storage,
non-root); and the topics created being exactly those the code uses, read from the
sources (souk.<producer>, souk.<consumer>.dlq). `make deploy-check` also renders the
overlay and validates it against the Kubernetes schemas, and merges the compose files
with docker-compose."""
import os
import re
import shutil
import signal
import subprocess

import requests
import yaml

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
    [gen] = k["configMapGenerator"]
    assert gen["name"] == "souk-common" and gen["behavior"] == "merge"
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


def test_kubectl_renders_the_overlay_when_present():
    """kubectl is no Debian package: where it exists, the overlay must render and keep
    every base object with the transport merged into souk-common."""
    if shutil.which("kubectl") is None:
        return   # deploy-check renders it with the built-in renderer as well
    out = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, "kafka")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("souk-common")]
    assert len(cms) == 1 and cms[0]["data"]["SOUK_EVENTS"] == overlay_url()
    deps = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deps == set(SERVICES)
    assert all(d["metadata"].get("namespace") == "souk" for d in docs if d["kind"] != "Namespace")


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
