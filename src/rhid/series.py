"""What rhid exports to Prometheus, as values: one cycle's facts in, metric families out. Pure.

    tally = count(tally, plan)                                          # per plan made
    tally = advance(tally, reloaded=..., duration=..., wall_now=...)    # per cycle
    families(Frame(plan, states, haproxy, bird, tally, ...))            # at a scrape

`rhid.metrics` keeps the latest `Frame` and serves it. A Frame holds only immutable values (the
plan, the health mapping, the edges' typed reports, the tally), so the thread that answers a
scrape reads one while the loop builds the next, and the two share no lock. Nothing here derives a
verdict of its own: route states, `since` and transitions are the plan's, the edges' weather is
their reports'.

Labels come from the rule file only (`table`, `prefix`, `protocol`/`name`, `proxy`) and from rhid's
own fixed words (route states, health, the edges' states, and `haproxy_status`'s dozen words for
what HAProxy last said): nothing a peer prints can add a series, so the number of series is fixed
by the rules. Names follow the ecosystem (docs/notes/observability.md): an `rhid_` prefix, `_total`
counters, `_seconds` durations, `_timestamp_seconds` for wall-clock times, an `rhid_info` gauge.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from rhid import health
from rhid.model import BirdState, HAProxyState, Proxy, Route, StreamState
from rhid.plan import Decision, Plan, RouteState
from rhid.stats import ABSENT, KNOWN_BACKEND_WORDS, KNOWN_FRONTEND_STATUSES, NEVER_POLLED

Labels = dict[str, str]
Sample = tuple[str, Labels, float]

# Cycle durations: a quiet cycle takes about a millisecond, 10,000 routes 50-150 ms, a BIRD
# configure of a large table seconds (its wait is bounded at 30 s).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HELD = "held"
STATE_WORDS = (*(state.value for state in RouteState), HELD)  # rhid_route_state's `state` values
RELOAD_RESULTS = ("ok", "failed")
HAPROXY_WORDS = KNOWN_FRONTEND_STATUSES | KNOWN_BACKEND_WORDS
PENDING_SUFFIX = " (first check pending)"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its name (a counter's without `_total`), its type, its help, its samples."""

    name: str
    kind: str  # "gauge", "counter" or "histogram"
    help: str
    samples: list[Sample]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observed values by bucket (`counts` per bound, not cumulative, then +Inf) and their sum."""

    bounds: tuple[float, ...] = DURATION_BUCKETS
    counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    total: float = 0.0

    def record(self, value: float) -> Histogram:
        """The histogram with `value` added (in the first bucket whose bound is at least `value`)."""
        counts = list(self.counts)
        counts[bisect.bisect_left(self.bounds, value)] += 1
        return Histogram(self.bounds, tuple(counts), self.total + value)


@dataclass(frozen=True, slots=True)
class Tally:
    """What rhid counts across cycles: the cycles and their durations, each route's transitions, and
    the reloads (by result) with the last one's result and time."""

    cycles: int = 0
    durations: Histogram = Histogram()
    transitions: Mapping[Route, int] = field(default_factory=dict)
    reloads: Mapping[str, int] = field(default_factory=dict)
    last_reload: str = "none"  # none (since the start), ok or failed
    last_reload_at: float | None = None  # wall clock
    last_cycle_at: float = 0.0  # wall clock, at the end of the last cycle


def count(tally: Tally, plan: Plan) -> Tally:
    """The tally with a new plan's transitions counted (call it once per plan made: every plan's
    transitions are against the one before it); a route that left the plan leaves its count."""
    if not plan.transitions and all(route in plan.decisions for route in tally.transitions):
        return tally
    counts = {route: n for route, n in tally.transitions.items() if route in plan.decisions}
    for transition in plan.transitions:
        counts[transition.route] = counts.get(transition.route, 0) + 1
    return replace(tally, transitions=counts)


