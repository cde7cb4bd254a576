"""The API gateway (issue 4) as a client sees it: the catalog through the front door,
what is forwarded and what is stripped, /internal and path tricks, the storefront's
static files, CORS, rate limits, metrics."""
import re
import socket
import time

import pytest
import requests

from conftest import UPSTREAMS, assert_problem, services_table
from gateway_helpers import Echo, gateway, raw_get


@pytest.fixture
def echo():
    e = Echo()
    yield e
    e.close()


@pytest.fixture
def gw_catalog(tmp_path, catalog):
    """The gateway in front of the shared seeded catalog."""
    gw = gateway(tmp_path, {"catalog": catalog.url})
    yield gw
    gw.kill()


@pytest.fixture
def gw_echo(tmp_path, echo):
    """The gateway with the echo upstream standing in for every service."""
    gw = gateway(tmp_path, {n: echo.url for n in UPSTREAMS},
                 SOUK_CORS_ORIGINS="https://shop.example")
    yield gw
    gw.kill()


# ---- the catalog through the gateway ----

def test_catalog_reads_match_the_service(gw_catalog, catalog):
    for path, params in [("/api/v1/products", {"page_size": 3}),
                         ("/api/v1/products", {"q": "cold brew", "sort": "price_asc", "page_size": 5}),
                         ("/api/v1/products", {"category": "grocery", "in_stock": "true"}),
                         ("/api/v1/categories", {})]:
        direct = requests.get(catalog.url + path, params=params, timeout=5)
        via = requests.get(gw_catalog.url + path, params=params, timeout=5)
        assert via.status_code == direct.status_code == 200
        assert via.content == direct.content           # bytes pass through untouched
        assert via.headers["Content-Type"] == "application/json"
    item = requests.get(gw_catalog.url + "/api/v1/products", params={"page_size": 1},
                        timeout=5).json()["items"][0]
    r = requests.get(gw_catalog.url + f"/api/v1/products/{item['id']}", timeout=5)
    assert r.status_code == 200 and r.json() == item
    etag = r.headers["ETag"]
    again = requests.get(gw_catalog.url + f"/api/v1/products/{item['id']}",
                         headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""
    head = requests.head(gw_catalog.url + f"/api/v1/products/{item['id']}", timeout=5)
    assert head.status_code == 200 and head.headers["ETag"] == etag


def test_catalog_errors_pass_through(gw_catalog):
    assert_problem(requests.get(gw_catalog.url + "/api/v1/products/prd_nope", timeout=5), 404)
    assert_problem(requests.get(gw_catalog.url + "/api/v1/products", params={"page_size": "x"},
                                timeout=5), 400, "validation_failed")


def test_unknown_and_internal_paths_are_404(gw_catalog):
    for path in ["/api/v2/products", "/api/v1/nothing", "/internal/v1/reservations",
                 "/internal/v1/events", "/api/v1/products/../../internal/v1/events"]:
        status, body = raw_get(gw_catalog.port, path)
        assert status == 404, (path, body)
        assert b"problem" not in body or b'"status":404' in body
    r = requests.post(gw_catalog.url + "/internal/v1/reservations", json={}, timeout=5)
    assert_problem(r, 404)
    # encoded dot segments cannot climb out of a prefix to a service's /metrics
    for target in ["/api/v1/products/%2e%2e/%2e%2e/%2e%2e/metrics",
                   "/api/v1/products/..%2f..%2f..%2fmetrics",
                   "/api/v1/products/%2E%2E/%2E%2E/%2E%2E/internal/v1/events"]:
        status, body = raw_get(gw_catalog.port, target)
        assert status == 404, (target, body)
        assert b"http_requests_total" not in body


def test_user_routes_refused_at_the_edge(gw_echo, echo):
    for method, path in [("GET", "/api/v1/cart"), ("PUT", "/api/v1/cart/items/prd_1"),
                         ("GET", "/api/v1/orders"), ("POST", "/api/v1/orders"),
                         ("GET", "/api/v1/payment-methods"), ("GET", "/api/v1/notifications"),
                         ("GET", "/api/v1/users/me"), ("POST", "/api/v1/products")]:
        r = requests.request(method, gw_echo.url + path, headers={"X-User-Id": "usr_admin"},
                             json={}, timeout=5)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert echo.hits == 0     # refused before any upstream saw them


# ---- what crosses the gateway ----

def test_forwarded_and_stripped_headers(gw_echo):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = requests.post(gw_echo.url + "/api/v1/users?x=a%20b&y=%26&flag", data=b'{"email":"e\\u00e9"}',
                      headers={"Content-Type": "application/json", "Idempotency-Key": "k-1",
                               "Authorization": "Bearer abc", "If-Match": '"v1"',
                               "X-User-Id": "usr_forged", "X-Souk-Scope": "admin",
                               "X-Forwarded-User": "root", "X-Forwarded-For": "10.9.9.9",
                               "X-Request-Id": "client-req-42", "traceparent": tp,
                               "Cookie": "a=b"}, timeout=5)
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/api/v1/users?x=a%20b&y=%26&flag"
    assert seen["body"] == '{"email":"e\\u00e9"}'
    h = seen["headers"]
    assert h["content-type"] == "application/json"
    assert h["idempotency-key"] == "k-1" and h["authorization"] == "Bearer abc"
    assert h["if-match"] == '"v1"'
    for forged in ("x-user-id", "x-souk-scope", "x-forwarded-user", "cookie"):
        assert forged not in h
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-request-id"] == "client-req-42"
    assert h["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert h["traceparent"] != tp                     # our own span
    assert r.headers["X-Request-Id"] == "client-req-42"
    assert r.headers["ETag"] == '"echo-1"'            # end-to-end headers come back
    assert "X-Souk-Internal" not in r.headers          # internal ones do not


def test_gateway_creates_request_id_and_trace(gw_echo):
    h = requests.get(gw_echo.url + "/.well-known/jwks.json", timeout=5).json()["headers"]
    assert re.fullmatch(r"req_[0-9A-Z]{26}", h["x-request-id"])
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", h["traceparent"])


def test_every_route_group_reaches_its_upstream(tmp_path):
    echoes = {n: Echo(n) for n in UPSTREAMS}
    gw = gateway(tmp_path, {n: e.url for n, e in echoes.items()})
    try:
        for path, who in [("/api/v1/users", "users"), ("/oauth/token", "users"),
                          ("/.well-known/openid-configuration", "users"),
                          ("/api/v1/products", "catalog"), ("/api/v1/categories", "catalog")]:
            method = "POST" if path in ("/api/v1/users", "/oauth/token") else "GET"
            r = requests.request(method, gw.url + path, timeout=5)
            assert r.status_code == 200 and r.json()["who"] == who, (path, r.text)
        # every route of services.txt: a public one reaches its service, one that
        # needs a user is refused at the edge without a token (its service sees nothing)
        for rt in services_table.ROUTES:
            path = re.sub(r"\{\*?\w+\}", "x1", rt.pattern)
            method = "PATCH" if rt.method == "*" else rt.method
            hits = echoes[rt.service].hits
            r = requests.request(method, gw.url + path, timeout=5)
            if rt.auth in ("public", "optional"):
                assert r.status_code == 200 and r.json()["who"] == rt.service, (rt, r.text)
            else:
                assert_problem(r, 401)
                assert echoes[rt.service].hits == hits, rt
    finally:
        gw.kill()
        for e in echoes.values():
            e.close()


def test_header_and_body_caps(gw_echo, echo):
    r = requests.get(gw_echo.url + "/api/v1/products", headers={"Accept": "a" * 9000}, timeout=5)
    assert_problem(r, 431, "header_too_large")
    hits = echo.hits
    r = requests.get(gw_echo.url + "/api/v1/products", headers={"X-Big": "b" * 40000}, timeout=5)
    assert r.status_code in (413, 431)
    assert echo.hits == hits
    # the whole oversized body is sent before reading: the kit answers 413 mid-upload
    with socket.create_connection(("127.0.0.1", gw_echo.port), timeout=5) as s:
        s.sendall(b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 70000\r\n\r\n" + b"x" * 70000)
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    assert echo.hits == 0


# ---- static files ----

def test_static_files_and_caching(gw_echo):
    r = requests.get(gw_echo.url + "/", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"<html" in r.content and r.headers["Cache-Control"] == "no-cache"
    css = requests.get(gw_echo.url + "/assets/app.css", timeout=5)
    assert css.headers["Content-Type"].startswith("text/css")
    assert "max-age" in css.headers["Cache-Control"]
    js = requests.get(gw_echo.url + "/assets/app.js", timeout=5)
    assert js.headers["Content-Type"].startswith("text/javascript")
    etag, lm = css.headers["ETag"], css.headers["Last-Modified"]
    assert requests.get(gw_echo.url + "/assets/app.css", headers={"If-None-Match": etag},
                        timeout=5).status_code == 304
    assert requests.get(gw_echo.url + "/assets/app.css", headers={"If-Modified-Since": lm},
                        timeout=5).status_code == 304
    # client-side routes get the app; missing assets and API paths do not
    spa = requests.get(gw_echo.url + "/products/prd_123", timeout=5)
    assert spa.status_code == 200 and spa.content == r.content
    assert_problem(requests.get(gw_echo.url + "/assets/missing.js", timeout=5), 404)
    assert_problem(requests.get(gw_echo.url + "/api/nothing", timeout=5), 404)
    assert_problem(requests.post(gw_echo.url + "/index.html", timeout=5), 404)


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
    "/assets/..%2f..%2fsecret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/..%5csecret.txt",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/../../../../etc/passwd", "//etc/passwd",
    "/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/%00/../secret.txt",
])
def test_no_path_traversal(gw_echo, target):
    status, body = raw_get(gw_echo.port, target)
    assert b"TOP-SECRET" not in body and b"root:" not in body, (target, status)
    assert status in (400, 404) or (status == 200 and b"<html" in body), (target, status)


def test_symlink_out_of_the_web_root_is_refused(tmp_path, echo):
    gw = gateway(tmp_path, {"catalog": echo.url})
    try:
        (tmp_path / "web" / "leak.txt").symlink_to(tmp_path / "secret.txt")
        status, body = raw_get(gw.port, "/leak.txt")
        assert status == 404 and b"TOP-SECRET" not in body
    finally:
        gw.kill()


# ---- CORS ----

def test_cors(gw_echo):
    origin = "https://shop.example"
    r = requests.get(gw_echo.url + "/api/v1/products", headers={"Origin": origin}, timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == origin
    assert "ETag" in r.headers["Access-Control-Expose-Headers"]
    other = requests.get(gw_echo.url + "/api/v1/products",
                         headers={"Origin": "https://evil.example"}, timeout=5)
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = requests.options(gw_echo.url + "/api/v1/cart/items/prd_1",
                           headers={"Origin": origin, "Access-Control-Request-Method": "PUT",
                                    "Access-Control-Request-Headers": "authorization"}, timeout=5)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == origin
    assert "PUT" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    bad = requests.options(gw_echo.url + "/api/v1/cart",
                           headers={"Origin": "https://evil.example",
                                    "Access-Control-Request-Method": "GET"}, timeout=5)
    assert_problem(bad, 403, "cors_origin_denied")


# ---- rate limits ----

def test_rate_limit_per_address_and_recovery(tmp_path, echo):
    # 1 request a second after a burst of 5: the requests go until the first 429, and
    # the 200s may be the burst plus what refilled meanwhile (a slow machine's 8
    # requests could take the 1.6 s that refill 8 tokens at 5/s)
    gw = gateway(tmp_path, {"catalog": echo.url}, SOUK_RATE_IP_RPS=1, SOUK_RATE_IP_BURST=5)
    try:
        codes, t0 = [], time.monotonic()
        for _ in range(40):
            r = requests.get(gw.url + "/api/v1/products", timeout=5)
            codes.append(r.status_code)
            if r.status_code != 200:
                break
            assert r.headers["RateLimit-Policy"] == '"ip";q=5;w=5'
            assert re.fullmatch(r'"ip";r=\d+;t=\d+', r.headers["RateLimit"])
        elapsed = time.monotonic() - t0
        assert codes[:5] == [200] * 5 and codes[-1] == 429, codes
        assert len(codes) - 1 <= 5 + int(elapsed) + 1, (codes, elapsed)
        assert_problem(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit"].startswith('"ip";r=0;')
        time.sleep(int(r.headers["Retry-After"]) + 0.2)   # what Retry-After promises
        assert requests.get(gw.url + "/api/v1/products", timeout=5).status_code == 200
    finally:
        gw.kill()


def test_token_endpoint_is_stricter(tmp_path, echo):
    gw = gateway(tmp_path, {"users": echo.url}, SOUK_RATE_TOKEN_RPS=1, SOUK_RATE_TOKEN_BURST=3)
    try:
        codes = [requests.post(gw.url + "/oauth/token", data={"grant_type": "password"},
                               timeout=5).status_code for _ in range(5)]
        assert codes[:3] == [200] * 3 and codes[3:] == [429, 429]
        # other routes of the same address are still within their (larger) limit
        assert requests.get(gw.url + "/.well-known/jwks.json", timeout=5).status_code == 200
    finally:
        gw.kill()


# ---- metrics ----

def test_metrics_count_upstreams(gw_catalog):
    for _ in range(3):
        requests.get(gw_catalog.url + "/api/v1/categories", timeout=5)
    text = requests.get(gw_catalog.admin_url + "/metrics", timeout=5).text
    assert re.search(r'souk_proxy_upstream_requests_total\{upstream="catalog",instance="127\.0\.0\.1:\d+",code="2xx"\} [3-9]', text)
    assert 'souk_proxy_upstream_duration_seconds_bucket{upstream="catalog"' in text
    assert re.search(r'souk_proxy_upstream_up\{upstream="catalog",instance="[^"]+"\} 1', text)
    assert 'route="/api/v1/categories"' in text
