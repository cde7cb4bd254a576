"""The kit's HTTP server under hostile clients (issue 11), seen from outside: one
address cannot hold every connection, request headers have a deadline of their own,
an oversized body meets a 413 the client can read, ambiguous framing is refused at
once (RFC 9112 §6.3), metrics live on an admin listener, and TLS on the public one."""
import datetime
import ipaddress
import random
import select
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, GATEWAY_ENGINE, Service, assert_problem, free_port
from gateway_helpers import Echo, gateway


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


def closed_within(sock, timeout):
    """Seconds until the peer closed sock (EOF or reset), or None if still open after
    timeout. Whatever the server sends before closing is read and dropped."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            continue
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except OSError:
            return time.monotonic() - t0


def connect_from(source, port):
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def read_response(sock):
    """One HTTP/1.1 response with a Content-Length body: (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def get_healthz(source, port):
    with connect_from(source, port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_response(s)[0]


# ---- slow clients ----

def test_one_address_cannot_hold_every_connection(tmp_path, echo):
    # 40 half-sent requests from one address against 32 slots and a cap of 8 per
    # address. Addresses of loopback's own (127.0.0.0/8) that nothing else on this
    # machine connects from: a stranger's probe from 127.0.0.1 would take a slot.
    attacker, other = (f"127.{random.randrange(2, 255)}.{random.randrange(256)}.{k}"
                       for k in (7, 9))
    gw = gateway(tmp_path, {"catalog": echo.url}, SOUK_MAX_CONNECTIONS=32,
                 SOUK_MAX_CONNECTIONS_PER_IP=8, SOUK_HEADER_TIMEOUT=60, SOUK_CONN_TIMEOUT=60,
                 SOUK_ADMIN_LISTEN="off")
    slow = []
    try:
        for _ in range(40):
            try:
                s = connect_from(attacker, gw.port)
                s.sendall(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n")
                slow.append(s)
            except OSError:
                pass   # refused outright: fine too
        # the server drops what is over the cap at once; wait until it has
        deadline = time.monotonic() + 10
        held = list(slow)
        while len(held) > 8 and time.monotonic() < deadline:
            held = [s for s in held if closed_within(s, 0.05) is None]
        assert len(held) == 8, f"{len(held)} half-sent requests held: {gw.log_tail(60)}"
        # another address is served meanwhile, and the first gets no ninth slot
        assert get_healthz(other, gw.port) == 200
        extra = connect_from(attacker, gw.port)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_within(extra, 10) is not None
        extra.close()
        # the held ones are still waiting (their deadline is a minute away)
        assert all(closed_within(s, 0) is None for s in held)
    finally:
        for s in slow:
            s.close()
        gw.kill()


def test_headers_have_a_deadline_separate_from_keep_alive(tmp_path, echo):
    gw = gateway(tmp_path, {"catalog": echo.url}, SOUK_HEADER_TIMEOUT=1, SOUK_CONN_TIMEOUT=30,
                 SOUK_ADMIN_LISTEN="off")
    try:
        idle = connect_from("127.0.0.1", gw.port)
        idle.sendall(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n")
        trickle = connect_from("127.0.0.1", gw.port)
        # a keep-alive connection that finished a request in time
        kept = connect_from("127.0.0.1", gw.port)
        kept.sendall(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept)[0] == 200
        done = {}

        def trickler():
            # one header byte every 100 ms: always active, never finished
            t0 = time.monotonic()
            for b in b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    trickle.send(bytes([b]))
                except OSError:
                    break
                if closed_within(trickle, 0.1) is not None:
                    break
            done["trickle"] = time.monotonic() - t0

        t = threading.Thread(target=trickler)
        t.start()
        done["idle"] = closed_within(idle, 10)
        t.join()
        assert done["idle"] is not None and 0.5 < done["idle"] < 10, done
        assert done["trickle"] < 10, done   # 200 bytes at 10/s would take 20 s
        # the header deadline has passed for the kept connection too: it is still open,
        # idle keep-alive is SOUK_CONN_TIMEOUT's business
        assert closed_within(kept, 0) is None
        kept.sendall(b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(kept)[0] == 200
        for s in (idle, trickle, kept):
            s.close()
        lines = gw.log_lines()
    finally:
        gw.kill()
    assert lines and not any(l.get("log.level") == "error" for l in lines)


# ---- a 413 the client can read ----

BIG = 4 * 1024 * 1024   # far over SOUK_MAX_BODY (64 KiB), sent without Expect: 100-continue


def test_oversized_body_gets_a_readable_413_with_requests(tmp_path, echo):
    gw = gateway(tmp_path, {"users": echo.url}, SOUK_ADMIN_LISTEN="off")
    body = b"x" * (4 * BIG)   # large enough that a reset overtakes the upload most times
    try:
        for _ in range(5):
            r = requests.post(gw.url + "/api/v1/users", data=body,
                              headers={"Content-Type": "application/json"}, timeout=10)
            assert_problem(r, 413, "body_too_large")
        assert echo.hits == 0
        # the same address is served normally afterwards
        assert requests.get(gw.url + "/healthz", timeout=5).status_code == 200
    finally:
        gw.kill()


def test_oversized_body_gets_a_readable_413_on_a_raw_socket(tmp_path, echo):
    gw = gateway(tmp_path, {"users": echo.url}, SOUK_ADMIN_LISTEN="off")
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
            s.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % BIG)
            s.sendall(b"x" * BIG)   # the whole body, before reading anything
            status, headers, body = read_response(s)
            assert status == 413 and b'"body_too_large"' in body
            assert headers["content-type"].startswith("application/problem+json")
            assert headers.get("connection", "").lower() == "close"
            s.shutdown(socket.SHUT_WR)
            assert closed_within(s, 10) is not None   # the server closes once we are done
    finally:
        gw.kill()


# ---- request framing (RFC 9112 §6.3) ----

FRAMING = [
    # (request head after the request line, body, expected status)
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!", 400),
    (b"Content-Length: 5\r\nContent-Length: 5, 6\r\n", b"hello", 400),
    (b"Transfer-Encoding: gzip\r\n", b"hello", 400),
    (b"Transfer-Encoding: chunked, gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"hello", 400),
    (b"Transfer-Encoding: chunked, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: gzip, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", 501),
]


def test_ambiguous_framing_is_refused_at_once(tmp_path, echo):
    gw = gateway(tmp_path, {"users": echo.url}, SOUK_ADMIN_LISTEN="off")
    try:
        # many rounds: each early answer is a lingering close, and they must not race
        for head, body, want in FRAMING * 20:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
                s.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: application/json\r\n" + head + b"\r\n" + body)
                try:
                    status, headers, text = read_response(s)
                except socket.timeout:
                    pytest.fail(f"no answer in 5 s to {head!r}")
                assert status == want, (head, status, text)
                assert headers["content-type"].startswith("application/problem+json"), head
                assert headers.get("connection", "").lower() == "close", (head, headers)
                assert closed_within(s, 5) is not None, head
        # HTTP/1.0 has no Transfer-Encoding
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            s.sendall(b"POST /api/v1/users HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\n5\r\nhello\r\n0\r\n\r\n")
            assert read_response(s)[0] == 400
        assert echo.hits == 0
        # well-framed bodies still pass: plain chunked, and one Content-Length repeated
        # with the same value, which RFC 9110 §8.6 lets a server accept as one or
        # refuse: the MHD engine accepts it, the uv engine's parser (http-parser, as
        # nginx) refuses it with a 400 before anything reaches the upstream
        dup_cl = b"Content-Length: 7\r\nContent-Length: 7\r\n"
        for head, body in [(dup_cl, b'{"a":1}'),
                           (b"Transfer-Encoding: chunked\r\n", b"7\r\n{\"a\":1}\r\n0\r\n\r\n")]:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
                s.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          b"Content-Type: application/json\r\n" + head + b"\r\n" + body)
                status, _, text = read_response(s)
                if head == dup_cl and GATEWAY_ENGINE != "mhd":   # uv, or auto (the default)
                    assert status == 400, (head, status, text)
                    continue
                assert status == 200 and b'\\"a\\":1' in text, (head, text)
        assert echo.hits == (2 if GATEWAY_ENGINE == "mhd" else 1)
        assert gw.proc.poll() is None, gw.log_tail()
    finally:
        gw.kill()


# ---- metrics on the admin listener ----

def assert_not_metrics(r):
    """The gateway's public /metrics: the storefront's page for an unknown path (its
    client-side routes fall back to index.html), never the Prometheus exposition."""
    assert "http_requests_total" not in r.text, r.text[:200]
    assert r.headers["Content-Type"].startswith("text/html"), r.headers


def test_gateway_metrics_only_on_the_admin_listener(tmp_path, echo):
    gw = gateway(tmp_path, {"catalog": echo.url})
    try:
        requests.get(gw.url + "/api/v1/products", timeout=5)
        assert_not_metrics(requests.get(gw.url + "/metrics", timeout=5))
        admin = requests.get(gw.admin_url + "/metrics", timeout=5)
        assert admin.status_code == 200 and 'route="/api/v1/products"' in admin.text
        assert admin.headers["Content-Type"].startswith("text/plain")
        for path in ("/healthz", "/readyz"):
            assert requests.get(gw.admin_url + path, timeout=5).status_code == 200
            assert requests.get(gw.url + path, timeout=5).status_code == 200   # probes
        assert_problem(requests.get(gw.admin_url + "/api/v1/products", timeout=5), 404)
    finally:
        gw.kill()


def test_gateway_admin_listener_defaults_to_loopback_beside_its_port(tmp_path, echo):
    for _ in range(50):   # a public port whose neighbour +1100 is free too
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1100))
            break
        except OSError:
            continue
    gw = Service("gateway", tmp_path, {"SOUK_CATALOG_URL": echo.url}, port=port)
    gw.env.pop("SOUK_ADMIN_LISTEN", None)
    gw.start()
    try:
        text = requests.get(f"http://127.0.0.1:{port + 1100}/metrics", timeout=5).text
        assert "http_requests_total" in text
        assert_not_metrics(requests.get(gw.url + "/metrics", timeout=5))
        started = [l for l in gw.log_lines() if l.get("message") == "listening"][-1]
        assert started["souk.admin"] == f"127.0.0.1:{port + 1100}"
    finally:
        gw.kill()


def test_service_metrics_move_to_the_admin_listener_when_set(services):
    admin = free_port()
    cat = services("catalog", env={"SOUK_ADMIN_LISTEN": f"127.0.0.1:{admin}"})
    assert requests.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).status_code == 200
    assert_problem(requests.get(cat.url + "/metrics", timeout=5), 404)
    assert requests.get(cat.url + "/readyz", timeout=5).status_code == 200
    plain = services("catalog", env={"SOUK_DB": "sqlite::memory:"})
    assert "http_requests_total" in requests.get(plain.url + "/metrics", timeout=5).text


def test_gateway_without_admin_listener_and_bad_values(tmp_path, echo):
    gw = gateway(tmp_path, {"catalog": echo.url}, SOUK_ADMIN_LISTEN="off")
    try:
        assert_not_metrics(requests.get(gw.url + "/metrics", timeout=5))
    finally:
        gw.kill()
    for bad in ("nowhere", "127.0.0.1:99999", "example.org:9180"):
        svc = Service("gateway", tmp_path, {"SOUK_ADMIN_LISTEN": bad})
        out = subprocess.run([BIN + "/gateway"], env=svc.env, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode == 2 and "SOUK_ADMIN_LISTEN" in out.stderr, (bad, out.stderr)


# ---- TLS on the public listener ----

def make_pki(d):
    """A test CA and a server certificate for 127.0.0.1/localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.utcnow()

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("souk test CA")).issuer_name(name("souk test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: d / f"{n}.pem" for n in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {n: str(p) for n, p in paths.items()}


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return make_pki(d)


def tls_gateway(tmp_path, upstreams, pki, **env):
    """The gateway with TLS on its public listener; ready once its admin /readyz says so.
    TLS is the MHD engine's (the uv engine refuses it: test_tls_needs_the_mhd_engine);
    these gateways take the default engine, auto, which serves TLS on MHD, whatever
    SOUK_TEST_GATEWAY_ENGINE says."""
    admin = free_port()
    e = {"SOUK_TLS_CERT": pki["cert"], "SOUK_TLS_KEY": pki["key"],
         "SOUK_ADMIN_LISTEN": f"127.0.0.1:{admin}", "SOUK_GATEWAY_ENGINE": "auto"}
    e.update({k: str(v) for k, v in env.items()})
    gw = gateway(tmp_path, upstreams, wait=False, **e)
    gw.url = f"https://127.0.0.1:{gw.port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert gw.proc.poll() is None, gw.log_tail()
        try:
            if requests.get(f"http://127.0.0.1:{admin}/readyz", timeout=0.5).status_code == 200:
                return gw
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError("gateway with TLS not ready: " + gw.log_tail())


def test_tls_on_the_public_listener(tmp_path, echo, pki):
    gw = tls_gateway(tmp_path, {n: echo.url for n in ("users", "catalog")}, pki)
    ca = pki["ca"]   # per request: a session's verify loses to REQUESTS_CA_BUNDLE
    try:
        s = requests.Session()
        r = s.get(gw.url + "/api/v1/products?q=tea", verify=ca, timeout=5)
        assert r.status_code == 200 and r.json()["path"] == "/api/v1/products?q=tea"
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert any("SOUK_GATEWAY_ENGINE=auto with TLS" in str(l) for l in gw.log_lines())   # auto: MHD, said
        # a body through the proxy (which suspends the connection) over TLS
        r = s.post(gw.url + "/api/v1/users", json={"email": "a@example.com"}, verify=ca,
                   timeout=5)
        assert r.status_code == 200 and r.json()["body"] == '{"email": "a@example.com"}'
        # several clients at once, each on its own TLS keep-alive connection
        errors, codes = [], []

        def client():
            c = requests.Session()
            try:
                for _ in range(20):
                    codes.append(c.get(gw.url + "/api/v1/products", verify=ca,
                                       timeout=10).status_code)
            except requests.RequestException as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and codes == [200] * 120
        # problems from the kit itself carry the header too
        r = s.get(gw.url + "/api/v1/nothing-here", verify=ca, timeout=5)
        assert r.status_code == 404 and "Strict-Transport-Security" in r.headers
        # TLS 1.2 is enough; the certificate is checked against the test CA
        ctx = ssl.create_default_context(cafile=ca)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                assert t.version() == "TLSv1.2"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(gw.url + "/healthz", verify=True, timeout=5)   # not a public CA's
        # plain HTTP on the TLS port is not served
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{gw.port}/healthz", timeout=5)
    finally:
        gw.kill()


def tls11_client(ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")   # OpenSSL 3 offers TLS 1.1 only so
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def test_tls_1_1_is_refused_by_the_server(tmp_path, echo, pki):
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)   # TLS 1.1 is the point here
    # first, this client does speak TLS 1.1 to a server that allows it...
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(pki["cert"], pki["key"])
    srv_ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    srv_ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            conn, _ = listener.accept()
            with srv_ctx.wrap_socket(conn, server_side=True) as t:
                t.recv(1)
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        with socket.create_connection(listener.getsockname(), timeout=5) as raw:
            with tls11_client(pki["ca"]).wrap_socket(raw, server_hostname="localhost") as t:
                assert t.version() == "TLSv1.1"
        th.join(5)
    # ...and the gateway will not
    gw = tls_gateway(tmp_path, {"catalog": echo.url}, pki)
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                tls11_client(pki["ca"]).wrap_socket(raw, server_hostname="localhost")
    finally:
        gw.kill()


def test_tls_needs_the_mhd_engine(tmp_path, pki):
    """The uv engine serves no TLS yet: asked for both, the gateway refuses to start
    (status 2, one ECS configuration-error line), never falling back to the other engine."""
    svc = Service("gateway", tmp_path, {"SOUK_TLS_CERT": pki["cert"], "SOUK_TLS_KEY": pki["key"],
                                        "SOUK_GATEWAY_ENGINE": "uv", "SOUK_ADMIN_LISTEN": "off"})
    out = subprocess.run([BIN + "/gateway"], env=svc.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "SOUK_GATEWAY_ENGINE=uv does not serve TLS yet" in out.stderr, out.stderr
    assert '"log.level":"error"' in out.stderr.replace(" ", ""), out.stderr
    # and an engine that does not exist is refused the same way
    svc = Service("gateway", tmp_path, {"SOUK_GATEWAY_ENGINE": "h2o", "SOUK_ADMIN_LISTEN": "off"})
    out = subprocess.run([BIN + "/gateway"], env=svc.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "expected auto, uv or mhd" in out.stderr, out.stderr


def test_tls_settings_are_checked_at_start(tmp_path, pki):
    cases = [({"SOUK_TLS_CERT": pki["cert"]}, "SOUK_TLS_KEY"),
             ({"SOUK_TLS_KEY": pki["key"]}, "SOUK_TLS_CERT"),
             ({"SOUK_TLS_CERT": str(tmp_path / "missing.pem"), "SOUK_TLS_KEY": pki["key"]},
              "SOUK_TLS_CERT"),
             ({"SOUK_TLS_CERT": pki["key"], "SOUK_TLS_KEY": pki["cert"]}, "TLS")]
    for env, word in cases:
        svc = Service("gateway", tmp_path, dict(env, SOUK_ADMIN_LISTEN="off"))
        out = subprocess.run([BIN + "/gateway"], env=svc.env, capture_output=True, text=True,
                             timeout=30)
        assert out.returncode != 0 and word in out.stderr, (env, out.returncode, out.stderr)
