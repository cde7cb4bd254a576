"""deploy/'s kustomizations rendered for the tests: `kubectl kustomize` when it is
installed, else a small renderer of the subset deploy/k8s and its overlays use (the
same one tests/deploy/k8s/validate-k8s.mjs implements; test_kafka_variant.py holds the
two to the same output). Generated names keep no hash suffix here; kubectl's do, and
it rewrites every reference to them, so a lookup by a reference's name works either way."""
import base64
import copy
import os
import shutil
import subprocess

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "secretGenerator",
         "patches", "images"}


def have_kubectl():
    return shutil.which("kubectl") is not None


def render(kdir, how=None):
    """The documents kdir's kustomization renders to; how: "kubectl", "built-in" or
    None (kubectl when present)."""
    if how is None:
        how = "kubectl" if have_kubectl() else "built-in"
    if how == "kubectl":
        out = subprocess.run(["kubectl", "kustomize", kdir], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.load_all(out.stdout, Loader=LOADER) if d]
    return builtin(kdir)


def _env_file(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, value = line.split("=", 1)
                out[key] = value
    return out


def _generated(kdir, g, kind):
    data = dict(kv.split("=", 1) for kv in g.get("literals", []))
    for path in g.get("envs", []):
        data.update(_env_file(os.path.join(kdir, path)))
    for path in g.get("files", []):
        with open(os.path.join(kdir, path)) as f:
            data[os.path.basename(path)] = f.read()
    if kind == "Secret":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return data


def _selects(selector, labels):
    """A patch target's labelSelector: comma-separated key=value terms only."""
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        assert sep and not key.endswith("!"), f"built-in renderer: unsupported labelSelector {selector}"
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def builtin(kdir):
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN
    assert not unknown, f"built-in renderer: unsupported kustomization fields {unknown}"
    docs = []
    for r in k.get("resources", []):
        p = os.path.join(kdir, r)
        if os.path.isdir(p):
            docs += builtin(p)
        else:
            with open(p) as f:
                docs += [d for d in yaml.load_all(f, Loader=LOADER) if d]
    for key, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for g in k.get(key, []):
            data = _generated(kdir, g, kind)
            behavior = g.get("behavior", "create")
            if behavior == "merge":
                (base,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == g["name"]]
                base["data"].update(data)
                continue
            assert behavior == "create", f"built-in renderer: unsupported behavior {behavior}"
            doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": g["name"]}, "data": data}
            if kind == "Secret":
                doc["type"] = "Opaque"
            docs.append(doc)
    for p in k.get("patches", []):
        patch = yaml.safe_load(p.get("patch", "{}"))
        assert set(p) == {"target", "patch"} and set(p["target"]) == {"labelSelector"} \
            and patch.get("$patch") == "delete", f"built-in renderer: only deletions by label: {p}"
        docs = [d for d in docs if not _selects(p["target"]["labelSelector"], d["metadata"].get("labels", {}))]
    images = {i["name"]: i.get("newName", i["name"]) + (f":{i['newTag']}" if "newTag" in i else "")
              for i in k.get("images", [])}
    for d in docs:
        if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
            d["metadata"]["namespace"] = k["namespace"]
        for lab in k.get("labels", []):
            d["metadata"]["labels"] = {**d["metadata"].get("labels", {}), **lab["pairs"]}
            tmpl = d.get("spec", {}).get("template", {})
            if lab.get("includeTemplates"):   # a pod template's, and a StatefulSet's claims'
                for m in ([tmpl["metadata"]] if "metadata" in tmpl else []) + \
                        [v["metadata"] for v in d.get("spec", {}).get("volumeClaimTemplates", [])]:
                    m["labels"] = {**m.get("labels", {}), **lab["pairs"]}
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            c["image"] = images.get(c["image"], c["image"])
    return copy.deepcopy(docs)


def find(docs, kind, name):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


def container_env(docs, container):
    """A container's environment as the kubelet builds it: envFrom's ConfigMaps and
    Secrets, then env (which wins), secretKeyRef and configMapKeyRef resolved."""
    def data(kind, name):
        d = find(docs, kind, name).get("data", {})
        return {k: base64.b64decode("".join(v.split())).decode() for k, v in d.items()} if kind == "Secret" else d
    env = {}
    for src in container.get("envFrom", []):
        if "configMapRef" in src:
            env.update(data("ConfigMap", src["configMapRef"]["name"]))
        else:
            env.update(data("Secret", src["secretRef"]["name"]))
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
            continue
        ref = e["valueFrom"]
        if "secretKeyRef" in ref:
            env[e["name"]] = data("Secret", ref["secretKeyRef"]["name"])[ref["secretKeyRef"]["key"]]
        else:
            env[e["name"]] = data("ConfigMap", ref["configMapKeyRef"]["name"])[ref["configMapKeyRef"]["key"]]
    return env
