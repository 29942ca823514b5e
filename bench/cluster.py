"""Requests users lose when a node fails: the cluster lab (tests/cluster/lab.py) under real traffic.

Two HAProxy nodes announce one service IP to a router that spreads new connections over both by
ECMP; a client in its own namespace opens a new connection for every request, RATE a second, each
with a short timeout, and records every success (which node answered) and failure with its time.
node1 then goes through each scenario, and back:

    backends     all three of node1's backend servers are killed (HAProxy's checks: inter 200ms fall 1)
    kill         node1's HAProxy (worker and master) is killed
    stop         `systemctl stop hapee-extras-rhi haproxy`: SIGTERM to rhid (--on-stop withdraw), and
                 once it has exited, SIGTERM to HAProxy's master (systemd stops them in that order)
    reload       `systemctl reload haproxy`: SIGUSR2 to the master-worker HAProxy (aim: zero failed
                 requests and no route change)
    back         node1 comes back after backends/kill/stop (backends, HAProxy, or HAProxy and rhid
                 restarted)
    hang         the router's own floor: every process of node1 is SIGSTOPped (a hung machine), so
                 nothing on the node can act and only the router's BGP hold timer (3 s here) takes
                 the path away; measured once per repetition, with rhid in events mode

Modes, side by side in the same run (interleaved repetition by repetition, on the same lab):

    events   rhid's defaults (--interval 1 --fall 3 --rise 1) with the event wake-up from HAProxy's ring
    vendor   the vendor's timing: --interval 1 --fall 3 --haproxy-events none

For each event: the requests that failed (by start time, from the action until SETTLE seconds after
the router's route reached its expected state), the outage window (first to last failed request,
by start time), and when the router's route changed (its BIRD table, polled every 10 ms). Prints a
table and writes JSON; asserts nothing.

    python bench/cluster.py [--repeat 5] [--modes events,vendor] [--scenarios backends,kill,stop,reload,hang]
"""

from __future__ import annotations

import argparse
import json
import re
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

from tests.cluster.lab import HOLD_TIME, SERVICE, Cluster, Node, Traffic, cluster
from tests.integration.lab import wait_for

from rhid.bird import BirdClient
from rhid.errors import BirdProtocolError, BirdUnavailableError

RESULTS = Path(__file__).parent / "results"
BOTH = frozenset({"node1", "node2"})
NODE2 = frozenset({"node2"})
SETTLE = 1.5  # seconds after the route's expected state: late failures (in flight, retries) count
RELOAD_WINDOW = 4.0  # seconds watched after a reload (nothing should change)
MODES: dict[str, list[str]] = {
    "events": [],
    "vendor": ["--interval", "1", "--fall", "3", "--haproxy-events", "none"],
}
SCENARIOS = ("backends", "kill", "stop", "reload", "hang")
VIA = re.compile(r"via (\S+)")


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
        reply = self.client.request(f"show route {SERVICE}")
        text = "\n".join(line for _, line in reply.lines)
        return frozenset(self.addresses[a] for a in VIA.findall(text) if a in self.addresses)

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
    end: float = 0.0
    route_changes: list[tuple[float, list[str]]] = field(default_factory=list)
    failed: int = 0
    requests: int = 0
    outage_ms: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)

    def measure(self, traffic: Traffic, watch: RouteWatch) -> None:
        requests = traffic.between(self.start, self.end)
        failed = [r for r in requests if not r.ok]
        self.requests, self.failed = len(requests), len(failed)
        self.outage_ms = round((failed[-1].start - failed[0].start) * 1000, 1) if failed else 0.0
        self.failures = dict(Counter(r.outcome for r in failed))
        self.served = dict(Counter(r.outcome for r in requests if r.ok))
        self.route_changes = [
            (round((t - self.start) * 1000, 1), sorted(hops))
            for t, hops in watch.between(self.start, self.end)
        ]


