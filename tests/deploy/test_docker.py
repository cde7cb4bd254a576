"""deploy/docker without building (make deploy-check builds and runs the images):
the Dockerfile's shape, its package lists agreeing with build-offline's and the
Makefile's, and the users entrypoint that writes the clients file."""
import json
import os
import re
import stat
import subprocess

from conftest import DEFAULT_PORT, DEPLOY, REPO, SERVICES

DOCKER = os.path.join(DEPLOY, "docker")


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def dockerfile():
    # join continuation lines so each instruction is one line
    return re.sub(r"\\\n\s*", " ", read(DOCKER, "Dockerfile"))


def instructions():
    return [l.strip() for l in dockerfile().splitlines() if l.strip() and not l.lstrip().startswith("#")]


def offline_list(name):
    m = re.search(rf'^{name}="([^"]+)"', read(DOCKER, "build-offline"), re.M)
    return set(m.group(1).split(","))


def test_two_stages_from_parameterised_bases():
    ins = instructions()
    assert "ARG BUILD_BASE=debian:bookworm-slim" in ins and "ARG BASE=debian:bookworm-slim" in ins
    froms = [i for i in ins if i.startswith("FROM ")]
    assert froms == ["FROM ${BUILD_BASE} AS build", "FROM ${BASE}"]
    assert not any(i.startswith("HEALTHCHECK") for i in ins), "Kubernetes probes do health"


def test_runtime_stage_is_non_root_with_souk_defaults():
    runtime = dockerfile().split("FROM ${BASE}", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert "SOUK_LISTEN=0.0.0.0:${PORT}" in runtime and "SOUK_VAR=/var/lib/souk" in runtime
    assert re.search(r"^EXPOSE \$\{PORT\}$", runtime, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/souk-service"]' in runtime
    assert "-dev" not in runtime, "no build packages at run time"


def test_package_lists_agree_with_build_offline_and_the_makefile():
    df = dockerfile()
    build_stage, runtime = df.split("FROM ${BASE}", 1)
    apt = lambda text: set(re.findall(r"\b(lib[a-z0-9.+-]+|gcc|make|pkg-config|ca-certificates|protobuf-c-compiler)\b",
                                      text.split("apt-get install", 1)[1].split("&&")[0]))
    assert apt(build_stage) == offline_list("BUILD_PKGS")
    assert apt(runtime) == offline_list("RUNTIME_PKGS")
    pkgs = re.search(r"^PKGS := (.*)$", read(REPO, "Makefile"), re.M).group(1).split()
    checked = re.search(r"pkg-config --exists ([a-z0-9 -]+)", df).group(1).split()
    assert checked == pkgs, "the builder's pkg-config check lags the Makefile's PKGS"
    setup_build = set(re.search(r'^build="([^"]+)"', read(REPO, "scripts", "setup"), re.M | re.S).group(1).split())
    assert offline_list("BUILD_PKGS") <= setup_build


def test_build_offline_knows_every_service_port():
    """Its port_of, run as it is, gives each service its port from services.txt."""
    src = read(DOCKER, "build-offline")
    fn = re.search(r"^port_of\(\) \{.*?^\}", src, re.M | re.S).group(0)
    for svc in SERVICES:
        r = subprocess.run(["sh", "-c", f'{fn}\nport_of "$1"', "-", svc], capture_output=True,
                           text=True, timeout=10, env={"PATH": "/usr/bin:/bin", "repo": REPO})
        assert r.returncode == 0 and r.stdout == f"{DEFAULT_PORT[svc]}\n", (svc, r.stdout, r.stderr)
    r = subprocess.run(["sh", "-c", f'{fn}\nport_of "$1"', "-", "nosuch"], capture_output=True,
                       text=True, timeout=10, env={"PATH": "/usr/bin:/bin", "repo": REPO})
    assert r.returncode != 0 and "unknown service nosuch" in r.stderr


def test_the_builder_gets_what_the_build_reads_and_build_offline_copies_it():
    """The Makefile makes build/gen/services.h from services.txt with scripts/gen-services:
    both reach the builder; and every file the builder COPYs is in build-offline's
    context (it assembles one by hand)."""
    build_stage = dockerfile().split("FROM ${BASE}", 1)[0]
    copied = [p for line in build_stage.splitlines() if line.startswith("COPY ")
              for p in line.split()[1:-1]]
    assert "services.txt" in copied and "scripts/gen-services" in copied
    src = re.sub(r"\\\n\s*", " ", read(DOCKER, "build-offline"))
    ctx = set()
    for line in src.splitlines():
        m = re.match(r'\s*(?:mkdir -p \S+ && )?cp -a (.*) "\$ctx/([^"]*)"$', line)
        if m:
            ctx |= {re.sub(r'^"\$repo/|"$', "", p) for p in m.group(1).split()}
    for path in copied:
        assert any(path == c or path.startswith(c + "/") for c in ctx), f"build-offline misses {path}"


def test_clients_file_entrypoint_writes_json_0600_then_execs(tmp_path):
    script = os.path.join(DOCKER, "souk-clients-file")
    assert os.stat(script).st_mode & stat.S_IXUSR
    out = tmp_path / "clients.json"
    env = {"PATH": "/usr/bin:/bin", "SOUK_CLIENTS_FILE": str(out),
           "SOUK_SECRET_USERS": "a" * 64, "SOUK_SECRET_CATALOG": "b" * 64}
    r = subprocess.run([script, "sh", "-c", 'echo "exec $1"', "-", "ok"], env=env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "exec ok\n"
    assert json.loads(out.read_text()) == {"users": "a" * 64, "catalog": "b" * 64}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_clients_file_entrypoint_refuses_bad_or_missing_secrets(tmp_path):
    script = os.path.join(DOCKER, "souk-clients-file")
    out = tmp_path / "clients.json"
    for extra in ({"SOUK_SECRET_USERS": 'a"b'}, {"SOUK_SECRET_USERS": ""}, {}):
        env = dict({"PATH": "/usr/bin:/bin", "SOUK_CLIENTS_FILE": str(out)}, **extra)
        r = subprocess.run([script, "true"], env=env, capture_output=True, text=True, timeout=10)
        assert r.returncode != 0, extra
        assert not out.exists()
