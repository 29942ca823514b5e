"""The control socket with real sockets: replies of megabytes to clients at once, streamed pieces,
slow and silent readers, and the busy answer beyond the limits; a loop thread stands in for the
daemon's (select, serve, then its own work)."""

from __future__ import annotations

import io
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rhid import cli, control, controlwire

BIG = (
    json.dumps({"problems": [], "routes": ["x" * 1000] * 5000}).encode() + b"\n"
)  # 5 MB, as at 10,000 routes


class Loop:
    """The daemon's loop in a thread: select on the server's sockets, serve, then `work` seconds of
    CPU (a cycle); notes how long each serve took."""

    def __init__(self, server: control.ControlServer, answer: control.Answer, work: float = 0.0) -> None:
        self.server, self.answer, self.work = server, answer, work
        self.stop = threading.Event()
        self.serves: list[float] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            readers: list[Any] = self.server.readers()
            writers: list[Any] = self.server.writers()
            ready, writable, _ = select.select(readers, writers, [], 0.02)
            started = time.monotonic()
            self.server.serve(ready, writable, started, self.answer)
            self.serves.append(time.monotonic() - started)
            until = time.monotonic() + self.work
            while time.monotonic() < until:
                pass  # the cycle's own CPU


@contextmanager
def looping(tmp_path: Path, answer: control.Answer, work: float = 0.0) -> Iterator[tuple[str, Loop]]:
    """A control socket served by a Loop; stopped and closed however the test ends."""
    path = tmp_path / "rhid.sock"
    with control.control_socket(path) as server:
        assert server is not None
        loop = Loop(server, answer, work)
        loop.thread.start()
        try:
            yield str(path), loop
        finally:
            loop.stop.set()
            loop.thread.join(10)


def at_once(
    count: int, ask: Callable[[], bytes | controlwire.NoAnswer]
) -> list[bytes | controlwire.NoAnswer]:
    """`count` clients started together, each on its own thread; what each got."""
    got: list[bytes | controlwire.NoAnswer] = []
    go = threading.Event()

    def one() -> None:
        go.wait()
        got.append(ask())

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(120)
    return got


def test_two_clients_of_a_5_mb_reply_both_get_all_of_it_while_the_loop_cycles(tmp_path: Path) -> None:
    """Two clients at once, each a 5 MB reply, the loop spending 0.2 s of CPU between turns (its
    cycles): each reply arrives whole, though it takes longer than a second to go out."""
    with looping(tmp_path, lambda _: BIG, work=0.2) as (path, _):
        got = at_once(2, lambda: controlwire.exchange(path, b"status\n", 60.0))
    assert [len(reply) if isinstance(reply, bytes) else reply for reply in got] == [len(BIG)] * 2
    assert got == [BIG, BIG]


def pieces(count: int, size: int, cost: float) -> Iterator[bytes]:
    """A streamed reply: `count` pieces of `size` bytes, each costing `cost` seconds of CPU to make."""
    for index in range(count):
        until = time.monotonic() + cost
        while time.monotonic() < until:
            pass
        yield bytes([65 + index % 26]) * size


def test_sixteen_streamed_listings_never_hold_the_loop_for_more_than_a_few_pieces(tmp_path: Path) -> None:
    """16 clients at once, each a reply of 100 pieces costing 2 ms each (3.2 s of making in all):
    every client gets every byte, in order, and no turn of the loop made replies for more than a
    small share of that (the loop keeps turning: its polls and the watchdog go on)."""
    expected = b"".join(pieces(100, 20_000, 0.0))
    with looping(tmp_path, lambda _: pieces(100, 20_000, 0.002)) as (path, loop):
        got = at_once(16, lambda: controlwire.exchange(path, b"status routes\n", 120.0, idle=30.0))
        serves = list(loop.serves)
    assert [len(reply) if isinstance(reply, bytes) else reply for reply in got] == [len(expected)] * 16
    assert got == [expected] * 16
    made = 16 * 100 * 0.002
    assert max(serves) < made / 10, f"the longest turn {max(serves):.3f} s of {made:.1f} s of making"
    assert len([s for s in serves if s > 0.001]) > 100, "the making was spread over many turns"


