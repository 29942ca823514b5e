"""Requests users lose when a node fails: the cluster lab (tests/cluster/lab.py) under real traffic.

Two HAProxy nodes announce one service IP to a router that spreads new connections over both by
ECMP; a client in its own namespace opens a new connection for every request, RATE a second, each
with a short timeout, and records every success (which node answered) and failure with its time.
node1 then goes through each scenario, and back:

    backends     all three of node1's backend servers are killed (HAProxy's checks: inter 200ms fall 1)
    kill         node1's HAProxy (worker and master) is killed
    stop         `systemctl stop hapee-extras-rhi haproxy`: SIGTERM to the tool (rhid: --on-stop
                 withdraw, its default), and once it has exited, SIGTERM to HAProxy's master
                 (systemd stops them in that order)
    reload       `systemctl reload haproxy`: SIGUSR2 to the master-worker HAProxy (aim: zero failed
                 requests and no route change)
    flap         node1's three servers disabled and enabled together every FLAP_EVERY seconds for
                 FLAP_FOR seconds (by HAProxy's admin socket), then left enabled; the window lasts
                 until the router forwards to both nodes again (not in the default run)
    back         node1 comes back after backends/kill/stop (backends, HAProxy, or HAProxy and the
                 tool restarted)
    hang         the router's own floor: every process of node1 is SIGSTOPped (a hung machine), so
                 nothing on the node can act and only the router's BGP hold timer (3 s here) takes
                 the path away; measured once per repetition, with rhid in events mode

Modes, side by side in the same run (interleaved repetition by repetition, on the same lab):

    events   rhid's defaults (--interval 1 --fall 3 --rise 1) with the event wake-up from HAProxy's ring
    vendor   the vendor's timing: --interval 1 --fall 3 --haproxy-events none
    events1  rhid with the event wake-up and --fall 1 (the comparators' flap protection: none)
    gs0      rhid's defaults without graceful shutdown (--graceful-shutdown 0: a stop withdraws at
             once, as before it existed): the baseline of `stop` for the default (5 s, 65535:0,
             which the lab's router honours with local-pref 0, as RFC 8326 asks of it)
    nodamp   rhid's defaults without flap damping (--damping off): the baseline of `flap`
    ahc      anycast-healthchecker 0.9.10 in front of the node's BIRD, check every 1 s, rise/fail 1
    exabgp   ExaBGP 4.2.21 and its healthcheck helper as the node's speaker, every 1 s, rise/fall 1

The comparators run at the fastest sensible profile of shared/notes/peers-setup.md (1 s, rise 1,
fall 1) with its check script (socat + awk on `show stat`), from a virtualenv of their own
(~/.cache/rhid-bench/venv-tools, made on first use), never installed system-wide, no service
enabled; only socat comes from Debian (apt-get, if missing), as the check script's one tool.
A stop that leaves the route announced (anycast-healthchecker does, on SIGTERM) is counted for
STOP_TIMEOUT seconds; then the bench empties the tool's prefix list, as an operator would.

For each event: the requests that failed among those that ended between the action and SETTLE
seconds after the router's route reached its expected state (a request that started just before
the action and ran into it is the action's), the outage window (first to last failed request, by
start time), when the router's table first showed the expected paths ("route ms", its BIRD table
polled every 10 ms) and how many times the paths changed in the window ("changes": 0 is the aim of
a reload). Prints a table and writes JSON; asserts nothing.

    python bench/cluster.py [--repeat 5] [--modes events,vendor,events1,ahc,exabgp]
                            [--scenarios backends,kill,stop,reload,hang] [--rate 200] [--timeout 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.lab import HOLD_TIME, NODE_AS, ROUTER_AS, SERVICE, Cluster, Node, Traffic, cluster
from tests.integration.lab import BIRDC, wait_for

from rhid.bird import BirdClient
from rhid.errors import BirdProtocolError, BirdUnavailableError
from rhid.haproxy import fetch

RESULTS = Path(__file__).parent / "results"
BOTH = frozenset({"node1", "node2"})
NODE2 = frozenset({"node2"})
SETTLE = 1.5  # seconds after the route's expected state: late failures (in flight, retries) count
RELOAD_WINDOW = 4.0  # seconds watched after a reload (nothing should change)
STOP_TIMEOUT = 10.0  # seconds a stop may leave the route announced before the bench cleans up
TOOL_INTERVAL = 1  # seconds: the comparators' fastest sensible profile (peers-setup.md: 1 s, rise/fall 1)
TOOL_PACKAGES = ["anycast-healthchecker==0.9.10", "exabgp==4.2.21"]
TOOLS_VENV = Path.home() / ".cache" / "rhid-bench" / "venv-tools"
CHECK_SCRIPT = """#!/bin/sh
# exit 0 only if HAProxy's BACKEND row for $2 says UP (the same check for every tool)
printf 'show stat %s 2 -1\\n' "$2" | socat - UNIX-CONNECT:"$1" |
  awk -F, '$2 == "BACKEND" { found = 1; up = ($18 == "UP") } END { exit !(found && up) }'
