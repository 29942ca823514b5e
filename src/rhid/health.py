"""Per-proxy health over time: a pure state machine, `step(state, observation, now, thresholds)`.

A proxy starts UNKNOWN. It becomes UP after `rise` consecutive up observations and DOWN after
`fall` consecutive down observations; a contrary observation restarts the count. Observations
that carry no information (PENDING: first check after an HAProxy start or reload is still
running; ABSENT for a proxy seen before: it was removed by a reload, and the vendor documents that
it keeps its last status) leave the state and the counts alone.

A vanished proxy keeps its last status only for `vanished_keep` seconds (default 60): long enough
for a reload's brief gap, not for a backend renamed for good, whose route would otherwise depend on
nothing real for as long as rhid runs. From then on each poll without it counts as down, as for a
proxy never seen.

    state     observation                         effect
    any       UP                                  down_count = 0; up_count += 1; UP when up_count >= rise
    any       DOWN, ABSENT never seen, or ABSENT  up_count = 0; down_count += 1; DOWN when down_count >= fall
              vanished for vanished_keep or more  (and the expiry is reported once)
    any       PENDING, or ABSENT seen and         nothing (and a vanished proxy is reported once)
              vanished for less than vanished_keep
    any       UNKNOWN (garbled reply)             nothing: a peer's garbage is never a down observation

Counts saturate at their threshold, so a settled proxy is a fixed point: `step` then returns the
very same state, which keeps a cycle cheap with thousands of proxies. `observe` steps a whole poll.
The daemon owns the clock and passes `now` (monotonic seconds) in. This is the hysteresis policy;
the others (damping, guards, drains) get modules of the same shape.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from rhid.model import HAProxyState, LogLine, Proxy, ServerTerm
from rhid.stats import NEVER_POLLED, Counts, Observation, ProxyStatus

# The vendor's timing: fall after 3 down polls, rise after 1 up poll.
DEFAULT_FALL = 3
DEFAULT_RISE = 1
DEFAULT_UNREADABLE_DOWN_AFTER = 30.0


class Health(enum.Enum):
    """What rhid currently believes about a proxy."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


DEFAULT_VANISHED_KEEP = 60.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How many consecutive observations turn a proxy down (`fall`) or up (`rise`), and how long a
    proxy that vanished keeps its last status (`vanished_keep`, seconds)."""

    fall: int = DEFAULT_FALL
    rise: int = DEFAULT_RISE
    vanished_keep: float = DEFAULT_VANISHED_KEEP
    # A running count advances at most once per `spacing` seconds: polls woken by a burst of HAProxy
    # events 10 ms apart must not turn `fall` 3 into 20 ms (it is a debounce, not a count of reads).
    spacing: float = 0.0
    # An HAProxy whose replies stay unreadable (or whose socket refuses rhid) counts as down after
    # this long; before, nothing is known and routes hold.
    unreadable_down_after: float = DEFAULT_UNREADABLE_DOWN_AFTER

    def __post_init__(self) -> None:
        if self.fall < 1 or self.rise < 1:
            raise ValueError("fall and rise must be at least 1")
        if not self.vanished_keep >= 0:
            raise ValueError("vanished_keep must be 0 or more seconds")

    @property
    def vanished_status(self) -> str:
        """What a vanished proxy's last status says once it counts as down."""
        return f"absent for over {self.vanished_keep:g} s"


@dataclass(frozen=True, slots=True)
class ProxyState:
    """One proxy's health, its counters and the last thing HAProxy said about it.

    `seen`: HAProxy has shown the proxy at least once. `vanished`: seen before, absent from the last
    poll (a reload removed or renamed it); `vanished_since` is when it went missing (monotonic
    seconds), None while it is not vanished. A proxy polled but never seen has `seen` False and
    `last_status` "absent" (`never_seen`)."""

    health: Health = Health.UNKNOWN
    up_count: int = 0
    down_count: int = 0
    since: float = 0.0
    last_status: str = NEVER_POLLED
    seen: bool = False
    vanished: bool = False
    transitions: int = 0
    vanished_since: float | None = None
    counted_at: float = float("-inf")  # when the running up or down count last advanced

    @property
    def never_seen(self) -> bool:
        """True when HAProxy answered but has never shown this proxy (it counts as down)."""
        return not self.seen and self.last_status == "absent"


INITIAL = ProxyState()  # immutable, so every new proxy can share it


