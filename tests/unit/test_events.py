"""HAProxy's event ring as a wake-up signal: which lines count, which ring is picked, noisy rings."""

from __future__ import annotations

import pytest

from rhid.stats import Sink, events_command, has_state_change, is_noisy, parse_sinks, pick_ring

# Lines as HAProxy 2.6 wrote them to a ring (docs/notes/haproxy-runtime-api.md §4, and this lab).
STATE_CHANGES = [
    "<1>2026-11-21T07:23:52+00:00 Server be_slow/s1 is DOWN, reason: Layer4 connection problem, info: x",
    "<0>2026-11-21T07:23:52+00:00 backend be_slow has no server available!",
    "<5>2026-11-21T07:23:52+00:00 Server be_slow/s1 is UP, reason: Layer4 check passed, check duration: 0ms.",
    "<1>2026-11-21T07:23:52+00:00 Server be_maint/s1 is going DOWN for maintenance. 0 active left.",
    "<5>2026-11-21T07:23:52+00:00 Server be_maint/s1 is UP/READY (leaving forced maintenance).",
    "<5>2026-11-21T07:23:52+00:00 Server be_app/s1 was DOWN and now enters maintenance.",
    "<5>2026-11-21T07:23:52+00:00 Server be_drain/s1 enters drain state.",
    "<4>2026-11-21T07:23:52+00:00 Paused frontend fe_www.",
    "<4>2026-11-21T07:23:52+00:00 Resumed frontend fe_www.",
    "<4>2026-11-21T07:23:52+00:00 Proxy fe_shut stopped (cumulated conns: FE: 0, BE: 0).",
]
NOT_CHANGES = [
    '<6>2026-11-21T07:23:52+00:00 127.0.0.1:4242 fe be_app/s1 0/0/1/1 200 "GET / HTTP/1.1"',
    '<6>2026-11-21T07:23:52+00:00 127.0.0.1:4242 fe be/s1 "GET /Server%20x/y HTTP/1.1"',
    "",
    "<6>2026-11-21T07:23:52+00:00 Proxy fe started.",
]
LISTING = (
    b"Supported events sinks are listed below. Add -w(wait), -n(new). Any key to stop\n"
    b"    stdout     : type=fd, 0 dropped, standard output (fd#1)\n"
    b"    stderr     : type=fd, 0 dropped, standard output (fd#2)\n"
    b"    buf0       : type=buffer, 0 dropped, in-memory ring buffer\n"
    b"    myring     : type=buffer, 0 dropped, myring\n\n"
)


@pytest.mark.parametrize("line", STATE_CHANGES)
def test_state_change_lines_wake_the_loop(line: str) -> None:
    """Every kind of server, backend and frontend state change HAProxy logs is recognised."""
    assert has_state_change(line.encode())


@pytest.mark.parametrize("line", STATE_CHANGES)
def test_a_change_wakes_the_loop_only_for_a_proxy_the_rules_name(line: str) -> None:
    """Each state change names its proxy: it wakes a poll when the rules name that proxy, not otherwise."""
    name = next(
        word for word in ("be_slow", "be_maint", "be_app", "be_drain", "fe_www", "fe_shut") if word in line
    )
    assert has_state_change(line.encode(), frozenset({name, "other"}))
    assert not has_state_change(line.encode(), frozenset({"other"}))
    assert not has_state_change(line.encode(), frozenset())


def test_many_lines_wake_when_one_names_a_watched_proxy() -> None:
    """A block of changes to unwatched proxies with one watched among them wakes the loop."""
    block = "\n".join(STATE_CHANGES).encode() + b"\n"
    assert has_state_change(block, frozenset({"fe_shut"}))
    assert not has_state_change(block, frozenset({"be_static"}))


@pytest.mark.parametrize("line", NOT_CHANGES)
def test_traffic_and_other_lines_do_not(line: str) -> None:
    """Traffic logs in the same ring (even with look-alike URLs) and other lines are not changes."""
    assert not has_state_change(line.encode())


