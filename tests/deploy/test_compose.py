"""deploy/compose.yaml (scale-out: PostgreSQL, RabbitMQ, two replicas) and
deploy/compose.sqlite.yaml (local: SQLite, one of each), checked without a container
engine: every service is there with an image, healthcheck, restart policy and
read-only root; host ports do not clash; every SOUK_*_URL names a defined service on
the port it listens on and every peer a service's code needs is wired; each database
service has its own database and role, the init script makes one for each; secrets
come from gen-secrets' names; Prometheus and Grafana start by default, the log
shipper and Elasticsearch/Kibana in their profiles; docker-compose's own schema
accepts both files with every profile."""
import functools
import os
import re
import shutil
import subprocess

import yaml

from conftest import DEPLOY, SERVICES, DEFAULT_PORT, load_yaml
from peers import code_calls, code_rpc_calls, consumes, has_database, publishes, required_peers

URL = re.compile(r"^http://([a-z0-9-]+):(\d+)$")
SCALE = "compose.yaml"
LOCAL = "compose.sqlite.yaml"
STORES = {"postgres", "rabbitmq"}


def compose(name=SCALE):
    return load_yaml(name)


def env_of(svc, name=SCALE):
    return compose(name)["services"][svc]["environment"]


@functools.lru_cache(maxsize=None)
def gen_secret_names(run=0):
    """gen-secrets' output as a dict (run: a distinct number for a fresh run)."""
    out = subprocess.run([os.path.join(DEPLOY, "gen-secrets")], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.split())


def listen_port(svc, name=SCALE):
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", env_of(svc, name)["SOUK_LISTEN"])
    assert m, f"{svc} must listen on 0.0.0.0 inside its container"
    return int(m.group(1))


def probe_port(svc, name=SCALE):
    """Where its healthcheck asks: a listener whose thread runs no request (the probe
    listener, at the port + 1100 as under souk up; the gateway's admin listener)."""
    var = "SOUK_ADMIN_LISTEN" if svc == "gateway" else "SOUK_PROBE_LISTEN"
    m = re.fullmatch(r"0\.0\.0\.0:(\d+)", env_of(svc, name)[var])
    assert m, f"{svc}: {var} on 0.0.0.0 inside its container"
    return int(m.group(1))


OBSERVABILITY = {"prometheus", "grafana"}              # always
PROFILES = {"filebeat": ["logs", "elastic"], "elasticsearch": ["elastic"], "kibana": ["elastic"]}


def test_every_service_and_the_observability_stack_is_defined():
    assert set(compose()["services"]) == set(SERVICES) | STORES | OBSERVABILITY | set(PROFILES)
    assert set(compose(LOCAL)["services"]) == set(SERVICES)


def test_scale_out_runs_two_replicas_of_each_service_but_the_published_gateway():
    c = compose()["services"]
    for svc in SERVICES:
        s = c[svc]
        if svc == "gateway":
            assert "scale" not in s and "deploy" not in s
            continue
        # docker-compose 1.29 starts `scale`, Compose v2 and podman-compose read deploy.replicas
        assert s["scale"] == 2 and s["deploy"] == {"replicas": 2}, svc
        assert "ports" not in s, f"{svc}: two replicas cannot publish one host port"
        assert "container_name" not in s, svc
        for store in STORES:
            assert s["depends_on"][store] == {"condition": "service_healthy"}, svc
    for svc in SERVICES:
        assert "scale" not in compose(LOCAL)["services"][svc], svc


def test_each_database_service_has_its_own_database_role_and_password():
    c = compose()["services"]
    pg = c["postgres"]
    dbs = sorted(s for s in SERVICES if has_database(s))
    assert sorted(pg["environment"]["SOUK_DATABASES"].split()) == dbs
    assert "./k8s/initdb:/docker-entrypoint-initdb.d:ro" in pg["volumes"]
    assert pg["environment"]["POSTGRES_PASSWORD"].startswith("${SOUK_POSTGRES_PASSWORD:?")
    assert "ports" not in pg and "ports" not in c["rabbitmq"], "the stores stay on the compose network"
    for svc in SERVICES:
        env = env_of(svc)
        if not has_database(svc):
            assert "SOUK_DB" not in env, svc
            continue
        assert env["SOUK_DB"] == f"postgresql://{svc}@postgres:5432/{svc}", svc
        var = f"SOUK_DB_PASSWORD_{svc.upper()}"
        assert env["PGPASSWORD"].startswith("${" + var + ":?"), svc
        assert pg["environment"][var] == env["PGPASSWORD"], f"{svc}: the init script sets the password it uses"
        assert "SOUK_DB" not in env_of(svc, LOCAL), "the local file keeps SQLite"
    assert env_of("payments")["SOUK_PAYMENTS_KEY"].startswith("${SOUK_PAYMENTS_KEY:?")


