"""Benchmark at scale: 10,000 backends and 10,000 rules, real HAProxy, BIRD speaker and BIRD peer.

    python bench/scale.py [--backends 10000] [--seconds 20] [--json bench/results/scale.json]

Measures, from one run: rhid's CPU per cycle and HAProxy's extra CPU per cycle (its dump), their
steady-state share of one core at 1 Hz, rhid's RSS, the cold start from launching rhid to all
routes at the peer, and one change among all the routes (poll-driven and event-driven).
Prints a table and writes JSON; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, lab, wait_for

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peer_count(instance: Lab) -> int:
    output = instance.birdc("peer", "show route count") or ""
    numbers = [int(word) for word in output.split() if word.isdigit()]
    return numbers[0] if numbers else 0


def run(count: int, seconds: float) -> dict[str, float]:
    backends = {f"be{i}": ["web"] for i in range(count)}
    rules = "".join(
        f"10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256} = all(b:be{i})\n" for i in range(count)
    )
    results: dict[str, float] = {"backends": count, "rules": count}
    with tempfile.TemporaryDirectory(prefix="rhid-scale-") as tmp, lab(Path(tmp)) as instance:
        instance.start_web("web")
        instance.start_haproxy(backends, [], checks=dict.fromkeys(backends, ""), ring=True)
        from rhid.rules import parse_rules  # noqa: PLC0415 -- after the lab is up

        instance.write_speaker_config(parse_rules(rules))
        instance.start_speaker()
        instance.start_peer()
        instance.wait_established(60)
        haproxy = instance.procs["haproxy"].pid

        idle_start = cpu_seconds(haproxy)
        time.sleep(seconds / 2)
        haproxy_idle_per_s = (cpu_seconds(haproxy) - idle_start) / (seconds / 2)

        started = time.monotonic()
        instance.start_rhid(rules, "--interval", "1", "--fall", "1", "--haproxy-events", "none")
        wait_for("all routes at the peer", lambda: peer_count(instance) == count, 120, every=0.05)
        results["cold_start_s"] = time.monotonic() - started
        rhid = instance.procs["rhid"].pid

        time.sleep(2)  # settle
        rhid_cpu, haproxy_cpu, wall = cpu_seconds(rhid), cpu_seconds(haproxy), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - wall
        rhid_per_s = (cpu_seconds(rhid) - rhid_cpu) / elapsed
        dump_per_s = (cpu_seconds(haproxy) - haproxy_cpu) / elapsed - haproxy_idle_per_s
        results["rhid_cpu_ms_per_cycle"] = rhid_per_s * 1000  # 1 cycle per second
        results["haproxy_dump_cpu_ms_per_cycle"] = max(dump_per_s, 0.0) * 1000
        results["core_share_at_1hz_pct"] = (rhid_per_s + max(dump_per_s, 0.0)) * 100
        results["rhid_rss_mb"] = rss_mb(rhid)

        instance.haproxy(f"disable server be{count // 2}/s1")
        change = time.monotonic()
        wait_for("one withdrawal", lambda: peer_count(instance) == count - 1, 30, every=0.01)
        results["one_change_polling_s"] = time.monotonic() - change
        instance.stop("rhid", signal.SIGKILL)

        instance.start_rhid(rules, "--interval", "1", "--fall", "1", name="rhid_events")

        def streaming() -> bool:
            return any(e["event"] == "haproxy.events_streaming" for e in instance.events("rhid_events"))

        wait_for("the event stream", streaming, 30)
        wait_for("the route back", lambda: peer_count(instance) == count - 1, 30, every=0.05)
        instance.haproxy(f"enable server be{count // 2}/s1")
        change = time.monotonic()
        wait_for("one announcement", lambda: peer_count(instance) == count, 30, every=0.005)
        results["one_change_events_s"] = time.monotonic() - change
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=Path("bench/results/scale.json"))
    args = parser.parse_args()
    results = run(args.backends, args.seconds)
    targets = {"core_share_at_1hz_pct": 2.0, "rhid_rss_mb": 80.0, "cold_start_s": 3.0}
    print(f"{'measure':<32}{'value':>12}{'target':>10}")
    for key, value in results.items():
        target = targets.get(key)
        print(f"{key:<32}{value:>12.3f}{'' if target is None else f'< {target:g}':>10}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
