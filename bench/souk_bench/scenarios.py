"""scenarios: what is measured, and the data each needs. A Scenario is one wrk
command (URL, Lua script, arguments) with its rounds; the setup writes the Lua data
files (product ids, the journey's users with tokens, cards and addresses)."""
import concurrent.futures
import json
import os
import statistics
import tempfile
import time
import urllib.parse

from .config import CART_PRODUCTS, JOURNEY_USERS, TEST_CARD, WRK
from .net import http


class Scenario:
    def __init__(self, key, label, url, script, args, why_not=None):
        self.key, self.label, self.url, self.script, self.args = key, label, url, script, args
        self.why_not = why_not      # None: available; else the reason it is not
        self.runs = []

    def median(self, field):
        vals = [r[field] for r in self.runs if r.get(field) is not None]
        return statistics.median(vals) if vals else None

    def command(self):
        return "%s -s bench/%s %s -- %s" % (" ".join(WRK), self.script, self.url,
                                            " ".join(_short(a) for a in self.args))


def _short(arg):
    """Arguments as the report shows them: no tokens, temp files by name, paths quoted."""
    if len(arg) > 40 and "." in arg and not arg.startswith("/"):
        return "<token>"
    if arg.startswith(tempfile.gettempdir()):
        return "$TMP/" + os.path.basename(arg)
    return "'%s'" % arg


Q, CAT = "/api/v1/products?q=coffee", "/api/v1/products?category=kitchen&sort=price_asc"


def build(catalog, gw, ceiling, proxy, ex, ids_file, token, gw_err, express_err,
          journey_file, journey_err, tag):
    """The scenarios of a run, in the order they run and are reported."""
    Sc = Scenario
    return [
        Sc("ceiling", "1. ceiling: nginx `return 200`", ceiling, "path.lua", ["/"]),
        Sc("catalog", "2. catalog GET /products/{id} direct", catalog, "product.lua", [ids_file]),
        Sc("gateway", "3. gateway → catalog GET /products/{id}, user token", gw, "product.lua",
           [ids_file, token or ""], gw_err),
        Sc("nginx_proxy", "4. nginx proxy_pass → catalog GET /products/{id}", proxy,
           "product.lua", [ids_file]),
        Sc("express", "5. Express + better-sqlite3 GET /products/{id}", ex, "product.lua",
           [ids_file], express_err),
        Sc("catalog_q", "6a. catalog `?q=coffee` direct", catalog, "path.lua", [Q]),
        Sc("gateway_q", "6b. gateway `?q=coffee`", gw, "path.lua", [Q, token or ""], gw_err),
        Sc("express_q", "6c. Express `?q=coffee`", ex, "path.lua", [Q], express_err),
        Sc("catalog_cat", "6d. catalog `?category=kitchen&sort=price_asc` direct", catalog,
           "path.lua", [CAT]),
        Sc("gateway_cat", "6e. gateway `?category=kitchen&sort=price_asc`", gw, "path.lua",
           [CAT, token or ""], gw_err),
        Sc("express_cat", "6f. Express `?category=kitchen&sort=price_asc`", ex, "path.lua",
           [CAT], express_err),
        # the journey's steps alone, for the CPU per route and service (report's
        # per-route table); the cart route's carts are emptied before the journey runs
        Sc("route_browse", "7a. journey step alone: browse, GET /products/{id}, user token",
           gw, "profile/route.lua", [journey_file, "browse"], journey_err),
        Sc("route_cart", "7b. journey step alone: PUT /cart/items/{id}", gw, "profile/route.lua",
           [journey_file, "cart"], journey_err),
        Sc("journey", "7. journey through the gateway", gw, "journey.lua",
           [journey_file, tag], journey_err),
    ]


def serving_pids(pids, nginx_pid, express_pid):
    """scenario key -> the processes that serve it, for server CPU per request."""
    cat_pid = pids.get("catalog")
    gw_pids = [pids.get("gateway"), cat_pid, pids.get("users")]
    serving = {"ceiling": [nginx_pid], "catalog": [cat_pid], "nginx_proxy": [nginx_pid, cat_pid],
               "gateway": gw_pids, "catalog_q": [cat_pid], "catalog_cat": [cat_pid],
               "gateway_q": gw_pids, "gateway_cat": gw_pids,
               "journey": [p for p in pids.values()], "route_browse": [p for p in pids.values()],
               "route_cart": [p for p in pids.values()]}
    if express_pid:
        for k in ("express", "express_q", "express_cat"):
            serving[k] = [express_pid]
    return serving


# ---- setup of users, tokens, the journey ----

def register_and_login(gw, tag, i):
    email = "bench-%s-%d@bench.local" % (tag, i)
    password = "bench-password-%s" % tag
    deadline = time.monotonic() + 10   # the gateway probes its upstreams each second
    while True:
        st, body = http("POST", gw + "/api/v1/users",
                        {"email": email, "password": password, "name": "Bench User %d" % i})
        if st != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if st not in (200, 201, 409):
        return None, "POST /api/v1/users answered %s: %s" % (st, str(body)[:200])
    return token_for(gw, email, password)