def advance(tally: Tally, *, reloaded: str | None, duration: float, wall_now: float) -> Tally:
    """The tally after one more cycle that took `duration` seconds and followed a reload with result
    `reloaded` (ok or failed; None: no reload since the last cycle)."""
    reloads, last, at = tally.reloads, tally.last_reload, tally.last_reload_at
    if reloaded is not None:
        reloads = {**reloads, reloaded: reloads.get(reloaded, 0) + 1}
        last, at = reloaded, wall_now
    durations = tally.durations.record(duration)
    return Tally(tally.cycles + 1, durations, tally.transitions, reloads, last, at, wall_now)


def haproxy_status(status: str) -> str:
    """What HAProxy last said of a proxy, as one of a fixed set of words: HAProxy's own (UP, DOWN,
    OPEN, PAUSED, STOP, FULL), or rhid's: pending (a first check is running), absent (no such
    proxy), no_answer (the poll got no usable reply), not_polled, other (a word rhid does not know)."""
    if status == NEVER_POLLED:
        return "not_polled"
    if status == ABSENT.status or status.startswith("absent for"):
        return "absent"
    if status.startswith("HAProxy"):  # rhid's words for a poll without a usable answer
        return "no_answer"
    if status.endswith(PENDING_SUFFIX):
        return "pending"
    word = status.split(" ", 1)[0]
    return word if word in HAPROXY_WORDS else "other"


def label(state: enum.StrEnum) -> str:
    """An edge's state as a label value: ``not polled`` -> ``not_polled``."""
    return state.value.replace(" ", "_")


def _flag(value: bool) -> float:
    return 1.0 if value else 0.0


class StreamFacts(Protocol):
    """What the metrics read of HAProxy's event stream (haproxy.StreamReport)."""

    @property
    def state(self) -> StreamState: ...


class HAProxyFacts(Protocol):
    """What the metrics read of the HAProxy edge's report (haproxy.HAProxyReport)."""

    @property
    def state(self) -> HAProxyState: ...

    @property
    def problems(self) -> tuple[str, ...]: ...

    @property
    def events(self) -> StreamFacts: ...