"""
DEFAULT_SCENARIOS = ("backends", "kill", "stop", "reload", "hang")
SCENARIOS = (*DEFAULT_SCENARIOS, "flap")
FLAP_EVERY = 0.5  # seconds between a flap's disable and enable (HAProxy's checks: inter 200ms)
FLAP_FOR = 10.0
FLAP_TIMEOUT = 150.0  # a damped route comes back within --damping-max-suppress (120 s) of the last flap
VIA = re.compile(r"via (\S+)")
LOCAL_PREF = re.compile(r"BGP\.local_pref: (\d+)")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class RouteWatch:
    """A thread polling the router's BIRD for the service IP's paths; every change with its time."""

    def __init__(self, instance: Cluster) -> None:
        self.client = BirdClient(str(instance.lab.ctl("router")), 2.0)
        self.addresses = {node.address: node.name for node in instance.nodes}
        self.changes: list[tuple[float, frozenset[str]]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def hops(self) -> frozenset[str]:
        """The paths the router's kernel gets as one multipath route: those of the best local
        preference (`merge paths`; a path marked GRACEFUL_SHUTDOWN has local-pref 0 there)."""
        reply = self.client.request(f"show route {SERVICE} all")
        paths: list[tuple[str, int]] = []  # (address, local_pref) in the order BIRD lists them
        for _, line in reply.lines:
            via = VIA.search(line)
            if via:
                paths.append((via.group(1), 100))
            elif paths and (pref := LOCAL_PREF.search(line)):
                paths[-1] = (paths[-1][0], int(pref.group(1)))
        best = max((pref for _, pref in paths), default=0)
        return frozenset(self.addresses[a] for a, pref in paths if pref == best and a in self.addresses)

    def run(self) -> None:
        last: frozenset[str] | None = None
        while not self.stopping.is_set():
            try:
                now, hops = time.monotonic(), self.hops()
            except (BirdUnavailableError, BirdProtocolError):
                time.sleep(0.05)
                continue
            if hops != last:
                self.changes.append((now, hops))
                last = hops
            time.sleep(0.01)

    def between(self, start: float, end: float) -> list[tuple[float, frozenset[str]]]:
        return [(t, hops) for t, hops in self.changes if start <= t < end]

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.client.close()


@dataclass
class Event:
    """One action on node1 and the window in which its effect is counted."""

    scenario: str
    mode: str
    start: float
    expect: list[str]
    end: float = 0.0
    reached_ms: float | None = None  # when the router's table first showed `expect` (not for reload)
    route_changes: list[tuple[float, list[str]]] = field(default_factory=list)
    failed: int = 0
    requests: int = 0
    outage_ms: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    note: str = ""
    failed_at: list[tuple[float, str]] = field(default_factory=list)  # ms after the action, outcome

    def measure(self, traffic: Traffic, watch: RouteWatch) -> None:
        """A request belongs to the window in which it ended: a failure is the event's it ran into."""
        requests = [r for r in traffic.read() if self.start <= r.start + r.duration < self.end]
        requests.sort(key=lambda r: r.start)
        failed = [r for r in requests if not r.ok]
        self.requests, self.failed = len(requests), len(failed)
        self.outage_ms = round((failed[-1].start - failed[0].start) * 1000, 1) if failed else 0.0
        self.failures = dict(Counter(r.outcome for r in failed))
        self.failed_at = [(round((r.start - self.start) * 1000, 1), r.outcome) for r in failed[:1000]]
        self.served = dict(Counter(r.outcome for r in requests if r.ok))
        self.route_changes = [
            (round((t - self.start) * 1000, 1), sorted(hops))
            for t, hops in watch.between(self.start, self.end)
        ]
        if self.scenario not in {"reload", "none"}:
            self.reached_ms = next((t for t, hops in self.route_changes if hops == self.expect), None)


