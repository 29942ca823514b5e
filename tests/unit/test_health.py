"""The per-proxy state machine: fall, rise, unknowns, vanished proxies."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhid import health
from rhid.health import (
    Health,
    NeverSeen,
    ProxyState,
    Thresholds,
    Vanished,
    VanishedTooLong,
    WentDown,
    WentUp,
    describe,
    in_transition,
    is_up,
    keep,
    observe,
    step,
    summarize,
)
from rhid.model import HAProxyState, Proxy, ProxyKind
from rhid.stats import Observation, ProxyStatus

T = Thresholds(fall=3, rise=2)
UP = ProxyStatus(Observation.UP, "UP")
DOWN = ProxyStatus(Observation.DOWN, "DOWN")
PENDING = ProxyStatus(Observation.PENDING, "UP (first check pending)")
ABSENT = ProxyStatus(Observation.ABSENT, "absent")
UNKNOWN = ProxyStatus(Observation.UNKNOWN, "unreadable reply")


def run(observations: list[ProxyStatus], thresholds: Thresholds = T) -> tuple[ProxyState, list[object]]:
    state = ProxyState()
    events: list[object] = []
    for now, observed in enumerate(observations):
        state, new = step(state, observed, float(now), thresholds)
        events.extend(new)
    return state, events


def test_starts_unknown() -> None:
    """A proxy never polled is neither up nor down."""
    assert is_up(ProxyState()) is None


def test_rise_consecutive_ups_make_it_up() -> None:
    """UP after `rise` consecutive up observations, with one WentUp event at that moment."""
    state, events = run([UP])
    assert state.health is Health.UNKNOWN
    state, events = run([UP, UP])
    assert state.health is Health.UP
    assert events == [WentUp("UP")]
    assert state.since == 1.0


def test_fall_consecutive_downs_make_it_down() -> None:
    """DOWN after `fall` consecutive down observations, not before."""
    state, _ = run([UP, UP, DOWN, DOWN])
    assert state.health is Health.UP
    state, events = run([UP, UP, DOWN, DOWN, DOWN])
    assert state.health is Health.DOWN
    assert events[-1] == WentDown("DOWN")


def test_contrary_observation_restarts_the_count() -> None:
    """An up observation between downs restarts the fall count."""
    state, _ = run([UP, UP, DOWN, DOWN, UP, DOWN, DOWN])
    assert state.health is Health.UP


def test_pending_and_unknown_count_neither_way() -> None:
    """INI-pending and garbled polls neither advance nor reset the counts."""
    state, _ = run([UP, UP, DOWN, PENDING, UNKNOWN, DOWN, PENDING, DOWN])
    assert state.health is Health.DOWN


def test_never_seen_counts_as_down_and_is_reported_once() -> None:
    """A proxy absent from the start is down after `fall` polls; NeverSeen is emitted once."""
    state, events = run([ABSENT] * 5)
    assert state.health is Health.DOWN
    assert events.count(NeverSeen()) == 1


def test_vanished_keeps_last_health_and_is_reported_once() -> None:
    """A proxy that disappears after being seen keeps its health; Vanished is emitted once."""
    state, events = run([UP, UP, ABSENT, ABSENT, ABSENT, ABSENT])
    assert state.health is Health.UP
    assert events.count(Vanished()) == 1
    state, events = run([UP, UP, ABSENT, UP, ABSENT])
    assert events.count(Vanished()) == 2  # it came back, then vanished again


def test_a_vanished_proxy_keeps_its_status_only_for_the_bound() -> None:
    """A proxy gone from HAProxy keeps its health for `vanished_keep` seconds (fake clock), then
    counts as down like one never seen: reported once, DOWN after `fall` more polls; its state says
    since when it vanished, and a return clears that."""
    thresholds = Thresholds(fall=2, rise=1, vanished_keep=10.0)
    state, _ = step(ProxyState(), UP, 0.0, thresholds)
    state, events = step(state, ABSENT, 2.0, thresholds)
    assert (state.vanished, state.vanished_since, events) == (True, 2.0, (Vanished(),))
    for now in range(3, 12):  # up to 9 s after it vanished
        state, events = step(state, ABSENT, float(now), thresholds)
        assert (state.health, state.down_count, events) == (Health.UP, 0, ())
    state, events = step(state, ABSENT, 12.0, thresholds)  # 10 s: the bound
    assert events == (VanishedTooLong(10.0),)
    assert (state.health, state.down_count, state.last_status) == (Health.UP, 1, "absent for over 10 s")
    state, events = step(state, ABSENT, 13.0, thresholds)
    assert (state.health, events) == (Health.DOWN, (WentDown("absent for over 10 s"),))
    assert (state.vanished, state.vanished_since) == (True, 2.0), "still vanished, and since when"
    state, events = step(state, ABSENT, 14.0, thresholds)
    assert events == ()
    state, events = step(state, UP, 15.0, thresholds)
    assert (state.health, state.vanished, state.vanished_since) == (Health.UP, False, None)
    assert events == (WentUp("UP"),)


def test_never_seen_is_told_apart_from_not_polled_and_from_vanished() -> None:
    """`never_seen` is true only for a proxy HAProxy answered about without ever showing it."""
    assert not ProxyState().never_seen
    state, _ = step(ProxyState(), ABSENT, 0.0, T)
    assert state.never_seen
    state, _ = step(state, UP, 1.0, T)
    state, _ = step(state, ABSENT, 2.0, T)
    assert not state.never_seen
    assert state.vanished


def test_thresholds_must_be_positive() -> None:
    """fall or rise below 1, or a negative keep, is a programming error, refused at construction."""
    for fall, rise, held in [(0, 1, 1.0), (1, 0, 1.0), (1, 1, -1.0), (1, 1, float("nan"))]:
        try:
            Thresholds(fall=fall, rise=rise, vanished_keep=held)
        except ValueError:
            continue
        raise AssertionError("accepted a zero threshold")


observations = st.sampled_from([UP, DOWN, PENDING, ABSENT, UNKNOWN])


@given(st.lists(observations, max_size=60), st.integers(1, 4), st.integers(1, 4))
def test_transitions_only_after_full_runs(history: list[ProxyStatus], fall: int, rise: int) -> None:
    """Every WentDown is preceded by `fall` downs and every WentUp by `rise` ups (ignoring no-info polls)."""
    thresholds = Thresholds(fall=fall, rise=rise)
    state = ProxyState()
    informative: list[Observation] = []
    for now, observed in enumerate(history):
        seen_before = state.seen
        state, events = step(state, observed, float(now), thresholds)
        kind = observed.observation
        if kind is Observation.ABSENT and not seen_before:
            kind = Observation.DOWN
        if kind in {Observation.UP, Observation.DOWN}:
            informative.append(kind)
        for event in events:
            if isinstance(event, WentDown):
                assert informative[-fall:] == [Observation.DOWN] * fall
            if isinstance(event, WentUp):
                assert informative[-rise:] == [Observation.UP] * rise


@given(st.lists(observations, max_size=60))
def test_transitions_alternate(history: list[ProxyStatus]) -> None:
    """Transitions alternate: never two WentUp or two WentDown in a row, however the input flaps."""
    _, events = run(history)
    transitions = [e for e in events if isinstance(e, WentUp | WentDown)]
    for first, second in itertools.pairwise(transitions):
        assert type(first) is not type(second), "two transitions the same way in a row"


def test_in_transition_while_a_count_has_started() -> None:
    """A proxy is between states while the count against its health has started, or any count at all
    while it is unknown."""
    assert not in_transition(ProxyState(Health.UP, up_count=2))
    assert in_transition(ProxyState(Health.UP, down_count=1))
    assert in_transition(ProxyState(Health.DOWN, up_count=1))
    assert not in_transition(ProxyState(Health.DOWN, down_count=3))
    assert in_transition(ProxyState(Health.UNKNOWN, down_count=1))
    assert not in_transition(ProxyState())


def test_each_event_is_described_for_the_log() -> None:
    """Every event has a name and level; a vanished proxy says what it keeps, one never seen how it counts."""
    state = ProxyState(Health.UP)
    assert describe(WentUp("UP"), state) == ("proxy.up", "info", {})
    assert describe(WentDown("DOWN"), state) == ("proxy.down", "warning", {})
    assert describe(Vanished(), state) == ("proxy.vanished", "warning", {"keeps": "up"})
    assert describe(NeverSeen(), state) == ("proxy.never_seen", "warning", {"counts_as": "down"})
    assert describe(VanishedTooLong(60.0), state) == (
        "proxy.vanished_too_long",
        "warning",
        {"kept_for": "60 s", "counts_as": "down"},
    )


def test_observe_steps_a_whole_poll_and_keeps_settled_states_as_they_are() -> None:
    """Each proxy is stepped; a health change is reported; a poll that changes nothing returns the
    very same mapping; a reload keeps only the proxies the new rules name."""
    proxy = Proxy(ProxyKind.BACKEND, "a")
    other = Proxy(ProxyKind.BACKEND, "b")
    poll = {proxy: UP, other: DOWN}
    first, events, moved = observe({}, poll, 0.0, T)
    assert (first[proxy].up_count, events, moved) == (1, [], False)
    second, events, moved = observe(first, poll, 1.0, T)
    assert second[proxy].health is Health.UP
    assert [(p, e) for p, e, _ in events] == [(proxy, WentUp("UP"))]
    assert moved
    settled, _, _ = observe(second, poll, 2.0, T)
    again, events, moved = observe(settled, poll, 3.0, T)
    assert again is settled
    assert (events, moved) == ([], False)
    assert keep(again, [proxy]) == {proxy: again[proxy]}


def test_one_cause_is_one_log_line() -> None:
    """summarize groups a poll's events by event, level, status and fields: a group of one is logged
    as one proxy's line; a larger group says how many and names a sorted sample of ten."""
    down = ProxyState(Health.DOWN, last_status="HAProxy unreachable", transitions=1)
    gone = ProxyState(Health.UP, last_status="UP", seen=True, vanished=True)
    many = [
        (Proxy(ProxyKind.BACKEND, f"be{i:02}"), WentDown("HAProxy unreachable"), down)
        for i in range(30, 0, -1)
    ]
    single = (Proxy(ProxyKind.FRONTEND, "fe"), WentDown("STOP"), ProxyState(Health.DOWN, last_status="STOP"))
    vanished = (Proxy(ProxyKind.BACKEND, "old"), Vanished(), gone)
    lines = summarize([*many[:10], single, *many[10:], vanished])
    assert [(line.name, line.level, line.fields["count"]) for line in lines] == [
        ("proxy.down", "warning", 30),
        ("proxy.down", "warning", 1),
        ("proxy.vanished", "warning", 1),
    ]
    assert lines[0].fields == {
        "status": "HAProxy unreachable",
        "proxies": [f"b:be{i:02}" for i in range(1, 11)],
        "count": 30,
    }
    assert lines[1].fields == {
        "proxy": "f:fe",
        "status": "STOP",
        "proxies": ["f:fe"],
        "count": 1,
        "transitions": 0,
    }
    assert lines[2].fields["keeps"] == "up"
    assert summarize([]) == []


