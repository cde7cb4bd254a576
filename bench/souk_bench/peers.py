"""peers: the references the platform is measured against. A private nginx (the
ceiling, `return 200` with a product-sized body, and `proxy_pass` to the catalog)
and the Express + better-sqlite3 peer in bench/peers/express on the catalog's
SQLite file, read-only."""
import json
import os
import subprocess

from .config import EXPRESS_DIR, log
from .net import free_port, wait_ready
from .procs import CLEAN

NGINX_CONF = """\
# private nginx for souk's benchmarks: the ceiling and the proxy reference
worker_processes auto;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    default_type application/json;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 1000000;
    upstream catalog {{
        server 127.0.0.1:{catalog_port};
        keepalive 64;
    }}
    # ceiling: no logging, the same body size as a product
    server {{
        listen 127.0.0.1:{ceiling_port};
        access_log off;
        location / {{ return 200 '{body}'; }}
    }}
    # proxy: logs each request to a file, as the catalog does
    server {{
        listen 127.0.0.1:{proxy_port};
        access_log {dir}/access.log;
        location / {{
            proxy_pass http://catalog;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(tmp, catalog_port, body_len):
    """(process, ceiling port, proxy port) of a private nginx under tmp/nginx."""
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    ceiling, proxy = free_port(), free_port()
    pad = "x" * max(0, body_len - len('{"pad":""}'))
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=d, catalog_port=catalog_port, ceiling_port=ceiling,
                                  proxy_port=proxy, body='{"pad":"%s"}' % pad))
    p = CLEAN.spawn(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c",
                     os.path.join(d, "nginx.conf")], out=os.path.join(d, "stdout.log"))
    if wait_ready(["http://127.0.0.1:%d/" % ceiling], 10) is None:
        raise RuntimeError("nginx did not start (see %s/error.log)" % d)
    return p, ceiling, proxy


def express_ready_module():
    return os.path.join(EXPRESS_DIR, "node_modules", "better-sqlite3", "build", "Release",
                        "better_sqlite3.node")


def prepare_express(tmp):
    """npm install (cached in node_modules) and build better-sqlite3 from source;
    None when ready, else the reason it is not."""
    logf = os.path.join(tmp, "npm.log")
    with open(logf, "ab") as f:
        def npm(*args):   # a build that outlasts the timeout leaves Express out, not the run
            try:
                return subprocess.call(["npm", *args], cwd=EXPRESS_DIR, stdout=f,
                                       stderr=subprocess.STDOUT, timeout=400)
            except subprocess.TimeoutExpired:
                f.write(b"\nbench: npm %s timed out after 400 s\n" % " ".join(args).encode())
                return 1
        if not os.path.isdir(os.path.join(EXPRESS_DIR, "node_modules", "express")):
            lock = os.path.exists(os.path.join(EXPRESS_DIR, "package-lock.json"))
            if npm("ci" if lock else "install", "--no-audit", "--no-fund") != 0:
                return "npm install failed (see %s)" % logf
        if not os.path.exists(express_ready_module()):
            log("building better-sqlite3 from source (first run only, a minute or two)")
            if npm("rebuild", "better-sqlite3", "--foreground-scripts", "--ignore-scripts=false",
                   "--build-from-source", "--nodedir=/usr") != 0:
                return "better-sqlite3 build failed (see %s)" % logf
    return None


def start_express(tmp, db_path):
    """(process, port) of the Express peer reading db_path."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), DB_PATH=db_path, NODE_ENV="production")
    p = CLEAN.spawn(["node", "server.js"], env=env, cwd=EXPRESS_DIR,
                    out=os.path.join(tmp, "express.log"))
    if wait_ready(["http://127.0.0.1:%d/readyz" % port], 15) is None:
        raise RuntimeError("express peer did not start (see %s/express.log)" % tmp)
    return p, port


def express_versions():
    """(express version, better-sqlite3 version) from their package.json files."""
    vers = []
    for pkg in ("express", "better-sqlite3"):
        with open(os.path.join(EXPRESS_DIR, "node_modules", pkg, "package.json")) as f:
            vers.append(json.load(f)["version"])
    return tuple(vers)