def test_events_go_through_rabbitmq_for_publishers_and_consumers():
    mq = compose()["services"]["rabbitmq"]
    assert mq["environment"]["RABBITMQ_DEFAULT_USER"] == "souk"
    password = mq["environment"]["RABBITMQ_DEFAULT_PASS"]
    for svc in SERVICES:
        env = env_of(svc)
        if publishes(svc) or consumes(svc):
            assert env["SOUK_EVENTS"] == f"amqp://souk:{password}@rabbitmq:5672/%2f", svc
        else:
            assert "SOUK_EVENTS" not in env, svc
        assert env_of(svc, LOCAL).get("SOUK_EVENTS", "feed") == "feed"


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


def compose_config(d, *args, name=SCALE):
    """docker-compose's own validation (its schema and interpolation) in d, a copy of
    deploy/ with a generated .env."""
    return subprocess.run(["docker-compose", "-f", name, *args], cwd=d,
                          capture_output=True, text=True, timeout=60)


def test_docker_compose_accepts_the_files_with_every_profile(tmp_path):
    for item in (SCALE, LOCAL, "prometheus", "grafana", "filebeat"):
        src = os.path.join(DEPLOY, item)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, tmp_path / item)
    for name in (SCALE, LOCAL):
        r = compose_config(tmp_path, "config", "-q", name=name)
        assert r.returncode != 0 and "gen-secrets" in r.stderr, f"{name} must refuse to run without secrets"
    (tmp_path / ".env").write_text(subprocess.run([os.path.join(DEPLOY, "gen-secrets")], check=True,
                                                  capture_output=True, text=True).stdout)
    for name in (SCALE, LOCAL):
        r = compose_config(tmp_path, "config", "-q", name=name)
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
    for name in (SCALE, LOCAL):
        for svc in SERVICES:
            s = compose(name)["services"][svc]
            assert re.search(rf"/{svc}:", s["image"]), s["image"]
            assert s["restart"] in ("unless-stopped", "always"), svc
            assert s["read_only"] is True, svc
            assert "/tmp" in s["tmpfs"], svc
            assert s["user"] == "10001:10001", svc
            test = " ".join(s["healthcheck"]["test"])
            assert f"/dev/tcp/127.0.0.1/{probe_port(svc, name)}" in test and "/readyz" in test, svc
            assert probe_port(svc, name) == DEFAULT_PORT[svc] + 1100, svc
            assert listen_port(svc, name) == DEFAULT_PORT[svc], svc
    for store in STORES:
        s = compose()["services"][store]
        assert s["restart"] == "unless-stopped" and s["healthcheck"]["test"][0] == "CMD", store


def test_state_lives_in_postgres_or_on_volumes_the_replicas_share():
    c = compose()
    # users' signing keys and notify's mail files are files: one volume for both replicas
    for svc in SERVICES:
        vols = c["services"][svc].get("volumes", [])
        want = [f"{svc}-data:/var/lib/souk"] if svc in ("users", "notify") else []
        assert vols == want, svc
    assert "postgres-data:/var/lib/postgresql/data" in c["services"]["postgres"]["volumes"]
    assert c["services"]["rabbitmq"]["volumes"] == ["rabbitmq-data:/var/lib/rabbitmq"]


def test_local_state_lives_on_a_named_volume_except_for_the_stateless_gateway():
    c = compose(LOCAL)
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
    for file in (SCALE, LOCAL):
        seen = {}
        for name, s in compose(file)["services"].items():
            for p in s.get("ports", []):
                host = re.sub(r"\$\{[A-Z_]+:-(\d+)\}", r"\1", p).rsplit(":", 1)[0]
                assert host not in seen, f"{name} and {seen[host]} both publish {host}"
                seen[host] = name
            container = {int(p.rsplit(":", 1)[1]) for p in s.get("ports", [])}
            if name in SERVICES and s.get("ports"):
                assert container == {listen_port(name, file)}, name


