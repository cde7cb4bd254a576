"""deploy/compose.yaml, checked without a container engine: every service is there
with an image, healthcheck, restart policy, read-only root and its volume; host ports
do not clash; every SOUK_*_URL names a defined service on the port it listens on and
every peer a service's code needs is wired; secrets come from gen-secrets' names;
Prometheus and Grafana start by default, the log shipper and Elasticsearch/Kibana in
their profiles; docker-compose's own schema accepts the file with every profile."""
import functools
import os
import re
import shutil
import subprocess

import yaml

from conftest import DEPLOY, SERVICES, DEFAULT_PORT, load_yaml
from peers import required_peers

URL = re.compile(r"^http://([a-z0-9-]+):(\d+)$")


def compose():
    return load_yaml("compose.yaml")


def env_of(svc):
    return compose()["services"][svc]["environment"]


@functools.lru_cache(maxsize=None)
def gen_secret_names(run=0):
    """gen-secrets' output as a dict (run: a distinct number for a fresh run)."""
    out = subprocess.run([os.path.join(DEPLOY, "gen-secrets")], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def listen_port(svc):
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", env_of(svc)["SOUK_LISTEN"])
    assert m, f"{svc} must listen on 0.0.0.0 inside its container"
    return int(m.group(1))


OBSERVABILITY = {"prometheus", "grafana"}              # always
PROFILES = {"filebeat": ["logs", "elastic"], "elasticsearch": ["elastic"], "kibana": ["elastic"]}


def test_every_service_and_the_observability_stack_is_defined():
    assert set(compose()["services"]) == set(SERVICES) | OBSERVABILITY | set(PROFILES)


def test_logs_and_elastic_are_opt_in_profiles_and_the_rest_starts_by_default():
    c = compose()["services"]
    for name, s in c.items():
        assert s.get("profiles") == PROFILES.get(name), name
    # one Elastic stack version: the shipper's template must match the cluster
    versions = {re.search(r":(\d+\.\d+\.\d+)\}?$", c[n]["image"]).group(1) for n in PROFILES}
    assert len(versions) == 1, versions
    # a profile that is off must not be pulled in by one that is on
    for name, s in c.items():
        for dep in s.get("depends_on", []):
            assert set(c[dep].get("profiles") or ["default"]) >= set(s.get("profiles") or ["default"]), (name, dep)


def test_the_elastic_services_listen_on_loopback_only():
    """Elasticsearch runs without security in this profile: never on a public address."""
    c = compose()["services"]
    assert c["elasticsearch"]["environment"]["xpack.security.enabled"] == "false"
    for name in ("elasticsearch", "kibana", "grafana", "prometheus"):
        assert all(p.startswith("127.0.0.1:") for p in c[name]["ports"]), name


def test_every_souk_service_logs_json_file_and_is_labelled_for_the_shipper():
    for svc in SERVICES:
        s = compose()["services"][svc]
        assert s["logging"]["driver"] == "json-file", svc
        assert s["labels"]["souk.logs"] == "ecs", svc
    for name in OBSERVABILITY | set(PROFILES):
        assert "souk.logs" not in compose()["services"][name].get("labels", {}), name


def compose_config(d, *args):
    """docker-compose's own validation (its schema and interpolation) in d, a copy of
    deploy/ with a generated .env."""
    return subprocess.run(["docker-compose", "-f", "compose.yaml", *args], cwd=d,
                          capture_output=True, text=True, timeout=60)


def test_docker_compose_accepts_the_file_with_every_profile(tmp_path):
    for item in ("compose.yaml", "prometheus", "grafana", "filebeat"):
        src = os.path.join(DEPLOY, item)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, tmp_path / item)
    r = compose_config(tmp_path, "config", "-q")
    assert r.returncode != 0 and "gen-secrets" in r.stderr, "compose must refuse to run without secrets"
    (tmp_path / ".env").write_text(subprocess.run([os.path.join(DEPLOY, "gen-secrets")], check=True,
                                                  capture_output=True, text=True).stdout)
    r = compose_config(tmp_path, "config", "-q")
    assert r.returncode == 0, r.stderr
    r = compose_config(tmp_path, "--profile", "logs", "--profile", "elastic", "config")
    assert r.returncode == 0, r.stderr
    rendered = yaml.safe_load(r.stdout)
    assert set(rendered["services"]) >= {"grafana", "filebeat", "elasticsearch", "kibana"}
    grafana = rendered["services"]["grafana"]
    # docker-compose 1.29 renders short syntax with the source made absolute
    targets = {(v["target"] if isinstance(v, dict) else v.split(":")[1]) for v in grafana["volumes"]}
    assert {"/etc/grafana/provisioning", "/etc/grafana/dashboards"} <= targets


