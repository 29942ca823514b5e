"""Fault matrix B4-B6 at level F: rhid's BIRD client and loop against a scripted BIRD."""

from __future__ import annotations

import itertools
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rhid import plan, service
from rhid.bird import BirdClient
from rhid.daemon import Daemon
from rhid.errors import BirdInterruptedError, BirdProtocolError, BirdUnavailableError, FatalError
from rhid.model import Channel
from rhid.reconcile import BirdSide
from rhid.rules import parse_rules
from rhid.settings import Settings
from tests.fault import fakes

RULES = parse_rules("10.0.0.1 = always\n")
ROUTES = b"1007-Table master4:\n 10.0.0.1/32 blackhole [vol1 07:01] * (200)\n0000 \n"
Script = Mapping[str, bytes | Callable[[], bytes]]


@pytest.fixture
def ctl(tmp_path: Path) -> Iterator[Callable[[Script], fakes.FakeServer]]:
    servers: list[fakes.FakeServer] = []

    def start(script: Script) -> fakes.FakeServer:
        for old in servers:
            old.close()
        path = tmp_path / "bird.ctl"
        path.unlink(missing_ok=True)
        servers.append(fakes.FakeServer(path, fakes.bird(script)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


CHANNELS = RULES.channels


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[], BirdSide]]:
    """A BIRD side whose files announce 10.0.0.1/32, talking to the scripted BIRD at bird.ctl."""
    made: list[BirdSide] = []

    def make() -> BirdSide:
        side = BirdSide(tmp_path / "rhid", BirdClient(str(tmp_path / "bird.ctl"), 2.0))
        side.write(plan.decide(plan.initial(set(), frozenset(), 0.0), RULES, {}, plan.NO_INTENTS, 0.0), 0.0)
        made.append(side)
        return side

    yield make
    for side in made:
        side.client.close()


