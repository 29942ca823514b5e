"""Targeted polls and the budgeted full poll, against real HAProxy and BIRD, seen through a relay
in front of HAProxy's stats socket that records every command rhid sends (and may drop event
lines on purpose)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for
from tests.integration.relay import Relay

pytestmark = pytest.mark.integration

RULES = "10.91.0.1 = all(b:be_app)\n10.91.0.2 = all(b:be_b)\n10.91.0.3 = all(b:be_c>=1)\n"
BACKENDS = {"be_app": ["web1"], "be_b": ["web2"], "be_c": ["web3"]}
ALL = {"10.91.0.1/32", "10.91.0.2/32", "10.91.0.3/32"}
SLOW = 5.0  # --interval: a full poll this rare cannot be what reacted within a second


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[Lab, Relay]]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [], ring=True)
        relay = Relay(tmp_path / "relay.sock", instance.haproxy_socket)
        try:
            yield instance, relay
        finally:
            relay.close()


def start(instance: Lab, relay: Relay, *extra: str) -> None:
    instance.start_rhid(RULES, "--haproxy-socket", str(relay.path), *extra)
    instance.wait_peer_routes(ALL)
    wait_for("the event stream", lambda: relay.forwarded or streaming(instance), 10)
    wait_for("the stream's first full poll", lambda: streaming(instance) and len(relay.polls()) >= 2, 10)
    time.sleep(0.3)


def streaming(instance: Lab) -> bool:
    return any(e["event"] == "haproxy.events_streaming" for e in instance.events())


def ids_polled(relay: Relay, since: float, until: float) -> list[tuple[str, ...]]:
    return [poll.targeted for poll in relay.polls(since, until) if poll.targeted]


def test_an_event_is_applied_by_a_poll_of_its_proxy_alone(relayed: tuple[Lab, Relay]) -> None:
    """A disabled server's event makes rhid ask HAProxy for that one backend, not for every proxy,
    and the route is withdrawn from it well before any full poll."""
    instance, relay = relayed
    start(instance, relay, "--interval", str(SLOW), "--fall", "1")
    sent = time.monotonic()
    instance.haproxy("disable server be_b/s1")
    assert instance.wait_peer_routes(ALL - {"10.91.0.2/32"}, timeout=SLOW) < 1.0
    seen = time.monotonic()
    polls = relay.polls(sent, seen)
    assert polls, "a poll between the event and the withdrawal"
    assert not polls[0].full, f"the first poll after the event was a full one: {polls[0].line!r}"
    assert all(len(poll.targeted) == 1 for poll in polls if not poll.full), [p.line for p in polls]
    instance.haproxy("enable server be_b/s1")
    instance.wait_peer_routes(ALL, timeout=SLOW)


def test_a_fall_of_three_is_counted_by_targeted_polls_at_the_fast_interval(
    relayed: tuple[Lab, Relay],
) -> None:
    """With fall 3 the event's targeted poll starts the count and targeted 0.1 s polls of that
    backend alone finish it: far below three --interval."""
    instance, relay = relayed
    start(instance, relay, "--interval", str(SLOW), "--fall", "3")
    stopped = time.monotonic()
    instance.stop("web2")  # a real check failure (inter 100ms fall 1)
    assert instance.wait_peer_routes(ALL - {"10.91.0.2/32"}, timeout=3 * SLOW) < 1.5
    targeted = ids_polled(relay, stopped, time.monotonic())
    assert len(targeted) >= 3, targeted
    assert len(set(targeted)) == 1, f"every targeted poll asks for be_b alone: {targeted}"


def test_a_threshold_backend_is_polled_with_its_servers(relayed: tuple[Lab, Relay]) -> None:
    """A backend whose servers a rule counts (b:be_c>=1) is asked with its server rows (mask 6)."""
    instance, relay = relayed
    start(instance, relay, "--interval", str(SLOW), "--fall", "1")
    sent = time.monotonic()
    instance.haproxy("disable server be_c/s1")
    instance.wait_peer_routes(ALL - {"10.91.0.3/32"}, timeout=SLOW)
    lines = [poll.line for poll in relay.polls(sent, time.monotonic()) if poll.targeted]
    assert lines, "a targeted poll"
    assert all(b" 6 -1" in line for line in lines), lines


def test_a_lost_event_is_caught_by_the_full_poll_within_sweep_max(relayed: tuple[Lab, Relay]) -> None:
    """Every event line dropped: the stream is live but silent, and the change is still applied,
    by a full poll, within --sweep-max (plus one --interval); meanwhile full polls are --sweep-max
    apart, not --interval (a tiny --sweep-budget wants them rarer than the maximum allows)."""
    instance, relay = relayed
    relay.drop = 1.0
    sweep_max = 2.0
    start(instance, relay, "--interval", "0.5", "--fall", "1", "--sweep-budget", "0.0001", "--sweep-max", "2")
    window = time.monotonic()
    time.sleep(3 * sweep_max)
    full = [poll for poll in relay.polls(window, time.monotonic()) if poll.full]
    assert 2 <= len(full) <= 4, f"{len(full)} full polls in {3 * sweep_max} s"
    sent = time.monotonic()
    instance.haproxy("disable server be_app/s1")
    delay = instance.wait_peer_routes(ALL - {"10.91.0.1/32"}, timeout=3 * sweep_max)
    assert delay < sweep_max + 0.5 + 0.5, delay
    assert relay.dropped, "lines were dropped"
    assert not ids_polled(relay, sent, time.monotonic()), "no event reached rhid"


def test_without_a_stream_every_poll_is_a_full_one_every_interval(relayed: tuple[Lab, Relay]) -> None:
    """--haproxy-events none: the vendor's behaviour, a full poll every --interval."""
    instance, relay = relayed
    instance.start_rhid(
        RULES, "--haproxy-socket", str(relay.path), "--interval", "0.2", "--haproxy-events", "none"
    )
    instance.wait_peer_routes(ALL)
    window = time.monotonic()
    time.sleep(2.0)
    polls = relay.polls(window, time.monotonic())
    assert all(poll.full for poll in polls)
    assert 7 <= len(polls) <= 11, len(polls)