def test_each_service_has_image_health_restart_and_read_only_root():
    for svc in SERVICES:
        s = compose()["services"][svc]
        assert re.search(rf"/{svc}:", s["image"]), s["image"]
        assert s["restart"] in ("unless-stopped", "always"), svc
        assert s["read_only"] is True, svc
        assert "/tmp" in s["tmpfs"], svc
        assert s["user"] == "10001:10001", svc
        test = " ".join(s["healthcheck"]["test"])
        assert f"/dev/tcp/127.0.0.1/{listen_port(svc)}" in test and "/readyz" in test, svc
        assert listen_port(svc) == DEFAULT_PORT[svc], svc


def test_state_lives_on_a_named_volume_except_for_the_stateless_gateway():
    c = compose()
    for svc in SERVICES:
        s = c["services"][svc]
        if svc == "gateway":   # the image's anonymous VOLUME, not shared, not a tmpfs
            assert "/var/lib/souk" not in s["tmpfs"]
            assert "volumes" not in s
            continue
        vols = [v.split(":") for v in s["volumes"]]
        assert [v[1] for v in vols] == ["/var/lib/souk"], svc
        assert vols[0][0] in c["volumes"], f"{svc}: undeclared volume {vols[0][0]}"
    named = [v.split(":")[0] for s in c["services"].values() for v in s.get("volumes", []) if not v.startswith(".")]
    assert len(named) == len(set(named)), "two services share a volume (and a database)"


def test_host_ports_do_not_clash():
    seen = {}
    for name, s in compose()["services"].items():
        for p in s.get("ports", []):
            host = re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", p).rsplit(":", 1)[0]
            assert host not in seen, f"{name} and {seen[host]} both publish {host}"
            seen[host] = name
        container = {int(p.rsplit(":", 1)[1]) for p in s.get("ports", [])}
        if name in SERVICES:
            assert container == {listen_port(name)}, name


def test_every_peer_url_points_at_a_defined_service_on_its_port():
    for svc in SERVICES:
        env = env_of(svc)
        for key, value in env.items():
            name = re.fullmatch(r"SOUK_([A-Z]+)_URL", key)
            if not name or name.group(1).lower() not in SERVICES:
                continue   # SOUK_PUBLIC_URL, SOUK_SMTP_URL: not peers
            m = URL.match(value)
            assert m, f"{svc}: {key}={value}"
            peer, port = m.group(1), int(m.group(2))
            assert key == f"SOUK_{peer.upper()}_URL", f"{svc}: {key} points at {peer}"
            assert peer in SERVICES, f"{svc}: {key} names no service"
            assert port == listen_port(peer), f"{svc}: {key} port {port} but {peer} listens on {listen_port(peer)}"


def test_every_peer_a_service_needs_is_wired():
    for svc in SERVICES:
        env = env_of(svc)
        for peer in required_peers(svc):
            assert f"SOUK_{peer.upper()}_URL" in env, f"{svc} needs SOUK_{peer.upper()}_URL"


def test_each_service_has_its_own_identity_and_secret():
    names = gen_secret_names()
    for svc in SERVICES:
        env = env_of(svc)
        assert env["SOUK_CLIENT_ID"] == svc
        m = re.fullmatch(r"\$\{(SOUK_SECRET_[A-Z]+):\?.+\}", env["SOUK_CLIENT_SECRET"])
        assert m and m.group(1) == f"SOUK_SECRET_{svc.upper()}", env["SOUK_CLIENT_SECRET"]
        assert m.group(1) in names
    users = compose()["services"]["users"]
    assert users["entrypoint"][0] == "/usr/local/bin/souk-clients-file"
    assert users["env_file"] == [".env"]
    assert env_of("users")["SOUK_CLIENTS_FILE"].startswith("/tmp/")


def test_gen_secrets_gives_every_service_a_fresh_64_hex_secret():
    a, b = gen_secret_names(1), gen_secret_names(2)
    assert set(a) == {f"SOUK_SECRET_{s.upper()}" for s in SERVICES}
    for k, v in a.items():
        assert re.fullmatch(r"[0-9a-f]{64}", v), k
        assert b[k] != v


def test_prometheus_reads_the_config_directory():
    p = compose()["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in p["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in p["command"]


def test_gateway_metrics_are_on_its_unpublished_admin_port():
    gw = compose()["services"]["gateway"]
    assert env_of("gateway")["SOUK_ADMIN_LISTEN"] == "0.0.0.0:9180"
    assert not any(p.rsplit(":", 1)[1] == "9180" for p in gw["ports"])   # compose network only
