// Validate deploy/k8s (or a variant such as deploy/kafka) offline: render it (`kubectl kustomize`, or a small built-in
// renderer for this kustomization's features when kubectl is absent), then check every
// document against the Kubernetes schemas of kubernetes-models 4.x (types, required
// fields) and against the models' declared properties (unknown fields, which the schemas
// let through). Usage: node validate-k8s.mjs DEPLOY_K8S_DIR   (NODE_PATH: where
// kubernetes-models and yaml are installed). Exit 0 when every document passes.
import { execFileSync } from "node:child_process";
import { readFileSync, existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));
const YAML = require("yaml");
const modelsRoot = path.dirname(require.resolve("kubernetes-models/package.json"));
const nodeModules = path.dirname(modelsRoot);

const dir = path.resolve(process.argv[2] || "deploy/k8s");
const CLUSTER_SCOPED = new Set(["Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass"]);

function render() {
  if (process.env.SOUK_NO_KUBECTL !== "1") {
    try {
      const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      return { how: "kubectl kustomize", docs: YAML.parseAllDocuments(out).map((d) => d.toJSON()) };
    } catch (e) {
      if (e.code !== "ENOENT") throw new Error(`kubectl kustomize failed: ${e.stderr || e.message}`);
    }
  }
  return { how: "built-in renderer", docs: miniKustomize() };
}

// The subset of kustomize these kustomizations use: resources (files, or a base's
// directory), namespace, labels, configMapGenerator and secretGenerator literals, files and
// envs (new, or behavior: merge into a base's), patches that delete by labelSelector,
// images. Unknown keys are refused. (tests/deploy/kustomize.py is the same in Python.)
function miniKustomize(kdir = dir) {
  const k = YAML.parse(readFileSync(path.join(kdir, "kustomization.yaml"), "utf8"));
  const known = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "secretGenerator", "patches", "images"]);
  for (const key of Object.keys(k)) if (!known.has(key)) throw new Error(`built-in renderer: unsupported kustomization field ${key}`);
  let docs = [];
  for (const f of k.resources) {
    const p = path.join(kdir, f);
    if (statSync(p).isDirectory()) docs.push(...miniKustomize(p));
    else docs.push(...YAML.parseAllDocuments(readFileSync(p, "utf8")).map((d) => d.toJSON()).filter(Boolean));
  }
  for (const [key, kind] of [["configMapGenerator", "ConfigMap"], ["secretGenerator", "Secret"]]) {
    for (const g of k[key] || []) {
      const data = Object.fromEntries((g.literals || []).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      for (const f of g.envs || []) {
        for (const line of readFileSync(path.join(kdir, f), "utf8").split("\n")) {
          const t = line.trim();
          if (!t || t.startsWith("#")) continue;
          const i = t.indexOf("=");
          data[t.slice(0, i)] = t.slice(i + 1);
        }
      }
      for (const f of g.files || []) data[path.basename(f)] = readFileSync(path.join(kdir, f), "utf8");
      if (kind === "Secret") for (const d of Object.keys(data)) data[d] = Buffer.from(data[d]).toString("base64");
      if (g.behavior === "merge") {
        const base = docs.find((d) => d.kind === kind && d.metadata.name === g.name);
        if (!base) throw new Error(`built-in renderer: no ${kind} ${g.name} to merge into`);
        Object.assign(base.data, data);
        continue;
      }
      if (g.behavior && g.behavior !== "create") throw new Error(`built-in renderer: unsupported behavior ${g.behavior}`);
      docs.push(kind === "Secret" ? { apiVersion: "v1", kind, type: "Opaque", metadata: { name: g.name }, data }
        : { apiVersion: "v1", kind, metadata: { name: g.name }, data });
    }
  }
  for (const p of k.patches || []) {
    const patch = YAML.parse(p.patch || "{}");
    const sel = p.target?.labelSelector;
    if (!sel || Object.keys(p.target).length !== 1 || patch?.$patch !== "delete")
      throw new Error(`built-in renderer: only deletions by labelSelector: ${JSON.stringify(p)}`);
    const terms = sel.split(",").map((t) => t.split("=").map((x) => x.trim()));
    if (terms.some((t) => t.length !== 2 || t[0].endsWith("!"))) throw new Error(`built-in renderer: unsupported labelSelector ${sel}`);
    docs = docs.filter((d) => !terms.every(([key, v]) => (d.metadata.labels || {})[key] === v));
  }
  const images = new Map((k.images || []).map((i) => [i.name, `${i.newName || i.name}${i.newTag ? ":" + i.newTag : ""}`]));
  for (const d of docs) {
    if (k.namespace && !CLUSTER_SCOPED.has(d.kind)) d.metadata.namespace = k.namespace;
    for (const l of k.labels || []) {
      d.metadata.labels = { ...(d.metadata.labels || {}), ...l.pairs };
      if (l.includeTemplates && d.spec?.template?.metadata) d.spec.template.metadata.labels = { ...d.spec.template.metadata.labels, ...l.pairs };
      if (l.includeTemplates) for (const v of d.spec?.volumeClaimTemplates || []) v.metadata.labels = { ...(v.metadata.labels || {}), ...l.pairs };
    }
    for (const c of [...(d.spec?.template?.spec?.containers || []), ...(d.spec?.template?.spec?.initContainers || [])])
      if (images.has(c.image)) c.image = images.get(c.image);
  }
  return docs;
}

