"""NetworkPolicies evaluated as a cluster would, over a list of manifests (deploy/k8s or
a rendered overlay): which pod may open a TCP connection to which pod and port. The pods
are the workloads' templates (their labels and named container ports); a pod selected by
no policy of a direction would be open in it, which default-deny rules out (asserted)."""

NAMESPACE = "souk"


def selects(selector, labels):
    """A LabelSelector (matchLabels and matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        op, key, values = e["operator"], e["key"], e.get("values", [])
        ok = {"In": lambda: labels.get(key) in values, "NotIn": lambda: labels.get(key) not in values,
              "Exists": lambda: key in labels, "DoesNotExist": lambda: key not in labels}[op]()
        if not ok:
            return False
    return True


class Cluster:
    def __init__(self, docs):
        self.policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        self.pods = {}   # workload name → (labels, {port name: number})
        for d in docs:
            if d["kind"] in ("Deployment", "StatefulSet", "Job"):
                t = d["spec"]["template"]
                ports = {p["name"]: p["containerPort"] for c in t["spec"]["containers"] for p in c.get("ports", [])
                         if "name" in p}
                self.pods[d["metadata"]["name"]] = (t["metadata"]["labels"], ports)

    def labels(self, pod):
        return self.pods[pod][0]

    def ports(self, pod):
        return self.pods[pod][1]

    @staticmethod
    def _peer(peer, ns, labels):
        if "ipBlock" in peer:
            return False   # none of deploy/'s policies names addresses
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": ns}):
                return False
        elif ns != NAMESPACE:
            return False
        return selects(peer.get("podSelector", {}), labels)

    @staticmethod
    def _port(rule_ports, port, named):
        """A rule's ports against a destination port; a named one is resolved on the
        destination pod (named: its {name: number})."""
        if not rule_ports:
            return True
        return any(p.get("protocol", "TCP") == "TCP"
                   and (p["port"] == port or named.get(p["port"]) == port) for p in rule_ports)

    def allowed(self, direction, selected, other_ns, other_labels, port, named):
        """Whether the policies let a connection through on the selected pod's side:
        direction "Egress" (selected connects to other) or "Ingress" (other connects to
        selected); port on the destination, whose named ports are `named`."""
        pols = [p for p in self.policies if direction in p["spec"].get("policyTypes", [])
                and selects(p["spec"]["podSelector"], selected)]
        assert pols, f"no {direction} policy selects {selected}: default deny must"
        key, side = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for p in pols:
            for rule in p["spec"].get(key, []):
                peers = rule.get(side)
                if (not peers or any(self._peer(x, other_ns, other_labels) for x in peers)) and \
                        self._port(rule.get("ports"), port, named):
                    return True
        return False

    def sides(self, src, dst, port):
        """(src's egress, dst's ingress): whether each side lets src's pod open a TCP
        connection to dst's pod on port (a number, or the name of a dst container port)."""
        named = self.ports(dst)
        number = named[port] if isinstance(port, str) else port
        return (self.allowed("Egress", self.labels(src), NAMESPACE, self.labels(dst), number, named),
                self.allowed("Ingress", self.labels(dst), NAMESPACE, self.labels(src), number, named))

    def can_connect(self, src, dst, port):
        return all(self.sides(src, dst, port))
