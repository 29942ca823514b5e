"""`rhid run` as a process against fake HAProxy and BIRD sockets: promises the process makes.

Each test starts the real daemon (`python -m rhid run`) in a temp dir, with a fake peer that
misbehaves in one way, and reads what an operator would: the include files, the exit code, what it
told the service manager, `rhid status`. Every process is stopped by PID, whatever happens.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from rhid import status
from rhid.routefiles import render_routes
from tests.fault import fakes
from tests.integration.lab import NotifyListener, wait_for

GOOD = b"Name: HAProxy\nPid: 42\n\n# pxname,svname,status,type,check_status,\nbe,BACKEND,UP,1,,\n\n"
HTML = b"Name: HAProxy\nPid: 42\n\n<html>502 Bad Gateway</html>\n\n"
ANNOUNCED = render_routes([ipaddress.ip_network("10.0.0.1/32")])


class Serve(Protocol):
    def __call__(
        self, path: Path, handler: fakes.Handler, *, concurrent: bool = False
    ) -> fakes.FakeServer: ...


class Daemon:
    """One `rhid run` process and its paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "rhid"
        self.rules = root / "hapee-rhi.cfg"
        self.haproxy = root / "haproxy.sock"
        self.bird = root / "bird.ctl"
        self.log = root / "rhid.log"
        self.notify = NotifyListener(root / "notify.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, rules: str, *extra: str, env: dict[str, str] | None = None, umask: int | None = None
    ) -> None:
        self.rules.write_text(rules)
        argv = [sys.executable, "-m", "rhid", "run", "-c", str(self.rules),
                "--haproxy-socket", str(self.haproxy), "--bird-socket", str(self.bird),
                "--bird-dir", str(self.dir), "--state-dir", str(self.root / "state"),
                "--log-format", "json", "--interval", "0.1",
                "--haproxy-events", "none", *extra]  # fmt: skip
        environment = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "NOTIFY_SOCKET": str(self.notify.path),
            **(env or {}),
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,  # noqa: PLW1509
            )

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [json.loads(line) for line in lines if line.startswith("{")]

    def names(self) -> list[object]:
        return [event["event"] for event in self.events()]

    def file(self, name: str = "vol1.ipv4.conf") -> str:
        path = self.dir / name
        return path.read_text() if path.exists() else ""

    def cycles_after(self, moment: float) -> int:
        """How many WATCHDOG=1 (one per completed cycle, or per keepalive) arrived after `moment`."""
        self.notify.collect()
        return sum(1 for at, text in self.notify.messages if at > moment and "WATCHDOG=1" in text.split("\n"))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def rhid(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path)
    try:
        yield daemon
    finally:
        if daemon.proc is not None:
            daemon.stop(signal.SIGKILL)
        daemon.notify.close()


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[fakes.FakeServer] = []

    def start(path: Path, handler: fakes.Handler, *, concurrent: bool = False) -> fakes.FakeServer:
        for old in [s for s in servers if s.path == path]:
            old.close()
        path.unlink(missing_ok=True)
        servers.append(fakes.FakeServer(path, handler, concurrent=concurrent))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def announce(directory: Path, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "vol1.ipv4.conf").write_text(text)


def test_unreadable_haproxy_at_start_keeps_the_announced_routes(rhid: Daemon, serve: Serve) -> None:
    """Restarted while HAProxy's replies are unreadable, rhid holds the routes its files announce."""
    announce(rhid.dir, ANNOUNCED)
    serve(rhid.haproxy, fakes.replying(HTML))
    rhid.start("10.0.0.1 = all(b:be)\n")
    rhid.notify.wait("READY=1")
    started = time.monotonic()
    wait_for("ten cycles", lambda: rhid.cycles_after(started) >= 10, 10)
    assert "route 10.0.0.1/32 blackhole;" in rhid.file()
    assert "route.withdrawn" not in rhid.names()