@dataclass(frozen=True, slots=True)
class WentUp:
    """The proxy became UP."""

    status: str


@dataclass(frozen=True, slots=True)
class WentDown:
    """The proxy became DOWN."""

    status: str


@dataclass(frozen=True, slots=True)
class Vanished:
    """A proxy seen before is missing from HAProxy's output; it keeps its last health."""


@dataclass(frozen=True, slots=True)
class VanishedTooLong:
    """A vanished proxy has been missing for `kept` seconds: from now on it counts as down."""

    kept: float


@dataclass(frozen=True, slots=True)
class NeverSeen:
    """A proxy the rules name has never appeared in HAProxy's output; it counts as down."""


Event = WentUp | WentDown | Vanished | VanishedTooLong | NeverSeen


def step(
    state: ProxyState, observed: ProxyStatus, now: float, thresholds: Thresholds
) -> tuple[ProxyState, tuple[Event, ...]]:
    """Apply one observation. Pure: the same inputs always give the same state and events."""
    observation = observed.observation
    if _steady(state, observed, thresholds) or observation is Observation.UNKNOWN:
        return state, ()  # the common case at scale: nothing changes, no new object
    events: list[Event] = []
    status = observed.status
    if observation is Observation.ABSENT:
        held = _absent(state, now, thresholds)
        if isinstance(held, tuple):
            return held
        status, events = held, [] if state.last_status == held else [_missing(state, thresholds)]
        observation = Observation.DOWN
    elif observation is Observation.PENDING:
        return replace(state, seen=True, vanished=False, vanished_since=None, last_status=status), ()
    else:
        state = replace(state, seen=True, vanished=False, vanished_since=None)
    state = replace(state, last_status=status)
    early = now - state.counted_at < thresholds.spacing  # too soon to advance a running count
    if observation is Observation.UP:
        up = state.up_count if state.up_count and early else state.up_count + 1
        counted = now if up != state.up_count else state.counted_at
        state = replace(state, up_count=min(up, thresholds.rise), down_count=0, counted_at=counted)
        if state.health is not Health.UP and state.up_count >= thresholds.rise:
            state = replace(state, health=Health.UP, since=now, transitions=state.transitions + 1)
            events.append(WentUp(status))
    else:
        down = state.down_count if state.down_count and early else state.down_count + 1
        counted = now if down != state.down_count else state.counted_at
        state = replace(state, down_count=min(down, thresholds.fall), up_count=0, counted_at=counted)
        if state.health is not Health.DOWN and state.down_count >= thresholds.fall:
            state = replace(state, health=Health.DOWN, since=now, transitions=state.transitions + 1)
            events.append(WentDown(status))
    return state, tuple(events)


def _absent(
    state: ProxyState, now: float, thresholds: Thresholds
) -> tuple[ProxyState, tuple[Event, ...]] | str:
    """A poll without the proxy: the held state (a proxy seen before, vanished for less than
    `vanished_keep`), or the status under which it counts as down."""
    if not state.seen:
        return "absent"
    if state.vanished_since is None:
        return replace(state, vanished=True, vanished_since=now), (Vanished(),)
    if now - state.vanished_since < thresholds.vanished_keep:
        return state, ()
    return thresholds.vanished_status  # kept long enough: down, as if never seen


def _missing(state: ProxyState, thresholds: Thresholds) -> Event:
    """The event of a proxy that starts counting as down because HAProxy does not show it."""
    return VanishedTooLong(thresholds.vanished_keep) if state.seen else NeverSeen()


def _steady(state: ProxyState, observed: ProxyStatus, thresholds: Thresholds) -> bool:
    """True when `observed` confirms a settled state exactly (counts saturated, same status)."""
    if state.last_status != observed.status or state.vanished or not state.seen:
        return False
    if observed.observation is Observation.UP:
        return state.health is Health.UP and state.down_count == 0 and state.up_count == thresholds.rise
    if observed.observation is Observation.DOWN:
        return state.health is Health.DOWN and state.up_count == 0 and state.down_count == thresholds.fall
    return False


def in_transition(state: ProxyState) -> bool:
    """True while a fall or rise count has started: the proxy may change state at the next polls."""
    if state.health is Health.UP:
        return state.down_count > 0
    if state.health is Health.DOWN:
        return state.up_count > 0
    return state.up_count > 0 or state.down_count > 0


def is_up(state: ProxyState) -> bool | None:
    """True/False once the proxy's health is known, None while it is UNKNOWN."""
    if state.health is Health.UNKNOWN:
        return None
    return state.health is Health.UP