class Tool:
    """What runs on each node to announce the service IP; subclasses say how it starts and stops."""

    name = ""

    def prepare(self, node: Node) -> None:
        """Once per node, before the first start."""

    def start(self, node: Node) -> None:
        raise NotImplementedError

    def stop(self, node: Node) -> None:
        """`systemctl stop` of the tool: SIGTERM, and wait for it to exit."""
        raise NotImplementedError

    def leave(self, node: Node) -> None:
        """Stop, leaving no route of this tool's behind, so that the next mode owns the node."""
        self.stop(node)

    def clean_up(self, node: Node) -> None:
        """What an operator does when the tool's stop left the route announced."""


class Rhid(Tool):
    def __init__(self, name: str, args: list[str]) -> None:
        self.name, self.args = name, args

    def start(self, node: Node) -> None:
        node.start_rhid(*self.args)
        if "--haproxy-events" not in self.args:
            wait_for(
                f"{node.name}'s rhid to stream HAProxy's ring",
                lambda: any(e["event"] == "haproxy.events_streaming" for e in node.events()),
                10,
            )

    def stop(self, node: Node) -> None:
        if node.running("rhid"):
            node.lab.stop(node.proc("rhid"), signal.SIGTERM)  # --on-stop withdraw (the default)


class AnycastHealthchecker(Tool):
    """anycast-healthchecker 0.9.10 in front of the node's BIRD, set up as in peers-setup.md."""

    name = "ahc"
    DUMMY = "10.189.200.255/32"  # the tool's own placeholder: the list is never empty

    @staticmethod
    def root(node: Node) -> Path:
        return node.dir / "ahc"

    def prefixes(self, node: Node, *prefixes: str) -> None:
        listed = ",\n".join(f"        {prefix}" for prefix in (self.DUMMY, *prefixes))
        (self.root(node) / "prefixes.conf").write_text(
            f"define ACAST_PS_ADVERTISE =\n    [\n{listed}\n    ];\n"
        )

    def prepare(self, node: Node) -> None:
        root = self.root(node)
        (root / "checks.d").mkdir(parents=True, exist_ok=True)
        self.prefixes(node)
        # the service IP's static route enters BIRD's table only while the tool lists it, so that
        # rhid's vol1 route, when another mode runs, is the only one
        node.write_bird_config(
            f'include "{root / "prefixes.conf"}";\n'
            "protocol static ahc_vip {\n"
            "  ipv4 { import where net ~ ACAST_PS_ADVERTISE; };\n"
            f"  route {SERVICE} blackhole;\n"
            "}\n",
            export='proto = "vol1" || proto = "ahc_vip"',
        )
        configure(node)
        (root / "ahc.conf").write_text(
            "[daemon]\n"
            f"pidfile = {root / 'ahc.pid'}\nbird_conf = {root / 'prefixes.conf'}\n"
            "bird_variable = ACAST_PS_ADVERTISE\n"
            f"bird_reconfigure_cmd = {BIRDC} -s {node.bird_ctl} configure\n"
            "bird_keep_changes = false\n"
            f"log_file = {root / 'ahc.log'}\nstderr_file = {root / 'stderr.log'}\n"
            f"stdout_file = {root / 'stdout.log'}\nloglevel = info\n"
        )
        (root / "checks.d" / "be_app.conf").write_text(
            "[be_app]\n"
            f"check_cmd = {check_script(node)} {node.haproxy_socket} be_app\n"
            f"check_interval = {TOOL_INTERVAL}\ncheck_timeout = 1\ncheck_rise = 1\ncheck_fail = 1\n"
            f"check_disabled = false\non_disabled = withdraw\nip_prefix = {SERVICE}\n"
        )

    def start(self, node: Node) -> None:
        root = self.root(node)
        binary = TOOLS_VENV / "bin" / "anycast-healthchecker"
        node.spawn("ahc", [str(binary), "-f", str(root / "ahc.conf"), "-d", str(root / "checks.d")])

    def stop(self, node: Node) -> None:
        node.lab.stop(node.proc("ahc"), signal.SIGTERM)

    def leave(self, node: Node) -> None:
        self.stop(node)
        self.clean_up(node)

    def clean_up(self, node: Node) -> None:
        self.prefixes(node)
        configure(node)