// ---- unknown fields: walk the models' .d.ts interfaces ----
const ifaceCache = new Map();
function dtsPath(fromFile, spec) {
  let p = spec.startsWith(".") ? path.resolve(path.dirname(fromFile), spec) : path.join(nodeModules, spec);
  return p.endsWith(".d.ts") ? p : p + ".d.ts";
}
// {props: Map(name → {type, file})} of the first interface declared in a .d.ts file
function iface(file) {
  if (ifaceCache.has(file)) return ifaceCache.get(file);
  const src = readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of src.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g))
    for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, dtsPath(file, m[2]));
  const body = src.match(/export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
  if (!body) { ifaceCache.set(file, null); return null; }   // a type alias (Time, Quantity…)
  const props = new Map();
  for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: ([^\n]+?);?$/gm)) props.set(m[1], { type: m[2], imports });
  const out = { props };
  ifaceCache.set(file, out);
  return out;
}
function typeFile(type, imports) {
  const t = type.trim();
  const arr = t.match(/^Array<(.+)>$/);
  if (arr) return { array: true, ...typeFile(arr[1], imports) };
  return imports.has(t) ? { file: imports.get(t) } : {};
}
function unknownFields(value, file, where, errors) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const decl = iface(file);
  if (decl === null) return;
  const { props } = decl;
  for (const [key, v] of Object.entries(value)) {
    const p = props.get(key);
    if (!p) { errors.push(`${where}.${key}: unknown field`); continue; }
    const t = typeFile(p.type, p.imports);
    if (!t.file || !existsSync(t.file)) continue;   // primitive, map, IntOrString, Quantity…
    if (t.array && Array.isArray(v)) v.forEach((e, i) => unknownFields(e, t.file, `${where}.${key}[${i}]`, errors));
    else if (!t.array) unknownFields(v, t.file, `${where}.${key}`, errors);
  }
}

function modelPath(doc) {
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : [null, doc.apiVersion];
  return group ? `${group}/${version}/${doc.kind}` : `${version}/${doc.kind}`;
}

const { how, docs } = render();
let failures = 0;
const kinds = {};
for (const doc of docs) {
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const errors = [];
  const mp = modelPath(doc);
  const file = path.join(modelsRoot, mp + ".d.ts");
  if (!existsSync(file)) {
    errors.push(`no schema for ${doc.apiVersion} ${doc.kind}`);
  } else {
    // kustomize wraps a long base64 value over lines; the API server's decoder (Go's
    // encoding/base64) skips line breaks, the schema's "byte" format does not
    if (doc.kind === "Secret" && doc.data)
      for (const [k, v] of Object.entries(doc.data)) doc.data[k] = String(v).replace(/[\r\n]/g, "");
    const mod = await import(path.join(modelsRoot, mp + ".mjs"));
    const Model = mod[doc.kind];
    try {
      new Model(doc).validate();
    } catch (e) {
      errors.push(e.message.split("\n").slice(0, 8).join("\n"));
    }
    unknownFields(doc, file, name, errors);
  }
  kinds[doc.kind] = (kinds[doc.kind] || 0) + 1;
  if (errors.length) {
    failures++;
    console.error(`FAIL ${name}\n  ${errors.join("\n  ")}`);
  }
}
console.log(`validate-k8s: ${docs.length} documents rendered by ${how} (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(", ")}): ${failures ? failures + " invalid" : "all valid"}`);
process.exit(failures ? 1 : 0);
