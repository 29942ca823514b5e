"""Benchmark: how long `rhid check` takes on large rule files.

Generates rule files of typical and dense shapes, runs the same load_rules() the daemon and
`rhid check` run, and prints one JSON object per case (best and median of several runs) plus the
ratio to the one-second budget. Nothing here asserts a time: it reports.

    python bench/rules_check.py [--rules 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rhid.health import Health, ProxyState
from rhid.plan import NO_INTENTS, decide, initial
from rhid.rulefile import load_rules

BUDGET_SECONDS = 1.0


def typical(i: int) -> str:
    """One host route, two backends: the vendor's example shape (1 in 10 is IPv6)."""
    address = f"2001:db8::{i:x}" if i % 10 == 0 else f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}"
    return f"{address} = all(b:be_static_{i % 500},b:be_app_{i})"


def dense(i: int) -> str:
    """Two networks (one IPv6) in a named table, a backend and a frontend, and a comment."""
    return (
        f"vol{i % 7}%10.{i // 65536}.{(i // 256) % 256}.{i % 256}/32, 2001:db8::{i:x} "
        f"= any(b:be_{i},f:fe_{i % 100})  # service {i}"
    )


def measure(make_line: Callable[[int], str], count: int, repeat: int, directory: Path) -> dict[str, object]:
    path = directory / f"{make_line.__name__}.cfg"
    path.write_text("".join(make_line(i) + "\n" for i in range(count)))
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        rules = load_rules(path)
        timings.append(time.perf_counter() - start)
    up = dict.fromkeys(rules.proxies, ProxyState(Health.UP, last_status="UP"))
    start = time.perf_counter()
    decide(initial(set(), set(), 0.0), rules, up, NO_INTENTS, 0.0).files()
    plan_seconds = time.perf_counter() - start
    best = min(timings)
    return {
        "case": make_line.__name__,
        "rules": len(rules.rules),
        "routes": len(rules.routes),
        "bytes": path.stat().st_size,
        "check_seconds_best": round(best, 4),
        "check_seconds_median": round(statistics.median(timings), 4),
        "budget_ratio_best": round(best / BUDGET_SECONDS, 3),
        "plan_seconds": round(plan_seconds, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for shape in (typical, dense):
            print(json.dumps(measure(shape, args.rules, args.repeat, Path(tmp))))


if __name__ == "__main__":
    main()
