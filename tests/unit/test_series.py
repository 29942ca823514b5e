"""The series rhid exports, from one cycle's facts: values, counters, and labels bounded by the rules."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from rhid import health, plan, series
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, Proxy, Route, StreamState
from rhid.reconcile import BirdReport
from rhid.rules import RuleSet, parse_rules
from rhid.stats import Observation, ProxyStatus

RULES = parse_rules(
    "10.0.0.1, 2001:db8::1 = all(b:be_app)\nvol2%10.0.0.2 = any(b:be_app,f:fe_www)\n10.0.0.3 = never\n"
)
THRESHOLDS = health.Thresholds(fall=1, rise=1)
HAPROXY = HAProxyReport(
    socket="/run/haproxy.sock",
    state=HAProxyState.REACHABLE,
    pid="42",
    last_error=None,
    problems=(),
    events=StreamReport(StreamState.STREAMING, "rhid", 3, 300),
)
BIRD = BirdReport(
    socket="/run/bird/bird.ctl",
    state=BirdState.REACHABLE,
    greeting="BIRD 2.0.12 ready.",
    in_sync=True,
    missing_protocols=(),
    write_error=None,
    last_error=None,
    problems=(),
)


def route(text: str) -> Route:
    return next(r for r in RULES.routes if str(r) == text)


def polled(
    statuses: Mapping[str, ProxyStatus], now: float, before: Mapping[Proxy, health.ProxyState]
) -> Mapping[Proxy, health.ProxyState]:
    observed = {proxy: statuses[str(proxy)] for proxy in RULES.proxies}
    return health.observe(before, observed, now, THRESHOLDS)[0]


UP = {"b:be_app": ProxyStatus(Observation.UP, "UP"), "f:fe_www": ProxyStatus(Observation.UP, "OPEN")}
DOWN = {
    "b:be_app": ProxyStatus(Observation.DOWN, "DOWN"),
    "f:fe_www": ProxyStatus(Observation.DOWN, "PAUSED"),
}


def decide(
    states: Mapping[Proxy, health.ProxyState],
    previous: plan.Plan = plan.EMPTY,
    now: float = 0.0,
    rules: RuleSet = RULES,
) -> plan.Plan:
    return plan.decide(previous, rules, states, plan.NO_INTENTS, now)


def frame(
    the_plan: plan.Plan,
    states: Mapping[Proxy, health.ProxyState],
    tally: series.Tally | None = None,
    *,
    haproxy: HAProxyReport = HAPROXY,
    bird: BirdReport = BIRD,
    ready: bool = True,
) -> series.Frame:
    return series.Frame(
        version="9.9",
        plan=the_plan,
        states=states,
        haproxy=haproxy,
        bird=bird,
        tally=tally or series.Tally(),
        ready=ready,
        started=1000.0,
        now=50.0,
        wall_now=2000.0,
    )


def samples(found: list[series.Family]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by name and labels."""
    return {
        (name, frozenset(labels.items())): value for family in found for name, labels, value in family.samples
    }


def value(found: list[series.Family], metric: str, **labels: str) -> float:
    return samples(found)[metric, frozenset(labels.items())]


def test_count_adds_each_plans_transitions_and_forgets_routes_that_left() -> None:
    """Each plan's transitions add one to their routes; a plan without any changes nothing; a route
    that leaves the plan leaves its count."""
    up = decide(polled(UP, 1.0, {}), now=1.0)
    down = decide(polled(DOWN, 2.0, {}), up, now=2.0)
    tally = series.count(series.Tally(), up)  # announced from withdrawn: the plan's transitions
    assert tally.transitions == {
        route(r): 1 for r in ("vol1%10.0.0.1/32", "vol1%2001:db8::1/128", "vol2%10.0.0.2/32")
    }
    tally = series.count(tally, down)
    assert tally.transitions[route("vol2%10.0.0.2/32")] == 2
    assert route("vol1%10.0.0.3/32") not in tally.transitions  # never: it never moved
    same = series.count(tally, replace(down, transitions=()))
    assert same is tally
    fewer = decide(
        polled(UP, 3.0, {}), down, now=3.0, rules=parse_rules("vol2%10.0.0.2 = any(b:be_app,f:fe_www)\n")
    )
    assert set(series.count(tally, fewer).transitions) == {
        route("vol2%10.0.0.2/32"),
        *(t.route for t in fewer.transitions),
    }
    assert route("vol1%10.0.0.1/32") not in series.count(tally, replace(fewer, transitions=())).transitions


