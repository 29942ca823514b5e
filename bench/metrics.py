"""Benchmark: what metrics cost, by the number of routes.

For each size, a rule file of host routes (one backend per 50 routes), the loop's side (what
`planned` and `observe` do after a cycle that moved 1 % of the routes, and after a cycle that moved
none), and the serving
side (one render of the page, its size plain and gzipped). Best of --repeat runs. Prints a table
and one JSON object per size; nothing here asserts a time: it reports.

    python bench/metrics.py [--routes 100,1000,10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable

from rhid import health, metrics, plan, series
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, StreamState
from rhid.reconcile import BirdReport
from rhid.rules import parse_rules
from rhid.settings import parse_listen
from rhid.stats import Observation, ProxyStatus

HAPROXY = HAProxyReport(
    "/h", HAProxyState.REACHABLE, "1", None, (), StreamReport(StreamState.OFF, None, 0, 0)
)
BIRD = BirdReport("/b", BirdState.REACHABLE, "BIRD 2.0.12 ready.", True, (), None, None, ())


def best(repeat: int, run: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def measure(count: int, repeat: int) -> dict[str, object]:
    rules = parse_rules(
        "".join(
            f"10.{i // 65536}.{i // 256 % 256}.{i % 256} = all(b:be_{i % (count // 50 or 1)})\n"
            for i in range(count)
        )
    )
    proxies = sorted(rules.proxies, key=str)
    thresholds = health.Thresholds(fall=1, rise=1)
    up, _, _ = health.observe({}, dict.fromkeys(proxies, ProxyStatus(Observation.UP, "UP")), 1.0, thresholds)
    one_down, _, _ = health.observe(up, {proxies[0]: ProxyStatus(Observation.DOWN, "DOWN")}, 2.0, thresholds)
    first = plan.decide(plan.EMPTY, rules, up, plan.NO_INTENTS, 1.0)
    second = plan.decide(first, rules, one_down, plan.NO_INTENTS, 2.0)
    back = plan.decide(second, rules, up, plan.NO_INTENTS, 3.0)
    plans = [back, second]  # each with the transitions of 1 % of the routes against the other
    exporter = metrics.Exporter(parse_listen("127.0.0.1:9198"), "bench")  # never started: nothing listens
    tally, turn = series.Tally(), [0]

    def observe(moving: bool) -> None:
        """What Exporter.observe does in the loop after a cycle (without its clock reads)."""
        nonlocal tally
        before = plans[turn[0] % 2]
        turn[0] += moving
        after = plans[turn[0] % 2]
        if after is not before:
            tally = series.count(tally, after)
        tally = series.advance(tally, reloaded=None, duration=0.001, wall_now=2.0)
        exporter.frame = series.Frame("bench", after, up, HAPROXY, BIRD, tally, True, 0.0, 1.0, 2.0)

    moved = best(repeat, lambda: observe(True))
    still = best(repeat, lambda: observe(False))
    metrics.RENDER_GAP = metrics.RENDER_SHARE = 0.0  # every render a fresh one

    def render() -> bytes:
        return exporter.render()[0]

    rendered = best(repeat, render)
    page = render()
    return {
        "routes": count,
        "observe_moved_1pct_ms": round(moved * 1000, 2),
        "observe_still_ms": round(still * 1000, 2),
        "render_s": round(rendered, 3),
        "page_bytes": len(page),
        "page_gzip_bytes": len(gzip.compress(page, compresslevel=6)),
        "samples": page.count(b"\n") - page.count(b"\n#"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = [measure(int(count), args.repeat) for count in args.routes.split(",")]
    header = ("routes", "observe, 1% moved", "observe, none", "render", "page", "gzip")
    print("{:>7} {:>18} {:>14} {:>8} {:>10} {:>9}".format(*header))
    for r in results:
        print(
            f"{r['routes']:>7} {r['observe_moved_1pct_ms']:>15} ms {r['observe_still_ms']:>11} ms "
            f"{r['render_s']:>6} s {r['page_bytes']:>10} {r['page_gzip_bytes']:>9}"
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