class BirdFacts(Protocol):
    """What the metrics read of the BIRD edge's report (reconcile.BirdReport)."""

    @property
    def state(self) -> BirdState: ...

    @property
    def in_sync(self) -> bool: ...

    @property
    def missing_protocols(self) -> tuple[str, ...]: ...

    @property
    def write_error(self) -> str | None: ...

    @property
    def problems(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One cycle's facts, as the metrics read them: every value immutable once handed over."""

    version: str
    plan: Plan  # its decisions, `since` (monotonic) and channels
    states: Mapping[Proxy, health.ProxyState]  # live health (the plan's is as of its last re-plan)
    haproxy: HAProxyFacts
    bird: BirdFacts
    tally: Tally
    ready: bool  # READY=1 sent: the first cycle and its exchange with BIRD are done
    started: float  # wall clock at rhid's start
    now: float  # monotonic, and the wall clock at the same moment
    wall_now: float

    def wall(self, moment: float) -> float:
        """A monotonic instant on the wall clock (seconds since the epoch)."""
        return self.wall_now - (self.now - moment)


def starting(version: str) -> list[Family]:
    """What a scrape sees before the first cycle has completed: the version, and not ready."""
    return [_info(version), Family("rhid_ready", "gauge", READY_HELP, [("rhid_ready", {}, 0.0)])]


READY_HELP = "1 once rhid told systemd READY=1 (its first cycle and exchange with BIRD are done)"


def families(frame: Frame) -> list[Family]:
    """Every series rhid exports, from one Frame."""
    return [*_daemon(frame), *_routes(frame), *_protocols(frame), *_proxies(frame), *_edges(frame)]


def _info(version: str) -> Family:
    return Family(
        "rhid_info", "gauge", "rhid's version (always 1)", [("rhid_info", {"version": version}, 1.0)]
    )


def _gauge(name: str, help_text: str, value: float, labels: Labels | None = None) -> Family:
    return Family(name, "gauge", help_text, [(name, labels or {}, value)])


def _daemon(frame: Frame) -> list[Family]:
    tally = frame.tally
    durations = tally.durations
    buckets: list[Sample] = []
    cumulative = 0
    for bound, count in zip((*durations.bounds, math.inf), durations.counts, strict=True):
        cumulative += count
        le = "+Inf" if bound == math.inf else repr(bound)
        buckets.append(("rhid_cycle_duration_seconds_bucket", {"le": le}, float(cumulative)))
    buckets += [
        ("rhid_cycle_duration_seconds_count", {}, float(cumulative)),
        ("rhid_cycle_duration_seconds_sum", {}, durations.total),
    ]
    reloads = [
        ("rhid_rules_reloads_total", {"result": result}, float(tally.reloads.get(result, 0)))
        for result in RELOAD_RESULTS
    ]
    reload_at = frame.started if tally.last_reload_at is None else tally.last_reload_at
    return [
        _info(frame.version),
        _gauge("rhid_ready", READY_HELP, _flag(frame.ready)),
        Family(
            "rhid_cycles", "counter", "cycles completed", [("rhid_cycles_total", {}, float(tally.cycles))]
        ),
        Family("rhid_cycle_duration_seconds", "histogram", "how long each cycle took", buckets),
        _gauge(
            "rhid_last_cycle_timestamp_seconds",
            "when the last cycle completed (Unix time)",
            tally.last_cycle_at,
        ),
        _gauge(
            "rhid_rules_last_reload_successful",
            "0 when the last reload of the rules failed (the old rules are kept), else 1",
            _flag(tally.last_reload != "failed"),
        ),
        _gauge(
            "rhid_rules_last_reload_timestamp_seconds",
            "when the rules were last reloaded, successfully or not (Unix time; the start before any)",
            reload_at,
        ),
        Family("rhid_rules_reloads", "counter", "reloads of the rules, by result", reloads),
    ]


def route_state(decision: Decision) -> str:
    """A route's state as its label: the plan's state, or `held` while its verdict is not known yet
    (it is then kept as the files had it: `rhid_route_announced` says which)."""
    return HELD if decision.held else decision.state.value


def _routes(frame: Frame) -> list[Family]:
    announced: list[Sample] = []
    state: list[Sample] = []
    info: list[Sample] = []
    since: list[Sample] = []
    moved: list[Sample] = []
    counts = frame.tally.transitions
    for route, decision in frame.plan.decisions.items():
        labels = {"table": route.table, "prefix": str(route.prefix)}
        announced.append(("rhid_route_announced", labels, _flag(decision.announced)))
        condition = decision.rule.condition.aggregate.value if decision.rule is not None else "none"
        info.append(
            ("rhid_route_info", {**labels, "protocol": route.channel.protocol, "condition": condition}, 1.0)
        )
        current = route_state(decision)
        for word in STATE_WORDS:
            state.append(("rhid_route_state", {**labels, "state": word}, _flag(word == current)))
        moved.append(("rhid_route_transitions_total", labels, float(counts.get(route, 0))))
        moment = frame.plan.since.get(route)
        if moment is not None:
            since.append(("rhid_route_last_change_timestamp_seconds", labels, frame.wall(moment)))
    return [
        Family(
            "rhid_route_announced", "gauge", "1 while rhid announces the route (its file lists it)", announced
        ),
        Family(
            "rhid_route_state",
            "gauge",
            "the route's state (1 for the current one); held: not known yet, kept as the files had it",
            state,
        ),
        Family(
            "rhid_route_info",
            "gauge",
            "each route's BIRD protocol and its rule's condition (all, any, never, always; none: no rule)",
            info,
        ),
        Family(
            "rhid_route_last_change_timestamp_seconds",
            "gauge",
            "when the route last moved, or was first named by a rule (Unix time)",
            since,
        ),
        Family(
            "rhid_route_transitions", "counter", "changes of the route's state, by the state reached", moved
        ),
    ]


def _protocols(frame: Frame) -> list[Family]:
    files = frame.plan.prefixes()
    missing = set(frame.bird.missing_protocols)
    routes: list[Sample] = []
    absent: list[Sample] = []
    for channel in sorted(files):
        name = channel.protocol
        routes.append(
            (
                "rhid_protocol_announced_routes",
                {"name": name, "table": channel.table},
                float(len(files[channel])),
            )
        )
        absent.append(("rhid_bird_protocol_missing", {"name": name}, _flag(name in missing)))
    return [
        Family(
            "rhid_protocol_announced_routes",
            "gauge",
            "routes rhid's include file for the BIRD static protocol `name` announces "
            "(compare bird_exporter's bird_protocol_prefix_import_count)",
            routes,
        ),
        Family(
            "rhid_bird_protocol_missing",
            "gauge",
            "1 while BIRD has no protocol `name` for rhid's file",
            absent,
        ),
    ]


def _proxies(frame: Frame) -> list[Family]:
    healths: list[Sample] = []
    statuses: list[Sample] = []
    moved: list[Sample] = []
    since: list[Sample] = []
    for proxy, state in frame.states.items():
        labels = {"kind": proxy.kind.word, "proxy": proxy.name}
        for member in health.Health:
            healths.append(
                ("rhid_proxy_health", {**labels, "health": member.value}, _flag(state.health is member))
            )
        statuses.append(
            ("rhid_proxy_haproxy_status", {**labels, "status": haproxy_status(state.last_status)}, 1.0)
        )
        moved.append(("rhid_proxy_transitions_total", labels, float(state.transitions)))
        if state.health is not health.Health.UNKNOWN:
            since.append(("rhid_proxy_last_change_timestamp_seconds", labels, frame.wall(state.since)))
    return [
        Family(
            "rhid_proxy_health",
            "gauge",
            "rhid's verdict on each proxy the rules name, after --fall/--rise (1 for the current one)",
            healths,
        ),
        Family(
            "rhid_proxy_haproxy_status",
            "gauge",
            "what HAProxy last said of the proxy, as one word (always 1)",
            statuses,
        ),
        Family("rhid_proxy_transitions", "counter", "changes of the proxy's health", moved),
        Family(
            "rhid_proxy_last_change_timestamp_seconds",
            "gauge",
            "when the proxy's health last changed (Unix time)",
            since,
        ),
    ]


def _states(name: str, help_text: str, current: enum.StrEnum) -> Family:
    """One series per state of the edge's kind, 1 for the current one."""
    samples: list[Sample] = [
        (name, {"state": label(member)}, _flag(member is current)) for member in type(current)
    ]
    return Family(name, "gauge", help_text, samples)


def _edges(frame: Frame) -> list[Family]:
    haproxy, bird = frame.haproxy, frame.bird
    return [
        _gauge(
            "rhid_haproxy_up",
            "1 while HAProxy's last reply was readable",
            _flag(haproxy.state is HAProxyState.REACHABLE),
        ),
        _states("rhid_haproxy_state", "the HAProxy edge's state (1 for the current one)", haproxy.state),
        _gauge(
            "rhid_haproxy_events_streaming",
            "1 while HAProxy's event ring is streamed (the event wake-up)",
            _flag(haproxy.events.state is StreamState.STREAMING),
        ),
        _gauge(
            "rhid_bird_up", "1 while BIRD's control socket answers", _flag(bird.state is BirdState.REACHABLE)
        ),
        _states("rhid_bird_state", "the BIRD edge's state (1 for the current one)", bird.state),
        _gauge(
            "rhid_bird_in_sync",
            "1 while BIRD has applied rhid's files and announces exactly what they say",
            _flag(bird.in_sync),
        ),
        _gauge(
            "rhid_files_write_failing",
            "1 while an include file cannot be written (BIRD keeps what it said before)",
            _flag(bird.write_error is not None),
        ),
        Family(
            "rhid_problems",
            "gauge",
            "problems each edge reports (rhid status prints each as a PROBLEM line)",
            [
                ("rhid_problems", {"edge": "haproxy"}, float(len(haproxy.problems))),
                ("rhid_problems", {"edge": "bird"}, float(len(bird.problems))),
            ],
        ),
    ]