def test_reload_adding_a_target_during_unreadable_replies_keeps_the_route(rhid: Daemon, serve: Serve) -> None:
    """A SIGHUP that adds a target never polled, while HAProxy's replies are unreadable, holds the route."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = any(b:be)\n")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    serve(rhid.haproxy, fakes.replying(HTML))
    wait_for("a garbled reply", lambda: "haproxy.garbled" in rhid.names(), 10)
    rhid.rules.write_text("10.0.0.1 = all(b:be,b:be_new)\n")
    assert rhid.proc is not None
    rhid.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: "rules.reloaded" in rhid.names(), 10)
    moment = time.monotonic()
    wait_for("ten cycles", lambda: rhid.cycles_after(moment) >= 10, 10)
    assert "route 10.0.0.1/32 blackhole;" in rhid.file()


def trickle(client: socket.socket, every: float, limit: int) -> float | None:
    """Send one byte every `every` seconds, without a newline; the seconds until the daemon hung up."""
    started = time.monotonic()
    for _ in range(limit):
        try:
            client.send(b"s")
            time.sleep(every)
            if client.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                return time.monotonic() - started
        except BlockingIOError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_a_slow_status_client_never_stalls_the_loop(rhid: Daemon, serve: Serve) -> None:
    """A `rhid status` client trickling a byte every 0.15 s is dropped; cycles go on meanwhile."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n")
    rhid.notify.wait("READY=1")
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(rhid.dir / "rhid.sock"))
        started = time.monotonic()
        trickled = trickle(client, every=0.15, limit=20)
    assert trickled is not None
    assert trickled < 2.0, "the client was dropped at its deadline"
    assert rhid.cycles_after(started) >= 0.5 * trickled / 0.1, "the loop kept cycling every 0.1 s"


def test_lines_rhid_did_not_write_are_removed_at_start(rhid: Daemon, serve: Serve) -> None:
    """A hand-added line in rhid's include file is removed by the first cycle; rhid's own line stays."""
    announce(rhid.dir, "route 10.0.0.1/32 blackhole;\nroute 10.9.9.9/32 blackhole; # added by hand\n")
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n")
    rhid.notify.wait("READY=1")
    assert "10.9.9.9" not in rhid.file()
    assert "route 10.0.0.1/32 blackhole;" in rhid.file()


ROUTES = b"1007-Table master4:\n 10.0.0.1/32 blackhole [vol1 07:01] * (200)\n0000 \n"


def slow_configure(seconds: float) -> fakes.Handler:
    """A scripted BIRD whose first `configure` takes `seconds` to answer."""
    slow = threading.Event()

    def configure() -> bytes:
        if not slow.is_set():
            slow.set()
            time.sleep(seconds)
        return b"0003 Reconfigured\n"

    return fakes.bird(
        {
            "show status": fakes.STATUS,
            "configure": configure,
            "show route protocol vol1": ROUTES,
        }
    )


def test_a_12_s_configure_blocks_neither_polls_nor_status_nor_the_watchdog(
    rhid: Daemon, serve: Serve, tmp_path: Path
) -> None:
    """While BIRD takes 12 s over a configure and HAProxy's health changes meanwhile, polls, `rhid
    status` and WATCHDOG=1 go on throughout, the file follows at once, and BIRD gets the change in
    one more configure as soon as it answers."""
    replies = [GOOD]
    down = GOOD.replace(b"be,BACKEND,UP", b"be,BACKEND,DOWN")

    def haproxy(conn: socket.socket, _: threading.Event) -> None:
        fakes.read_request(conn)
        conn.sendall(replies[0])

    polls = serve(rhid.haproxy, haproxy)
    bird = fakes.FakeBird(rhid.dir, delays={0: 12.0})
    serve(rhid.bird, bird.handler())
    rhid.start("10.0.0.1 = all(b:be)\n", "--fall", "1", env={"WATCHDOG_USEC": "2000000"})
    wait_for("the slow configure", lambda: len(bird.configures) == 1, 10)
    slow_since = bird.configures[0]
    answered, polled = [], []
    next_status = slow_since + 3.0
    while time.monotonic() < slow_since + 11.0:
        rhid.notify.collect()  # often: systemd's datagram queue holds 10, and this stamps their arrival
        if replies[0] is GOOD and time.monotonic() > slow_since + 2.0:
            replies[0] = down  # be goes down while BIRD is busy with the first configure
        if time.monotonic() >= next_status:
            assert "10.0.0.1" not in rhid.file(), "the file follows the plan at once"
            answered.append(status.fetch(str(rhid.dir / "rhid.sock"), None, timeout=1.0)["announced"])
            polled.append(polls.connections)
            next_status = time.monotonic() + 0.5
        time.sleep(0.02)
    assert len(bird.configures) == 1, "no second configure while the first is in flight"
    assert set(answered) == {0}, "rhid status answered throughout, with the plan of the moment"
    assert all(b > a for a, b in itertools.pairwise(polled)), f"HAProxy polled throughout: {polled}"
    fed = [at for at, text in rhid.notify.messages if "WATCHDOG=1" in text.split("\n") and at > slow_since]
    gaps = [b - a for a, b in itertools.pairwise(fed)]
    assert fed[-1] > slow_since + 10.5
    assert max(gaps) < 1.0, gaps
    assert "READY=1" not in rhid.notify.lines(), "READY=1 waits for the first exchange with BIRD"
    wait_for("the second configure", lambda: len(bird.configures) == 2, 5)
    rhid.notify.wait("READY=1", timeout=5)
    wait_for("BIRD applying the withdrawal", lambda: bird.routes.get("vol1") == [], 5)
    assert bird.configures[1] - slow_since >= 12.0
    assert bird.queued == 0
    assert rhid.stop() == 0


