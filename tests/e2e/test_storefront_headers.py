"""The storefront's browser security headers (services/gateway/static.c): a
Content-Security-Policy that allows no inline script or style and no framing,
nosniff and a Referrer-Policy, on every answer of the static handler; and web/
itself has nothing inline that such a policy would block (the browser tests fail
on any CSP violation in the console as well)."""
import os
from html.parser import HTMLParser

import pytest
import requests

from conftest import REPO
from gateway_helpers import gateway


def directives(header):
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = gateway(tmp_path_factory.mktemp("storefront"), {})
    yield g
    g.kill()


@pytest.mark.parametrize("path,status", [
    ("/", 200), ("/index.html", 200), ("/assets/app.js", 200), ("/assets/app.css", 200),
    ("/products/prd_01J00000000000000000000000", 200),   # a client-side route: the app
    ("/assets/missing.js", 404),
])
def test_every_storefront_answer_carries_the_security_headers(gw, path, status):
    r = requests.get(gw.url + path, timeout=5)
    assert r.status_code == status
    h = r.headers
    csp = directives(h["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]          # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_a_not_modified_answer_keeps_them(gw):
    etag = requests.get(gw.url + "/", timeout=5).headers["ETag"]
    r = requests.get(gw.url + "/", headers={"If-None-Match": etag}, timeout=5)
    assert r.status_code == 304
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


class Inline(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block in an HTML file."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and not a.get("src"):
            self.found.append(f"inline <script> at line {self.getpos()[0]}")
        if tag == "style":
            self.found.append(f"<style> at line {self.getpos()[0]}")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"{name}= on <{tag}> at line {self.getpos()[0]}")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL on <{tag}> at line {self.getpos()[0]}")


def test_web_has_no_inline_script_or_style():
    web = os.path.join(REPO, "web")
    pages = [os.path.join(d, f) for d, _, fs in os.walk(web) for f in fs if f.endswith(".html")]
    assert pages
    for page in pages:
        p = Inline()
        with open(page, encoding="utf-8") as f:
            p.feed(f.read())
        assert p.found == [], (page, p.found)