def test_advance_counts_cycles_durations_and_reloads() -> None:
    """Each cycle adds one to the cycles and its duration to the histogram, and a reload by its result,
    with the last one's result and time."""
    tally = series.advance(series.Tally(), reloaded=None, duration=0.002, wall_now=10.0)
    tally = series.advance(tally, reloaded="failed", duration=0.02, wall_now=11.0)
    tally = series.advance(tally, reloaded=None, duration=0.5, wall_now=12.0)
    assert tally.cycles == 3
    assert tally.durations.total == 0.522
    assert (tally.reloads, tally.last_reload, tally.last_reload_at, tally.last_cycle_at) == (
        {"failed": 1},
        "failed",
        11.0,
        12.0,
    )
    tally = series.advance(tally, reloaded="ok", duration=0.0, wall_now=13.0)
    assert (tally.reloads, tally.last_reload) == ({"failed": 1, "ok": 1}, "ok")


def test_histogram_puts_a_value_in_the_first_bucket_at_least_as_large() -> None:
    """A value equal to a bound counts in that bound's bucket; one above every bound in +Inf."""
    histogram = series.Histogram().record(0.001).record(0.0011).record(100.0)
    assert histogram.counts[0] == 1
    assert histogram.counts[1] == 1
    assert histogram.counts[-1] == 1
    assert sum(histogram.counts) == 3


def test_haproxy_status_is_one_of_a_fixed_set_of_words() -> None:
    """HAProxy's own status words pass; rhid's words and anything else map to a handful of words."""
    cases = {
        "UP": "UP",
        "UP 1/3": "UP",
        "DOWN": "DOWN",
        "OPEN": "OPEN",
        "PAUSED": "PAUSED",
        "UP (first check pending)": "pending",
        "absent": "absent",
        "absent for over 60 s": "absent",
        "never polled": "not_polled",
        "HAProxy unreachable": "no_answer",
        "HAProxy's reply unreadable": "no_answer",
        "MAINT": "other",
        "ZOMBIE 1/2": "other",
    }
    assert {status: series.haproxy_status(status) for status in cases} == cases


def test_before_the_first_cycle_only_the_version_and_not_ready() -> None:
    """A scrape before the first cycle completes sees rhid_info and rhid_ready 0, nothing else."""
    found = series.starting("9.9")
    assert samples(found) == {
        ("rhid_info", frozenset({("version", "9.9")})): 1.0,
        ("rhid_ready", frozenset()): 0.0,
    }


