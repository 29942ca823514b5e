"""Retry pacing: exponential backoff with a ceiling, and a wait until a given moment."""

from __future__ import annotations

from rhid.backoff import FIRST, MAXIMUM, Backoff


def test_delay_doubles_to_its_ceiling_and_resets_on_success() -> None:
    """0.5 s, 1 s, 2 s ... capped at 30 s; a success makes the next failure start again at 0.5 s."""
    backoff = Backoff()
    assert backoff.ready(0.0)
    delays = [backoff.failed(100.0) for _ in range(10)]
    assert delays[:3] == [FIRST, 2 * FIRST, 4 * FIRST]
    assert delays[-1] == MAXIMUM
    assert not backoff.ready(100.0 + MAXIMUM - 0.01)
    assert backoff.ready(100.0 + MAXIMUM)
    backoff.succeeded()
    assert backoff.ready(0.0)
    assert backoff.failed(5.0) == FIRST


def test_wait_until_a_moment() -> None:
    """A condition that will not change soon (no ring) is looked at again only from a given moment."""
    backoff = Backoff()
    backoff.wait_until(60.0)
    assert not backoff.ready(59.9)
    assert backoff.ready(60.0)