class ExaBGP(Tool):
    """ExaBGP 4.2.21 with its healthcheck helper as the node's BGP speaker (BIRD stopped meanwhile)."""

    name = "exabgp"

    def prepare(self, node: Node) -> None:
        root = node.dir / "exabgp"
        root.mkdir(exist_ok=True)
        helper = root / "healthcheck.sh"
        helper.write_text(
            f"#!/bin/sh\nexec {TOOLS_VENV / 'bin' / 'exabgp-healthcheck'} --no-syslog --no-ip-setup "
            f"--withdraw-on-down --cmd '{check_script(node)} {node.haproxy_socket} be_app' --ip {SERVICE} "
            f"--next-hop {node.address} --interval {TOOL_INTERVAL} --fast-interval {TOOL_INTERVAL} "
            "--rise 1 --fall 1\n"
        )
        helper.chmod(0o755)
        (root / "exabgp.conf").write_text(
            f"process hc {{\n  run {helper};\n  encoder text;\n}}\n"
            f"neighbor {node.router_address} {{\n  router-id {node.address};\n"
            f"  local-address {node.address};\n  local-as {NODE_AS};\n  peer-as {ROUTER_AS};\n"
            f"  hold-time {HOLD_TIME};\n  family {{ ipv4 unicast; }}\n  api {{ processes [ hc ]; }}\n}}\n"
        )

    def start(self, node: Node) -> None:
        node.lab.stop(node.proc("bird"), signal.SIGTERM)  # one speaker per node: ExaBGP takes the session
        env = {**os.environ, "exabgp.daemon.user": "root", "exabgp.daemon.drop": "false",
               "exabgp.api.cli": "false", "exabgp.tcp.bind": "",
               "exabgp.log.destination": "stderr"}  # fmt: skip
        conf = node.dir / "exabgp" / "exabgp.conf"
        node.spawn("exabgp", [str(TOOLS_VENV / "bin" / "exabgp"), str(conf)], env=env)

    def stop(self, node: Node) -> None:
        node.lab.stop(node.proc("exabgp"), signal.SIGTERM)

    def leave(self, node: Node) -> None:
        self.stop(node)
        node.start_bird()


def flap(node: Node) -> None:
    """Disable and enable node1's servers together every FLAP_EVERY s for FLAP_FOR s; end enabled."""
    end, enabled = time.monotonic() + FLAP_FOR, True
    while time.monotonic() < end:
        enabled = not enabled
        word = "enable" if enabled else "disable"
        command = "; ".join(f"{word} server be_app/s{number}" for number in (1, 2, 3))
        fetch(str(node.haproxy_socket), command.encode() + b"\n", 2.0)
        time.sleep(FLAP_EVERY)
    if not enabled:
        fetch(
            str(node.haproxy_socket),
            b"; ".join(b"enable server be_app/s%d" % n for n in (1, 2, 3)) + b"\n",
            2.0,
        )


def configure(node: Node) -> None:
    reply = node.lab.birdc(node.proc("bird"), "configure") or ""
    if "Reconfigur" not in reply:
        raise AssertionError(f"{node.name}'s BIRD refused configure: {reply!r}")


def check_script(node: Node) -> Path:
    """The same check for both tools: HAProxy's BACKEND row says UP (peers-setup.md)."""
    path = node.lab.root / "check.sh"
    if not path.exists():
        path.write_text(CHECK_SCRIPT)
        path.chmod(0o755)
    return path


