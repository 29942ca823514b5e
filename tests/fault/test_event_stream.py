"""The event stream against a fake HAProxy: what a live stream changes in the loop's pacing."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from rhid.daemon import Daemon
from rhid.haproxy import HAProxySide
from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules
from rhid.settings import Settings
from tests.fault import fakes

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
