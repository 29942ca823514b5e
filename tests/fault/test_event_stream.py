"""The event stream against a fake HAProxy: what a live stream changes in the loop's pacing."""

from __future__ import annotations

import select
import socket
import threading
import time
from pathlib import Path

from structlog.testing import capture_logs

from rhid.daemon import Daemon
from rhid.haproxy import HAProxySide
from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules
from rhid.settings import Settings
from tests.fault import fakes
from tests.integration.lab import wait_for

A = Proxy(ProxyKind.BACKEND, "a")
FALLING = {A: ProxyState(Health.UP, down_count=1)}


def streaming(conn: socket.socket, stopping: threading.Event) -> None:
    """Accept `show events rhid -nw` and keep the stream open, silent."""
    fakes.read_request_line(conn)
    stopping.wait(30)


def test_fast_polls_only_while_a_stream_is_live_unless_asked(tmp_path: Path) -> None:
    """Without a live stream the vendor's interval stands; with one, or when asked, 0.1 s between states."""
    (tmp_path / "d").mkdir()
    rules = parse_rules("10.0.0.1 = all(b:a)\n")
    path = tmp_path / "haproxy.sock"
    settings = Settings("r", str(path), "/none", tmp_path / "d", interval=1.0, events="rhid")
    server = fakes.FakeServer(path, streaming)
    try:
        side = HAProxySide.of(settings)
        plain = Daemon(settings, rules, haproxy=side)
        plain.states = dict(FALLING)
        assert plain.poll_interval() == 1.0, "no stream yet: the vendor's interval"
        side.ensure_stream(0.0)
        assert side.streaming
        assert plain.poll_interval() == 0.1, "a live stream: fast polls while a proxy is between states"
        plain.states = {A: ProxyState(Health.UP)}
        assert plain.poll_interval() == 1.0, "nothing between states: the normal interval"
        side.close_stream()
    finally:
        server.close()
    asked = Daemon(Settings("r", "/none", "/none", tmp_path / "d", interval=1.0, fast_interval=0.05), rules)
    asked.states = dict(FALLING)
    assert asked.poll_interval() == 0.05


def half_a_line_then_the_rest(conn: socket.socket, stopping: threading.Event) -> None:
    """Stream a state change in two writes, split inside the line, 50 ms apart."""
    fakes.read_request_line(conn)
    line = b"<1>2026-11-22T10:00:01+00:00 Server be/s1 is DOWN, reason: Layer4 connection problem.\n"
    conn.sendall(line[:20])
    time.sleep(0.05)
    conn.sendall(line[20:])
    stopping.wait(30)


def test_a_state_change_split_across_reads_is_not_delayed(tmp_path: Path) -> None:
    """Half a line is no traffic: reading goes on at once (no pause), and the completed line wakes a poll."""
    path = tmp_path / "haproxy.sock"
    server = fakes.FakeServer(path, half_a_line_then_the_rest)
    try:
        side = HAProxySide(str(path), 1.0, events="rhid")
        side.ensure_stream(0.0)
        assert side.stream is not None
        stream = side.stream
        select.select([stream], [], [], 2.0)
        assert not side.read_stream(1.0), "half a line"
        assert side.waitable(1.0) is stream, "no pause after half a line"
        select.select([stream], [], [], 2.0)
        assert side.read_stream(1.1), "the completed line is a state change"
        side.close_stream()
    finally:
        server.close()


LISTING_3_2 = (
    b"Supported events sinks are listed below. Add -0(zero), -w(wait), -n(new). Any key to stop.\n"
    b"    stdout     : type=fd, 0 dropped, standard output (fd#1)\n"
    b"    stderr     : type=fd, 0 dropped, standard output (fd#2)\n"
    b"    buf0       : type=buffer, 0 dropped, in-memory ring buffer\n"
    b"    dpapi      : type=buffer, 0 dropped, DPAPI ring buffer\n"
    b"    myring     : type=buffer, 0 dropped, myring\n\n"
)