def test_a_reader_that_stops_is_dropped_and_a_slow_steady_one_gets_everything(tmp_path: Path) -> None:
    """A client that never reads its 5 MB reply is dropped once its socket has taken nothing for
    the deadline; one that reads 64 KiB every 40 ms (4 s for the whole) gets all of it."""
    with looping(tmp_path, lambda _: BIG) as (path, loop):
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(path)
        silent.sendall(b"status\n")
        steady = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        steady.connect(path)
        steady.sendall(b"status\n")
        started = time.monotonic()
        steady.settimeout(10)
        chunks = []
        while chunk := steady.recv(65536):
            chunks.append(chunk)
            time.sleep(0.04)
        took = time.monotonic() - started
        assert b"".join(chunks) == BIG
        assert took > 2 * control.CLIENT_DEADLINE, "the reply took longer than any one deadline"
        assert not loop.server.clients, "the silent client was dropped"
        silent.settimeout(10)
        left = b""
        while chunk := silent.recv(1 << 20):
            left += chunk
        assert 0 < len(left) < len(BIG), "it got what its socket held, then EOF: truncated, by the deadline"
        silent.close()
        steady.close()


def test_listings_beyond_the_limit_are_told_the_daemon_is_busy_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_LISTINGS listings going out (to clients that do not read), one more `status routes`
    gets the busy answer at once; a short request is still answered."""
    monkeypatch.setattr(control, "MAX_LISTINGS", 2)

    def answer(request: bytes) -> control.Reply:
        return pieces(1000, 100_000, 0.0) if b"routes" in request else b'{"problems": []}\n'

    with looping(tmp_path, answer) as (path, loop):
        holders = []
        for _ in range(2):
            holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            holder.connect(path)
            holder.sendall(b"status routes\n")
            holders.append(holder)
        deadline = time.monotonic() + 5
        while loop.server.listings < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = controlwire.exchange(path, b"status routes\n", 5.0)
        short = controlwire.exchange(path, b"status\n", 5.0)
        for holder in holders:
            holder.close()
    assert isinstance(busy, bytes)
    answered = json.loads(busy)
    assert answered["busy"] is True
    assert answered["error"] == "busy: 2 status replies are being streamed; try again"
    assert short == b'{"problems": []}\n'


def test_connections_beyond_the_limit_are_told_the_daemon_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_CLIENTS connections open, the next one gets the busy answer, not a hang or a reset."""
    monkeypatch.setattr(control, "MAX_CLIENTS", 3)
    with looping(tmp_path, lambda _: b'{"problems": []}\n') as (path, loop):
        idle = []
        for _ in range(3):
            one = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            one.connect(path)
            idle.append(one)
        deadline = time.monotonic() + 5
        while len(loop.server.clients) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = controlwire.exchange(path, b"status\n", 5.0)
        for one in idle:
            one.close()
    assert isinstance(got, bytes), got
    assert json.loads(got)["busy"] is True


def test_rhid_status_told_busy_exits_3_saying_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rhid status` answered busy exits 3 (no answer: retry), its one line the daemon's words."""
    monkeypatch.setattr(control, "MAX_CLIENTS", 1)
    out, err = io.StringIO(), io.StringIO()
    with (
        looping(tmp_path, lambda _: b'{"problems": []}\n') as (path, loop),
        socket.socket(socket.AF_UNIX) as idle,
    ):
        idle.connect(path)
        deadline = time.monotonic() + 5
        while not loop.server.clients and time.monotonic() < deadline:
            time.sleep(0.01)
        code = cli.show_status(tmp_path, None, as_json=False, out=out, err=err, routes=True)
    assert code == cli.EXIT_UNREADABLE
    assert out.getvalue() == ""
    said = "busy: answering 1 client(s) already; try again"
    assert err.getvalue() == f"rhid: cannot reach the daemon at {tmp_path / 'rhid.sock'}: {said}\n"
