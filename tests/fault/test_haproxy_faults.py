"""Fault matrix H2, H5-H8 at level F: rhid's HAProxy client and loop against misbehaving sockets."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rhid import health
from rhid.daemon import Daemon
from rhid.daemon import thresholds as daemon_thresholds
from rhid.errors import HAProxyProtocolError, HAProxyUnavailableError
from rhid.haproxy import HAProxyClient, HAProxySide, fetch
from rhid.health import Health, ProxyState, Thresholds
from rhid.model import Proxy, ProxyKind
from rhid.rules import RuleSet, parse_rules
from rhid.settings import Settings
from rhid.sockets import Denial
from rhid.stats import Snapshot, parse_poll
from tests.fault import fakes

BE = Proxy(ProxyKind.BACKEND, "be")
GOOD = b"Name: HAProxy\nPid: 42\n\n# pxname,svname,status,type,check_status,\nbe,BACKEND,UP,1,,\n\n"
RULES = parse_rules("10.0.0.1 = all(b:be)\n")


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "haproxy.sock"


@pytest.fixture
def server_factory(sock: Path) -> Iterator[list[fakes.FakeServer]]:
    servers: list[fakes.FakeServer] = []
    yield servers
    for server in servers:
        server.close()


def serve(servers: list[fakes.FakeServer], sock: Path, handler: fakes.Handler) -> fakes.FakeServer:
    for old in servers:
        old.close()
    sock.unlink(missing_ok=True)
    server = fakes.FakeServer(sock, handler)
    servers.append(server)
    return server


class Watcher:
    """The HAProxy side and the hysteresis policy, stepped as the loop steps them."""

    def __init__(self, settings: Settings, rules: RuleSet) -> None:
        self.side = HAProxySide.of(settings)
        self.rules = rules
        self.thresholds = replace(daemon_thresholds(settings), spacing=0.0)
        self.states: Mapping[Proxy, ProxyState] = {}

    def observe(self, now: float) -> None:
        observed = self.side.observe(self.rules.proxies, now)
        if isinstance(observed, health.Outage):
            observed = health.during(observed, self.rules.proxies, now, self.thresholds)
        self.states, _, _ = health.observe(self.states, observed, now, self.thresholds)


def daemon(tmp_path: Path, sock: Path) -> Watcher:
    settings = Settings(
        str(tmp_path / "r.cfg"), str(sock), str(tmp_path / "no-bird.ctl"), tmp_path / "rhid", 0.2, 2, 1
    )
    return Watcher(settings, RULES)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    "reply",
    [
        b"Unknown command. Please enter one of the following commands only :\n\n",
        b"Name: HAProxy\nPid: 42\n\n<html>502 Bad Gateway</html>\n\n",
        b"Name: HAProxy\nPid: 42\n\n# pxname,svname,status,type,check_status,\nbe,BACKEND\n\n",
        b"\x00\xff\xfe binary",
    ],
)
def test_garbage_counts_neither_way(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer], reply: bytes
) -> None:
    """H5: garbage is an HAProxyProtocolError; the poll counts neither up nor down, logged once."""
    serve(server_factory, sock, fakes.replying(GOOD))
    instance = daemon(tmp_path, sock)
    instance.observe(0.0)
    assert instance.states[BE].health is Health.UP
    serve(server_factory, sock, fakes.replying(reply))
    with capture_logs() as events:
        for now in range(1, 6):
            instance.observe(float(now))
    assert instance.states[BE].health is Health.UP
    assert instance.states[BE].down_count == 0
    assert [e["event"] for e in events] == ["haproxy.garbled"]


def test_truncated_and_reset_replies_count_neither_way(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """H6: a reply cut short (no final blank line) or reset mid-stream is garbage, never down."""
    instance = daemon(tmp_path, sock)
    serve(server_factory, sock, fakes.replying(GOOD))
    instance.observe(0.0)
    for handler in (fakes.replying(GOOD[:-1]), fakes.resetting(GOOD[:30])):
        serve(server_factory, sock, handler)
        with pytest.raises(HAProxyProtocolError):
            HAProxyClient(str(sock), 1.0).poll([BE])
        for now in range(1, 4):
            instance.observe(float(now))
        assert instance.states[BE].health is Health.UP


@pytest.mark.parametrize("handler", [fakes.silent, fakes.trickling], ids=["silent", "trickle"])
def test_slow_socket_hits_the_deadline_without_leaking(
    sock: Path, server_factory: list[fakes.FakeServer], handler: fakes.Handler
) -> None:
    """H7: a silent or trickling peer is cut off at the poll deadline, and no descriptor leaks."""
    before = open_fds()
    server = serve(server_factory, sock, handler)
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(HAProxyUnavailableError) as caught:
            HAProxyClient(str(sock), 0.3).poll([BE])
        assert caught.value.kind == "timeout"
        assert time.monotonic() - started < 0.3 + 0.5, "the deadline covers the whole exchange"
    server.close()  # its accepted connection lives in this process too
    assert open_fds() == before


def test_endless_reply_hits_the_byte_cap(sock: Path, server_factory: list[fakes.FakeServer]) -> None:
    """H8: an endless reply is cut at the byte cap with HAProxyProtocolError, well before the deadline."""
    serve(server_factory, sock, fakes.endless)
    started = time.monotonic()
    with pytest.raises(HAProxyProtocolError, match="larger than"):
        fetch(str(sock), b"show stat\n", timeout=10, limit=4 * 1024 * 1024)
    assert time.monotonic() - started < 10


def test_missing_socket_is_down_and_rise_guards_the_return(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """H2: no socket at start counts as down; once HAProxy appears, UP needs `rise` good polls."""
    settings = Settings("r", str(sock), str(tmp_path / "b.ctl"), tmp_path / "rhid", 0.2, fall=2, rise=2)
    (tmp_path / "rhid").mkdir()
    instance = Watcher(settings, RULES)
    with pytest.raises(HAProxyUnavailableError) as caught:
        HAProxyClient(str(sock), 0.2).poll([BE])
    assert caught.value.kind == "missing"
    instance.observe(0.0)
    instance.observe(1.0)
    assert instance.states[BE].health is Health.DOWN
    serve(server_factory, sock, fakes.replying(GOOD))
    instance.observe(2.0)
    assert instance.states[BE].health is Health.DOWN, "one good poll is not enough with rise=2"
    instance.observe(3.0)
    assert instance.states[BE].health is Health.UP


def test_unknown_status_is_down_and_reported_once(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """H9: a status HAProxy 2.6 never printed counts as not up and is logged once."""
    odd = GOOD.replace(b"be,BACKEND,UP,1", b"be,BACKEND,DEGRADED,1")
    serve(server_factory, sock, fakes.replying(odd))
    instance = daemon(tmp_path, sock)
    with capture_logs() as events:
        for now in range(4):
            instance.observe(float(now))
    unknown = [e for e in events if e["event"] == "haproxy.unknown_status"]
    assert len(unknown) == 1
    assert unknown[0]["status"] == "DEGRADED"
    assert instance.states[BE].health is Health.DOWN


def test_unreachable_haproxy_logs_once_not_per_proxy(tmp_path: Path) -> None:
    """A dead HAProxy is one haproxy.unreachable line, not a warning per proxy, whatever the reasons."""
    rules = parse_rules("".join(f"10.1.{i // 250}.{i % 250} = all(b:be{i})\n" for i in range(1000)))
    settings = Settings("r", str(tmp_path / "gone.sock"), str(tmp_path / "b.ctl"), tmp_path / "rhid", 0.2)
    (tmp_path / "rhid").mkdir()
    instance = Watcher(settings, rules)
    with capture_logs() as events:
        instance.observe(0.0)
        (tmp_path / "gone.sock").mkdir()  # a new failure reason: not a socket
        instance.observe(1.0)
        instance.observe(2.0)
    warnings = [e for e in events if e["log_level"] in {"warning", "error", "critical"}]
    assert not [e for e in warnings if e["event"] == "haproxy.unknown_status"]
    assert [e["event"] for e in warnings if e["event"].startswith("haproxy.")] == ["haproxy.unreachable"]
    others = [e["event"] for e in warnings if e["event"] not in {"proxy.down", "haproxy.unreachable"}]
    assert others == [], "besides the one line and each proxy's own transition, nothing"
    assert len(instance.states) == 1000
    assert {state.last_status for state in instance.states.values()} == {"HAProxy unreachable"}
    assert {state.health for state in instance.states.values()} == {Health.DOWN}


def test_replies_unreadable_for_long_count_as_down(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """Unreadable replies count neither way until --unreadable-down-after, then as down polls."""
    serve(server_factory, sock, fakes.replying(GOOD))
    settings = Settings(
        "r", str(sock), str(tmp_path / "b.ctl"), tmp_path / "rhid", 1.0, fall=2, unreadable_down_after=10.0
    )
    (tmp_path / "rhid").mkdir()
    instance = Watcher(settings, RULES)
    instance.observe(0.0)
    assert instance.states[BE].health is Health.UP
    serve(server_factory, sock, fakes.replying(b"<html>502</html>\n\n"))
    for now in range(1, 11):
        instance.observe(float(now))
    assert instance.states[BE].health is Health.UP, "9 s of garbage: still held"
    instance.observe(11.0)
    instance.observe(12.0)
    assert instance.states[BE].health is Health.DOWN, "past 10 s, two down polls with fall=2"
    serve(server_factory, sock, fakes.replying(GOOD))
    instance.observe(13.0)
    assert instance.states[BE].health is Health.UP


class ScriptedPoller:
    """A client that answers each poll from a script: a reply's bytes, or an error to raise."""

    def __init__(self) -> None:
        self.master = False
        self.pid: str | None = None
        self.reloaded_from: str | None = None
        self.next: bytes | Exception = GOOD

    def poll(self, wanted: Collection[Proxy]) -> Snapshot:
        if isinstance(self.next, Exception):
            raise self.next
        snapshot = parse_poll(self.next, wanted)
        self.pid = snapshot.pid
        return snapshot