ProxyEvent = tuple[Proxy, Event, ProxyState]


def observe(
    states: Mapping[Proxy, ProxyState],
    observed: Mapping[Proxy, ProxyStatus],
    now: float,
    thresholds: Thresholds,
) -> tuple[Mapping[Proxy, ProxyState], list[ProxyEvent], bool]:
    """Step every observed proxy. Returns the states (the very same mapping when no proxy changed:
    the common case at scale), each proxy's events, and whether any proxy's health changed."""
    updated: dict[Proxy, ProxyState] | None = None
    events: list[ProxyEvent] = []
    moved = False
    for proxy, status in observed.items():
        before = states.get(proxy, INITIAL)
        after, happened = step(before, status, now, thresholds)
        if after is before:
            continue
        if updated is None:
            updated = dict(states)
        updated[proxy] = after
        moved = moved or after.health is not before.health
        events.extend((proxy, event, after) for event in happened)
    return (states if updated is None else updated), events, moved


def keep(states: Mapping[Proxy, ProxyState], proxies: Collection[Proxy]) -> dict[Proxy, ProxyState]:
    """The states of `proxies` only (after a reload: a rule that stays keeps its counters)."""
    wanted = set(proxies)
    return {proxy: state for proxy, state in states.items() if proxy in wanted}


def describe(event: Event, state: ProxyState) -> tuple[str, str, dict[str, str]]:
    """How an event is logged: its name, its level, and the fields it adds."""
    if isinstance(event, WentUp):
        return "proxy.up", "info", {}
    if isinstance(event, WentDown):
        return "proxy.down", "warning", {}
    if isinstance(event, Vanished):
        return "proxy.vanished", "warning", {"keeps": state.health.value}
    if isinstance(event, VanishedTooLong):
        return "proxy.vanished_too_long", "warning", {"kept_for": f"{event.kept:g} s", "counts_as": "down"}
    return "proxy.never_seen", "warning", {"counts_as": "down"}


SAMPLE_SIZE = 10  # names a grouped log line shows; `count` says how many there were


def sample(proxies: Iterable[Proxy | ServerTerm]) -> list[str]:
    """The names a grouped log line shows: the SAMPLE_SIZE first in sorted order."""
    return heapq.nsmallest(SAMPLE_SIZE, (str(proxy) for proxy in proxies))


def summarize(events: Sequence[ProxyEvent | TermEvent]) -> list[LogLine]:
    """One cause, one line: the events of one poll grouped by what happened and why (event, level,
    HAProxy's status and the event's own fields), in the order each group first appears.

    Every line says how many proxies (`count`) and names a sorted sample of at most SAMPLE_SIZE
    (`proxies`); a group of one also has `proxy` and `transitions`, as before. A dead HAProxy under
    10,000 rules is then one `proxy.down` line, not 10,000, and `grep proxy.down` still finds it.
    """
    groups: dict[tuple[object, ...], list[ProxyEvent | TermEvent]] = {}
    for item in events:
        proxy, event, state = item
        name, level, extra = describe(event, state)
        key = (name, level, state.last_status, *sorted(extra.items()))
        groups.setdefault(key, []).append(item)
    lines = []
    for members in groups.values():
        proxy, event, state = members[0]
        name, level, extra = describe(event, state)
        shown = sample(member[0] for member in members)
        fields: dict[str, object] = {"status": state.last_status, "proxies": shown, "count": len(members)}
        if len(members) == 1:
            fields = {"proxy": str(proxy), **fields, "transitions": state.transitions}
        lines.append(LogLine(name, level, {**fields, **extra}))
    return lines


# ---- a poll that said nothing of any proxy ----------------------------------------------------------

# What a failed poll says about every proxy: short and constant, so that a new failure reason (logged
# once as haproxy.unreachable) is not a new status for thousands of proxies.
UNREACHABLE = ProxyStatus(Observation.DOWN, "HAProxy unreachable")
UNREADABLE = ProxyStatus(Observation.UNKNOWN, "HAProxy's reply unreadable")
# EACCES proves that a process listens, not whether HAProxy serves: not known, like a garbled reply.
FORBIDDEN = ProxyStatus(Observation.UNKNOWN, "HAProxy's socket: permission denied")
_NOT_KNOWN = {
    HAProxyState.GARBLED: (UNREADABLE, "replies unreadable"),
    HAProxyState.FORBIDDEN: (FORBIDDEN, "socket forbidden to rhid"),
}


