"""The HAProxy side's check of the rules' proxy names (HAProxySide.check_names) against fake HAProxy
sockets: one question per rule set and worker, one warning per missing name, bounded logs, and an
HAProxy that cannot be asked is asked again next time."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rhid.haproxy import LOGGED_NAMES, HAProxySide, list_proxies
from rhid.model import HAProxyState, Proxy, ProxyKind
from rhid.rules import parse_rules
from tests.fault import fakes

LISTING = b"# pxname,svname,status,\nbe_static,BACKEND,UP,\nfe_www,FRONTEND,OPEN,\n\n"


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A fake HAProxy that lists be_static and fe_www, and records each command it gets."""
    path = tmp_path / "haproxy.sock"
    asked: list[bytes] = []

    def handler(conn: socket.socket, _: threading.Event) -> None:
        asked.append(fakes.read_request(conn))
        conn.sendall(LISTING)

    server = fakes.FakeServer(path, handler)
    try:
        yield path, asked
    finally:
        server.close()


def answering(side: HAProxySide) -> HAProxySide:
    """The side as after a poll HAProxy answered (names are asked for only then)."""
    side.state = HAProxyState.REACHABLE
    return side


def test_names_are_asked_for_only_while_polls_are_answered(haproxy: tuple[Path, list[bytes]]) -> None:
    """Not polled yet, or HAProxy failing: no question (it would only wait again), None."""
    path, asked = haproxy
    side = HAProxySide(str(path), 1.0)
    for state in [
        HAProxyState.NOT_POLLED,
        HAProxyState.UNREACHABLE,
        HAProxyState.GARBLED,
        HAProxyState.FORBIDDEN,
    ]:
        side.state = state
        assert side.check_names(parse_rules("10.0.0.1 = all(b:be_sttic)\n").lines_of) is None
    assert asked == []


def test_one_question_per_rule_set_and_worker(haproxy: tuple[Path, list[bytes]]) -> None:
    """The same rules and HAProxy worker: no second question; new rules or a new worker Pid: one more."""
    path, asked = haproxy
    side = answering(HAProxySide(str(path), 1.0))
    rules = parse_rules("10.0.0.1 = all(b:be_sttic)\n10.0.0.2 = all(f:fe_www)\n")
    with capture_logs() as events:
        found = side.check_names(rules.lines_of)
        assert side.check_names(rules.lines_of) == found
    assert found is not None
    assert [item.sentence() for item in found] == ["b:be_sttic: no such backend; did you mean be_static?"]
    assert asked == [b"show stat -1 3 -1\n"]
    assert [e["event"] for e in events] == ["rules.no_such_proxy"]
    assert side.report().names == {"b:be_sttic": "did you mean be_static?"}

    side.check_names(parse_rules("10.0.0.1 = all(b:be_sttic)\n").lines_of)
    assert len(asked) == 2, "a reload's new rules are checked again"
    side.client.pid = "4242"  # what a poll after an HAProxy reload sees
    side.check_names(rules.lines_of)
    assert len(asked) == 3, "a new HAProxy worker is checked again"


def test_an_haproxy_that_cannot_be_asked_is_asked_again_by_its_next_worker(tmp_path: Path) -> None:
    """No socket: None, nothing logged above debug, and no second try for the same worker (it would
    cost every cycle a connection); the next worker (an HAProxy restart) is asked and answers."""
    path = tmp_path / "haproxy.sock"
    side = answering(HAProxySide(str(path), 0.5))
    rules = parse_rules("10.0.0.1 = all(b:be_sttic)\n")
    with capture_logs() as events:
        assert side.check_names(rules.lines_of) is None
    assert [e["log_level"] for e in events] == ["debug"]
    server = fakes.FakeServer(path, fakes.replying(LISTING))
    try:
        assert side.check_names(rules.lines_of) is None
        assert server.connections == 0
        side.client.pid = "4243"
        found = side.check_names(rules.lines_of)
    finally:
        server.close()
    assert found is not None
    assert [str(item.proxy) for item in found] == ["b:be_sttic"]


def test_a_garbled_listing_is_not_an_answer(tmp_path: Path) -> None:
    """A reply that is not `show stat` says nothing: None, no warning, the report carries no names."""
    path = tmp_path / "haproxy.sock"
    server = fakes.FakeServer(path, fakes.replying(b"<html>502</html>\n\n"))
    try:
        side = answering(HAProxySide(str(path), 1.0))
        with capture_logs() as events:
            assert side.check_names(parse_rules("10.0.0.1 = all(b:x)\n").lines_of) is None
    finally:
        server.close()
    assert not [e for e in events if e["log_level"] == "warning"]
    assert side.report().names == {}


def test_a_rule_file_for_another_haproxy_logs_a_bounded_number_of_lines(
    haproxy: tuple[Path, list[bytes]],
) -> None:
    """500 names missing: the first LOGGED_NAMES one line each, then one line with the count."""
    path, _ = haproxy
    rules = parse_rules("".join(f"10.0.{i // 250}.{i % 250} = all(b:be_{i})\n" for i in range(500)))
    with capture_logs() as events:
        found = answering(HAProxySide(str(path), 1.0)).check_names(rules.lines_of)
    assert found is not None
    assert len(found) == 500
    assert len(events) == LOGGED_NAMES + 1
    assert events[-1]["count"] == 500
    assert events[-1]["proxies"][:2] == ["b:be_0", "b:be_1"]


def test_a_master_cli_socket_is_asked_through_its_worker(tmp_path: Path) -> None:
    """The master CLI refuses a worker command: the listing is asked again with @1."""
    path = tmp_path / "master.sock"
    asked: list[bytes] = []

    def master(conn: socket.socket, _: threading.Event) -> None:
        request = fakes.read_request(conn)
        asked.append(request)
        conn.sendall(LISTING if request.startswith(b"@1 ") else b"Unknown command, but show proc works\n")

    server = fakes.FakeServer(path, master)
    try:
        listed = list_proxies(str(path), 1.0)
    finally:
        server.close()
    assert asked == [b"show stat -1 3 -1\n", b"@1 show stat -1 3 -1\n"]
    assert listed.has(Proxy(ProxyKind.FRONTEND, "fe_www"))