def test_a_burst_of_polls_advances_a_count_once_per_spacing() -> None:
    """Polls 10 ms apart (an event burst) advance a fall count once per `spacing`: fall 3 takes 2 spacings."""
    thresholds = Thresholds(fall=3, rise=1, spacing=0.09)
    up = ProxyStatus(Observation.UP, "UP")
    down = ProxyStatus(Observation.DOWN, "DOWN")
    state, _ = step(ProxyState(), up, 0.0, thresholds)
    went_down_at = None
    for tick in range(1, 40):
        now = tick * 0.01
        state, events = step(state, down, now, thresholds)
        if events and went_down_at is None:
            went_down_at = now
    assert went_down_at is not None
    assert went_down_at >= 0.01 + 2 * 0.09 - 1e-9, went_down_at
    state, events = step(state, up, 0.4, thresholds)
    assert state.health.value == "up", "rise 1 is not delayed: a count that starts advances at once"


@pytest.mark.parametrize(
    ("state", "after", "observation"),
    [
        (HAProxyState.UNREACHABLE, 0.0, Observation.DOWN),
        (HAProxyState.GARBLED, 29.0, Observation.UNKNOWN),
        (HAProxyState.GARBLED, 30.0, Observation.DOWN),
        (HAProxyState.FORBIDDEN, 29.0, Observation.UNKNOWN),
        (HAProxyState.FORBIDDEN, 31.0, Observation.DOWN),
    ],
)
def test_an_outage_counts_as_down_at_once_or_after_the_unreadable_limit(
    state: HAProxyState, after: float, observation: Observation
) -> None:
    """Unreachable is down at once; garbled or forbidden is not known until 30 s of it, then down."""
    proxy = Proxy(ProxyKind.BACKEND, "a")
    outage = health.Outage(state, since=100.0)
    [status] = health.during(outage, [proxy], 100.0 + after, health.Thresholds()).values()
    assert status.observation is observation