def haproxy_3_2(asked: list[bytes]) -> fakes.Handler:
    """HAProxy 3.2's `show events` listing; any stream request is kept open, silent."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        request = fakes.read_request_line(conn)
        asked.append(request)
        if request == b"show events\n":
            conn.sendall(LISTING_3_2)
        else:
            stopping.wait(30)

    return handler


def test_auto_streams_the_operators_ring_not_haproxy_3_2s_dpapi(tmp_path: Path) -> None:
    """With HAProxy 3.2's internal `dpapi` ring listed before the operator's, `auto` streams the
    operator's ring and logs which one it chose and why."""
    path = tmp_path / "haproxy.sock"
    asked: list[bytes] = []
    server = fakes.FakeServer(path, haproxy_3_2(asked), concurrent=True)
    try:
        side = HAProxySide(str(path), 1.0, events="auto")
        with capture_logs() as events:
            side.ensure_stream(0.0)
        assert side.stream is not None
        assert side.stream.ring == "myring"
        wait_for("the stream request", lambda: len(asked) == 2, 2)
        assert asked[1] == b"set timeout cli 86400; show events myring -nw\n"
        [streaming] = [e for e in events if e["event"] == "haproxy.events_streaming"]
        assert streaming["ring"] == "myring"
        assert streaming["chosen_as"] == "the first ring declared in HAProxy's configuration"
        side.close_stream()
    finally:
        server.close()


def closing_after(seconds: float) -> fakes.Handler:
    """Accept the stream, stay silent for `seconds`, then close it (HAProxy died or reloaded)."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        fakes.read_request_line(conn)
        stopping.wait(seconds)

    return handler


def test_the_end_of_the_stream_wakes_a_poll_and_fast_polls_stay(tmp_path: Path) -> None:
    """When HAProxy's stream ends (it died), rhid polls at once, and a fall count keeps the fast interval."""
    (tmp_path / "d").mkdir()
    rules = parse_rules("10.0.0.1 = all(b:a)\n")
    path = tmp_path / "haproxy.sock"
    settings = Settings("r", str(path), "/none", tmp_path / "d", interval=1.0, events="rhid")
    server = fakes.FakeServer(path, closing_after(0.1))
    try:
        side = HAProxySide.of(settings)
        daemon = Daemon(settings, rules, haproxy=side)
        side.ensure_stream(0.0)
        assert side.stream is not None
        ready, _, _ = select.select([side.stream], [], [], 5.0)
        assert ready, "the stream ended"
        assert side.read_stream(1.0), "its end wakes a poll"
        assert not side.streaming
        daemon.states = dict(FALLING)
        assert daemon.poll_interval() == 0.1, "HAProxy has a ring: the fall count runs at the fast interval"
    finally:
        server.close()


def flapping_elsewhere(conn: socket.socket, stopping: threading.Event) -> None:
    """A ring whose lines are a server of a backend no rule names flapping, then one line about `be`."""
    fakes.read_request_line(conn)
    for i in range(50):
        state = b"DOWN" if i % 2 else b"UP"
        conn.sendall(b"<1>2026-11-22T10:00:01+00:00 Server be_other/s1 is " + state + b", reason: x.\n")
    time.sleep(0.1)
    conn.sendall(b"<1>2026-11-22T10:00:02+00:00 Server be/s1 is DOWN, reason: Layer4 connection problem.\n")
    stopping.wait(30)


def test_changes_of_proxies_no_rule_names_wake_no_poll(tmp_path: Path) -> None:
    """50 state changes of an unwatched backend are read without waking a poll; a change of a
    proxy the rules name wakes one."""
    path = tmp_path / "haproxy.sock"
    server = fakes.FakeServer(path, flapping_elsewhere)
    try:
        side = HAProxySide(str(path), 1.0, events="rhid")
        side.watch(parse_rules("10.0.0.1 = all(b:be)\n"))
        side.ensure_stream(0.0)
        assert side.stream is not None
        woke: list[int] = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not woke:
            select.select([side.stream], [], [], 0.5)
            if side.read_stream(time.monotonic()):
                woke.append(side.stream.received)
        assert woke, "the change of be/s1 woke a poll"
        assert woke[0] > 50 * 60, "not before every line about be_other had been read"
        side.close_stream()
    finally:
        server.close()