@dataclass
class Bench:
    instance: Cluster
    watch: RouteWatch
    events: list[Event] = field(default_factory=list)

    @property
    def node1(self) -> Node:
        return self.instance.node("node1")

    def step(
        self, scenario: str, mode: str, act: Callable[[], object], expect: frozenset[str], timeout: float = 20
    ) -> None:
        """Act on node1, wait for the router to forward to `expect`, let it settle; record the window."""
        event = Event(scenario, mode, time.monotonic())
        act()
        if expect == BOTH and scenario == "reload":
            time.sleep(RELOAD_WINDOW)
        else:
            self.instance.wait_nexthops(set(expect), timeout)
        time.sleep(SETTLE)
        event.end = time.monotonic()
        self.events.append(event)

    def start_rhid(self, node: Node, mode: str) -> None:
        node.start_rhid(*MODES[mode])
        if mode == "events":
            wait_for(
                f"{node.name}'s rhid to stream HAProxy's ring",
                lambda: any(e["event"] == "haproxy.events_streaming" for e in node.events()),
                10,
            )

    def switch(self, mode: str) -> None:
        """SIGKILL each node's rhid (its routes stay: fail-static) and start it in `mode`."""
        for node in self.instance.nodes:
            if node.running("rhid"):
                self.instance.lab.stop(node.proc("rhid"), signal.SIGKILL)
            self.start_rhid(node, mode)
        self.instance.wait_nexthops(set(BOTH))
        time.sleep(1.0)

    def quiet(self, mode: str, seconds: float = 2.0) -> None:
        """A window with no event: the background failure rate, to read the others against."""
        self.step("none", mode, lambda: time.sleep(seconds), BOTH)

    def scenario(self, name: str, mode: str) -> None:
        node1 = self.node1
        if name == "backends":
            self.step("backends", mode, node1.kill_backends, NODE2)
            self.step("back:backends", mode, node1.start_backends, BOTH)
        elif name == "kill":
            self.step("kill", mode, node1.kill_haproxy, NODE2)
            self.step("back:kill", mode, node1.start_haproxy, BOTH)
        elif name == "stop":

            def stop() -> None:
                self.instance.lab.stop(node1.proc("rhid"), signal.SIGTERM)
                node1.stop_haproxy()

            def start() -> None:
                node1.start_haproxy()
                self.start_rhid(node1, mode)

            self.step("stop", mode, stop, NODE2)
            self.step("back:stop", mode, start, BOTH)
        elif name == "reload":
            self.step("reload", mode, node1.reload_haproxy, BOTH)
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
    ("stop", "stop (SIGTERM, --on-stop withdraw)"),
    ("back:stop", "  back: HAProxy and rhid started"),
    ("reload", "HAProxy reload (master-worker)"),
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
            first_change = [e.route_changes[0][0] for e in group if e.route_changes]
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
    parser.add_argument("--modes", default="events,vendor")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per request")
    parser.add_argument("--json", type=Path, default=RESULTS / "cluster.json")
    parser.add_argument("--workdir", type=Path, help="keep the lab's files here (default: a temp dir)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    scenarios = args.scenarios.split(",")
    unknown = sorted((set(modes) - set(MODES)) | (set(scenarios) - set(SCENARIOS)))
    if unknown:
        parser.error(f"unknown mode or scenario: {', '.join(unknown)}")
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="rhid-cluster-") as tmp,
        cluster(args.workdir or Path(tmp)) as instance,
    ):
        watch = RouteWatch(instance)
        bench = Bench(instance, watch)
        try:
            traffic = instance.start_traffic(args.rate, args.timeout)
            for repetition in range(args.repeat):
                for mode in modes:
                    bench.switch(mode)
                    bench.quiet(mode)
                    for name in scenarios:
                        if name == "hang" and mode != modes[0]:
                            continue  # the router's floor: the same whatever runs on the node
                        bench.scenario(name, mode)
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
        "modes": {mode: MODES[mode] for mode in modes},
        "summary": summary,
        "events": [asdict(event) for event in bench.events],
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