def test_a_directory_in_place_of_the_status_socket_does_not_stop_routing(rhid: Daemon, serve: Serve) -> None:
    """If rhid.sock cannot be removed (a directory of that name), rhid routes on without `rhid status`."""
    (rhid.dir / "rhid.sock").mkdir(parents=True)
    serve(rhid.haproxy, fakes.replying(GOOD))
    serve(rhid.bird, fakes.FakeBird(rhid.dir).handler())  # a BIRD that confirms the stop's withdrawal
    rhid.start("10.0.0.1 = all(b:be)\n")
    rhid.notify.wait("READY=1")
    assert "route 10.0.0.1/32 blackhole;" in rhid.file()
    assert "status.unavailable" in rhid.names()
    assert rhid.stop() == 0


def test_the_state_directory_is_traversable_by_bird_under_umask_0077(rhid: Daemon, serve: Serve) -> None:
    """Created under the unit's UMask=0077, the directory is still mode 0755 so BIRD can read the files."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n", umask=0o077)
    rhid.notify.wait("READY=1")
    assert rhid.dir.stat().st_mode & 0o777 == 0o755
    assert (rhid.dir / "vol1.ipv4.conf").stat().st_mode & 0o777 == 0o644


TRAFFIC = (
    b'<6>2026-11-22T10:00:00+00:00 127.0.0.1:4242 [22/Nov/2026] fe be/s1 0/0/1/1/2 200 "GET / HTTP/1.1"\n'
)
CHANGE = b"<1>2026-11-22T10:00:01+00:00 Server be/s1 is DOWN, reason: Layer4 connection problem.\n"


def haproxy_with_busy_ring(lines: int, gone: threading.Event) -> fakes.Handler:
    """An HAProxy answering polls (UP until `gone`, then DOWN), whose ring `rhid` streams `lines`
    traffic lines one write each, as HAProxy does, then one state change."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        conn.settimeout(2)
        request = conn.recv(4096)
        if request.startswith(b"show events\n"):
            conn.sendall(b"Supported events sinks:\n    rhid       : type=buffer, 0 dropped, rhid\n\n")
        elif b"show events rhid -nw" in request:
            for _ in range(lines):
                conn.sendall(TRAFFIC)
            gone.set()
            conn.sendall(CHANGE)
            stopping.wait(30)
        else:
            conn.sendall(GOOD.replace(b"UP", b"DOWN") if gone.is_set() else GOOD)

    return handler


