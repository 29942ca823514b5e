"""The cluster lab: the deployment the vendor draws, in network namespaces the lab owns.

    client 198.18.1.2 ── 198.18.1.1 ┐
                                    router ── 198.18.11.1 ── 198.18.11.2 node1   192.0.2.10 on lo
                                           ── 198.18.12.1 ── 198.18.12.2 node2   192.0.2.10 on lo

The router runs BIRD 2 with an eBGP session to each node (AS 65000 ↔ 65001) and installs the
service IP as one multipath route (`merge paths` in its kernel protocol; forwarding on,
`fib_multipath_hash_policy=1`, so each new connection is hashed on its ports). Each node has the
service IP on `lo`, HAProxy (master-worker, bound to the service IP, logging state changes to a
ring) with three real backend servers that answer with the node's name, a BIRD speaker whose
`vol1` protocol reads rhid's files, and rhid itself. The client sends HTTP requests to the service
IP and records each (see client.py).

Links use 198.18.0.0/15 and the service IP 192.0.2.0/24; the namespaces have no link to the host,
so no packet leaves them. Every process is started here and stopped by PID; the namespaces are
named `rhcl-<pid>.<start time>-<role>` after the process that made them, removed in `close`, and
removed at the start of a later lab if that process is gone (a crashed run), together with any
process still inside them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from rhid.birdconf import bird_snippet
from rhid.haproxy import fetch
from rhid.rules import parse_rules
from tests.integration.lab import BIRD, HAPROXY, Lab, wait_for

IP = "/usr/sbin/ip"
PREFIX = "rhcl"
NAMESPACE = re.compile(rf"{PREFIX}-(\d+)\.(\d+)-[a-z0-9]+\Z")
SERVICE_IP = "192.0.2.10"
SERVICE = f"{SERVICE_IP}/32"
SERVICE_PORT = 80
RULES = f"{SERVICE} = all(b:be_app)\n"
CLIENT_ADDRESS, CLIENT_GATEWAY = "198.18.1.2", "198.18.1.1"
ROUTER_AS, NODE_AS = 65000, 65001
BACKEND_PORTS = (8001, 8002, 8003)
HOLD_TIME = 3  # seconds, BIRD's minimum: the router's own detection of a node that went silent
HERE = Path(__file__).parent


def ip(*args: str) -> str:
    """Run `ip` (iproute2) with fixed arguments; its output."""
    return subprocess.run([IP, *args], check=True, capture_output=True, text=True, timeout=30).stdout


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), or None if it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in {"Z", "X"} else fields[19]


def namespace_pids(namespace: str) -> list[int]:
    """The processes inside one of the lab's namespaces (only the lab starts any there)."""
    try:
        return [int(pid) for pid in ip("netns", "pids", namespace).split()]
    except subprocess.CalledProcessError:
        return []


def remove_namespace(namespace: str) -> None:
    """Kill (by PID) what still runs in `namespace`, then delete it; its veth ends go with it."""
    for pid in namespace_pids(namespace):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(f"{namespace} to be empty", lambda: not namespace_pids(namespace), 10)
    with suppress(subprocess.CalledProcessError):
        ip("netns", "delete", namespace)


def remove_leftovers() -> list[str]:
    """Delete namespaces an earlier lab made whose process is gone (it crashed); their names."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAMESPACE.match(name)
        if match and process_start(int(match.group(1))) != match.group(2):
            remove_namespace(name)
            removed.append(name)
    return removed


@dataclass(frozen=True, slots=True)
class Request:
    """One request of the client's stream, as client.py recorded it."""

    start: float  # CLOCK_MONOTONIC
    duration: float
    outcome: str  # a node's name, or why it failed

    @property
    def ok(self) -> bool:
        return self.outcome.startswith("node")


