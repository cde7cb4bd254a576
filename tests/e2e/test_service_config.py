"""`<service> --help` prints the service's whole configuration, and its README and
its table say the same: every variable the README names is one the binary reads
(or one of the few the README names for another reader, listed below with why),
and every variable of the service's own table is in its README. Runs the binaries
only (no server starts): well under a second."""
import os
import re
import subprocess

import pytest

from conftest import BIN, REPO, SERVICES

VAR = re.compile(r"SOUK_[A-Z0-9_]*[A-Z0-9]")
# Named in a README, but not variables the binary reads: the supervisor's
# (souk up) and the kit's C names for route access and handler suspension.
NOT_THE_BINARYS = {
    "SOUK_PORT_BASE",  # souk up's, for where the gateway's admin listener is
    "SOUK_RPC",  # souk up's: gRPC between the services or not
    "SOUK_GRPC",  # SOUK_GRPC_*, the family
    "SOUK_SERVICE", "SOUK_USER", "SOUK_SUSPEND",  # enum souk_auth and handler constants
}


def help_of(svc):
    """{section: [variables]} from `svc --help` run with an empty environment."""
    r = subprocess.run([os.path.join(BIN, svc), "--help"], env={"PATH": os.environ["PATH"]},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: "), r.stdout[:200]
    sections, current = {}, None
    for line in r.stdout.splitlines():
        if re.fullmatch(r"[a-zA-Z][^ ].*:", line):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and (m := re.match(r"[ *] (SOUK_[A-Z0-9_]+)=", line)):
            current.append(m.group(1))
    return sections, r.stdout


@pytest.mark.parametrize("svc", SERVICES)
def test_help_prints_the_whole_table_and_matches_the_readme(svc):
    sections, text = help_of(svc)
    every = [v for vs in sections.values() for v in vs]
    assert len(every) == len(set(every)), f"a variable printed twice: {every}"
    assert svc in sections, f"no section of {svc}'s own variables: {list(sections)}"
    for kit in ("SOUK_LISTEN", "SOUK_DB", "SOUK_VAR", "SOUK_TOKEN_ISSUER", "SOUK_JWKS_URL",
                "SOUK_EVENTS", "SOUK_DB_LOCK_TIMEOUT_MS"):
        assert kit in every, f"{svc} --help lacks the kit's {kit}"
    assert "(no help)" not in text, "a variable without help text"
    readme = open(os.path.join(REPO, "services", svc, "README.md"), encoding="utf-8").read()
    named = set(VAR.findall(readme))
    # a service's README names the variable its callers reach its gRPC port by
    callers = {f"SOUK_{svc.upper()}_GRPC_URL"}
    unknown = named - set(every) - NOT_THE_BINARYS - callers
    assert not unknown, f"services/{svc}/README.md names variables {svc} does not read: {sorted(unknown)}"
    undocumented = set(sections[svc]) - named
    assert not undocumented, f"{svc}'s own variables missing from its README: {sorted(undocumented)}"


def test_help_never_shows_a_secret():
    r = subprocess.run([os.path.join(BIN, "users"), "--help"],
                       env={"PATH": os.environ["PATH"], "SOUK_CLIENT_SECRET": "s3cr3t-value",
                            "SOUK_ADMIN_PASSWORD": "hunter2-hunter2",
                            "SOUK_DB": "postgresql://u:pgpass@db/users"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for secret in ("s3cr3t-value", "hunter2-hunter2", "pgpass"):
        assert secret not in r.stdout
    assert "* SOUK_CLIENT_SECRET=***" in r.stdout