def test_a_ring_full_of_traffic_costs_bounded_reads_and_is_named(rhid: Daemon, serve: Serve) -> None:
    """100,000 traffic lines cost at most ~100 ring reads a second; a state change after them still
    wakes a poll at once; rhid warns once that the ring carries traffic."""
    gone = threading.Event()
    serve(rhid.haproxy, haproxy_with_busy_ring(100_000, gone), concurrent=True)
    rhid.start("10.0.0.1 = all(b:be)\n", "--haproxy-events", "auto", "--interval", "5", "--fall", "1")
    rhid.notify.wait("READY=1")
    started = time.monotonic()
    wait_for("the flood to end", gone.is_set, 60)
    wait_for("the route withdrawn", lambda: "10.0.0.1" not in rhid.file(), 3)
    took = time.monotonic() - started
    status = subprocess.run(
        [sys.executable, "-m", "rhid", "status", "--json", "--bird-dir", str(rhid.dir)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    events = json.loads(status.stdout)["haproxy"]["events"]
    assert events["ring"] == "rhid"
    assert events["bytes"] >= 100_000 * len(TRAFFIC)
    assert events["reads"] <= 150 * took + 20, (events, took)
    assert rhid.names().count("haproxy.events_noisy") == 1


def started_configure(bird: fakes.FakeBird) -> bool:
    return bool(bird.configures)


@pytest.mark.parametrize(("concurrent", "code"), [(False, 5), (True, 0)], ids=["bird-busy", "bird-answers"])
def test_sigterm_during_a_slow_configure_withdraws_at_once(
    rhid: Daemon, serve: Serve, concurrent: bool, code: int
) -> None:
    """15.5: SIGTERM while BIRD takes 20 s over a configure empties the files within ~1 s and exits
    within the 10 s bound: 0 when BIRD confirmed the withdrawal (on a second connection), 5 when not."""
    bird = fakes.FakeBird(rhid.dir, delays={0: 20.0})
    serve(rhid.haproxy, fakes.replying(GOOD))
    serve(rhid.bird, bird.handler(), concurrent=concurrent)
    rhid.start("10.0.0.1 = all(b:be)\n", "--graceful-shutdown", "0")  # the stop's own withdrawal
    wait_for("the slow configure", lambda: started_configure(bird), 10)
    assert "route 10.0.0.1/32 blackhole;" in rhid.file()
    assert rhid.proc is not None
    stopped = time.monotonic()
    rhid.proc.send_signal(signal.SIGTERM)
    wait_for("the files emptied", lambda: "route " not in rhid.file(), 1.5)
    assert rhid.proc.wait(12) == code
    assert time.monotonic() - stopped < 11.0
    stops = [e for e in rhid.events() if e["event"] == "daemon.stopping"]
    assert stops, rhid.names()
    if code == 0:
        assert stops[-1]["bird"] == "confirmed", stops
    else:
        assert str(stops[-1]["bird"]).startswith("not confirmed"), stops


def flapping() -> fakes.Handler:
    """An HAProxy whose backend alternates UP and DOWN at every poll."""
    polls = [0]

    def handler(conn: socket.socket, _: threading.Event) -> None:
        fakes.read_request(conn)
        polls[0] += 1
        conn.sendall(GOOD if polls[0] % 2 else GOOD.replace(b"UP", b"DOWN"))

    return handler


def test_a_storm_of_flips_never_queues_a_configure_behind_bird_3s_reconfiguration(
    rhid: Daemon, serve: Serve
) -> None:
    """18.3: health flipping at every 0.1 s poll, against a BIRD that answers 0004 and reconfigures
    for 0.3 s: rhid never sends a configure BIRD would queue (0005), and keeps configuring."""
    bird = fakes.FakeBird(rhid.dir, busy_for=0.3)
    serve(rhid.haproxy, flapping())
    serve(rhid.bird, bird.handler())
    rhid.start("10.0.0.1 = all(b:be)\n", "--fall", "1", "--rise", "1", "--damping", "off")  # the storm
    rhid.notify.wait("READY=1")
    storm = time.monotonic()
    while time.monotonic() - storm < 3.0:
        rhid.notify.collect()  # a full notify socket would block the daemon: read what it says
        time.sleep(0.05)
    assert rhid.proc is not None
    assert rhid.proc.poll() is None
    assert rhid.names().count("route.withdrawn") >= 10, "the storm happened"
    assert bird.queued == 0, "a configure reached BIRD while it was reconfiguring"
    assert len(bird.configures) >= 4, bird.configures
