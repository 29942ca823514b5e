"""Benchmark: what one proxy's health change costs, step by step, from "health moved" to "BIRD asked".

    python bench/plan_cost.py [--rules 10000] [--repeat 20] [--json bench/results/plan_cost.json]

Builds `--rules` rules (``10.x.y.z = all(b:beN)``, one backend each) in memory, the daemon's
policy chain with its default settings (drains, stop, guard, damping, graceful shutdown), a plan
with every backend up, and a BirdSide on a real temp directory with a scripted BIRD (it answers
``show status``, ``configure`` and ``show route`` from what the files hold: no BIRD process).
Then, `--repeat` times, flips one backend's health (down, then up again: each flip is one change)
and times, in CPU seconds (time.process_time) and wall-clock:

    decide    plan.decide(previous, rules, states, intents, now, chain=...)
    files     Plan.files() alone (a copy of every channel's routes)
    render    routefiles.render_routes of the changed channel alone (the whole file's text)
    write     BirdSide.write(plan, now): comparing the plan's files with what was written, writing
              the changed files (atomic, fsync), the reconciler's bookkeeping
    bird      BirdSide.sync: show status, configure, confirm, the verification (scripted replies;
              the scripted BIRD's own CPU, reading the files at configure, is subtracted)
    total     decide + write + bird: the path the daemon's replan_now + apply run

Prints a table (median and max, milliseconds) and writes JSON; it asserts nothing. `files` and
`render` are timed alone to show what a whole pass costs: `write` runs them on ba25559 and before,
and runs neither since the incremental files (it renders only the changed lines). Run it on two commits with
PYTHONPATH=<worktree>/src to compare; the JSON names the commit it measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from rhid import birdwire, damping, guard, plan, routefiles, shutdown
from rhid.health import Health, ProxyState
from rhid.model import Channel, Proxy
from rhid.reconcile import BirdSide
from rhid.rules import RuleSet, parse_rules

STEPS = ("decide", "files", "render", "write", "bird", "total")


class ScriptedBird:
    """A BIRD that answers from rhid's files: `configure` reads them, `show route` lists them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = "bird.ctl"
        self.greeting = "BIRD 2.0.12 ready."
        self.connections = 1
        self.configured = 0
        self.routes: dict[str, set[str]] = {}
        self.commands = 0
        self.cpu = 0.0  # CPU seconds spent standing in for BIRD (subtracted from the "bird" step)

    def connect(self) -> str:
        return self.greeting

    def request(self, command: str, timeout: float | None = None) -> birdwire.Reply:
        del timeout
        self.commands += 1
        started = time.process_time()
        try:
            return self.answer(command)
        finally:
            self.cpu += time.process_time() - started

    def answer(self, command: str) -> birdwire.Reply:
        if command == birdwire.CONFIGURE:
            self.configured += 1
            for path in sorted(self.directory.glob("*.conf")):
                channel = routefiles.channel_of(path.name)
                if channel is not None:
                    prefixes, _ = routefiles.parse_routes(path.read_text(), channel.family)
                    self.routes[channel.protocol] = set(map(str, prefixes))
            return birdwire.Reply(3, ((3, "Reconfigured"),))
        if command == birdwire.SHOW_STATUS:
            lines = (
                (1000, "BIRD 2.0.12"),
                (1011, "Last reboot on 1"),
                (1011, f"Last reconfiguration on {self.configured}"),
            )
            return birdwire.Reply(13, (*lines, (13, "Daemon is up and running")))
        words = command.split()  # show route [PREFIX] protocol P
        protocol, only = words[-1], words[2] if len(words) == 5 else None
        known = self.routes.get(protocol, set())
        routes = sorted(known) if only is None else [only] if only in known else []
        if only is not None and not routes:
            return birdwire.Reply(8001, ((8001, "Network not found"),))
        listing = tuple((1007, f"{prefix} blackhole [{protocol}]") for prefix in routes)
        return birdwire.Reply(0, (*listing, (0, "")))

    def close(self) -> None:
        pass


def rules_text(count: int) -> str:
    return "".join(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256} = all(b:be{i})\n" for i in range(count))