def test_permission_denied_is_not_known_until_the_unreadable_timer(tmp_path: Path) -> None:
    """EACCES on HAProxy's socket counts neither way (not a dead HAProxy) until
    --unreadable-down-after, then as down polls; it is logged once, loudly, with the socket's mode
    and group, and reported as a problem until HAProxy answers again."""
    path = tmp_path / "haproxy.sock"
    path.touch()
    path.chmod(0o660)
    poller = ScriptedPoller()
    side = HAProxySide(str(path), 1.0, unreadable_down_after=10.0, poller=poller)
    thresholds = Thresholds(fall=2, rise=1, unreadable_down_after=10.0)
    states: Mapping[Proxy, ProxyState] = {}

    def observe(now: float) -> None:
        nonlocal states
        observed = side.observe(RULES.proxies, now)
        if isinstance(observed, health.Outage):
            observed = health.during(observed, RULES.proxies, now, thresholds)
        states, _, _ = health.observe(states, observed, now, thresholds)

    observe(0.0)
    assert states[BE].health is Health.UP
    poller.next = HAProxyUnavailableError(str(path), "permission denied: uid 0 ...", "permission")
    with capture_logs() as events:
        for now in range(1, 11):
            observe(float(now))
    assert states[BE].health is Health.UP, "9 s of EACCES: not known, held"
    assert states[BE].down_count == 0
    assert [(e["event"], e["log_level"]) for e in events] == [("haproxy.forbidden", "critical")]
    assert events[0]["mode"] == "0660"
    assert events[0]["path"] == str(path)
    assert side.report().state == "forbidden"
    [problem] = side.report().problems
    assert "refuses rhid" in problem
    assert str(path) in problem
    observe(11.0)
    observe(12.0)
    assert states[BE].health is Health.DOWN, "past 10 s, two down polls with fall=2"
    poller.next = GOOD
    observe(13.0)
    assert states[BE].health is Health.UP
    assert side.report().problems == ()


