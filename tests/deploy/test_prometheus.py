"""deploy/prometheus: promtool accepts the configs and rules, and the rules' unit tests
(alerts.test.yml) pass, testing each alert both ways; each alert links its runbook in
docs/operations.md; a private Prometheus scrapes the real platform; every alert
expression runs, names metrics the code exports, and the service-down rule selects
exactly the dead target."""
import copy
import os
import re
import subprocess
import time

import requests
import yaml

from conftest import ADMIN_PORT, DEPLOY, GATEWAY_ADMIN_OFFSET, REPO, SERVICES, DEFAULT_PORT, load_yaml

PROM = os.path.join(DEPLOY, "prometheus")
ALERTS = os.path.join(PROM, "alerts.yml")
OPERATIONS = os.path.join(REPO, "docs", "operations.md")


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
    keywords = {"and", "or", "unless", "bool", "offset", "e", "Inf", "NaN", "group_left", "group_right"}
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
        port = ADMIN_PORT if svc == "gateway" else DEFAULT_PORT[svc]   # never its public one
        if svc == "gateway":   # one replica (it publishes the host's port)
            targets = [t for sc in jobs[svc]["static_configs"] for t in sc["targets"]]
            assert targets == [f"{svc}:{port}"]
            continue
        # replicated: every address the name resolves to is a target
        assert jobs[svc]["dns_sd_configs"] == [{"names": [svc], "type": "A", "port": port,
                                                "refresh_interval": "30s"}], svc
        assert jobs[svc]["relabel_configs"] == [{"target_label": "service", "replacement": svc}]


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
    assert down == ["notify"]


def test_the_alert_rules_pass_their_unit_tests():
    r = promtool("test", "rules", "alerts.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_is_tested_firing_and_quiet():
    """alerts.test.yml: for every rule, a case where it fires (with the runbook link among
    the annotations it renders) and one where it must not."""
    tests = load_yaml("prometheus", "alerts.test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    fires, quiet = {}, set()
    for t in tests["tests"]:
        for case in t["alert_rule_test"]:
            if case["exp_alerts"]:
                fires.setdefault(case["alertname"], []).extend(case["exp_alerts"])
            else:
                quiet.add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert set(fires) == names, names ^ set(fires)
    assert quiet == names, names ^ quiet
    for rule in alert_rules():
        for exp in fires[rule["alert"]]:
            assert exp["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert exp["exp_annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]


def github_anchor(heading):
    """The id GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections():
    """{anchor: text} for each '### ' section of docs/operations.md."""
    with open(OPERATIONS) as f:
        text = f.read()
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return {github_anchor(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_alert_links_a_runbook_that_says_what_to_do():
    sections = runbook_sections()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md" and anchor == rule["alert"].lower(), url
        assert anchor in sections, f"{rule['alert']}: no section '### {rule['alert']}' in docs/operations.md"
        body = sections[anchor]
        for part in ("What it means", "First checks", "What to do"):
            assert part in body, f"{rule['alert']}'s runbook lacks '{part}'"
        for m in metric_names_in(rule["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", m)
            assert base in body, f"{rule['alert']}'s runbook never names {base}"


def test_the_gateway_upstream_alert_reads_the_label_prometheus_keeps(prometheus, platform):
    """souk_proxy_upstream_up has its own `instance` label (the upstream): scraped,
    Prometheus keeps the target's instance and renames the metric's exported_instance,
    which is what SoukGatewayUpstreamDown's summary names."""
    series = prometheus.series('souk_proxy_upstream_up{job="gateway"}')
    assert series, "the gateway exports no upstream health"
    addresses = {u.split("//")[1] for u in platform.urls.values()}
    for s in series:
        # the scrape target: the gateway's admin listener
        assert s["metric"]["instance"] == f"127.0.0.1:{platform.base + GATEWAY_ADMIN_OFFSET}", s["metric"]
        assert s["metric"]["exported_instance"] in addresses, s["metric"]
    rule = {r["alert"]: r for r in alert_rules()}["SoukGatewayUpstreamDown"]
    assert "$labels.exported_instance" in rule["annotations"]["summary"]