def tools_venv() -> None:
    """anycast-healthchecker and ExaBGP in a virtualenv of their own: nothing installed system-wide."""
    if (
        not (TOOLS_VENV / "bin" / "exabgp").exists()
        or not (TOOLS_VENV / "bin" / "anycast-healthchecker").exists()
    ):
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run([str(TOOLS_VENV / "bin" / "pip"), "install", "-q", *TOOL_PACKAGES], check=True)
    if shutil.which("socat") is None:  # the check script's only tool
        subprocess.run(["/usr/bin/apt-get", "install", "-y", "-qq", "socat"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip


TOOLS: dict[str, Tool] = {
    "events": Rhid("events", []),
    "vendor": Rhid("vendor", ["--interval", "1", "--fall", "3", "--haproxy-events", "none"]),
    "events1": Rhid("events1", ["--fall", "1"]),
    "gs0": Rhid("gs0", ["--graceful-shutdown", "0"]),
    "nodamp": Rhid("nodamp", ["--damping", "off"]),
    "ahc": AnycastHealthchecker(),
    "exabgp": ExaBGP(),
}


@dataclass
class Bench:
    instance: Cluster
    watch: RouteWatch
    events: list[Event] = field(default_factory=list)
    tool: Tool | None = None

    @property
    def node1(self) -> Node:
        return self.instance.node("node1")

    def step(
        self, scenario: str, mode: str, act: Callable[[], object], expect: frozenset[str], timeout: float = 20
    ) -> bool:
        """Act on node1, wait for the router to forward to `expect`, let it settle; record the window.
        False if the route never got there within `timeout` (the failures are counted until then)."""
        event = Event(scenario, mode, time.monotonic(), sorted(expect))
        act()
        reached = True
        if expect == BOTH and scenario == "reload":
            time.sleep(RELOAD_WINDOW)
        else:
            try:
                self.instance.wait_nexthops(set(expect), timeout)
            except AssertionError:
                reached = False
                event.note = (
                    f"the router still forwarded to {sorted(self.instance.nexthops())} after {timeout} s"
                )
            else:  # the watch polls BIRD every 10 ms: let it see the change inside this window
                wait_for("the route watch", lambda: self.watch.changes[-1][1] == expect, 5)
        time.sleep(SETTLE)
        event.end = time.monotonic()
        self.events.append(event)
        return reached

    def switch(self, tool: Tool) -> None:
        """Stop the current tool on each node (leaving no route) and start `tool`."""
        for node in self.instance.nodes:
            if self.tool is not None:
                self.tool.leave(node)
            tool.start(node)
        self.tool = tool
        self.instance.wait_nexthops(set(BOTH), 60)
        time.sleep(1.0)

    def quiet(self, mode: str, seconds: float = 2.0) -> None:
        """A window with no event: the background failure rate, to read the others against."""
        self.step("none", mode, lambda: time.sleep(seconds), BOTH)

    def scenario(self, name: str, tool: Tool) -> None:
        node1, mode = self.node1, tool.name
        if name == "backends":
            self.step("backends", mode, node1.kill_backends, NODE2)
            self.step("back:backends", mode, node1.start_backends, BOTH)
        elif name == "kill":
            self.step("kill", mode, node1.kill_haproxy, NODE2)
            self.step("back:kill", mode, node1.start_haproxy, BOTH)
        elif name == "stop":

            def stop() -> None:
                tool.stop(node1)
                node1.stop_haproxy()

            def start() -> None:
                node1.start_haproxy()
                tool.start(node1)

            if not self.step("stop", mode, stop, NODE2, timeout=STOP_TIMEOUT):
                tool.clean_up(node1)
                self.instance.wait_nexthops(set(NODE2))
                wait_for("the route watch", lambda: self.watch.changes[-1][1] == NODE2, 5)
            self.step("back:stop", mode, start, BOTH)
        elif name == "reload":
            self.step("reload", mode, node1.reload_haproxy, BOTH)
        elif name == "flap":
            self.step("flap", mode, lambda: flap(node1), BOTH, timeout=FLAP_TIMEOUT)
        elif name == "hang":
            stopped: list[int] = []
            self.step("hang", mode, lambda: stopped.extend(node1.freeze()), NODE2)
            self.step("back:hang", mode, lambda: Node.thaw(stopped), BOTH, timeout=60)


ROWS = [
    ("none", "no event (background)"),
    ("backends", "backends all fail"),
    ("back:backends", "  back: backends restarted"),
    ("kill", "HAProxy killed"),
    ("back:kill", "  back: HAProxy started"),
    ("stop", "stop (systemctl stop: SIGTERM)"),
    ("back:stop", "  back: HAProxy and the tool started"),
    ("reload", "HAProxy reload (master-worker)"),
    ("flap", f"backends flap every {FLAP_EVERY:g} s for {FLAP_FOR:g} s"),
    ("hang", f"node hangs: router's floor (hold {HOLD_TIME} s)"),
    ("back:hang", "  back: node resumes"),
]


def summarize(events: list[Event]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per scenario and mode: failed requests and outage p50/p90/max, when the route changed."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for event in events:
        summary.setdefault(event.scenario, {}).setdefault(event.mode, {"events": []})["events"].append(event)
    for modes in summary.values():
        for data in modes.values():
            group: list[Event] = data.pop("events")
            failed = [float(e.failed) for e in group]
            outage = [e.outage_ms for e in group]
            first_change = [e.reached_ms for e in group if e.reached_ms is not None]
            data.update(
                n=len(group),
                failed={"p50": percentile(failed, 0.5), "p90": percentile(failed, 0.9), "max": max(failed)},
                outage_ms={
                    "p50": percentile(outage, 0.5),
                    "p90": percentile(outage, 0.9),
                    "max": max(outage),
                },
                route_change_ms=round(statistics.median(first_change), 1) if first_change else None,
                route_changes=sum(len(e.route_changes) for e in group),
                requests=sum(e.requests for e in group),
                failures=dict(sum((Counter(e.failures) for e in group), Counter())),
            )
    return summary


def table(summary: dict[str, dict[str, dict[str, Any]]], modes: list[str]) -> str:
    head = (
        f"{'event':<40}{'mode':<8}{'n':>3}{'failed p50/p90/max':>22}{'outage ms p50/p90/max':>28}"
        f"{'route ms':>10}{'changes':>9}{'x events':>10}"
    )
    lines = [head, "-" * len(head)]
    for key, label in ROWS:
        for mode in modes:
            data = summary.get(key, {}).get(mode)
            if data is None:
                continue
            f, o = data["failed"], data["outage_ms"]
            base = summary[key].get("events", {}).get("failed", {}).get("p50")
            ratio = f"{f['p50'] / base:.1f}x" if base and mode != "events" else ""
            route = "-" if data["route_change_ms"] is None else f"{data['route_change_ms']:.0f}"
            failed = f"{f['p50']:.0f} / {f['p90']:.0f} / {f['max']:.0f}"
            outage = f"{o['p50']:.0f} / {o['p90']:.0f} / {o['max']:.0f}"
            lines.append(
                f"{label:<40}{mode:<8}{data['n']:>3}{failed:>22}{outage:>28}"
                f"{route:>10}{data['route_changes']:>9}{ratio:>10}"
            )
    return "\n".join(lines)


def describe(tool: Tool) -> str:
    if isinstance(tool, Rhid):
        return " ".join(["rhid run", *tool.args]) or "rhid run (defaults, event wake-up)"
    return {"ahc": "anycast-healthchecker", "exabgp": "ExaBGP healthcheck"}[tool.name] + (
        f" --interval {TOOL_INTERVAL} rise 1 fall 1"
    )


def commit() -> str:
    result = subprocess.run(
        ["/usr/bin/git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    )
    return result.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of every scenario per mode")
    parser.add_argument("--modes", default=",".join(TOOLS), help="events, vendor, ahc, exabgp")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help=", ".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
    parser.add_argument("--json", type=Path, default=RESULTS / "cluster.json")
    parser.add_argument("--workdir", type=Path, help="keep the lab's files here (default: a temp dir)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    scenarios = args.scenarios.split(",")
    unknown = sorted((set(modes) - set(TOOLS)) | (set(scenarios) - set(SCENARIOS)))
    if unknown:
        parser.error(f"unknown mode or scenario: {', '.join(unknown)}")
    if {"ahc", "exabgp"} & set(modes):
        tools_venv()
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="rhid-cluster-") as tmp,
        cluster(args.workdir or Path(tmp)) as instance,
    ):
        watch = RouteWatch(instance)
        bench = Bench(instance, watch)
        try:
            for node in instance.nodes:
                for mode in modes:
                    TOOLS[mode].prepare(node)
            traffic = instance.start_traffic(args.rate, args.timeout)
            for repetition in range(args.repeat):
                for mode in modes:
                    bench.switch(TOOLS[mode])
                    bench.quiet(mode)
                    for name in scenarios:
                        if name == "hang" and mode != modes[0]:
                            continue  # the router's floor: the same whatever runs on the node
                        bench.scenario(name, TOOLS[mode])
                print(f"repetition {repetition + 1}/{args.repeat} done", file=sys.stderr, flush=True)
            time.sleep(args.timeout + 0.5)  # the last requests end and reach the file
            for event in bench.events:
                event.measure(traffic, watch)
        finally:
            watch.close()
    summary = summarize(bench.events)
    print(table(summary, modes))
    document = {
        "commit": commit(),
        "command": " ".join(["python", "bench/cluster.py", *sys.argv[1:]]),
        "seconds": round(time.monotonic() - started, 1),
        "rate": args.rate,
        "timeout": args.timeout,
        "settle": SETTLE,
        "hold_time": HOLD_TIME,
        "modes": {mode: describe(TOOLS[mode]) for mode in modes},
        "tool_interval": TOOL_INTERVAL,
        "summary": summary,
        "events": [asdict(event) for event in bench.events],
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