def test_families_of_a_frame() -> None:
    """Routes, protocols, proxies, edges and counters read exactly the frame's values."""
    states_up = polled(UP, 1.0, {})
    states = polled(DOWN, 40.0, states_up)
    up = decide(states_up, now=1.0)
    down = decide(states, up, now=45.0)  # the routes of be_app move at 45 s
    tally = series.count(series.count(series.Tally(), up), down)
    tally = series.advance(tally, reloaded=None, duration=0.003, wall_now=1990.0)
    tally = series.advance(tally, reloaded=None, duration=0.04, wall_now=1999.0)
    found = series.families(frame(down, states, tally))
    two = {"table": "vol2", "prefix": "10.0.0.2/32"}
    assert value(found, "rhid_info", version="9.9") == 1.0
    assert value(found, "rhid_ready") == 1.0
    assert value(found, "rhid_cycles_total") == 2.0
    assert value(found, "rhid_cycle_duration_seconds_bucket", le="0.0025") == 0.0
    assert value(found, "rhid_cycle_duration_seconds_bucket", le="0.005") == 1.0
    assert value(found, "rhid_cycle_duration_seconds_bucket", le="0.05") == 2.0
    assert value(found, "rhid_cycle_duration_seconds_bucket", le="+Inf") == 2.0
    assert value(found, "rhid_cycle_duration_seconds_count") == 2.0
    assert math.isclose(value(found, "rhid_cycle_duration_seconds_sum"), 0.043)
    assert value(found, "rhid_last_cycle_timestamp_seconds") == 1999.0
    assert value(found, "rhid_rules_last_reload_successful") == 1.0
    assert value(found, "rhid_rules_last_reload_timestamp_seconds") == 1000.0  # the start: no reload yet
    assert value(found, "rhid_rules_reloads_total", result="failed") == 0.0
    assert value(found, "rhid_route_announced", **two) == 0.0
    assert value(found, "rhid_route_state", **two, state="withdrawn") == 1.0
    assert value(found, "rhid_route_state", **two, state="announced") == 0.0
    assert value(found, "rhid_route_state", **two, state="held") == 0.0
    assert value(found, "rhid_route_transitions_total", **two) == 2.0  # announced at 1 s, withdrawn at 45 s
    assert value(found, "rhid_route_transitions_total", table="vol1", prefix="10.0.0.3/32") == 0.0
    assert value(found, "rhid_route_info", **two, protocol="vol2", condition="any") == 1.0
    assert value(
        found, "rhid_route_info", table="vol1", prefix="2001:db8::1/128", protocol="vol1_v6", condition="all"
    )
    assert value(found, "rhid_route_last_change_timestamp_seconds", **two) == 1995.0  # 5 s before now
    never = {"table": "vol1", "prefix": "10.0.0.3/32"}
    assert value(found, "rhid_route_last_change_timestamp_seconds", **never) == 1951.0  # named at 1 s
    undated = series.families(frame(replace(down, since={}), states, tally))
    assert not [s for f in undated for s in f.samples if s[0] == "rhid_route_last_change_timestamp_seconds"]
    assert value(found, "rhid_protocol_announced_routes", name="vol2", table="vol2") == 0.0
    assert value(found, "rhid_bird_protocol_missing", name="vol1_v6") == 0.0
    app = {"kind": "backend", "proxy": "be_app"}
    assert value(found, "rhid_proxy_health", **app, health="down") == 1.0
    assert value(found, "rhid_proxy_health", **app, health="up") == 0.0
    assert value(found, "rhid_proxy_haproxy_status", kind="frontend", proxy="fe_www", status="PAUSED") == 1.0
    assert value(found, "rhid_proxy_transitions_total", **app) == 2.0
    assert value(found, "rhid_proxy_last_change_timestamp_seconds", **app) == 1990.0
    assert value(found, "rhid_haproxy_up") == 1.0
    assert value(found, "rhid_haproxy_state", state="reachable") == 1.0
    assert value(found, "rhid_haproxy_state", state="not_polled") == 0.0
    assert value(found, "rhid_haproxy_events_streaming") == 1.0
    assert value(found, "rhid_bird_up") == 1.0
    assert value(found, "rhid_bird_in_sync") == 1.0
    assert value(found, "rhid_files_write_failing") == 0.0
    assert value(found, "rhid_problems", edge="bird") == 0.0


