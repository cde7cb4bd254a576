"""services.txt, the list of services, against what cannot read it: each service's own
defaults in its main.c and its README, the top README's table of services, and
the generator's checks of the file itself. (deploy/'s YAML is checked against it by
the other files here, through conftest.SERVICES and DEFAULT_PORT.)"""
import os
import re
import subprocess

from conftest import REPO, SERVICES, services_table


def main_c(svc):
    with open(os.path.join(REPO, "services", svc, "main.c")) as f:
        return f.read()


def test_every_service_listens_by_default_on_its_port():
    for svc in SERVICES:
        # the souk_service's own .listen (a souk_grpc_service has one too: port + 1000)
        m = re.search(r'struct souk_service \w+ = \{[^}]*?\.listen\s*=\s*"127\.0\.0\.1:(\d+)"', main_c(svc))
        assert m, f"services/{svc}/main.c has no .listen = \"127.0.0.1:<port>\""
        assert int(m.group(1)) == services_table.PORT[svc], svc
        g = re.search(r'struct souk_grpc_service \w+ = \{[^}]*?\.listen\s*=\s*"127\.0\.0\.1:(\d+)"', main_c(svc))
        if svc != services_table.EDGE:   # SOUK_GRPC_LISTEN's default mirrors it (docs/grpc.md)
            assert g and int(g.group(1)) == services_table.PORT[svc] + 1000, svc


def test_the_edge_and_only_it_says_so():
    for svc in SERVICES:
        edge = re.search(r"\.edge\s*=\s*true", main_c(svc)) is not None
        assert edge == (svc == services_table.EDGE), svc


def test_every_service_is_documented():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    for svc in SERVICES:
        assert os.path.exists(os.path.join(REPO, "services", svc, "README.md")), svc
        assert re.search(rf"^\| {svc} \| .*\(services/{svc}/README\.md\) \|$", readme, re.M), \
            f"README.md's table of services has no row for {svc}"


def test_routes_name_services_and_a_bad_line_stops_the_build(tmp_path):
    assert {r.service for r in services_table.ROUTES} <= set(services_table.UPSTREAMS)
    gen = os.path.join(REPO, "scripts", "gen-services")
    ok = subprocess.run([gen, services_table.PATH], capture_output=True, text=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    assert f"#define SOUK_SERVICES_COUNT     {len(SERVICES)} " in ok.stdout
    with open(services_table.PATH) as f:
        text = f.read()
    lines = text.splitlines()
    edge_at = next(i for i, l in enumerate(lines) if l.startswith("edge "))
    for bad, at, why in [("service users 8091", edge_at, "listed twice"),
                         ("service extra 8082", edge_at, "port 8082 is catalog's"),
                         ("service extra 8180", edge_at, "not from 8080 to 8179"),
                         ("service late 8099", len(lines), "after the edge"),
                         ("route nosuch GET /x public", len(lines), "not a service listed above"),
                         ("route catalog GET /x anyone", len(lines), "route auth")]:
        p = tmp_path / "services.txt"
        p.write_text("\n".join(lines[:at] + [bad] + lines[at:]) + "\n")
        r = subprocess.run([gen, str(p)], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and why in r.stderr, (bad, r.stderr)
        assert f"services.txt:{at + 1}: " in r.stderr, r.stderr
