"""The per-proxy state machine: fall, rise, unknowns, vanished proxies."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from rhid.health import Health, NeverSeen, ProxyState, Thresholds, Vanished, WentDown, WentUp, is_up, step
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


def test_thresholds_must_be_positive() -> None:
    """fall or rise below 1 is a programming error, refused at construction."""
    for fall, rise in [(0, 1), (1, 0)]:
        try:
            Thresholds(fall=fall, rise=rise)
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
