"""The log shipper, checked without Filebeat (not packaged for Debian 12): the compose
config (deploy/filebeat/filebeat.yml) and the Kubernetes DaemonSet (deploy/k8s/logging)
parse, use only parser options Filebeat has, read the paths where the services' stderr
ends up (Docker's json-file layout; the runtime's /var/log/containers for the souk
namespace) from read-only mounts, keep souk's lines only, and send them to
Elasticsearch as they are (ECS: no pipeline); what a shipped line becomes is checked
on real lines in tests/e2e/test_log_ecs.py."""
import fnmatch
import os
import re

import yaml

from conftest import DEPLOY, SERVICES, load_yaml, load_yaml_all

# Filebeat's parser options (libbeat/reader/readjson: Config, ParserConfig,
# ContainerJSONConfig): a misspelt option is an error there, so it is one here.
NDJSON_KEYS = {"target", "field", "message_key", "document_id", "keys_under_root", "overwrite_keys",
               "add_error_key", "ignore_decoding_error", "expand_keys"}
CONTAINER_KEYS = {"stream": {"all", "stdout", "stderr"}, "format": {"auto", "cri", "docker", "json-file"}}
# what makes our ECS lines land as they are (docs/operations.md, "Shipping")
NDJSON_WANTED = {"target": "", "overwrite_keys": True, "expand_keys": True, "add_error_key": True}
DOCKER_ID = "4f0b" * 16


def compose_filebeat():
    return load_yaml("filebeat", "filebeat.yml")


def k8s_objects():
    k = load_yaml("k8s", "logging", "kustomization.yaml")
    out = []
    for f in k["resources"]:
        out += load_yaml_all("k8s", "logging", f)
    return k, out


def find(objs, kind, name=None):
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, (kind, name, len(hits))
    return hits[0]


def k8s_filebeat():
    _, objs = k8s_objects()
    return yaml.safe_load(find(objs, "ConfigMap", "filebeat-config")["data"]["filebeat.yml"])


def check_parsers(inp, container_format):
    names = [list(p)[0] for p in inp["parsers"]]
    assert names == ["container", "ndjson"], names   # unwrap the runtime's envelope first
    container = inp["parsers"][0]["container"]
    for k, v in container.items():
        assert k in CONTAINER_KEYS and v in CONTAINER_KEYS[k], (k, v)
    assert container["format"] == container_format and container["stream"] == "all"
    ndjson = inp["parsers"][1]["ndjson"]
    assert set(ndjson) <= NDJSON_KEYS, set(ndjson) - NDJSON_KEYS
    for k, v in NDJSON_WANTED.items():
        assert ndjson.get(k) == v, (k, ndjson.get(k))


def check_output(cfg):
    out = cfg["output.elasticsearch"]
    assert out["hosts"] == ["${ELASTICSEARCH_HOSTS}"] or out["hosts"][0].startswith("${ELASTICSEARCH_HOSTS:")
    assert "pipeline" not in out and "pipelines" not in out   # the lines are ECS already
    assert [k for k in cfg if k.startswith("output.")] == ["output.elasticsearch"]


def mounts_of(service):
    """{container path: (host path, read-only)} of a compose service's bind mounts."""
    out = {}
    for v in service["volumes"]:
        parts = v.split(":")
        out[parts[1]] = (parts[0], len(parts) > 2 and parts[2] == "ro")
    return out


def test_compose_filebeat_reads_dockers_json_files_from_a_read_only_mount():
    compose = load_yaml("compose.yaml")
    fb = compose["services"]["filebeat"]
    mounts = mounts_of(fb)
    [inp] = compose_filebeat()["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"]
    check_parsers(inp, "docker")
    # the services log through Docker's json-file driver: <root>/<id>/<id>-json.log
    for svc in SERVICES:
        assert compose["services"][svc]["logging"]["driver"] == "json-file"
    sample = f"/var/lib/docker/containers/{DOCKER_ID}/{DOCKER_ID}-json.log"
    assert any(fnmatch.fnmatch(sample, p) for p in inp["paths"]), inp["paths"]
    for p in inp["paths"]:
        root = [m for m in mounts if p.startswith(m.rstrip("/") + "/")]
        assert root, f"{p} is not under a mount of the filebeat container"
        assert mounts[root[0]] == (root[0], True), f"{root[0]} must be the host's own path, read-only"
    # its config where the image reads it, read-only; its registry on a volume
    assert mounts["/usr/share/filebeat/filebeat.yml"] == ("./filebeat/filebeat.yml", True)
    assert fb["volumes"].count("filebeat-data:/usr/share/filebeat/data") == 1


def test_compose_filebeat_keeps_souk_containers_by_their_label():
    compose = load_yaml("compose.yaml")
    cfg = compose_filebeat()
    [inp] = cfg["filebeat.inputs"]
    procs = inp["processors"]
    docker = [p["add_docker_metadata"] for p in procs if "add_docker_metadata" in p]
    assert docker, "no container labels without add_docker_metadata"
    sock = docker[0]["host"].removeprefix("unix://")
    assert mounts_of(compose["services"]["filebeat"])[sock] == (sock, True)
    drop = [p["drop_event"] for p in procs if "drop_event" in p]
    assert drop, "every container on the host would be shipped"
    cond = drop[0]["when"]["not"]["equals"]
    [(field, value)] = cond.items()
    # Filebeat de-dots label names: souk.logs → container.labels.souk_logs
    label = field.removeprefix("container.labels.").replace("_", ".")
    for svc in SERVICES:
        assert compose["services"][svc]["labels"][label] == value, svc