def test_sink_listing_and_ring_choice() -> None:
    """`show events` lists sinks; the ring to stream is the first one declared in HAProxy's config."""
    sinks = parse_sinks(LISTING)
    assert sinks == [
        Sink("stdout", "fd", "standard output (fd#1)"),
        Sink("stderr", "fd", "standard output (fd#2)"),
        Sink("buf0", "buffer", "in-memory ring buffer"),
        Sink("myring", "buffer", "myring"),
    ]
    assert pick_ring(sinks).ring == "myring"
    assert "declared" in pick_ring(sinks).why
    assert pick_ring(sinks[:3]).ring is None


# HAProxy 3.2's listing (newer-stacks.md §3; descriptions as its src/sink.c gives them): an internal
# ring `dpapi` after buf0 and before the operator's rings; an implicit ring of a `log tcp@...` line.
LISTING_3_2 = (
    b"Supported events sinks are listed below. Add -0(zero), -w(wait), -n(new). Any key to stop.\n"
    b"    stdout     : type=fd, 0 dropped, standard output (fd#1)\n"
    b"    stderr     : type=fd, 0 dropped, standard output (fd#2)\n"
    b"    buf0       : type=buffer, 0 dropped, in-memory ring buffer\n"
    b"    dpapi      : type=buffer, 0 dropped, DPAPI ring buffer\n"
    b"    ring#1     : type=buffer, 0 dropped, created from log directive declared into 'h.cfg' at line 3\n"
    b"    myring     : type=buffer, 0 dropped, myring\n"
    b"    other      : type=buffer, 3 dropped, other\n\n"
)


def test_auto_never_picks_haproxys_own_rings() -> None:
    """On HAProxy 3.2 `auto` picks the operator's ring, not `dpapi`, nor a ring HAProxy adds later
    (a description other than its name), nor buf0; with only those, polling only, and it says why."""
    sinks = parse_sinks(LISTING_3_2)
    assert [sink.name for sink in sinks if sink.declared] == ["myring", "other"]
    choice = pick_ring(sinks)
    assert choice.ring == "myring"
    assert "also declared: other" in choice.why
    internal = [*sinks[:4], Sink("newring", "buffer", "some future internal ring buffer")]
    choice = pick_ring(internal)
    assert choice.ring is None
    assert "newring may be HAProxy's own" in choice.why
    assert "--haproxy-events" in choice.why


def test_events_command_needs_a_checked_ring_name() -> None:
    """The ring name goes into a command, so only names of HAProxy's charset are accepted."""
    assert events_command("myring") == b"set timeout cli 86400; show events myring -nw\n"
    with pytest.raises(AssertionError):
        events_command("myring; disable frontend fe")


def test_a_block_of_lines_is_one_scan() -> None:
    """A block of traffic with one state change in the middle is a state change; traffic alone is not."""
    traffic = "".join(line + "\n" for line in NOT_CHANGES).encode()
    assert not has_state_change(traffic * 100)
    assert has_state_change(traffic * 50 + STATE_CHANGES[0].encode() + b"\n" + traffic * 50)


def test_a_ring_of_traffic_is_recognised_by_its_first_line() -> None:
    """Info and debug lines (any facility) mean traffic logs; notice and above do not."""
    assert is_noisy(NOT_CHANGES[0].encode())
    assert is_noisy(b"<134>2026-11-22T10:00:00 local0.info line\n")
    assert not is_noisy(STATE_CHANGES[0].encode())
    assert not is_noisy(b"no priority\n")


def test_a_ring_named_rhid_is_preferred() -> None:
    """`auto` streams the dedicated ring named rhid when HAProxy has one, whatever its place."""
    sinks = [Sink("buf0", "buffer", "in-memory ring buffer"), Sink("traffic", "buffer", "traffic")]
    assert pick_ring([*sinks, Sink("rhid", "buffer", "rhid")]).ring == "rhid"
    assert pick_ring([*sinks, Sink("rhid", "buffer", "state changes for rhid")]).ring == "rhid"