def test_families_say_what_is_wrong() -> None:
    """Announced and held routes, a missing protocol, a failed reload, unreachable edges, a file not
    written and unknown health read as such."""
    states = polled(UP, 1.0, {})
    announced = decide(states)
    files = plan.initial({route("vol2%10.0.0.2/32")}, set(), 0.0)
    held = decide({}, files)  # nothing known yet: as the files have it
    tally = series.advance(series.Tally(), reloaded="failed", duration=0.0, wall_now=1500.0)
    haproxy = replace(
        HAPROXY,
        state=HAProxyState.GARBLED,
        events=StreamReport(StreamState.OFF, None, 0, 0),
        problems=("a", "b"),
    )
    bird = replace(
        BIRD,
        state=BirdState.UNREACHABLE,
        in_sync=False,
        missing_protocols=("vol2",),
        write_error="/run/rhid/vol1.ipv4.conf: No space left on device",
        problems=("c",),
    )
    found = series.families(frame(announced, states, tally, haproxy=haproxy, bird=bird))
    assert value(found, "rhid_route_announced", table="vol1", prefix="10.0.0.1/32") == 1.0
    assert value(found, "rhid_protocol_announced_routes", name="vol1", table="vol1") == 1.0
    assert value(found, "rhid_protocol_announced_routes", name="vol1_v6", table="vol1") == 1.0
    assert value(found, "rhid_bird_protocol_missing", name="vol2") == 1.0
    assert value(found, "rhid_rules_last_reload_successful") == 0.0
    assert value(found, "rhid_rules_last_reload_timestamp_seconds") == 1500.0
    assert value(found, "rhid_rules_reloads_total", result="failed") == 1.0
    assert value(found, "rhid_haproxy_up") == 0.0
    assert value(found, "rhid_haproxy_state", state="garbled") == 1.0
    assert sum(v for (n, _), v in samples(found).items() if n == "rhid_haproxy_state") == 1.0
    assert value(found, "rhid_haproxy_events_streaming") == 0.0
    assert value(found, "rhid_bird_up") == 0.0
    assert value(found, "rhid_bird_state", state="unreachable") == 1.0
    assert value(found, "rhid_bird_in_sync") == 0.0
    assert value(found, "rhid_files_write_failing") == 1.0
    assert value(found, "rhid_problems", edge="haproxy") == 2.0
    found = series.families(frame(held, {}, ready=False))
    assert value(found, "rhid_ready") == 0.0  # cycled, but BIRD's first exchange is not over
    two = {"table": "vol2", "prefix": "10.0.0.2/32"}
    assert value(found, "rhid_route_state", **two, state="held") == 1.0
    assert value(found, "rhid_route_state", **two, state="announced") == 0.0
    assert value(found, "rhid_route_announced", **two) == 1.0  # held as the files had it
    unknown = polled(
        {
            "b:be_app": ProxyStatus(Observation.UNKNOWN, "x"),
            "f:fe_www": ProxyStatus(Observation.PENDING, "UP (first check pending)"),
        },
        1.0,
        {},
    )
    found = series.families(frame(decide(unknown), unknown))
    fe = {"kind": "frontend", "proxy": "fe_www"}
    assert value(found, "rhid_proxy_health", **fe, health="unknown") == 1.0
    assert value(found, "rhid_proxy_haproxy_status", **fe, status="pending") == 1.0
    assert ("rhid_proxy_last_change_timestamp_seconds", frozenset(fe.items())) not in samples(found)


def test_a_route_no_rule_names_any_more_has_condition_none() -> None:
    """A route still in the files but in no rule is in the plan, withdrawn, with condition none."""
    gone = Route("vol9", route("vol1%10.0.0.1/32").prefix)
    found = series.families(frame(decide({}, plan.initial({gone}, set(), 0.0)), {}))
    labels = {"table": "vol9", "prefix": "10.0.0.1/32"}
    assert value(found, "rhid_route_info", **labels, protocol="vol9", condition="none") == 1.0
    assert value(found, "rhid_route_state", **labels, state="withdrawn") == 1.0


STATUS_TEXT = st.text(st.characters(codec="latin-1"), max_size=40)


@given(statuses=st.lists(STATUS_TEXT, min_size=2, max_size=2))
def test_what_haproxy_prints_never_adds_a_series(statuses: list[str]) -> None:
    """Whatever HAProxy prints as a status, the series and their label names are those the rules
    fix, and every status label is one of rhid's own words."""
    observed = {
        "b:be_app": ProxyStatus(Observation.DOWN, statuses[0]),
        "f:fe_www": ProxyStatus(Observation.UP, statuses[1]),
    }
    states = polled(observed, 1.0, {})
    weird = series.families(frame(decide(states), states))
    plain = series.families(frame(decide(polled(UP, 1.0, {})), polled(UP, 1.0, {})))

    def shape(found: list[series.Family]) -> list[tuple[str, tuple[str, ...]]]:
        return sorted((name, tuple(sorted(labels))) for family in found for name, labels, _ in family.samples)

    assert shape(weird) == shape(plain)
    words = {labels["status"] for family in weird for _, labels, _ in family.samples if "status" in labels}
    allowed = {
        "UP",
        "DOWN",
        "OPEN",
        "PAUSED",
        "STOP",
        "FULL",
        "pending",
        "absent",
        "not_polled",
        "no_answer",
        "other",
    }
    assert words <= allowed
