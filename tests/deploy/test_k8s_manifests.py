"""deploy/k8s read as plain YAML (kubectl is not needed here; `make test-deploy` also
renders it and validates every document against the Kubernetes schemas): the files are
deploy/k8s/generate's output; per service a Deployment of two replicas with probes,
limits, non-root and a read-only root, a Service, a PodDisruptionBudget, an autoscaler
for the scalable ones; its own PostgreSQL database (migrated by an init container) and
the broker; PostgreSQL and RabbitMQ as StatefulSets; and NetworkPolicies that let
exactly the calls the code makes through, evaluated pair by pair."""
import os
import re
import subprocess

from conftest import ADMIN_PORT, DEPLOY, SERVICES, DEFAULT_PORT, load_yaml, load_yaml_all
from netpol import Cluster
from peers import code_calls, code_rpc_calls, consumes, has_database, publishes

K8S = os.path.join(DEPLOY, "k8s")
STORES = {"postgres": 5432, "rabbitmq": 5672}
SECRET = "souk-secrets"
GRPC_OFFSET = 1000   # SOUK_GRPC_LISTEN: every service but the gateway, its port + 1000


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


def env_of(c):
    return {e["name"]: e for e in c["env"]}


def secret_keys():
    keys = set()
    with open(os.path.join(K8S, "secrets.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, v = line.split("=", 1)
                assert "placeholder" in v, f"{k}: secrets.env commits placeholders only"
                keys.add(k)
    return keys


def gen_secrets():
    out = subprocess.run([os.path.join(DEPLOY, "gen-secrets")], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def test_the_files_are_the_generators_output():
    r = subprocess.run([os.path.join(K8S, "generate"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_resources_exist_and_every_service_has_its_objects():
    for f in kustomization()["resources"]:
        assert os.path.exists(os.path.join(K8S, f)), f
    for svc in SERVICES:
        find("Deployment", svc)
        find("Service", svc)
        find("PodDisruptionBudget", svc)
        find("NetworkPolicy", svc)
    for store in STORES:
        find("StatefulSet", store)
        find("Service", store)
        find("NetworkPolicy", store)
    assert not [o for o in objects() if o["kind"] == "PersistentVolumeClaim"], "no service keeps a volume"


def test_two_replicas_rolling_with_a_disruption_budget_and_autoscalers():
    for svc in SERVICES:
        spec = find("Deployment", svc)["spec"]
        assert spec["replicas"] == 2, svc
        assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        pdb = find("PodDisruptionBudget", svc)["spec"]
        assert pdb["minAvailable"] == 1 and pdb["selector"] == spec["selector"], svc
        pod, c = container(svc)
        vols = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in vols["data"] and "emptyDir" in vols["tmp"], svc
    hpas = {o["metadata"]["name"]: o["spec"] for o in objects() if o["kind"] == "HorizontalPodAutoscaler"}
    assert {"gateway", "catalog", "cart"} <= set(hpas) <= set(SERVICES)
    for svc, spec in hpas.items():
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": svc}
        assert spec["minReplicas"] == 2 <= spec["maxReplicas"], svc
        assert spec["metrics"][0]["resource"]["name"] == "cpu"


def test_each_database_service_has_its_database_and_migrates_in_an_init_container():
    for svc in SERVICES:
        pod, c = container(svc)
        env = env_of(c)
        if not has_database(svc):
            assert "SOUK_DB" not in env and "initContainers" not in pod, svc
            continue
        assert env["SOUK_DB"]["value"] == f"postgresql://{svc}@postgres:5432/{svc}", svc
        assert env["SOUK_DB_PASSWORD_FILE"]["value"] == "/run/secrets/souk-db/password"
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["db-password"]["secret"] == {"secretName": SECRET, "defaultMode": 0o440, "items": [
            {"key": f"SOUK_DB_PASSWORD_{svc.upper()}", "path": "password"}]}, "a pod reads its own password only"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/run/secrets/souk-db"]["name"] == "db-password"
        (init,) = pod["initContainers"]
        assert init["args"] == ["migrate"] and init["image"] == c["image"]
        assert init["env"] == c["env"] and init["volumeMounts"] == c["volumeMounts"]
        assert init["securityContext"] == c["securityContext"]
    payments = env_of(container("payments")[1])
    assert payments["SOUK_PAYMENTS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "SOUK_PAYMENTS_KEY"}


def test_events_go_through_the_broker_for_publishers_and_consumers_only():
    for svc in SERVICES:
        env = env_of(container(svc)[1])
        if publishes(svc) or consumes(svc):
            assert env["SOUK_EVENTS"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "SOUK_EVENTS"}, svc
        else:
            assert "SOUK_EVENTS" not in env, svc
    common = dict(kv.split("=", 1) for kv in kustomization()["configMapGenerator"][0]["literals"])
    assert "SOUK_EVENTS" not in common


def test_probes_ports_and_scrape_annotations():
    for svc in SERVICES:
        dep = find("Deployment", svc)
        pod, c = container(svc)
        port = DEFAULT_PORT[svc]
        env = env_of(c)
        assert env["SOUK_LISTEN"]["value"] == f"0.0.0.0:{port}"
        # probes on a listener whose thread runs no request (a probe queued behind a
        # waiting handler fails a busy pod): the gateway's admin one, the others' probe one
        probe = "admin" if svc == "gateway" else "probe"
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": probe}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": probe}
        scrape = port
        if svc == "gateway":   # /metrics only on its admin listener, not behind the Service
            scrape = ADMIN_PORT
            assert c["ports"] == [{"name": "http", "containerPort": port},
                                  {"name": "admin", "containerPort": ADMIN_PORT}]
            assert env["SOUK_ADMIN_LISTEN"]["value"] == f"0.0.0.0:{ADMIN_PORT}"
        else:
            assert c["ports"] == [{"name": "http", "containerPort": port},
                                  {"name": "grpc", "containerPort": port + GRPC_OFFSET},
                                  {"name": "probe", "containerPort": port + 1100}]
            assert env["SOUK_GRPC_LISTEN"]["value"] == f"0.0.0.0:{port + GRPC_OFFSET}"
            assert env["SOUK_PROBE_LISTEN"]["value"] == f"0.0.0.0:{port + 1100}"
            grpc_svc = find("Service", f"{svc}-grpc")["spec"]
            assert grpc_svc["clusterIP"] == "None", "headless: callers balance over the pods"
            assert grpc_svc["selector"] == dep["spec"]["selector"]["matchLabels"]
            assert grpc_svc["ports"] == [{"name": "grpc", "port": port + GRPC_OFFSET, "targetPort": "grpc"}]
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": str(scrape),
                       "prometheus.io/path": "/metrics"}
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
        svc_obj = find("Service", svc)
        assert svc_obj["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
        assert svc_obj["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]


def all_pods():
    """(name, pod spec) of every workload: the Deployments and the StatefulSets."""
    return [(o["metadata"]["name"], o["spec"]["template"]["spec"]) for o in objects()
            if o["kind"] in ("Deployment", "StatefulSet")]


def test_security_context_and_resources():
    for name, pod in all_pods():
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0 and psc["fsGroup"] == psc["runAsUser"], name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            if name != "rabbitmq":   # the broker's image writes its config under /etc at start
                assert sc["readOnlyRootFilesystem"] is True, name
            res = c["resources"]
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(res[part]), (name, part)
            mi = lambda q: int(re.fullmatch(r"(\d+)Mi", q).group(1)) if q.endswith("Mi") else 1024 * int(q[:-2])
            assert 16 <= mi(res["requests"]["memory"]) <= mi(res["limits"]["memory"]) <= 1024, name


def test_stores_are_statefulsets_on_claims_with_secrets_from_the_generator():
    keys = secret_keys()
    pg = find("StatefulSet", "postgres")["spec"]
    assert pg["replicas"] == 1 and pg["serviceName"] == "postgres"
    assert pg["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    c = pg["template"]["spec"]["containers"][0]
    env = env_of(c)
    assert env["POSTGRES_PASSWORD_FILE"]["value"] == "/run/secrets/souk-db/SOUK_POSTGRES_PASSWORD"
    dbs = sorted(s for s in SERVICES if has_database(s))
    assert sorted(env["SOUK_DATABASES"]["value"].split()) == dbs
    vols = {v["name"]: v for v in pg["template"]["spec"]["volumes"]}
    items = {i["key"] for i in vols["passwords"]["secret"]["items"]}
    assert items == {"SOUK_POSTGRES_PASSWORD"} | {f"SOUK_DB_PASSWORD_{d.upper()}" for d in dbs}
    assert items <= keys
    init = [g for g in kustomization()["configMapGenerator"] if g["name"] == vols["initdb"]["configMap"]["name"]]
    assert init and all(os.path.exists(os.path.join(K8S, f)) for f in init[0]["files"])
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/docker-entrypoint-initdb.d"] == "initdb"
    mq = find("StatefulSet", "rabbitmq")["spec"]
    env = env_of(mq["template"]["spec"]["containers"][0])
    assert env["RABBITMQ_DEFAULT_PASS"]["valueFrom"]["secretKeyRef"] == {"name": SECRET,
                                                                          "key": "SOUK_RABBITMQ_PASSWORD"}
    for store, port in STORES.items():
        svc = find("Service", store)["spec"]
        assert svc["ports"][0]["port"] == port
    # one broker user: the URL the services get names the password the broker is given
    fresh = gen_secrets()
    assert fresh["SOUK_EVENTS"] == f"amqp://souk:{fresh['SOUK_RABBITMQ_PASSWORD']}@rabbitmq:5672/%2f"
    assert set(fresh) == keys, "secrets.env and deploy/gen-secrets name the same keys"


def test_identity_secrets_and_peers():
    keys = secret_keys()
    gen = kustomization()["secretGenerator"]
    assert gen == [{"name": SECRET, "envs": ["secrets.env"]}]
    common = dict(kv.split("=", 1) for kv in kustomization()["configMapGenerator"][0]["literals"])
    assert common["SOUK_USERS_URL"] == f"http://users:{DEFAULT_PORT['users']}"
    # the token issuer's key set and token endpoint: the kit reads these, not SOUK_USERS_URL
    assert common["SOUK_JWKS_URL"] == common["SOUK_USERS_URL"] + "/.well-known/jwks.json"
    assert common["SOUK_TOKEN_URL"] == common["SOUK_USERS_URL"] + "/oauth/token"
    for svc in SERVICES:
        pod, c = container(svc)
        env = env_of(c)
        assert env["SOUK_CLIENT_ID"]["value"] == svc
        ref = env["SOUK_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": SECRET, "key": f"SOUK_SECRET_{svc.upper()}"}
        assert c["envFrom"] == [{"configMapRef": {"name": "souk-common"}}], "no pod gets a whole Secret"
        for e in c["env"]:
            if "valueFrom" in e:
                assert e["valueFrom"]["secretKeyRef"]["key"] in keys, (svc, e)
        urls = {k: v["value"] for k, v in env.items() if k.endswith("_URL")}
        urls.update({k: v for k, v in common.items() if k.endswith("_URL")})
        for peer in code_calls(svc):
            url = urls.get(f"SOUK_{peer.upper()}_URL")
            assert url == f"http://{peer}:{DEFAULT_PORT[peer]}", f"{svc}: SOUK_{peer.upper()}_URL={url}"
            find("Service", peer)
        for peer in code_rpc_calls(svc):
            url = env.get(f"SOUK_{peer.upper()}_GRPC_URL", {}).get("value")
            assert url == f"grpc://{peer}-grpc:{DEFAULT_PORT[peer] + GRPC_OFFSET}", \
                f"{svc}: SOUK_{peer.upper()}_GRPC_URL={url}"
            find("Service", f"{peer}-grpc")
    pod, c = container("users")
    assert c["command"][0] == "/usr/local/bin/souk-clients-file"
    env = env_of(c)
    assert {k for k in env if k.startswith("SOUK_SECRET_")} == {f"SOUK_SECRET_{s.upper()}" for s in SERVICES}
    assert env["SOUK_CLIENTS_FILE"]["value"].startswith("/tmp/")


def test_every_image_is_mapped_by_the_kustomization():
    mapped = {i["name"]: i for i in kustomization()["images"]}
    for name, pod in all_pods():
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["image"] in mapped, (name, c["image"])
            expect = f"souk/{name}" if name in SERVICES else name
            assert c["image"] == expect
    assert mapped["postgres"]["newTag"].startswith("15")


# ---- NetworkPolicies, evaluated as a cluster would (netpol.py) ----

def expected_targets(svc):
    out = set(code_calls(svc))
    if has_database(svc):
        out.add("postgres")
    if publishes(svc) or consumes(svc):
        out.add("rabbitmq")
    return out


def serving_port(dst):
    return {"postgres": "postgres", "rabbitmq": "amqp"}.get(dst, "http")


def test_network_policies_allow_exactly_the_service_graph_from_the_code():
    cluster = Cluster(objects())
    pods = list(SERVICES) + list(STORES)
    assert set(cluster.pods) == set(pods)
    for src in pods:
        for dst in pods:
            if src == dst:
                continue
            want = src in SERVICES and dst in expected_targets(src)   # each side exactly
            egress, ingress = cluster.sides(src, dst, serving_port(dst))
            assert egress == want, f"{src}'s egress to {dst}: {'blocked' if want else 'allowed'}"
            assert ingress == want, f"{dst}'s ingress from {src}: {'blocked' if want else 'allowed'}"
            if src in SERVICES and dst in SERVICES and dst != "gateway":   # its gRPC port
                want = dst in code_rpc_calls(src)
                assert cluster.can_connect(src, dst, "grpc") == want, \
                    f"{src} → {dst} gRPC: {'blocked' if want else 'allowed'}"
    for svc in SERVICES:   # the broker's clients are labelled so (deploy/kafka's policies select them by it)
        assert (cluster.labels(svc).get("souk/events") == "client") == (publishes(svc) or consumes(svc)), svc


def test_only_the_ingress_reaches_the_gateway_and_prometheus_scrapes_everyone():
    cluster = Cluster(objects())
    for svc in SERVICES:
        labels, named = cluster.labels(svc), cluster.ports(svc)
        port = DEFAULT_PORT[svc]
        from_ingress = cluster.allowed("Ingress", labels, "ingress-nginx", {"app": "x"}, port, named)
        assert from_ingress == (svc == "gateway"), svc
        elsewhere = cluster.allowed("Ingress", labels, "default", {"app.kubernetes.io/name": "gateway"}, port, named)
        assert not elsewhere, f"{svc}: reachable from another namespace"
        scrape = ADMIN_PORT if svc == "gateway" else port
        assert cluster.allowed("Ingress", labels, "monitoring", {"app.kubernetes.io/name": "prometheus"}, scrape,
                               named), svc
        assert not cluster.allowed("Ingress", labels, "monitoring", {"app.kubernetes.io/name": "grafana"}, scrape,
                                   named), svc
    assert not cluster.allowed("Ingress", cluster.labels("postgres"), "monitoring",
                               {"app.kubernetes.io/name": "prometheus"}, 5432, cluster.ports("postgres"))


def test_everyone_resolves_names_and_nothing_else_leaves_but_notifys_mail():
    cluster = Cluster(objects())
    dns = {"k8s-app": "kube-dns"}
    for name in list(SERVICES) + list(STORES):
        labels = cluster.labels(name)
        assert cluster.allowed("Egress", labels, "kube-system", dns, 53, {}), name
        outside = cluster.allowed("Egress", labels, "elsewhere", {"x": "y"}, 443, {})
        assert not outside, f"{name} may reach any address on 443"
        assert cluster.allowed("Egress", labels, "elsewhere", {"x": "y"}, 587, {}) == (name == "notify"), name