def token_for(gw, email, password):
    st, body = http("POST", gw + "/oauth/token",
                    {"grant_type": "password", "username": email, "password": password,
                     "client_id": "souk-web"}, form=True)
    if st == 200 and isinstance(body, dict) and body.get("access_token"):
        return body["access_token"], None
    return None, "POST /oauth/token answered %s: %s" % (st, str(body)[:200])


SHIPPING = {"name": "Bench User", "line1": "1 Load Street", "city": "Springfield",
            "postal_code": "12345", "country": "US"}


def journey_user(gw, tag, i):
    """A registered user with a card and an address: {token, checkout body}."""
    tok, err = register_and_login(gw, tag, i)
    if tok is None:
        raise RuntimeError("user %d: %s" % (i, err))
    st, pm = http("POST", gw + "/api/v1/payment-methods",
                  {"card": {"number": TEST_CARD, "exp_month": 12, "exp_year": 2035,
                            "cvc": "123", "holder": "Bench User"}}, token=tok)
    if st != 201 or not isinstance(pm, dict):
        raise RuntimeError("POST /api/v1/payment-methods answered %s: %s" % (st, str(pm)[:200]))
    st, addr = http("POST", gw + "/api/v1/users/me/addresses", SHIPPING, token=tok)
    if st in (200, 201) and isinstance(addr, dict) and addr.get("id"):
        checkout = {"address_id": addr["id"], "payment_method_id": pm["id"]}
    else:
        checkout = {"shipping_address": SHIPPING, "payment_method_id": pm["id"]}
    return {"token": tok, "checkout": json.dumps(checkout, separators=(",", ":"))}


SETUP_THREADS = 4   # users registered at once: setup, not measured (password hashing, round trips)


def make_users(gw, tag, n):
    """n journey users (in order of i), registered SETUP_THREADS at a time: the setup's
    longest step, and nothing is measured meanwhile."""
    with concurrent.futures.ThreadPoolExecutor(SETUP_THREADS) as pool:
        return list(pool.map(lambda i: journey_user(gw, tag, i), range(n)))


def trial_checkout(gw, tag, user, product):
    """One checkout by hand: the journey is measured only if it can succeed."""
    st, body = http("PUT", gw + "/api/v1/cart/items/%s" % product, {"quantity": 1},
                    token=user["token"])
    if st not in (200, 201, 204):
        raise RuntimeError("PUT /api/v1/cart/items answered %s: %s" % (st, str(body)[:200]))
    st, body = http("POST", gw + "/api/v1/orders", json.loads(user["checkout"]),
                    token=user["token"], headers={"Idempotency-Key": "bench-%s-trial" % tag},
                    timeout=30)
    if st not in (201, 202) or not isinstance(body, dict) or body.get("status") != "confirmed":
        raise RuntimeError("trial checkout answered %s: %s" % (st, str(body)[:300]))


def prepare_journey(gw, tag, products, admin):
    """The data file for bench/journey.lua, or raise with the reason it cannot run."""
    # products with plenty of stock; raise it through the admin API if we can
    by_stock = sorted(products, key=lambda p: -(p.get("stock_available") or 0))
    cart = [p["id"] for p in by_stock[:CART_PRODUCTS]]
    admin_token, _ = token_for(gw, admin[0], admin[1])
    if admin_token:
        for pid in cart:
            http("PUT", gw + "/api/v1/products/%s/stock" % pid, {"on_hand": 1000000}, token=admin_token)
    users = make_users(gw, tag, JOURNEY_USERS)
    trial_checkout(gw, tag, users[0], cart[0])
    empty_carts(gw, users)
    return {"products": [p["id"] for p in products], "cart_products": cart, "users": users}


def empty_carts(gw, users):
    """Every journey user's cart emptied (after the cart route, before the journey)."""
    for u in users:
        http("DELETE", gw + "/api/v1/cart", token=u["token"])


def lua_value(v):
    if isinstance(v, dict):
        return "{" + ", ".join("[%s] = %s" % (lua_value(k), lua_value(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return str(v)


def write_lua(path, value):
    with open(path, "w") as f:
        f.write("-- written by bench/run\nreturn " + lua_value(value) + "\n")


def fetch_products(catalog):
    items, token = [], None
    while True:
        q = "?page_size=100" + ("&page_token=" + urllib.parse.quote(token) if token else "")
        st, body = http("GET", catalog + "/api/v1/products" + q)
        if st != 200:
            raise RuntimeError("list API answered %s: %s" % (st, str(body)[:200]))
        items.extend(body["items"])
        token = body.get("next_page_token")
        if not token:
            return items