@dataclass(frozen=True, slots=True)
class Outage:
    """A poll that said nothing of any proxy: HAProxy `unreachable`, or `garbled`/`forbidden` since
    `since` (monotonic seconds; the HAProxy side owns when its weather began)."""

    state: HAProxyState
    since: float


def during(
    outage: Outage, proxies: Iterable[Proxy], now: float, thresholds: Thresholds
) -> dict[Proxy, ProxyStatus]:
    """What an outage says of each proxy. Unreachable: down. Garbled or forbidden: not known (routes
    hold) until nothing has been known for `unreadable_down_after`; from then on, down."""
    if outage.state is HAProxyState.UNREACHABLE:
        return dict.fromkeys(proxies, UNREACHABLE)
    failed, what = _NOT_KNOWN[outage.state]
    limit = thresholds.unreadable_down_after
    if now - outage.since >= limit:
        failed = ProxyStatus(Observation.DOWN, f"HAProxy's {what} for over {limit:g} s")
    return dict.fromkeys(proxies, failed)


# ---- threshold terms (``b:be_app>=3``, ``b:be_app>=50%``): fall and rise per term ----------------
#
# A threshold term has a health of its own, stepped by the same `step` as a proxy's: each poll's
# server counts make an up or down observation for it, and `--fall`/`--rise` apply to those as to
# a proxy's. What does not count (a first check pending, a reply unreadable, a backend vanished in
# a reload) counts neither way for the term either, exactly as for its backend.
#
#   backend's observation   counts      the term's observation
#   UP or DOWN              read        UP when the counts meet the threshold, else DOWN
#   DOWN                    not read    DOWN (HAProxy unreachable, or a DOWN backend: nothing is up)
#   UP                      not read    UNKNOWN (servers were not counted: say nothing)
#   PENDING, ABSENT, UNKNOWN  -         the same (held, vanished, not known)

NOT_COUNTED = "servers not counted"


@dataclass(frozen=True, slots=True)
class TermState:
    """A threshold term's health over time and the server counts of the last poll (None when that
    poll did not count them: HAProxy unreachable, say)."""

    state: ProxyState = INITIAL
    servers: Counts | None = None


INITIAL_TERM = TermState()


def term_observation(term: ServerTerm, observed: ProxyStatus) -> ProxyStatus:
    """What one poll of its backend says about a threshold term (the table above)."""
    counts = observed.servers
    if observed.observation not in {Observation.UP, Observation.DOWN}:
        return observed
    if counts is None:
        if observed.observation is Observation.DOWN:
            return observed
        return ProxyStatus(Observation.UNKNOWN, NOT_COUNTED)
    met = term.threshold.met(counts.up, counts.total)
    status = f"{counts.up} of {counts.total} servers up"
    return ProxyStatus(Observation.UP if met else Observation.DOWN, status, counts)


TermEvent = tuple[ServerTerm, Event, ProxyState]


def observe_terms(
    states: Mapping[ServerTerm, TermState],
    terms: Iterable[ServerTerm],
    observed: Mapping[Proxy, ProxyStatus],
    now: float,
    thresholds: Thresholds,
) -> tuple[Mapping[ServerTerm, TermState], list[TermEvent], bool]:
    """Step every threshold term whose backend this poll observed, like `observe` steps proxies:
    the states (the very same mapping when nothing changed), each term's events, and whether any
    term's health changed."""
    updated: dict[ServerTerm, TermState] | None = None
    events: list[TermEvent] = []
    moved = False
    for term in terms:
        status = observed.get(term.proxy)
        if status is None:
            continue  # not polled: nothing said
        before = states.get(term, INITIAL_TERM)
        state, happened = step(before.state, term_observation(term, status), now, thresholds)
        if state is before.state and status.servers == before.servers:
            continue
        if updated is None:
            updated = dict(states)
        updated[term] = TermState(state, status.servers)
        moved = moved or state.health is not before.state.health
        events.extend((term, event, state) for event in happened)
    return (states if updated is None else updated), events, moved


def keep_terms(
    states: Mapping[ServerTerm, TermState], terms: Collection[ServerTerm]
) -> dict[ServerTerm, TermState]:
    """The states of `terms` only (after a reload: a threshold that stays keeps its counters)."""
    wanted = set(terms)
    return {term: state for term, state in states.items() if term in wanted}
