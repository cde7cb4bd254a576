"""deploy/grafana: the provisioning files (data source, dashboard provider) match the
compose wiring; every dashboard under dashboards/ is well formed, names only metrics
the code exports, and every PromQL expression parses and runs on a real Prometheus
(promtool has no expression check) scraping the platform after a confirmed and a
declined checkout; the overview covers traffic, errors, p99 per route, RSS and the
outbox; the checkout dashboard's panels show the checkout that happened."""
import glob
import json
import os
import re

from conftest import DEPLOY, load_yaml
from test_prometheus import exported_metric_names, metric_names_in

GRAFANA = os.path.join(DEPLOY, "grafana")
DASHBOARDS = sorted(glob.glob(os.path.join(GRAFANA, "dashboards", "*.json")))
# Grafana's variables, as Grafana would expand them for a query
EXPAND = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$job": ".*"}
# checkout panels that stay empty on a healthy platform with the feed transport
EMPTY_WHEN_HEALTHY = {
    "Consumers behind or dead-lettering": "counters that appear with their first incident",
    "Broker links": "amqp only",
}


def dashboard(name):
    with open(os.path.join(GRAFANA, "dashboards", name)) as f:
        return json.load(f)


def targets(d):
    for p in d["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t


def all_targets():
    for path in DASHBOARDS:
        with open(path) as f:
            d = json.load(f)
        for title, t in targets(d):
            yield os.path.basename(path), title, t


def expand(expr):
    for k in sorted(EXPAND, key=len, reverse=True):
        expr = expr.replace(k, EXPAND[k])
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def test_the_dashboards_are_there():
    assert [os.path.basename(p) for p in DASHBOARDS] == ["checkout.json", "souk.json"]


def test_every_dashboard_is_well_formed():
    uids = set()
    for path in DASHBOARDS:
        with open(path) as f:
            d = json.load(f)
        name = os.path.basename(path)
        assert d["uid"] and d["title"] and d["schemaVersion"] >= 30, name
        assert d["uid"] not in uids, f"{name}: uid {d['uid']} repeats"
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids repeat"
        variables = {v["name"]: v for v in d["templating"]["list"]}
        # the provisioned Prometheus is the default data source of its type: the
        # variable resolves to it without anyone picking it
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == "prometheus", name
        cells = set()
        for p in d["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (name, p["title"])
            assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])
            assert p["targets"], f"{name}: {p['title']} has no query"
            assert p.get("description"), f"{name}: {p['title']} says nothing of what it shows"
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", (name, p["title"])
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']} overlaps another panel"
                    cells.add((x, y))
        refs = [(title, t["refId"]) for title, t in targets(d)]
        assert len(refs) == len(set(refs)), name


def test_the_overview_covers_what_operators_look_at():
    d = dashboard("souk.json")
    assert "job" in {v["name"] for v in d["templating"]["list"]}
    exprs = " ".join(t["expr"] for _, t in targets(d))
    for needle in ("rate(http_requests_total", 'code=~"5..', "histogram_quantile(0.99",
                   "process_resident_memory_bytes", "souk_events_outbox_backlog"):
        assert needle in exprs, needle
    p99 = [t["expr"] for _, t in targets(d) if "http_request_duration_seconds_bucket" in t["expr"]]
    assert any(re.search(r"by \([^)]*\broute\b", e) for e in p99), "p99 is not per route"


def test_the_checkout_dashboard_covers_saga_payments_and_events():
    exprs = " ".join(t["expr"] for _, t in targets(dashboard("checkout.json")))
    for needle in ("orders_transitions_total", "orders_by_status", "orders_saga_step_duration_seconds_bucket",
                   "by (step", "payments_total", 'outcome="declined"', 'route="/api/v1/orders"',
                   "souk_events_emitted_total", "souk_events_consumed_total", "souk_events_outbox_backlog",
                   "souk_events_cursor_expired_total"):
        assert needle in exprs, needle


