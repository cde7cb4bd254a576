"""deploy/k8s read as plain YAML (kubectl is not needed here; `make deploy-check`
also renders it and validates against the Kubernetes schemas): per service a
Deployment and Service with probes, limits, non-root and a read-only root; SQLite
services at one replica with Recreate and a PVC; the gateway at two; peers, secrets
and images wired to things that exist."""
import os
import re

from conftest import ADMIN_PORT, DEPLOY, SERVICES, DEFAULT_PORT, load_yaml, load_yaml_all
from peers import required_peers

K8S = os.path.join(DEPLOY, "k8s")
STATELESS = {"gateway"}


def kustomization():
    return load_yaml("k8s", "kustomization.yaml")


def objects():
    out = []
    for f in kustomization()["resources"]:
        out += load_yaml_all("k8s", f)
    return out


def find(kind, name):
    hits = [o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


def container(svc):
    pod = find("Deployment", svc)["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod, pod["containers"][0]


def secret_keys():
    keys = set()
    with open(os.path.join(K8S, "secrets.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                assert re.fullmatch(r"[A-Za-z0-9_-]+", v), k   # souk-clients-file accepts it
                keys.add(k)
    return keys


def test_resources_exist_and_every_service_has_deployment_and_service():
    for f in kustomization()["resources"]:
        assert os.path.exists(os.path.join(K8S, f)), f
    for svc in SERVICES:
        find("Deployment", svc)
        find("Service", svc)


def test_replicas_strategy_and_storage_follow_statefulness():
    for svc in SERVICES:
        spec = find("Deployment", svc)["spec"]
        pod, c = container(svc)
        vols = {v["name"]: v for v in pod["volumes"]}
        if svc in STATELESS:
            assert spec["replicas"] == 2
            assert spec["strategy"]["type"] == "RollingUpdate"
            assert "emptyDir" in vols["data"]
            assert find("PodDisruptionBudget", svc)["spec"]["minAvailable"] == 1
        else:
            assert spec["replicas"] == 1, f"{svc}: SQLite allows one writer pod"
            assert spec["strategy"] == {"type": "Recreate"}, svc
            claim = vols["data"]["persistentVolumeClaim"]["claimName"]
            pvc = find("PersistentVolumeClaim", claim)
            assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts == {"/var/lib/souk": "data", "/tmp": "tmp"}, svc
        assert "emptyDir" in vols["tmp"]


def test_probes_ports_and_scrape_annotations():
    for svc in SERVICES:
        dep = find("Deployment", svc)
        pod, c = container(svc)
        port = DEFAULT_PORT[svc]
        env = {e["name"]: e for e in c["env"]}
        assert env["SOUK_LISTEN"]["value"] == f"0.0.0.0:{port}"
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        scrape = port
        if svc == "gateway":   # /metrics only on its admin listener, not behind the Service
            scrape = ADMIN_PORT
            assert c["ports"] == [{"name": "http", "containerPort": port},
                                  {"name": "admin", "containerPort": ADMIN_PORT}]
            assert env["SOUK_ADMIN_LISTEN"]["value"] == f"0.0.0.0:{ADMIN_PORT}"
        else:
            assert c["ports"] == [{"name": "http", "containerPort": port}]
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": str(scrape),
                       "prometheus.io/path": "/metrics"}
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        svc_obj = find("Service", svc)
        assert svc_obj["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert svc_obj["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]


def test_security_context_and_resources():
    for svc in SERVICES:
        pod, c = container(svc)
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001 and psc["fsGroup"] == 10001
        assert pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        res = c["resources"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(res[part]), (svc, part)
        mi = lambda q: int(re.fullmatch(r"(\d+)Mi", q).group(1))
        assert 16 <= mi(res["requests"]["memory"]) <= mi(res["limits"]["memory"]) <= 512, svc


def test_identity_secrets_and_peers():
    keys = secret_keys()
    assert keys == {f"SOUK_SECRET_{s.upper()}" for s in SERVICES}
    gen = kustomization()["secretGenerator"]
    assert gen == [{"name": "souk-clients", "envs": ["secrets.env"]}]
    common = dict(kv.split("=", 1) for kv in kustomization()["configMapGenerator"][0]["literals"])
    assert common["SOUK_USERS_URL"] == f"http://users:{DEFAULT_PORT['users']}"
    for svc in SERVICES:
        pod, c = container(svc)
        env = {e["name"]: e for e in c["env"]}
        assert env["SOUK_CLIENT_ID"]["value"] == svc
        ref = env["SOUK_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "souk-clients", "key": f"SOUK_SECRET_{svc.upper()}"}
        assert {"configMapRef": {"name": "souk-common"}} in c["envFrom"]
        urls = {k: v["value"] for k, v in env.items() if k.endswith("_URL")}
        urls.update({k: v for k, v in common.items() if k.endswith("_URL")})
        for peer in required_peers(svc):
            url = urls.get(f"SOUK_{peer.upper()}_URL")
            assert url == f"http://{peer}:{DEFAULT_PORT[peer]}", f"{svc}: SOUK_{peer.upper()}_URL={url}"
            find("Service", peer)
    pod, c = container("users")
    assert c["command"][0] == "/usr/local/bin/souk-clients-file"
    assert {"secretRef": {"name": "souk-clients"}} in c["envFrom"]
    assert {e["name"]: e.get("value") for e in c["env"]}["SOUK_CLIENTS_FILE"].startswith("/tmp/")


def test_every_image_is_mapped_by_the_kustomization():
    mapped = {i["name"]: i for i in kustomization()["images"]}
    for svc in SERVICES:
        pod, c = container(svc)
        assert c["image"] == f"souk/{svc}"
        assert mapped[c["image"]]["newName"].endswith(f"/{svc}")