def test_config_rejected_keeps_state_and_backs_off(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """B4: 8002 keeps the desired state, reports BIRD's file:line:col and retries with backoff."""
    rejected = (
        b"0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/bird.conf:13:60 syntax error\n"
    )
    ctl({"show status": fakes.STATUS, "configure": rejected})
    instance = daemon()
    with capture_logs() as events:
        instance.sync(CHANNELS, 0.0)
        instance.sync(CHANNELS, 0.1)  # inside the backoff: not retried
    refused = [e for e in events if e["event"] == "bird.refused"]
    assert len(refused) == 1
    assert refused[0]["bird_says"] == "/etc/bird/bird.conf:13:60 syntax error"
    assert not instance.in_sync
    assert instance.backoff.retry_at == pytest.approx(0.5)
    assert instance.written[Channel("vol1", 4)], "the desired state is kept"
    assert "8002" in (instance.last_error or "")


def test_access_denied_at_start_is_fatal(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """B4: 8007 (a restricted socket) on the first cycle is fatal with an actionable message."""
    ctl({"show status": fakes.STATUS, "configure": b"8007 Access denied\n"})
    with pytest.raises(FatalError, match="restricted"):
        daemon().sync(CHANNELS, 0.0)


def test_syntax_error_from_bird_is_our_bug_and_loud(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """B4: 9001 to a command rhid sent means rhid is wrong: logged as critical bird.bug."""
    ctl({"show status": fakes.STATUS, "configure": b"9001 syntax error, unexpected END\n"})
    with capture_logs() as events:
        daemon().sync(CHANNELS, 0.0)
    assert [e["log_level"] for e in events if e["event"] == "bird.bug"] == ["critical"]


@pytest.mark.parametrize(
    "garbage",
    [b"this is not bird\n", b"00x1 partial\n", b"7777 BIRD 3 says something new\n"],
    ids=["text", "bad-code", "unknown-code"],
)
def test_garbage_reconnects(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide], garbage: bytes
) -> None:
    """B5: garbage or an unexpected code is a BirdProtocolError: the connection is dropped and redone."""
    server = ctl({"show status": garbage})
    instance = daemon()
    with capture_logs() as events:
        instance.sync(CHANNELS, 0.0)
    assert any(e["event"] == "bird.garbled" for e in events)
    assert isinstance(instance.client, BirdClient)
    assert not instance.client.connected
    instance.backoff.succeeded()
    instance.sync(CHANNELS, 1.0)
    assert server.connections == 2


def test_reconfiguration_in_progress_is_verified_next_cycle(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """B6: 0004/0005 count as accepted; BIRD's routes are checked again on the next cycle."""
    ctl({"show status": fakes.STATUS, "configure": b"0005 Reconfiguration already in progress, queueing\n",
         "show route protocol vol1": ROUTES})  # fmt: skip
    instance = daemon()
    instance.sync(CHANNELS, 10.0)
    assert instance.in_sync
    assert instance.next_verify == 10.0, "verify again at the next cycle"
    with capture_logs() as events:
        instance.sync(CHANNELS, 10.2)
    assert not [e for e in events if e["event"] in {"bird.mismatch", "bird.refused"}]
    assert instance.next_verify > 10.2


def test_slow_bird_backs_off(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """B6: a BIRD that does not answer in time costs one deadline, then backs off, not every cycle."""

    def slow_status() -> bytes:
        time.sleep(1.0)
        return fakes.STATUS

    server_script: Script = {"show status": slow_status}
    server = ctl(server_script)
    instance = daemon()
    assert isinstance(instance.client, BirdClient)
    instance.client.timeout = 0.2
    started = time.monotonic()
    instance.sync(CHANNELS, 10.0)
    assert time.monotonic() - started < 1.0, "one deadline, not the whole slow answer"
    assert instance.backoff.retry_at == pytest.approx(10.5), "a costly failure backs off 0.5 s"
    tried = server.connections
    started = time.monotonic()
    instance.sync(CHANNELS, 10.2)
    assert time.monotonic() - started < 0.05, "inside the backoff: no wait at all"
    assert server.connections == tried, "and no new attempt"
    instance.sync(CHANNELS, 10.6)
    assert instance.backoff.retry_at == pytest.approx(11.6), "tried again after it: the delay doubles"


def test_client_needs_the_greeting(tmp_path: Path) -> None:
    """B5: a socket that does not greet with 0001 is not BIRD: BirdProtocolError."""
    path = tmp_path / "bird.ctl"
    server = fakes.FakeServer(path, fakes.bird({}, greeting=b"0013 hello\n"))
    try:
        with pytest.raises(BirdProtocolError):
            BirdClient(str(path), 1.0).connect()
    finally:
        server.close()


def test_stopped_bird_is_retried_next_cycle(daemon: Callable[[], BirdSide]) -> None:
    """B1: no socket at all is cheap to try, so rhid tries again on the very next cycle."""
    instance = daemon()
    with pytest.raises(BirdUnavailableError):
        instance.client.request("show status")
    instance.sync(CHANNELS, 0.0)
    assert instance.backoff.ready(0.2)


def test_an_operators_configure_is_verified_once(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """After an operator's `birdc configure` (a new status), rhid verifies once, not on every cycle."""
    status = {"now": fakes.STATUS}
    asked: list[str] = []

    def routes() -> bytes:
        asked.append("show route")
        return ROUTES

    ctl({"show status": lambda: status["now"], "configure": b"0003 Reconfigured\n",
         "show route protocol vol1": routes})  # fmt: skip
    instance = daemon()
    instance.sync(CHANNELS, 0.0)
    asked.clear()
    status["now"] = fakes.STATUS.replace(b"07:01:55.072", b"08:00:00.000")  # the operator's configure
    for cycle in range(1, 11):
        instance.sync(CHANNELS, cycle * 0.2)
    assert asked == ["show route"], "one verify for one outside change"


@pytest.mark.parametrize(("restarting", "kept"), [(True, True), (False, False), (None, False)])
def test_a_restart_holds_and_a_stop_withdraws(
    tmp_path: Path,
    daemon: Callable[[], BirdSide],
    monkeypatch: pytest.MonkeyPatch,
    restarting: bool | None,
    kept: bool,
) -> None:
    """SIGTERM during systemd's restart job holds the routes; a stop, or an unknown job, withdraws."""
    monkeypatch.setattr(service, "restarting", lambda: restarting)
    settings = Settings(
        "r", str(tmp_path / "none.sock"), str(tmp_path / "bird.ctl"), tmp_path / "rhid", graceful_shutdown=0.0
    )
    Daemon(settings, RULES, bird_side=daemon()).shut_down(0.0)
    text = (tmp_path / "rhid" / "vol1.ipv4.conf").read_text()
    assert ("route 10.0.0.1/32 blackhole;" in text) is kept


UNKNOWN = b"9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TEXT or ALL\n"


def problems_of(side: BirdSide) -> list[str]:
    return list(side.report().problems)


def test_a_missing_protocol_is_not_in_sync_and_names_the_fix(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """16.1: BIRD without rhid's protocol is not in sync, and the problem names it and `rhid bird-config`."""
    ctl(
        {
            "show status": fakes.STATUS,
            "configure": b"0003 Reconfigured\n",
            "show route protocol vol1": UNKNOWN,
        }
    )
    instance = daemon()
    instance.sync(CHANNELS, 0.0)
    report = instance.report()
    assert report.state == "reachable"
    assert report.in_sync is False
    assert list(report.missing_protocols) == ["vol1"]
    assert any("vol1" in p and "rhid bird-config" in p for p in report.problems), report.problems


def test_an_unwritable_file_is_not_in_sync_and_names_the_path(
    tmp_path: Path, ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """15.8: a file rhid cannot write is reported (write_error, a problem naming the path), not in sync."""
    ctl(
        {"show status": fakes.STATUS, "configure": b"0003 Reconfigured\n", "show route protocol vol1": ROUTES}
    )
    instance = daemon()
    instance.sync(CHANNELS, 0.0)
    assert instance.report().in_sync is True
    path = tmp_path / "rhid" / "vol1.ipv4.conf"
    path.unlink()
    path.mkdir()  # nothing can be written there: not atomically, not in place
    two = parse_rules("10.0.0.1, 10.0.0.2 = always\n")
    assert not instance.apply(
        plan.decide(plan.initial(instance.announced(), instance.owned, 1.0), two, {}, plan.NO_INTENTS, 1.0),
        1.0,
    )
    report = instance.report()
    assert report.in_sync is False
    assert report.write_error is not None
    assert str(path) in report.write_error
    assert any(str(path) in p for p in report.problems), report.problems
    path.rmdir()
    assert instance.apply(
        plan.decide(plan.initial(instance.announced(), instance.owned, 2.0), two, {}, plan.NO_INTENTS, 2.0),
        2.0,
    )
    assert instance.report().write_error is None, "retried and recovered"


def test_problems_name_unreachable_refusing_and_differing_bird(
    ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """Each BIRD-side condition worth paging for is one operator sentence in report().problems."""
    instance = daemon()
    instance.sync(CHANNELS, 0.0)
    assert any("unreachable" in p and "bird.ctl" in p for p in problems_of(instance)), problems_of(instance)

    rejected = (
        b"0002-Reading configuration from /etc/bird/bird.conf\n8002 /etc/bird/bird.conf:13:60 syntax error\n"
    )
    ctl({"show status": fakes.STATUS, "configure": rejected})
    instance.sync(CHANNELS, 1.0)
    assert [p for p in problems_of(instance) if "refuses configure" in p and "bird.conf:13:60" in p]
    assert not [p for p in problems_of(instance) if "unreachable" in p]

    other = b"1007-Table master4:\n 10.9.9.9/32 blackhole [vol1 07:01] * (200)\n0000 \n"
    ctl({"show status": fakes.STATUS, "configure": b"0003 Reconfigured\n", "show route protocol vol1": other})
    for moment in (2.0, 2.5):  # the first finds the old connection closed, the second reconnects
        instance.backoff.succeeded()
        instance.sync(CHANNELS, moment)
    assert not [p for p in problems_of(instance) if "refuses" in p], "an accepted configure clears it"
    instance.backoff.succeeded()
    instance.sync(CHANNELS, 3.0)
    differing = [p for p in problems_of(instance) if "differ" in p]
    assert differing, problems_of(instance)
    assert "10.9.9.9/32" in differing[0]
    assert "10.0.0.1/32" in differing[0]
    assert instance.report().in_sync is False


def test_a_mismatch_rewrites_the_file_from_the_plan_before_reconfiguring(
    tmp_path: Path, ctl: Callable[[Script], fakes.FakeServer], daemon: Callable[[], BirdSide]
) -> None:
    """15.7: a route BIRD has that the plan lacks: its file is rewritten from the plan, then configured."""
    instance = daemon()
    bird = fakes.FakeBird(tmp_path / "rhid")
    path = tmp_path / "rhid" / "vol1.ipv4.conf"
    server = fakes.FakeServer(tmp_path / "bird.ctl", bird.handler())
    try:
        instance.sync(CHANNELS, 0.0)
        assert bird.routes == {"vol1": ["10.0.0.1/32"]}
        path.write_text(path.read_text() + "route 10.9.9.9/32 blackhole;\n")  # added by hand
        bird.reconfigure()  # and applied by an operator's `birdc configure`
        assert bird.routes == {"vol1": ["10.0.0.1/32", "10.9.9.9/32"]}
        for cycle in range(1, 4):
            instance.sync(CHANNELS, float(cycle))
        assert "10.9.9.9" not in path.read_text()
        assert bird.routes == {"vol1": ["10.0.0.1/32"]}
        assert instance.report().in_sync is True
    finally:
        server.close()


def storm_plan(announce: bool) -> plan.Plan:
    route = next(iter(RULES.routes))
    state = plan.RouteState.ANNOUNCED if announce else plan.RouteState.WITHDRAWN
    return plan.Plan({route: plan.Decision(state, None)}, frozenset(CHANNELS))


def test_no_configure_is_ever_queued_behind_a_reconfiguration(
    tmp_path: Path, daemon: Callable[[], BirdSide]
) -> None:
    """18.3: against a BIRD that answers 0004 and reconfigures for 0.3 s, a storm of changes and an
    operator's configure never make rhid send a configure BIRD would queue (0005); it converges."""
    instance = daemon()
    bird = fakes.FakeBird(tmp_path / "rhid", busy_for=0.3)
    server = fakes.FakeServer(tmp_path / "bird.ctl", bird.handler())
    try:
        started = time.monotonic()
        flip = 0
        while time.monotonic() - started < 2.0:
            flip += 1
            instance.apply(storm_plan(flip % 2 == 0), time.monotonic())
            if flip == 30:
                time.sleep(max(0.0, bird.busy_until - time.monotonic()))
                bird.reconfigure()  # the operator's `systemctl reload bird`, while BIRD is idle
                operators = len(bird.configures)
            time.sleep(0.02)
        final = storm_plan(True)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not (instance.report().in_sync and bird.routes.get("vol1")):
            instance.apply(final, time.monotonic())
            time.sleep(0.02)
        assert bird.queued == 0, "a configure reached BIRD while it was reconfiguring"
        assert len(bird.configures) >= 4, bird.configures
        assert operators < len(bird.configures), "rhid configured again after the operator's configure"
        gaps = [b - a for a, b in itertools.pairwise(bird.configures)]
        assert min(gaps) >= 0.1, gaps
        assert bird.routes == {"vol1": ["10.0.0.1/32"]}
        assert instance.report().in_sync is True
    finally:
        server.close()


def test_a_reconfiguration_that_never_ends_is_waited_out_and_reported(
    tmp_path: Path, daemon: Callable[[], BirdSide]
) -> None:
    """18.3: while BIRD stays in 'Reconfiguration in progress' rhid sends no second configure; after
    10 s it is a problem an operator is paged for."""
    instance = daemon()
    bird = fakes.FakeBird(tmp_path / "rhid", busy_for=60.0)
    server = fakes.FakeServer(tmp_path / "bird.ctl", bird.handler())
    try:
        instance.sync(CHANNELS, 0.0)
        two = parse_rules("10.0.0.1, 10.0.0.2 = always\n")
        for moment in (5.0, 11.0):
            instance.apply(
                plan.decide(
                    plan.initial(instance.announced(), instance.owned, moment),
                    two,
                    {},
                    plan.NO_INTENTS,
                    moment,
                ),
                moment,
            )
        assert len(bird.configures) == 1
        assert instance.report().in_sync is False
        assert [p for p in problems_of(instance) if "reconfiguring for 11 s" in p], problems_of(instance)
    finally:
        server.close()


def test_a_stop_signal_abandons_a_wait_on_bird_and_a_sighup_does_not(tmp_path: Path) -> None:
    """15.5: waiting on a silent BIRD, a pending SIGHUP does not interrupt; a SIGTERM does, at once."""
    path = tmp_path / "bird.ctl"

    def slow() -> bytes:
        time.sleep(1.5)
        return b"0003 Reconfigured\n"

    server = fakes.FakeServer(path, fakes.bird({"configure": slow}))
    reader, writer = socket.socketpair()
    try:
        client = BirdClient(str(path), 2.0)
        client.interrupt = reader
        client.connect()
        writer.send(bytes([signal.SIGHUP]))
        threading.Timer(0.5, lambda: writer.send(bytes([signal.SIGTERM]))).start()
        started = time.monotonic()
        with pytest.raises(BirdInterruptedError):
            client.request("configure", timeout=4.0)
        assert 0.5 <= time.monotonic() - started < 0.8, "interrupted by the SIGTERM, not the SIGHUP"
        assert not client.connected, "the abandoned connection is closed"
        assert reader.recv(8) == bytes([signal.SIGHUP, signal.SIGTERM]), "the signals are left to the loop"
    finally:
        reader.close()
        writer.close()
        server.close()


def test_configures_are_at_least_100_ms_apart(tmp_path: Path, daemon: Callable[[], BirdSide]) -> None:
    """18.3: a change every 20 ms against a BIRD that answers 0003 at once still gets configures
    no closer than 100 ms, and BIRD ends with the last plan."""
    instance = daemon()
    bird = fakes.FakeBird(tmp_path / "rhid")
    server = fakes.FakeServer(tmp_path / "bird.ctl", bird.handler())
    try:
        for flip in range(30):
            instance.apply(storm_plan(flip % 2 == 1), time.monotonic())
            time.sleep(0.02)
        gaps = [b - a for a, b in itertools.pairwise(bird.configures)]
        assert len(gaps) >= 5, bird.configures
        assert min(gaps) >= 0.1, gaps
        assert bird.routes == {"vol1": ["10.0.0.1/32"]}
    finally:
        server.close()


def test_a_hand_edited_file_is_rewritten_before_rhid_configures(tmp_path: Path) -> None:
    """15.7: a line added by hand to one file never reaches BIRD through rhid's configure for a
    change in another file: the edited file is rewritten from the plan first."""
    both = parse_rules("10.0.0.1 = always\n2001:db8::1 = always\n")
    side = BirdSide(tmp_path / "rhid", BirdClient(str(tmp_path / "bird.ctl"), 2.0))
    bird = fakes.FakeBird(tmp_path / "rhid")
    server = fakes.FakeServer(tmp_path / "bird.ctl", bird.handler(("vol1", "vol1_v6")))
    try:
        side.apply(plan.decide(plan.initial(set(), frozenset(), 0.0), both, {}, plan.NO_INTENTS, 0.0), 0.0)
        assert bird.applied[-1] == {"vol1": ["10.0.0.1/32"], "vol1_v6": ["2001:db8::1/128"]}
        v4 = tmp_path / "rhid" / "vol1.ipv4.conf"
        v4.write_text(v4.read_text() + "route 10.9.9.9/32 blackhole;\n")
        only_v4 = parse_rules("10.0.0.1 = always\n")  # the IPv6 route goes: a change in the other file
        side.apply(
            plan.decide(plan.initial(side.announced(), side.owned, 1.0), only_v4, {}, plan.NO_INTENTS, 1.0),
            1.0,
        )
        assert len(bird.applied) == 2
        assert bird.applied[-1] == {"vol1": ["10.0.0.1/32"], "vol1_v6": []}
        assert "10.9.9.9" not in v4.read_text()
    finally:
        side.client.close()
        server.close()