def test_compose_filebeat_ships_to_the_elasticsearch_of_its_profile_or_yours():
    compose = load_yaml("compose.yaml")
    check_output(compose_filebeat())
    env = compose["services"]["filebeat"]["environment"]
    m = re.fullmatch(r"\$\{SOUK_ELASTICSEARCH_URL:-http://([a-z]+):(\d+)\}", env["ELASTICSEARCH_HOSTS"])
    assert m, env["ELASTICSEARCH_HOSTS"]
    assert m.group(1) in compose["services"] and m.group(2) == "9200"
    assert "127.0.0.1:9200:9200" in compose["services"]["elasticsearch"]["ports"]
    kibana = compose["services"]["kibana"]["environment"]["ELASTICSEARCH_HOSTS"]
    assert "http://elasticsearch:9200" in kibana


def test_k8s_filebeat_reads_the_souk_namespace_from_the_nodes_log_directories():
    k, objs = k8s_objects()
    ds = find(objs, "DaemonSet", "filebeat")
    pod = ds["spec"]["template"]["spec"]
    [c] = pod["containers"]
    cfg = k8s_filebeat()
    [inp] = cfg["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"]
    check_parsers(inp, "auto")   # containerd/CRI-O write CRI lines, Docker nodes json-file
    check_output(cfg)
    # /var/log/containers/<pod>_<namespace>_<container>-<id>.log, for deploy/k8s's namespace
    souk_ns = load_yaml("k8s", "kustomization.yaml")["namespace"]
    sample = f"/var/log/containers/catalog-7d9c8b-x2x9z_{souk_ns}_catalog-{DOCKER_ID}.log"
    other = f"/var/log/containers/coredns-5d78c9869d-abcde_kube-system_coredns-{DOCKER_ID}.log"
    assert any(fnmatch.fnmatch(sample, p) for p in inp["paths"])
    assert not any(fnmatch.fnmatch(other, p) for p in inp["paths"])
    assert inp["prospector.scanner.symlinks"] is True   # those files are links into /var/log/pods
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/var/log/containers", "/var/log/pods", "/var/lib/docker/containers"):
        assert mounts[path].get("readOnly") is True, path
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path   # same path: links resolve
    for p in inp["paths"]:
        assert any(p.startswith(m + "/") for m in mounts), p
    # the config file where -c says, from the ConfigMap
    conf = c["args"][c["args"].index("-c") + 1]
    cm_mount = [m for m in c["volumeMounts"] if volumes[m["name"]].get("configMap")]
    assert len(cm_mount) == 1 and os.path.dirname(conf) == cm_mount[0]["mountPath"]
    assert volumes[cm_mount[0]["name"]]["configMap"]["name"] == "filebeat-config"
    assert os.path.basename(conf) == "filebeat.yml"
    # the registry survives pod restarts (no resend); NODE_NAME for the metadata lookup
    assert volumes[mounts["/usr/share/filebeat/data"]["name"]]["hostPath"]["type"] == "DirectoryOrCreate"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    meta = [p["add_kubernetes_metadata"] for p in inp["processors"] if "add_kubernetes_metadata" in p]
    assert meta and meta[0]["host"] == "${NODE_NAME}"


def test_k8s_filebeat_has_its_namespace_rbac_output_and_image():
    k, objs = k8s_objects()
    ns = find(objs, "Namespace")
    assert ns["metadata"]["name"] == k["namespace"] != load_yaml("k8s", "kustomization.yaml")["namespace"]
    # hostPath and root are refused under the souk namespace's restricted level
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    ds = find(objs, "DaemonSet", "filebeat")
    pod = ds["spec"]["template"]["spec"]
    sa = find(objs, "ServiceAccount", pod["serviceAccountName"])
    binding = find(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": k["namespace"]}]
    role = find(objs, "ClusterRole", binding["roleRef"]["name"])
    pods = [r for r in role["rules"] if "pods" in r["resources"]]
    assert pods and {"get", "list", "watch"} <= set(pods[0]["verbs"])
    for r in role["rules"]:
        assert set(r["verbs"]) <= {"get", "list", "watch"}, r   # read-only
    [c] = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"]["memory"]
    # ELASTICSEARCH_HOSTS from the generated ConfigMap, credentials from an optional Secret
    refs = {next(iter(e)): e[next(iter(e))] for e in c["envFrom"]}
    gen = {g["name"]: g for g in k["configMapGenerator"]}
    assert refs["configMapRef"]["name"] in gen
    assert any(lit.startswith("ELASTICSEARCH_HOSTS=http") for lit in gen[refs["configMapRef"]["name"]]["literals"])
    assert refs["secretRef"]["optional"] is True
    images = {i["name"]: i for i in k["images"]}
    assert c["image"] in images
    # the same Elastic version as compose's shipper
    compose_tag = load_yaml("compose.yaml")["services"]["filebeat"]["image"].rsplit(":", 1)[1].rstrip("}")
    assert images[c["image"]]["newTag"] == compose_tag


def test_both_shippers_parse_the_same_way():
    a = compose_filebeat()["filebeat.inputs"][0]["parsers"][1]
    b = k8s_filebeat()["filebeat.inputs"][0]["parsers"][1]
    assert a == b