class Traffic:
    """The client's stream, read back incrementally from the file it writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.records: list[Request] = []

    def read(self) -> list[Request]:
        """Every request recorded so far (complete lines only), in order of completion."""
        if self.path.exists():
            with self.path.open("rb") as source:
                source.seek(self.offset)
                data = source.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offset += len(complete)
            for line in complete.decode().splitlines():
                start, duration, outcome = line.split()
                self.records.append(Request(float(start), float(duration), outcome))
        return self.records

    def between(self, start: float, end: float) -> list[Request]:
        """Requests that started in [start, end), by start time."""
        return sorted((r for r in self.read() if start <= r.start < end), key=lambda r: r.start)


@dataclass
class Node:
    """One HAProxy node: backends, HAProxy, a BIRD speaker and rhid, in its own namespace."""

    lab: Lab
    name: str
    index: int
    namespace: str

    @property
    def address(self) -> str:
        return f"198.18.1{self.index}.2"

    @property
    def router_address(self) -> str:
        return f"198.18.1{self.index}.1"

    @property
    def dir(self) -> Path:
        return self.lab.root / self.name

    @property
    def haproxy_socket(self) -> Path:
        return self.dir / "haproxy.sock"

    @property
    def bird_dir(self) -> Path:
        return self.dir / "rhid"

    def proc(self, part: str) -> str:
        return f"{self.name}-{part}"

    def spawn(self, part: str, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return self.lab.spawn(self.proc(part), [IP, "netns", "exec", self.namespace, *argv], **kwargs)

    def running(self, part: str) -> bool:
        proc = self.lab.procs.get(self.proc(part))
        return proc is not None and proc.poll() is None

    # ---- backends -----------------------------------------------------------------------------

    def start_backends(self) -> None:
        for number, port in enumerate(BACKEND_PORTS, start=1):
            self.spawn(f"web{number}", [sys.executable, str(HERE / "backend.py"), str(port), self.name])
        wait_for(f"{self.name}'s backends", lambda: all(map(self._backend_listens, BACKEND_PORTS)), 10)

    def _backend_listens(self, port: int) -> bool:
        out = subprocess.run(
            [IP, "netns", "exec", self.namespace, "ss", "-Hltn", f"sport = :{port}"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout
        return bool(out.strip())

    def kill_backends(self) -> None:
        for number in range(1, len(BACKEND_PORTS) + 1):
            self.lab.stop(self.proc(f"web{number}"), signal.SIGKILL)

    # ---- HAProxy --------------------------------------------------------------------------------

    def write_haproxy_config(self) -> Path:
        servers = [
            f"    server s{number} 127.0.0.1:{port} check inter 200ms fall 1 rise 1"
            for number, port in enumerate(BACKEND_PORTS, start=1)
        ]
        config = self.dir / "haproxy.cfg"
        config.write_text(
            "\n".join(
                [
                    "global",
                    # expose-fd listeners: a master-worker reload hands the listening socket over
                    f"    stats socket {self.haproxy_socket} mode 600 level admin expose-fd listeners",
                    "    stats timeout 30s",
                    "    log ring@rhid local0 notice",  # state changes only: traffic logs are info
                    "ring rhid",
                    "    format timed",
                    "    size 65536",
                    "defaults",
                    "    mode http",
                    "    log global",
                    "    timeout connect 1s",
                    "    timeout client 5s",
                    "    timeout server 5s",
                    "    timeout check 1s",  # a check of a loaded machine is slow, not failed
                    "frontend fe_http",
                    f"    bind {SERVICE_IP}:{SERVICE_PORT}",
                    "    default_backend be_app",
                    "backend be_app",
                    "    option httpchk GET /",
                    *servers,
                ]
            )
            + "\n"
        )
        return config

    def start_haproxy(self) -> None:
        config = self.write_haproxy_config()
        self.spawn("haproxy", [HAPROXY, "-W", "-S", str(self.dir / "master.sock"), "-f", str(config), "-db"])
        wait_for(f"{self.name}'s HAProxy", self.haproxy_answers, 10)

    def haproxy_answers(self) -> bool:
        try:
            return fetch(str(self.haproxy_socket), b"show info\n", 1.0).startswith(b"Name: HAProxy")
        except Exception:
            return False

    def haproxy_workers(self) -> list[int]:
        """The worker PIDs of the master we started (its children)."""
        master = self.lab.procs[self.proc("haproxy")].pid
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def kill_haproxy(self) -> None:
        """SIGKILL HAProxy's worker(s), then its master: nothing listens on the service IP any more."""
        workers = self.haproxy_workers()
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.lab.stop(self.proc("haproxy"), signal.SIGKILL)
        wait_for("the killed workers to go", lambda: not any(process_start(p) for p in workers), 10)

    def stop_haproxy(self) -> None:
        """What `systemctl stop haproxy` does: SIGTERM to the master (a hard stop of the workers)."""
        self.lab.stop(self.proc("haproxy"), signal.SIGTERM)

    def reload_haproxy(self) -> None:
        """What `systemctl reload haproxy` does: SIGUSR2 to the master, which starts a new worker."""
        self.lab.procs[self.proc("haproxy")].send_signal(signal.SIGUSR2)

    # ---- BIRD and rhid --------------------------------------------------------------------------

    @property
    def bird_ctl(self) -> Path:
        return self.lab.ctl(self.proc("bird"))

    def write_bird_config(self, extra: str = "", export: str = 'proto = "vol1"') -> Path:
        """The speaker's bird.conf: rhid's snippet, `extra` protocols, a session to the router."""
        self.bird_dir.mkdir(exist_ok=True)
        config = self.dir / "bird.conf"
        config.write_text(
            f"router id {self.address};\n"
            "protocol device {}\n"
            + bird_snippet(parse_rules(RULES), str(self.bird_dir))
            + extra
            + "protocol bgp uplink {\n"
            f"  local {self.address} as {NODE_AS};\n"
            f"  neighbor {self.router_address} as {ROUTER_AS};\n"
            f"  hold time {HOLD_TIME}; keepalive time 1;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            f"  ipv4 {{ import none; export where {export}; next hop self; }};\n"
            "}\n"
        )
        return config

    def start_bird(self) -> None:
        config = self.dir / "bird.conf"
        if not config.exists():
            self.write_bird_config()
        ctl = str(self.bird_ctl)
        self.spawn("bird", [BIRD, "-f", "-c", str(config), "-s", ctl, "-P", str(self.dir / "bird.pid")])
        wait_for(f"{self.name}'s BIRD", lambda: self.lab.birdc(self.proc("bird"), "show status"), 10)

    def start_rhid(self, *args: str) -> subprocess.Popen[bytes]:
        rules = self.dir / "hapee-rhi.cfg"
        rules.write_text(RULES)
        argv = [
            sys.executable, "-m", "rhid", "run", "-c", str(rules),
            "--haproxy-socket", str(self.haproxy_socket), "--bird-socket", str(self.bird_ctl),
            "--bird-dir", str(self.bird_dir), "--log-format", "json", *args,
        ]  # fmt: skip
        return self.spawn("rhid", argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def events(self) -> list[dict[str, object]]:
        return self.lab.events(self.proc("rhid"))

    # ---- the whole node ---------------------------------------------------------------------------

    def pids(self) -> list[int]:
        return namespace_pids(self.namespace)

    def freeze(self) -> list[int]:
        """SIGSTOP every process in the node (a hung machine); the PIDs stopped."""
        stopped = self.pids()
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return stopped

    @staticmethod
    def thaw(stopped: list[int]) -> None:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@dataclass
class Cluster:
    """The client, the router and two nodes; `close` removes everything, whatever happened."""

    lab: Lab
    namespaces: dict[str, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    traffic: Traffic | None = None

    @property
    def root(self) -> Path:
        return self.lab.root

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    # ---- the network ------------------------------------------------------------------------------

    def build(self) -> None:
        """Create the namespaces and the veth links, and set the router's forwarding up."""
        remove_leftovers()
        owner = f"{os.getpid()}.{process_start(os.getpid())}"
        for role in ("client", "router", "node1", "node2"):
            name = f"{PREFIX}-{owner}-{role}"
            ip("netns", "add", name)
            self.namespaces[role] = name
            ip("-n", name, "link", "set", "lo", "up")
        self.nodes = [Node(self.lab, f"node{i}", i, self.namespaces[f"node{i}"]) for i in (1, 2)]
        router = self.namespaces["router"]
        self._link("to-client", f"{CLIENT_GATEWAY}/24", "client", f"{CLIENT_ADDRESS}/24")
        ip("-n", self.namespaces["client"], "route", "add", "default", "via", CLIENT_GATEWAY)
        for node in self.nodes:
            node.dir.mkdir(exist_ok=True)
            self._link(f"to-{node.name}", f"{node.router_address}/24", node.name, f"{node.address}/24")
            ip("-n", node.namespace, "route", "add", "default", "via", node.router_address)
            ip("-n", node.namespace, "addr", "add", SERVICE, "dev", "lo")
        self.sysctl(router, "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
        # hundreds of new connections a second: keep the client's ports from running out
        self.sysctl(self.namespaces["client"], "net.ipv4.ip_local_port_range=10000 65000")

    def _link(self, router_end: str, router_cidr: str, role: str, far_cidr: str) -> None:
        router, far = self.namespaces["router"], self.namespaces[role]
        ip("link", "add", router_end, "netns", router, "type", "veth", "peer", "name", "to-router",
           "netns", far)  # fmt: skip
        ip("-n", router, "addr", "add", router_cidr, "dev", router_end)
        ip("-n", far, "addr", "add", far_cidr, "dev", "to-router")
        ip("-n", router, "link", "set", router_end, "up")
        ip("-n", far, "link", "set", "to-router", "up")

    @staticmethod
    def sysctl(namespace: str, *settings: str) -> None:
        subprocess.run([IP, "netns", "exec", namespace, "sysctl", "-q", "-w", *settings], check=True)

    # ---- the router ---------------------------------------------------------------------------------

    def start_router(self) -> None:
        sessions = "".join(
            f"protocol bgp {node.name} {{\n"
            f"  local {node.router_address} as {ROUTER_AS};\n"
            f"  neighbor {node.address} as {NODE_AS};\n"
            f"  hold time {HOLD_TIME}; keepalive time 1;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            # RFC 8326's receiving side: a path marked GRACEFUL_SHUTDOWN is the last resort
            "  ipv4 { import filter { if (65535, 0) ~ bgp_community then bgp_local_pref = 0; accept; };"
            " export none; };\n"
            "}\n"
            for node in self.nodes
        )
        config = self.root / "router.conf"
        config.write_text(
            f"router id {CLIENT_GATEWAY};\n"
            "protocol device {}\n"
            "protocol kernel {\n"
            "  ipv4 { import none; export all; };\n"
            "  merge paths on;\n"  # equal BGP paths become one multipath (ECMP) kernel route
            "}\n" + sessions
        )
        argv = [BIRD, "-f", "-c", str(config), "-s", str(self.lab.ctl("router")), "-P", "router.pid"]
        self.lab.spawn("router", [IP, "netns", "exec", self.namespaces["router"], *argv])
        wait_for("the router's BIRD", lambda: self.lab.birdc("router", "show status"), 10)

    def established(self) -> bool:
        output = self.lab.birdc("router", "show protocols") or ""
        return all(re.search(rf"^{node.name}\s.*Established", output, re.M) for node in self.nodes)

    def nexthops(self) -> frozenset[str]:
        """The nodes the router's kernel forwards the service IP to (its multipath route's hops)."""
        routes = json.loads(ip("-n", self.namespaces["router"], "-j", "route", "show", SERVICE) or "[]")
        gateways = set()
        for route in routes:
            hops = route.get("nexthops", [route])
            gateways |= {hop["gateway"] for hop in hops if "gateway" in hop}
        return frozenset(node.name for node in self.nodes if node.address in gateways)

    def wait_nexthops(self, expected: set[str], timeout: float = 15) -> float:
        """Wait until the router forwards to exactly `expected`; the CLOCK_MONOTONIC time it did."""
        wait_for(f"the router to forward to {sorted(expected)}", lambda: self.nexthops() == expected,
                 timeout)  # fmt: skip
        return time.monotonic()

    # ---- the whole lab --------------------------------------------------------------------------------

    def start(self) -> None:
        """Build the network; start the router and each node's backends, HAProxy and BIRD (no rhid)."""
        self.build()
        self.start_router()
        for node in self.nodes:
            node.start_backends()
            node.start_haproxy()
            node.start_bird()
        wait_for("both BGP sessions to be Established", self.established, 30, every=0.2)

    def start_traffic(self, rate: float, timeout: float) -> Traffic:
        path = self.root / "traffic.log"
        argv = [sys.executable, str(HERE / "client.py"), SERVICE_IP, str(SERVICE_PORT), str(rate),
                str(timeout), str(path)]  # fmt: skip
        self.lab.spawn("client", [IP, "netns", "exec", self.namespaces["client"], *argv])
        self.traffic = Traffic(path)
        return self.traffic

    def stop_traffic(self) -> None:
        if "client" in self.lab.procs:
            self.lab.stop("client", signal.SIGTERM)

    def close(self) -> None:
        try:
            self.stop_traffic()
            for node in self.nodes:
                Node.thaw(node.pids())  # a frozen process cannot act on SIGTERM
            self.lab.close()
        finally:
            for namespace in self.namespaces.values():
                remove_namespace(namespace)


@contextmanager
def cluster(root: Path) -> Iterator[Cluster]:
    """A started Cluster (no rhid, no traffic yet), removed however the caller ends."""
    instance = Cluster(Lab(root))
    try:
        instance.start()
        yield instance
    finally:
        instance.close()