@pytest.mark.parametrize(
    ("denial", "expected"),
    [
        (Denial("/s", 0o660, "root", "haproxy", 1000, uid_is_owner=False, in_group=False),
         "uid 1000 needs to be in group 'haproxy' to use it (the socket is mode 0660, owner root,"),
        (Denial("/s", 0o600, "haproxy", "haproxy", 1000, uid_is_owner=False, in_group=True),
         "uid 1000 may not use it: the socket is mode 0600, owner haproxy, group haproxy, and its group"),
        (Denial("/s", 0o660, "root", "haproxy", 1000, uid_is_owner=False, in_group=True),
         "permission denied although the socket is mode 0660, owner root, group haproxy, which lets"),
        (Denial("/s", None, "?", "?", 1000, uid_is_owner=False, in_group=False),
         "a directory above it is closed to uid 1000"),
    ],
    ids=["needs-group", "group-may-not-write", "directory", "cannot-stat"],
)  # fmt: skip
def test_permission_denied_says_what_to_change(denial: Denial, expected: str) -> None:
    """The EACCES sentence names the socket's mode, owner and group, and the group rhid needs."""
    assert expected in denial.sentence()
    assert denial.fields()["needs_group"] == ("haproxy" if "needs to be in" in expected else "-")


def closing_unread(conn: socket.socket, _: threading.Event) -> None:
    """Accept and close at once, without reading the command (an HAProxy shutting the CLI)."""
    conn.close()


