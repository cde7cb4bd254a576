"""The service images for the kube play test, in seconds, with no debootstrap and no
package manager: FROM scratch, out of this machine's already-built binaries
(SOUK_BUILD_DIR/bin) plus exactly the shared libraries ldd names for them, the shell
and the few tools deploy/docker/souk-clients-file runs, a passwd/group entry for
uid 10001, nsswitch.conf (files, then dns: gRPC's native resolver reads the hosts
file the test mounts), the CA bundle and the storefront files. Each image's
metadata (ENV, USER, WORKDIR, VOLUME, ENTRYPOINT, CMD…) is the runtime stage of
deploy/docker/Dockerfile itself, so the test plays what that Dockerfile declares;
the Dockerfile's build (Debian bases, compiling inside a container) is the image
test's, tests/deploy/podman/test_images.py, in make deploy-check."""
import concurrent.futures
import os
import re
import shutil
import subprocess
import tarfile

from conftest import BIN, REPO

DOCKERFILE = os.path.join(REPO, "deploy", "docker", "Dockerfile")
# what souk-clients-file runs besides the shell's builtins (users' entrypoint wrapper)
TOOLS = ["/bin/sh", "/usr/bin/env", "/bin/sed", "/usr/bin/sort", "/usr/bin/tr", "/bin/mv", "/bin/rm"]
BASE = "localhost/souk-kube-test/base:latest"
UID = 10001
# the runtime stage's instructions that only describe the image (its RUN and COPY
# lines are what build() assembles from the host)
META = ("ARG", "ENV", "EXPOSE", "USER", "WORKDIR", "VOLUME", "ENTRYPOINT", "CMD")


def runtime_metadata(path=DOCKERFILE):
    """The describing instructions of the Dockerfile's last stage, continuation
    lines joined."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    last = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    meta = [ln for ln in lines[last + 1:] if ln.split()[0].upper() in META]
    assert any(ln.upper().startswith("ENTRYPOINT") for ln in meta), f"no ENTRYPOINT in {path}'s last stage"
    return meta


LIBDIR = "/usr/lib/x86_64-linux-gnu"
DLOPENED = ("libpq.so.5", "librabbitmq.so.4", "librdkafka.so.1")   # as the Dockerfile's check


def needed_libraries(binaries):
    """Every file the dynamic loader maps for these binaries (ldd), the loader too."""
    libs = set()
    for b in binaries:
        r = subprocess.run(["ldd", b], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"ldd {b}: {r.stderr}"
        for line in r.stdout.splitlines():
            assert "not found" not in line, f"{b}: {line.strip()}"
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if m:
                libs.add(m.group(1))
    return sorted(libs)


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def base_rootfs(root, binaries):
    """The layer every service image shares: libraries, shell tools, users, web files."""
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "usr/local/bin", "etc/ssl/certs", "run", "proc",
              "sys", "dev", "var/lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for link in ("bin", "sbin", "lib", "lib64"):   # merged /usr, as Debian 12 is
        os.symlink(f"usr/{link}", os.path.join(root, link))
    os.makedirs(os.path.join(root, "tmp"), mode=0o1777)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    # the back-ends' client libraries the kit loads with dlopen in the mode that uses
    # them (lib/dl.c; ldd cannot see them): libpq for SOUK_DB=postgres://, the brokers'
    dlopened = [os.path.join(LIBDIR, so) for so in DLOPENED]
    for f in TOOLS + dlopened + needed_libraries(binaries + dlopened + [shutil.which(t) or t for t in TOOLS]):
        # under the directory the loader searches (its real one: /lib is usr/lib here
        # too), by the name ldd gave (the soname), the contents of what it points to
        dest = os.path.join(root, os.path.realpath(os.path.dirname(f)).lstrip("/"), os.path.basename(f))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            shutil.copy2(f, dest)
    _write(os.path.join(root, "etc/passwd"),
           f"root:x:0:0:root:/root:/usr/sbin/nologin\nsouk:x:{UID}:{UID}::/var/lib/souk:/usr/sbin/nologin\n")
    _write(os.path.join(root, "etc/group"), f"root:x:0:\nsouk:x:{UID}:\n")
    _write(os.path.join(root, "etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n")
    for f in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):   # podman's mount points
        _write(os.path.join(root, f), "")
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        shutil.copy2("/etc/ssl/certs/ca-certificates.crt", os.path.join(root, "etc/ssl/certs"))
    state = os.path.join(root, "var/lib/souk")
    os.makedirs(state, mode=0o700)
    os.chown(state, UID, UID)
    shutil.copy2(os.path.join(REPO, "deploy", "docker", "souk-clients-file"), os.path.join(root, "usr/local/bin"))
    shutil.copytree(os.path.join(REPO, "web"), os.path.join(root, "usr/share/souk/web"))


def _root_owned(info):
    if info.name not in ("./var/lib/souk",):
        info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build(podman, tmp, services, port_of):
    """localhost/souk/<service>:latest for each service (port_of: its port), in
    podman's store; the base layer is imported, each service's built on it."""
    binaries = [os.path.join(BIN, s) for s in services]
    for b in binaries:
        assert os.access(b, os.X_OK), f"{b}: build the services first (make all)"
    work = os.path.join(tmp, "images")
    root = os.path.join(work, "base")
    os.makedirs(work)
    base_rootfs(root, binaries)
    with tarfile.open(os.path.join(work, "base.tar"), "w") as t:
        t.add(root, arcname=".", filter=_root_owned)
    podman("import", "--quiet", os.path.join(work, "base.tar"), BASE)
    meta = runtime_metadata()

    def one(svc):
        ctx = os.path.join(work, svc)
        bindir = os.path.join(ctx, "usr", "local", "bin")
        os.makedirs(bindir)
        shutil.copy2(os.path.join(BIN, svc), bindir)
        os.symlink(svc, os.path.join(bindir, "souk-service"))   # the Dockerfile's `ln -s`
        with tarfile.open(os.path.join(ctx, "service.tar"), "w") as t:
            t.add(os.path.join(ctx, "usr"), arcname="usr", filter=_root_owned)
        shutil.rmtree(os.path.join(ctx, "usr"))
        _write(os.path.join(ctx, "Containerfile"), "\n".join([f"FROM {BASE}", "ADD service.tar /", *meta]) + "\n")
        podman("build", "--quiet", "--pull=never", "--network", "none", "--build-arg", f"SERVICE={svc}",
               "--build-arg", f"PORT={port_of[svc]}", "-t", f"localhost/souk/{svc}:latest", ctx, timeout=300)

    # side by side: a build is mostly podman's start-up and commit, little CPU
    with concurrent.futures.ThreadPoolExecutor(len(services)) as pool:
        for f in [pool.submit(one, svc) for svc in services]:
            f.result()
    shutil.rmtree(work)
