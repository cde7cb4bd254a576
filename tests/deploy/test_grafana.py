"""deploy/grafana/souk.json: a well-formed dashboard whose every PromQL expression
parses and runs on a real Prometheus (promtool has no expression check), covering
request rate, error ratio, p99 per route, RSS per service and the outbox backlog."""
import json
import os
import re

from conftest import DEPLOY
from test_prometheus import exported_metric_names, metric_names_in

DASH = os.path.join(DEPLOY, "grafana", "souk.json")
# Grafana's variables, as Grafana would expand them for a query
EXPAND = {"$__rate_interval": "1m", "$__interval": "15s", "$job": ".*"}


def dashboard():
    with open(DASH) as f:
        return json.load(f)


def targets():
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t


def expand(expr):
    for k in sorted(EXPAND, key=len, reverse=True):
        expr = expr.replace(k, EXPAND[k])
    assert "$" not in expr, f"unexpanded variable in {expr}"
    return expr


def test_dashboard_is_well_formed():
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], f"{p['title']} has no query"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))
    refs = [(title, t["refId"]) for title, t in targets()]
    assert len(refs) == len(set(refs))


def test_dashboard_covers_what_operators_look_at():
    exprs = " ".join(t["expr"] for _, t in targets())
    for needle in ("rate(http_requests_total", 'code=~"5..', "histogram_quantile(0.99",
                   "process_resident_memory_bytes", "souk_events_outbox_backlog"):
        assert needle in exprs, needle
    p99 = [t["expr"] for _, t in targets() if "http_request_duration_seconds_bucket" in t["expr"]]
    assert any(re.search(r"by \([^)]*\broute\b", e) for e in p99), "p99 is not per route"


def test_every_dashboard_metric_is_exported_by_the_code():
    exported = exported_metric_names()
    for title, t in targets():
        for name in metric_names_in(t["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in exported or base in exported, f"{title}: {name}"


def test_every_dashboard_expression_parses_on_prometheus(prometheus):
    for title, t in targets():
        body = prometheus.query(expand(t["expr"]))
        assert body["status"] == "success", (title, t["expr"], body)
    job_var = [v for v in dashboard()["templating"]["list"] if v["name"] == "job"][0]
    m = re.fullmatch(r"label_values\((\w+), (\w+)\)", job_var["definition"])
    assert m, job_var["definition"]
    assert prometheus.series(m.group(1)), "the job variable's metric has no series"


def test_the_traffic_panels_show_the_catalog(prometheus):
    """Not only parsing: with catalog scraped, request rate and RSS have its series."""
    wanted = {"Request rate per service", "Resident memory per service", "p99 latency per route"}
    for title, t in targets():
        if title in wanted:
            jobs = {s["metric"].get("job") for s in prometheus.series(expand(t["expr"]))}
            assert "catalog" in jobs, (title, jobs)
