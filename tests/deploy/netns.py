"""Test hosts inside this machine (RECIPES: network namespaces): one network namespace
per host, each with a veth on a private bridge and its own address in 198.18.0.0/15
(RFC 2544's benchmarking range: no real network uses it), so a service can reach
another only by that address, never over 127.0.0.1. The test process in the root
namespace reaches every host through the bridge. Partitions are nft drop rules inside
a host. Everything made here (namespaces, veths, the bridge, nft tables, processes
found in a namespace) is removed by teardown(), which tests call in a finally; a run
killed before it is swept by the next one (the owner's PID is in the names' file).
Needs root, iproute2 and nftables."""
import ipaddress
import os
import random
import signal
import subprocess
import time

STATE = "/run/souk-netns"          # one file per live network: its owner's PID
RANGE = ipaddress.ip_network("198.18.0.0/15")


def run(*args, check=True, timeout=30, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def sweep_stale():
    """Remove what a killed run left: its namespaces' processes, namespaces, bridge."""
    try:
        names = os.listdir(STATE)
    except FileNotFoundError:
        return
    for tag in names:
        try:
            with open(os.path.join(STATE, tag)) as f:
                owner = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            owner = 0
        if owner and _alive(owner):
            continue
        Network(tag=tag, create=False).teardown()


def _used_subnets():
    out = run("ip", "-4", "-o", "addr", "show").stdout
    nets = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.add(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


class Host:
    def __init__(self, net, name, ns, veth, address):
        self.net, self.name, self.ns, self.veth, self.address = net, name, ns, veth, address
        self.pid = None   # a planned host (Network.plan): the PID whose namespace it is

    def cmd(self, *args):
        """argv that runs args inside this host's namespace (nsenter execs it: same PID).
        Not `ip netns exec`, which remounts / and /sys and so fails in a chroot, where /
        is no mount point (fresh-check's)."""
        path = f"/proc/{self.pid}/ns/net" if self.ns is None else f"/run/netns/{self.ns}"
        return ["nsenter", f"--net={path}", *args]

    def popen(self, args, **kw):
        p = subprocess.Popen(self.cmd(*args), **kw)
        self.net.procs.append(p)
        return p

    def run(self, *args, check=True, timeout=60, **kw):
        return run(*self.cmd(*args), check=check, timeout=timeout, **kw)

    def pids(self):
        r = run("ip", "netns", "pids", self.ns, check=False)
        return [int(p) for p in r.stdout.split()]

    def drop(self, peers, table="souk_partition"):
        """Drop every packet to and from the peers' addresses (a partition seen from here)."""
        addrs = ", ".join(p.address for p in peers)
        rules = (f"table inet {table} {{\n"
                 f"  chain in {{ type filter hook input priority -10; ip saddr {{ {addrs} }} drop; }}\n"
                 f"  chain out {{ type filter hook output priority -10; ip daddr {{ {addrs} }} drop; }}\n"
                 f"}}\n")
        self.run("nft", "-f", "-", input=rules)

    def heal(self, table="souk_partition"):
        self.run("nft", "delete", "table", "inet", table, check=False)


class Network:
    """A bridge and hosts on it. Names: souk<tag><n> (15 characters at most)."""

    def __init__(self, tag=None, create=True):
        self.tag = tag or "%04x" % random.randrange(0x10000)
        self.bridge = f"souk{self.tag}br"
        self.hosts = {}
        self.procs = []
        self.subnet = None
        if not create:
            return
        os.makedirs(STATE, exist_ok=True)
        with open(os.path.join(STATE, self.tag), "w") as f:
            f.write(f"{os.getpid()}\n")
        used = _used_subnets()
        for _ in range(100):
            cand = ipaddress.ip_network((int(RANGE.network_address) + 256 * random.randrange(512), 24))
            if not any(cand.overlaps(u) for u in used):
                self.subnet = cand
                break
        if self.subnet is None:
            raise RuntimeError("no free /24 in 198.18.0.0/15")
        self.gateway_ip = str(self.subnet.network_address + 1)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway_ip}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")

    def add(self, name):
        """A new host: its namespace, a veth on the bridge, the next address."""
        n = len(self.hosts)
        ns = f"souk{self.tag}-{name}"
        veth = f"souk{self.tag}v{n}"
        address = str(self.subnet.network_address + 10 + n)
        run("ip", "netns", "add", ns)
        host = Host(self, name, ns, veth, address)
        self.hosts[name] = host
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "link", "set", veth, "master", self.bridge)
        run("ip", "link", "set", veth, "up")
        host.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "link", "set", "lo", "up")
        host.run("ip", "route", "add", "default", "via", self.gateway_ip)
        return host

    def plan(self, name):
        """A host whose namespace another program makes (a container's: podman 4.3
        cannot put a pod in a named namespace), its address known now; attach() wires
        it once that namespace exists."""
        n = len(self.hosts)
        host = Host(self, name, None, f"souk{self.tag}v{n}", str(self.subnet.network_address + 10 + n))
        self.hosts[name] = host
        return host

    def attach(self, host, pid):
        """A veth on the bridge moved into the namespace of pid, as eth0 with the
        host's address. The namespace stays its owner's; teardown() deletes the veth
        (and with it the end inside)."""
        host.pid = pid
        inside = f"souk{self.tag}i{host.veth[len(f'souk{self.tag}v'):]}"
        run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", str(pid))
        run("ip", "link", "set", host.veth, "master", self.bridge)
        run("ip", "link", "set", host.veth, "up")
        host.run("ip", "link", "set", inside, "name", "eth0")
        host.run("ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "link", "set", "lo", "up")
        host.run("ip", "route", "add", "default", "via", self.gateway_ip)

    def namespaces(self):
        r = run("ip", "netns", "list", check=False)
        prefix = f"souk{self.tag}-"
        return [line.split()[0] for line in r.stdout.splitlines() if line.startswith(prefix)]

    def teardown(self):
        """SIGTERM what we started, then SIGKILL every process left in our namespaces
        (found by `ip netns pids`, killed by PID), then the namespaces, veths, bridge."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for ns in self.namespaces():
            for _ in range(3):
                pids = [int(x) for x in run("ip", "netns", "pids", ns, check=False).stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
            run("ip", "netns", "delete", ns, check=False)
        r = run("ip", "-o", "link", "show", check=False)
        for line in r.stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(f"souk{self.tag}"):
                run("ip", "link", "delete", name, check=False)
        try:
            os.unlink(os.path.join(STATE, self.tag))
        except FileNotFoundError:
            pass

    def leftovers(self):
        """What teardown() should have removed and did not (for the tests' own check)."""
        left = self.namespaces()
        r = run("ip", "-o", "link", "show", check=False)
        left += [line.split(":")[1].strip().split("@")[0] for line in r.stdout.splitlines()
                 if line.split(":")[1].strip().startswith(f"souk{self.tag}")]
        return left
