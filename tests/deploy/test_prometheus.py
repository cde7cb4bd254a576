"""deploy/prometheus: promtool accepts the configs and rules; a private Prometheus
scrapes a real catalog; every alert expression runs, names metrics the code exports,
and the service-down rule selects exactly the dead target."""
import copy
import os
import re
import subprocess
import time

import requests
import yaml

from conftest import DEPLOY, REPO, SERVICES, DEFAULT_PORT, load_yaml

PROM = os.path.join(DEPLOY, "prometheus")
ALERTS = os.path.join(PROM, "alerts.yml")


def promtool(*args, cwd=PROM):
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def alert_rules():
    return [r for g in load_yaml("prometheus", "alerts.yml")["groups"] for r in g["rules"]]


def exported_metric_names():
    """Every metric name registered in the C sources (souk_metric_*("name", …)) plus
    the kit's process metrics and Prometheus' own `up`."""
    names = {"up"}
    pattern = re.compile(r'souk_metric_(?:counter|gauge|gauge_fn|histogram)\(\s*"([a-z_:][a-z0-9_:]*)"')
    for top in ("lib", "services"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if f.endswith(".c"):
                    with open(os.path.join(root, f)) as fh:
                        src = fh.read()
                    names.update(pattern.findall(src))
                    names.update(re.findall(r'"(process_[a-z_]+|http_request[a-z_]+)', src))
    return names


def metric_names_in(expr):
    """Identifiers in a PromQL expression that are metric names (not functions,
    keywords, label names or label values)."""
    expr = re.sub(r'"[^"]*"', '""', expr)          # label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)        # matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)        # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr))
    keywords = {"and", "or", "unless", "bool", "offset", "e", "Inf", "NaN"}
    return {w for w in words - keywords if not w[0].isdigit()}


def test_promtool_accepts_the_compose_config_and_its_rules():
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "is valid prometheus config file syntax" in r.stdout
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout


def test_promtool_accepts_the_alert_rules():
    r = promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in r.stdout


def test_kubernetes_config_passes_promtool_with_static_discovery(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery, so promtool rejects
    kubernetes_sd_configs as an unknown field; swap in static targets and check the
    rest (relabelling, rule files) as written."""
    cfg = load_yaml("prometheus", "prometheus-k8s.yml")
    jobs = cfg["scrape_configs"]
    assert [j["job_name"] for j in jobs] == ["souk-pods"]
    assert jobs[0]["kubernetes_sd_configs"] == [{"role": "pod"}]
    kept = [r for r in jobs[0]["relabel_configs"] if r.get("action") == "keep"]
    assert kept and kept[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
    static = copy.deepcopy(cfg)
    del static["scrape_configs"][0]["kubernetes_sd_configs"]
    static["scrape_configs"][0]["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(static))
    (tmp_path / "alerts.yml").write_text(open(ALERTS).read())
    r = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_k8s_address_relabelling_puts_the_annotated_port_on_the_pod_ip():
    """The one regex Prometheus would apply to `<ip>:<port>;<annotated port>`."""
    rule = [r for r in load_yaml("prometheus", "prometheus-k8s.yml")["scrape_configs"][0]["relabel_configs"]
            if r.get("target_label") == "__address__"][0]
    rx = re.compile("^(?:" + rule["regex"] + ")$")
    repl = rule["replacement"].replace("$1", r"\1").replace("$2", r"\2")
    assert rx.sub(repl, "10.1.2.3:8082;8082") == "10.1.2.3:8082"
    assert rx.sub(repl, "10.1.2.3;8084") == "10.1.2.3:8084"


def test_compose_scrape_targets_are_every_service_on_its_port():
    jobs = {j["job_name"]: j for j in load_yaml("prometheus", "prometheus.yml")["scrape_configs"]}
    for svc in SERVICES:
        assert svc in jobs, f"no scrape job for {svc}"
        targets = [t for sc in jobs[svc]["static_configs"] for t in sc["targets"]]
        assert targets == [f"{svc}:{DEFAULT_PORT[svc]}"]


def test_every_metric_an_alert_uses_is_exported_by_the_code():
    exported = exported_metric_names()
    for rule in alert_rules():
        for name in metric_names_in(rule["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in exported or base in exported, f"{rule['alert']}: {name} is not exported anywhere"


def test_the_private_prometheus_scrapes_the_real_catalog(prometheus):
    up = prometheus.series('up{job="catalog"}')
    assert [s["value"][1] for s in up] == ["1"]
    routes = {s["metric"]["route"] for s in prometheus.series('http_requests_total{job="catalog"}')}
    assert "/api/v1/products" in routes
    assert prometheus.series('souk_events_outbox_backlog{job="catalog"}')
    assert prometheus.series('process_resident_memory_bytes{job="catalog"} > 1e6')


def test_every_alert_expression_runs(prometheus):
    for rule in alert_rules():
        body = prometheus.query(rule["expr"])
        assert body["status"] == "success", (rule["alert"], body)


def test_prometheus_loaded_and_evaluated_every_rule(prometheus):
    names = {r["alert"] for r in alert_rules()}
    deadline = time.monotonic() + 20
    while True:
        groups = requests.get(prometheus.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        if set(rules) == names and all(r["health"] == "ok" for r in rules.values()):
            break
        assert time.monotonic() < deadline, {n: (r["health"], r.get("lastError")) for n, r in rules.items()}
        time.sleep(0.5)


def test_service_down_selects_the_dead_target_and_not_the_live_one(prometheus):
    expr = {r["alert"]: r for r in alert_rules()}["SoukServiceDown"]["expr"]
    down = [s["metric"]["job"] for s in prometheus.series(expr)]
    assert down == ["users"]
