"""services_table: services.txt, the list of souk's services, for the Python that
needs it (tests/e2e, tests/deploy, bench/). What a line means is said at the top of
services.txt; scripts/gen-services checks every line when the tree is built."""
import os
from collections import namedtuple

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "services.txt")
PORT_BASE = 8080   # a service's port offset in `souk up`'s layout is its port - 8080

Service = namedtuple("Service", "name port edge scopes")
Route = namedtuple("Route", "service method pattern auth limit")


def load(path=PATH):
    """([Service] in start order, [Route] in order) from the file at path."""
    services, routes = [], []
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            if w[0] in ("service", "edge"):
                services.append(Service(w[1], int(w[2]), w[0] == "edge", tuple(w[3:])))
            elif w[0] == "route":
                routes.append(Route(w[1], w[2], w[3], w[4], w[5] if len(w) > 5 else "plain"))
    return services, routes


TABLE, ROUTES = load()
NAMES = [s.name for s in TABLE]                              # in start order, the edge last
UPSTREAMS = [s.name for s in TABLE if not s.edge]            # what the gateway forwards to
EDGE = next(s.name for s in TABLE if s.edge)                 # "gateway"
PORT = {s.name: s.port for s in TABLE}                       # default ports (DESIGN §1)
OFFSET = {s.name: s.port - PORT_BASE for s in TABLE}         # souk up: SOUK_PORT_BASE + offset
SCOPES = {s.name: s.scopes for s in TABLE}