def test_every_peer_url_points_at_a_defined_service_on_its_port():
    for file, svc in [(f, s) for f in (SCALE, LOCAL) for s in SERVICES]:
        env = env_of(svc, file)
        for key, value in env.items():
            name = re.fullmatch(r"SOUK_([A-Z]+)_URL", key)
            if not name or name.group(1).lower() not in SERVICES:
                continue   # SOUK_PUBLIC_URL, SOUK_SMTP_URL: not peers
            m = URL.match(value)
            assert m, f"{svc}: {key}={value}"
            peer, port = m.group(1), int(m.group(2))
            assert key == f"SOUK_{peer.upper()}_URL", f"{svc}: {key} points at {peer}"
            assert peer in SERVICES, f"{svc}: {key} names no service"
            assert port == listen_port(peer, file), f"{svc}: {key} port {port} but {peer} listens elsewhere"


def test_every_peer_a_service_needs_is_wired():
    for svc in SERVICES:
        # local: the feed transport reaches every producer a service follows too
        env = env_of(svc, LOCAL)
        for peer in required_peers(svc):
            assert f"SOUK_{peer.upper()}_URL" in env, f"{LOCAL}: {svc} needs SOUK_{peer.upper()}_URL"
        # scale-out: events go through the broker, so only what the code calls
        env = env_of(svc)
        for peer in code_calls(svc):
            assert f"SOUK_{peer.upper()}_URL" in env, f"{SCALE}: {svc} needs SOUK_{peer.upper()}_URL"


def test_grpc_ports_and_every_grpc_peer_the_code_calls():
    """Every service behind the gateway serves gRPC on its port + 1000 (souk up's
    layout); a service whose code reads SOUK_<PEER>_GRPC_URL gets it, at that peer's
    gRPC port, in both files (calls between services over gRPC, as souk up runs them)."""
    for file in (SCALE, LOCAL):
        for svc in SERVICES:
            env = env_of(svc, file)
            grpc = env.get("SOUK_GRPC_LISTEN")
            if svc == "gateway":
                assert grpc is None, f"{file}: the gateway serves no gRPC"
                continue
            assert grpc == f"0.0.0.0:{listen_port(svc, file) + 1000}", f"{file}: {svc} SOUK_GRPC_LISTEN={grpc}"
            for key, value in env.items():
                m = re.fullmatch(r"SOUK_([A-Z]+)_GRPC_URL", key)
                if m:
                    peer = m.group(1).lower()
                    assert peer in code_rpc_calls(svc), f"{file}: {svc} sets {key}, which its code never reads"
                    assert value == f"grpc://{peer}:{listen_port(peer, file) + 1000}", f"{file}: {svc} {key}={value}"
            for peer in code_rpc_calls(svc):
                assert f"SOUK_{peer.upper()}_GRPC_URL" in env, f"{file}: {svc} needs SOUK_{peer.upper()}_GRPC_URL"


def test_each_service_has_its_own_identity_and_secret():
    names = gen_secret_names()
    for file in (SCALE, LOCAL):
        for svc in SERVICES:
            env = env_of(svc, file)
            assert env["SOUK_CLIENT_ID"] == svc
            m = re.fullmatch(r"\$\{(SOUK_SECRET_[A-Z]+):\?.+\}", env["SOUK_CLIENT_SECRET"])
            assert m and m.group(1) == f"SOUK_SECRET_{svc.upper()}", env["SOUK_CLIENT_SECRET"]
            assert m.group(1) in names
        users = compose(file)["services"]["users"]
        assert users["entrypoint"][0] == "/usr/local/bin/souk-clients-file"
        assert "env_file" not in users, "users gets the client secrets, not every password in .env"
        env = env_of("users", file)
        assert {k for k in env if k.startswith("SOUK_SECRET_")} == {f"SOUK_SECRET_{s.upper()}" for s in SERVICES}
        assert env["SOUK_CLIENTS_FILE"].startswith("/tmp/")
        for svc in SERVICES:   # no other service sees a secret that is not its own
            others = [v for k, v in env_of(svc, file).items() if svc != "users" and "SOUK_SECRET_" in str(v)
                      and f"SOUK_SECRET_{svc.upper()}" not in str(v)]
            assert not others, (file, svc, others)


def test_gen_secrets_gives_fresh_hex_secrets_for_everything():
    a, b = gen_secret_names(1), gen_secret_names(2)
    dbs = [s for s in SERVICES if has_database(s)]
    assert set(a) == ({f"SOUK_SECRET_{s.upper()}" for s in SERVICES} | {f"SOUK_DB_PASSWORD_{s.upper()}" for s in dbs}
                      | {"SOUK_POSTGRES_PASSWORD", "SOUK_RABBITMQ_PASSWORD", "SOUK_EVENTS", "SOUK_PAYMENTS_KEY"})
    for k, v in a.items():
        if k != "SOUK_EVENTS":
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
