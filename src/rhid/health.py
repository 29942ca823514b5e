"""Per-proxy health over time: a pure state machine, `step(state, observation, now, thresholds)`.

A proxy starts UNKNOWN. It becomes UP after `rise` consecutive up observations and DOWN after
`fall` consecutive down observations; a contrary observation restarts the count. Observations
that carry no information (PENDING: first check after an HAProxy start or reload is still
running; ABSENT for a proxy seen before: it was removed by a reload, and the vendor documents that
it keeps its last status) leave the state and the counts alone.

    state     observation                 effect
    any       UP                          down_count = 0; up_count += 1; UP when up_count >= rise
    any       DOWN, or ABSENT never seen  up_count = 0; down_count += 1; DOWN when down_count >= fall
    any       PENDING, or ABSENT seen     nothing (and a vanished proxy is reported once)
    any       UNKNOWN (garbled reply)     nothing: a peer's garbage is never a down observation

Counts saturate at their threshold, so a settled proxy is a fixed point: `step` then returns the
very same state, which keeps a cycle cheap with thousands of proxies. `observe` steps a whole poll.
The daemon owns the clock and passes `now` (monotonic seconds) in. This is the hysteresis policy;
the others (damping, guards, drains) get modules of the same shape.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from rhid.model import Proxy
from rhid.stats import Observation, ProxyStatus


class Health(enum.Enum):
    """What rhid currently believes about a proxy."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How many consecutive observations turn a proxy down (`fall`) or up (`rise`)."""

    fall: int = 3
    rise: int = 1

    def __post_init__(self) -> None:
        if self.fall < 1 or self.rise < 1:
            raise ValueError("fall and rise must be at least 1")


@dataclass(frozen=True, slots=True)
class ProxyState:
    """One proxy's health, its counters and the last thing HAProxy said about it."""

    health: Health = Health.UNKNOWN
    up_count: int = 0
    down_count: int = 0
    since: float = 0.0
    last_status: str = "never polled"
    seen: bool = False
    vanished: bool = False
    transitions: int = 0


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
class NeverSeen:
    """A proxy the rules name has never appeared in HAProxy's output; it counts as down."""


Event = WentUp | WentDown | Vanished | NeverSeen


def step(
    state: ProxyState, observed: ProxyStatus, now: float, thresholds: Thresholds
) -> tuple[ProxyState, tuple[Event, ...]]:
    """Apply one observation. Pure: the same inputs always give the same state and events."""
    observation = observed.observation
    if _steady(state, observed, thresholds):
        return state, ()  # the common case at scale: nothing changes, no new object
    events: list[Event] = []
    if observation is Observation.UNKNOWN:
        return state, ()
    if observation is Observation.ABSENT:
        if state.seen:
            if not state.vanished:
                events.append(Vanished())
            return replace(state, vanished=True), tuple(events)
        if state.last_status != "absent":
            events.append(NeverSeen())
        observation = Observation.DOWN
    elif observation is not Observation.PENDING:
        state = replace(state, seen=True, vanished=False)
    if observation is Observation.PENDING:
        return replace(state, seen=True, vanished=False, last_status=observed.status), ()
    state = replace(state, last_status=observed.status)
    if observation is Observation.UP:
        state = replace(state, up_count=min(state.up_count + 1, thresholds.rise), down_count=0)
        if state.health is not Health.UP and state.up_count >= thresholds.rise:
            state = replace(state, health=Health.UP, since=now, transitions=state.transitions + 1)
            events.append(WentUp(observed.status))
    else:
        state = replace(state, down_count=min(state.down_count + 1, thresholds.fall), up_count=0)
        if state.health is not Health.DOWN and state.down_count >= thresholds.fall:
            state = replace(state, health=Health.DOWN, since=now, transitions=state.transitions + 1)
            events.append(WentDown(observed.status))
    return state, tuple(events)


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
    return "proxy.never_seen", "warning", {"counts_as": "down"}