def test_a_send_haproxy_never_reads_is_an_unavailable_haproxy(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """A peer that closes before reading the command (EPIPE/ECONNRESET on the send, or a reset before
    any reply byte) is an unavailable HAProxy that counts as down, never a garbled reply."""
    serve(server_factory, sock, closing_unread)
    with pytest.raises(HAProxyUnavailableError) as caught:  # the send itself fails, whatever the timing
        fetch(str(sock), b"x" * (8 << 20), timeout=5.0)
    assert caught.value.kind == "closed"
    for _ in range(20):  # a one-line command: the failure shows on the send or on the first read
        with pytest.raises(HAProxyUnavailableError) as caught:
            HAProxyClient(str(sock), 1.0).poll([BE])
        assert caught.value.kind == "closed"
    instance = daemon(tmp_path, sock)
    for now in range(3):
        instance.observe(float(now))
    assert instance.side.state == "unreachable"
    assert instance.states[BE].health is Health.DOWN


def test_a_dead_haproxy_under_300_rules_is_one_proxy_down_line(tmp_path: Path) -> None:
    """With HAProxy unreachable from the start, the daemon's cycle logs one `proxy.down` line with
    count=300, the cause and a bounded sample of names, not 300 lines (journald's rate limit)."""
    rules = parse_rules("".join(f"10.2.{i // 250}.{i % 250} = all(b:be{i})\n" for i in range(300)))
    settings = Settings(
        "r", str(tmp_path / "gone.sock"), str(tmp_path / "bird.ctl"), tmp_path / "rhid", 0.2, fall=2
    )
    (tmp_path / "rhid").mkdir()
    instance = Daemon(settings, rules)
    with capture_logs() as events:
        for now in range(4):
            instance.cycle(float(now))
    down = [e for e in events if e["event"] == "proxy.down"]
    assert len(down) == 1, [e.get("proxy") for e in down][:5]
    assert down[0]["count"] == 300
    assert down[0]["status"] == "HAProxy unreachable"
    assert down[0]["proxies"] == sorted(f"b:be{i}" for i in range(300))[:10]
    assert not [e for e in events if e["event"].startswith("proxy.") and e["event"] != "proxy.down"]
    assert {state.health for state in instance.states.values()} == {Health.DOWN}


def test_a_reload_with_init_state_down_withdraws_nothing(
    tmp_path: Path, sock: Path, server_factory: list[fakes.FakeServer]
) -> None:
    """After a reload whose servers start DOWN with their first check pending (HAProxy 3.1+'s
    `init-state down`), the backend's DOWN counts neither way, even with fall 1, until a check ends."""
    header = b"# pxname,svname,status,type,check_status,\n"
    reloaded = b"Name: HAProxy\nPid: 43\n\n" + header + b"be,s1,DOWN,2,INI,\nbe,BACKEND,DOWN,1,,\n\n"
    serve(server_factory, sock, fakes.replying(GOOD))
    settings = Settings("r", str(sock), str(tmp_path / "b.ctl"), tmp_path / "rhid", 0.2, fall=1)
    instance = Watcher(settings, RULES)
    instance.observe(0.0)
    assert instance.states[BE].health is Health.UP
    serve(server_factory, sock, fakes.replying(reloaded))
    for now in range(1, 6):
        instance.observe(float(now))
        assert instance.states[BE].health is Health.UP, "a first check pending is not a down poll"
    assert instance.states[BE].last_status == "DOWN (first check pending)"
    serve(server_factory, sock, fakes.replying(reloaded.replace(b"DOWN,2,INI", b"DOWN,2,L4CON")))
    instance.observe(6.0)
    assert instance.states[BE].health is Health.DOWN, "the first check failed: down"


def test_a_new_status_word_for_many_backends_is_one_line(tmp_path: Path) -> None:
    """A status HAProxy 2.6 never printed, for 300 named backends at once, is one
    haproxy.unknown_status line with the count and a sample, logged once however many polls."""
    rules = parse_rules("".join(f"10.3.{i // 250}.{i % 250} = all(b:be{i})\n" for i in range(300)))
    header = b"Name: HAProxy\nPid: 42\n\n# pxname,svname,status,type,check_status,\n"
    poller = ScriptedPoller()
    poller.next = header + b"".join(f"be{i},BACKEND,DEGRADED,1,,\n".encode() for i in range(300)) + b"\n"
    side = HAProxySide(str(tmp_path / "haproxy.sock"), 1.0, poller=poller)
    with capture_logs() as events:
        for now in range(3):
            side.observe(rules.proxies, float(now))
    [line] = [e for e in events if e["event"] == "haproxy.unknown_status"]
    assert (line["status"], line["count"], line["counts_as"]) == ("DEGRADED", 300, "down")
    assert line["proxies"] == sorted(f"b:be{i}" for i in range(300))[:10]


def test_an_unreachable_haproxy_says_where_its_path_is_set(tmp_path: Path) -> None:
    """The PROBLEM for a missing socket names where the path came from and Debian's own socket."""
    side = HAProxySide(str(tmp_path / "nothing.sock"), 0.5, source="/etc/default/hapee-extras-rhi")
    side.observe([Proxy(ProxyKind.BACKEND, "be")], 0.0)
    (problem,) = side.report().problems
    assert problem.startswith(f"HAProxy is unreachable ({tmp_path / 'nothing.sock'}: socket does not exist")
    assert "the path comes from /etc/default/hapee-extras-rhi" in problem
    assert "Debian's HAProxy listens on /run/haproxy/admin.sock" in problem