def test_every_dashboard_metric_is_exported_by_the_code():
    exported = exported_metric_names()
    for name, title, t in all_targets():
        for metric in metric_names_in(t["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert metric in exported or base in exported, f"{name} {title}: {metric}"


def test_every_dashboard_expression_parses_on_prometheus(prometheus):
    for name, title, t in all_targets():
        body = prometheus.query(expand(t["expr"]))
        assert body["status"] == "success", (name, title, t["expr"], body)
    job_var = [v for v in dashboard("souk.json")["templating"]["list"] if v["name"] == "job"][0]
    m = re.fullmatch(r"label_values\((\w+), (\w+)\)", job_var["definition"])
    assert m, job_var["definition"]
    assert prometheus.series(m.group(1)), "the job variable's metric has no series"


def test_the_traffic_panels_show_the_catalog(prometheus):
    """Not only parsing: with catalog scraped, request rate and RSS have its series."""
    wanted = {"Request rate per service", "Resident memory per service", "p99 latency per route"}
    for title, t in targets(dashboard("souk.json")):
        if title in wanted:
            jobs = {s["metric"].get("job") for s in prometheus.series(expand(t["expr"]))}
            assert "catalog" in jobs, (title, jobs)


def test_the_checkout_panels_show_the_checkouts(prometheus):
    """After confirmed and declined checkouts, every checkout panel has series
    (but the two that only an incident or amqp fills), and the ones that count show
    what happened."""
    d = dashboard("checkout.json")
    for title, t in targets(d):
        if title in EMPTY_WHEN_HEALTHY:
            continue
        assert prometheus.series(expand(t["expr"])), f"{title}: no series ({t['expr']})"

    def value(title):
        t = [t for p_title, t in targets(d) if p_title == title][0]
        return [float(s["value"][1]) for s in prometheus.series(expand(t["expr"]))]

    # two placed while Prometheus watched, one confirmed, one declined; increase()
    # extrapolates a counter's rise to the edges of the range, never below what it saw
    assert value("Checkouts placed")[0] >= 2 - 1e-9, value("Checkouts placed")
    assert value("Authorizations declined")[0] >= 1 - 1e-9, value("Authorizations declined")
    assert value("Confirmed share")[0] > 0, value("Confirmed share")
    statuses = {s["metric"]["status"] for s in prometheus.series("sum by (status) (orders_by_status)")}
    assert {"confirmed", "rejected"} <= statuses, statuses
    steps = {s["metric"]["step"] for s in prometheus.series(
        "sum by (step) (orders_saga_step_duration_seconds_count)")}
    assert {"reserve", "authorize", "capture"} <= steps, steps
    types = {s["metric"]["type"] for s in prometheus.series("sum by (type) (souk_events_emitted_total)")}
    assert "order.confirmed" in " ".join(types), types


def test_provisioning_points_grafana_at_the_compose_prometheus_and_the_dashboards():
    compose = load_yaml("compose.yaml")
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert all(v.endswith(":ro") for v in grafana["volumes"] if v.startswith("./"))

    ds = load_yaml("grafana", "provisioning", "datasources", "prometheus.yaml")
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True and source["access"] == "proxy"
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", source["url"])
    assert m and m.group(1) in compose["services"], source["url"]
    assert m.group(1) == "prometheus" and m.group(2) == "9090"
    assert "127.0.0.1:9090:9090" in compose["services"]["prometheus"]["ports"]
    scrape = load_yaml("prometheus", "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape   # $__rate_interval needs it

    prov = load_yaml("grafana", "provisioning", "dashboards", "souk.yaml")
    assert prov["apiVersion"] == 1
    [provider] = prov["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert mounts[path] == "./grafana/dashboards", (path, mounts)
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert os.path.dirname(home) == path and os.path.basename(home) in map(os.path.basename, DASHBOARDS)
    # provisioning files are read from the two directories Grafana scans
    for kind in ("datasources", "dashboards"):
        files = os.listdir(os.path.join(GRAFANA, "provisioning", kind))
        assert files and all(f.endswith((".yaml", ".yml")) for f in files), (kind, files)