def daemon_chain() -> tuple[plan.Policy, ...]:
    """The daemon's default chain (rhid.daemon.chain with default settings)."""
    marks = shutdown.Marks()
    return (
        plan.draining,
        plan.stopping,
        guard.policy(guard.Config(50, 5, 60.0, 10.0, degraded=True, marks=marks)),
        damping.policy(damping.Config(30.0, 2.5, 1.0, 120.0)),
        shutdown.policy(shutdown.Config(5.0, marks)),
    )


def state(up: bool) -> ProxyState:
    return ProxyState(Health.UP if up else Health.DOWN, last_status="UP" if up else "DOWN", seen=True)


def timed(samples: dict[str, list[tuple[float, float]]], name: str, run: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    samples[name].append(((time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))
    return result


def measure(count: int, repeat: int) -> dict[str, Any]:
    rules: RuleSet = parse_rules(rules_text(count))
    chain = daemon_chain()
    up = state(True)
    states: dict[Proxy, ProxyState] = dict.fromkeys(rules.proxies, up)
    intents = plan.Intents(haproxy_answers=True)
    samples: dict[str, list[tuple[float, float]]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="rhid-plan-cost-") as temp:
        directory = Path(temp) / "rhid"
        directory.mkdir()
        client = ScriptedBird(directory)
        side = BirdSide(directory, client)
        now = 1.0
        current = plan.decide(plan.initial(set(), set(), now), rules, states, intents, now, chain=chain)
        side.apply(current, now)
        current = plan.decide(current, rules, states, intents, now, chain=chain)  # as the first cycle does
        side.apply(current, now)
        proxies = list(rules.proxies)
        channel = Channel("vol1", 4)
        for index in range(repeat):
            now += 2.0  # as bench/scale.py's changes come; under --verify-interval: no full listing
            proxy = proxies[(index // 2 * 7919) % len(proxies)]  # down, then up again
            states = {**states, proxy: state(index % 2 == 1)}
            previous = current
            current = timed(
                samples,
                "decide",
                partial(plan.decide, previous, rules, states, intents, now, chain=chain),
            )
            files = timed(samples, "files", current.files)
            timed(samples, "render", partial(routefiles.render_routes, files[channel]))
            timed(samples, "write", partial(side.write, current, now))
            standing_in = client.cpu
            timed(samples, "bird", partial(side.sync, current.channels, now))
            bird_ms = (client.cpu - standing_in) * 1000  # the scripted BIRD's own work is BIRD's, not rhid's
            cpu, wall = samples["bird"][-1]
            samples["bird"][-1] = (cpu - bird_ms, wall - bird_ms)
            path = [samples[step][-1] for step in ("decide", "write", "bird")]
            samples["total"].append((sum(c for c, _ in path), sum(w for _, w in path)))
            if not side.in_sync:
                raise SystemExit(f"change {index}: the scripted BIRD is not in sync: {side.last_error}")
    return {
        step: {
            "cpu_ms_median": round(statistics.median(c for c, _ in values), 3),
            "cpu_ms_max": round(max(c for c, _ in values), 3),
            "wall_ms_median": round(statistics.median(w for _, w in values), 3),
            "wall_ms_max": round(max(w for _, w in values), 3),
        }
        for step, values in samples.items()
    }


def commit() -> str:
    root = Path(plan.__file__).resolve().parents[2]
    try:
        return subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],  # noqa: S607 -- git from PATH
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    load = os.getloadavg()[0]
    steps = measure(args.rules, args.repeat)
    result = {
        "rules": args.rules,
        "repeat": args.repeat,
        "commit": commit(),
        "rhid": str(Path(plan.__file__).resolve().parent),
        "load_1m": load,
        "steps": steps,
    }
    print(f"{args.rules} rules, {args.repeat} changes, commit {result['commit']}, load {load:.2f}")
    print(f"{'step':<8} {'cpu p50 ms':>11} {'cpu max ms':>11} {'wall p50 ms':>12} {'wall max ms':>12}")
    for step, row in steps.items():
        print(
            f"{step:<8} {row['cpu_ms_median']:>11.2f} {row['cpu_ms_max']:>11.2f} "
            f"{row['wall_ms_median']:>12.2f} {row['wall_ms_max']:>12.2f}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
