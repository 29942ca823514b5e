"""Targeted polls against a fake HAProxy: when the client asks for a few proxies by id, and when it
falls back to a full poll (unknown id, too many, another worker); and which poll the loop picks."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from rhid.daemon import Daemon
from rhid.haproxy import FULL, TARGETED, HAProxyClient, HAProxySide, News
from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules
from rhid.settings import Settings
from rhid.stats import MAX_TARGETS, Observation
from tests.fault import fakes

HEADER = b"# pxname,svname,status,type,check_status,iid,\n"
A, B = Proxy(ProxyKind.BACKEND, "a"), Proxy(ProxyKind.BACKEND, "b")


class Worker:
    """A fake HAProxy worker: `pid`, backends a (iid 3, DOWN) and b (iid 4, UP); records commands."""

    def __init__(self) -> None:
        self.pid = b"42"
        self.commands: list[bytes] = []
        self.named_4 = False  # a backend named "4": HAProxy takes `show stat 4` as its name first

    def handler(self, conn: socket.socket, stopping: threading.Event) -> None:
        del stopping
        request = fakes.read_request(conn)
        self.commands.append(request)
        reply = b"Name: HAProxy\nPid: " + self.pid + b"\n\n"
        if b"show stat -1" in request:
            reply += HEADER + b"a,BACKEND,DOWN,1,,3,\nb,BACKEND,UP,1,,4,\n\n"
        for query in request.split(b";")[1:]:
            if b"show stat 3 " in query:
                reply += HEADER + b"a,BACKEND,DOWN,1,,3,\n\n"
            elif b"show stat 4 " in query and self.named_4:
                reply += HEADER + b"4,BACKEND,UP,1,,9,\n\n"
            elif b"show stat 4 " in query:
                reply += HEADER + b"b,BACKEND,UP,1,,4,\n\n"
            elif b"show stat -1" not in query:
                reply += HEADER + b"\n"
        conn.sendall(reply)


def test_a_targeted_poll_asks_by_the_ids_of_the_last_full_poll(tmp_path: Path) -> None:
    """After a full poll, a poll of b asks `show stat 4 2 -1` only, and says nothing of a."""
    worker = Worker()
    server = fakes.FakeServer(tmp_path / "h.sock", worker.handler)
    try:
        client = HAProxyClient(str(tmp_path / "h.sock"), 1.0)
        assert client.poll_targeted([B]) is None, "no full poll yet: no ids"
        client.poll([A, B])
        client.servers = False
        snapshot = client.poll_targeted([B])
        assert snapshot is not None
        assert worker.commands[-1] == b"show info; show stat 4 2 -1\n"
        assert set(snapshot.proxies) == {B}
        assert client.poll_targeted([B, Proxy(ProxyKind.BACKEND, "new")]) is None, "an id not known"
        many = [Proxy(ProxyKind.BACKEND, f"x{n}") for n in range(MAX_TARGETS + 1)]
        assert client.poll_targeted(many) is None, "more than MAX_TARGETS"
        worker.named_4 = True
        assert client.poll_targeted([B]) is None, "b's id answered by a backend named 4: not trusted"
        worker.named_4 = False
        worker.pid = b"43"
        assert client.poll_targeted([B]) is None, "another worker's reply: its ids may be others'"
    finally:
        server.close()


def test_the_side_reports_only_what_it_asked_and_counts_each_kind(tmp_path: Path) -> None:
    """observe with targets returns those proxies only (not a missing a), and counts the poll as
    targeted; one that must fall back is full, over every proxy."""
    worker = Worker()
    server = fakes.FakeServer(tmp_path / "h.sock", worker.handler)
    try:
        side = HAProxySide(str(tmp_path / "h.sock"), 1.0, events="none")
        first = side.observe([A, B], 0.0, targets=[B])
        assert isinstance(first, dict)
        assert set(first) == {A, B}, "no ids yet: a full poll"
        assert side.last_poll == FULL
        observed = side.observe([A, B], 1.0, targets=[B])
        assert isinstance(observed, dict)
        assert set(observed) == {B}
        assert observed[B].observation is Observation.UP
        assert side.last_poll == TARGETED
        assert (side.full_polls, side.targeted_polls) == (1, 1)
        assert side.report().document()["polls"] == {"full": 1, "targeted": 1}
    finally:
        server.close()


def streaming(conn: socket.socket, stopping: threading.Event) -> None:
    fakes.read_request_line(conn)
    stopping.wait(30)


def test_the_loop_polls_the_named_proxies_and_those_between_states_else_all(tmp_path: Path) -> None:
    """With a live stream: the named proxies plus those falling, none when nothing is news, every
    proxy when the full poll is due, the stream is new, or more than MAX_TARGETS are named."""
    (tmp_path / "d").mkdir()
    names = [f"be{n}" for n in range(MAX_TARGETS + 2)]
    rules = parse_rules(
        "".join(f"10.0.{n // 256}.{n % 256} = all(b:{name})\n" for n, name in enumerate(names))
    )
    proxies = [Proxy(ProxyKind.BACKEND, name) for name in names]
    settings = Settings("r", str(tmp_path / "h.sock"), "/none", tmp_path / "d", events="rhid")
    server = fakes.FakeServer(tmp_path / "h.sock", streaming)
    try:
        daemon = Daemon(settings, rules, haproxy=HAProxySide.of(settings))
        assert daemon.poll_targets(0.0) is None, "no stream: every poll a full one"
        daemon.haproxy.ensure_stream(0.0)
        assert daemon.poll_targets(0.0) is None, "a new stream: a full poll covers what it missed"
        daemon.next_sweep = 10.0
        assert daemon.poll_targets(1.0) == frozenset(), "nothing new, nothing between states"
        daemon.states = {proxies[5]: ProxyState(Health.UP, down_count=1)}
        daemon.news = News(frozenset({proxies[0], Proxy(ProxyKind.BACKEND, "not_in_rules")}))
        assert daemon.poll_targets(1.0) == frozenset({proxies[0], proxies[5]})
        daemon.news = News(frozenset(proxies))
        assert daemon.poll_targets(1.0) is None, "a burst: one full poll"
        daemon.news = News(everything=True)
        assert daemon.poll_targets(1.0) is None, "the stream said everything"
        assert daemon.poll_targets(10.0) is None, "the full poll's time came"
        daemon.haproxy.close_stream()
    finally:
        server.close()


def test_a_reload_and_a_failed_poll_make_the_next_poll_a_full_one(tmp_path: Path) -> None:
    """With a live stream: after a reload (it may add proxies no poll has seen) every proxy is
    polled; a targeted poll HAProxy does not answer makes the next full poll due at --interval."""
    (tmp_path / "d").mkdir()
    rules_path = tmp_path / "rules.cfg"
    rules_path.write_text("10.0.0.1 = all(b:a)\n")
    socket_path = tmp_path / "h.sock"

    def stream_or_hang_up(conn: socket.socket, stopping: threading.Event) -> None:
        if b"show events" in fakes.read_request_line(conn):
            stopping.wait(30)  # the stream stays live; any poll gets no reply at all

    settings = Settings(str(rules_path), str(socket_path), "/none", tmp_path / "d", events="rhid")
    server = fakes.FakeServer(socket_path, stream_or_hang_up)
    try:
        daemon = Daemon(settings, parse_rules("10.0.0.1 = all(b:a)\n"), haproxy=HAProxySide.of(settings))
        daemon.haproxy.ensure_stream(0.0)
        assert daemon.poll_targets(0.0) is None  # the new stream
        daemon.next_sweep = 100.0
        assert daemon.poll_targets(1.0) == frozenset()
        rules_path.write_text("10.0.0.1 = all(b:a)\n10.0.0.2 = all(b:added)\n")
        daemon.reload(1.0)
        assert daemon.poll_targets(1.0) is None, "after a reload: every proxy, the added one too"
        daemon.next_sweep = 100.0
        daemon.news = News(frozenset({A}))
        daemon.cycle(2.0)  # a targeted poll of a, unanswered: a's news is spent
        assert daemon.next_sweep == 2.0 + settings.interval
        daemon.haproxy.close_stream()
    finally:
        server.close()
