"""The metric names rhid really exports, and the metric names a PromQL expression reads: what the
alerting rules and the dashboard may use is checked against what a real page holds."""

from __future__ import annotations

import functools
import re

from prometheus_client.parser import text_string_to_metric_families

from rhid import health, metrics, plan, series
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, StreamState
from rhid.reconcile import BirdReport
from rhid.rules import parse_rules
from rhid.settings import parse_listen
from rhid.stats import Observation, ProxyStatus

# Words of PromQL that look like names but are not metrics.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
    | {"inf", "nan", "Inf", "NaN"}
)


@functools.cache
def exported() -> frozenset[str]:
    """Every sample name on a page rendered by the real exporter, from a frame that has every kind
    of route, proxy and edge (histogram buckets, counters' _total and process_* included)."""
    rules = parse_rules("10.0.0.1, 2001:db8::1 = all(b:be_app)\nvol2%10.0.0.2 = any(b:be_app,f:fe)\n")
    statuses = dict.fromkeys(rules.proxies, ProxyStatus(Observation.UP, "UP"))
    states, _, _ = health.observe({}, statuses, 1.0, health.Thresholds(fall=1, rise=1))
    decided = plan.decide(plan.EMPTY, rules, states, plan.NO_INTENTS, 1.0)
    tally = series.advance(series.count(series.Tally(), decided), reloaded="ok", duration=0.01, wall_now=2.0)
    exporter = metrics.Exporter(parse_listen("127.0.0.1:9198"), "0")  # never started: nothing listens
    haproxy = HAProxyReport(
        "/h", HAProxyState.REACHABLE, "1", None, (), StreamReport(StreamState.OFF, None, 0, 0)
    )
    bird = BirdReport("/b", BirdState.REACHABLE, "BIRD 2.0.12 ready.", True, (), None, None, ())
    exporter.frame = series.Frame("0", decided, states, haproxy, bird, tally, True, 0.0, 1.0, 2.0)
    page, _ = exporter.render()
    return frozenset(
        sample.name
        for family in text_string_to_metric_families(page.decode())  # type: ignore[no-untyped-call,unused-ignore]
        for sample in family.samples
    )


def names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, aggregations, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, label_replace's regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = set()
    for match in re.finditer(r"(?<![0-9.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group(0) in KEYWORDS:
            continue  # a function or an aggregation
        found.add(match.group(0))
    return found
