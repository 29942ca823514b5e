"""In-process fake peers on UNIX sockets, for the F rows of the fault matrix.

A FakeServer accepts connections in a thread (one at a time, or each in its own) and runs a scripted
behaviour on each: garbage,
truncation, a reset, silence, a trickle, an endless reply, or a scripted BIRD. Fakes are fine here:
they prove how rhid's clients and loop treat a misbehaving peer. The real programs prove the rest.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

Handler = Callable[[socket.socket, threading.Event], None]


class FakeServer:
    """A UNIX stream socket served by `handler`, one connection at a time, until `close()`."""

    def __init__(self, path: Path, handler: Handler, *, concurrent: bool = False) -> None:
        self.path = path
        self.handler = handler
        self.concurrent = concurrent  # each connection in its own thread (a stream beside polls)
        self.stopping = threading.Event()
        self.connections = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.listener.settimeout(0.05)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.concurrent:
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
            else:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handler(conn, self.stopping)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


def read_request(conn: socket.socket) -> bytes:
    """Read what the client sends until it half-closes (as rhid's HAProxy client does)."""
    conn.settimeout(2)
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data


def replying(data: bytes) -> Handler:
    """Answer every request with `data`, then close."""

    def handler(conn: socket.socket, _: threading.Event) -> None:
        read_request(conn)
        conn.sendall(data)

    return handler


def resetting(data: bytes) -> Handler:
    """Send part of a reply, then reset the connection (RST, not FIN)."""

    def handler(conn: socket.socket, _: threading.Event) -> None:
        read_request(conn)
        conn.sendall(data)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return handler


def silent(conn: socket.socket, stopping: threading.Event) -> None:
    """Accept and never answer."""
    stopping.wait(30)


def trickling(conn: socket.socket, stopping: threading.Event) -> None:
    """Answer one byte every 50 ms, forever."""
    read_request(conn)
    while not stopping.is_set():
        conn.sendall(b"N")
        time.sleep(0.05)


def endless(conn: socket.socket, stopping: threading.Event) -> None:
    """Answer an endless stream of plausible CSV."""
    read_request(conn)
    line = b"be,BACKEND,UP,1,,,\n" * 4096
    while not stopping.is_set():
        conn.sendall(line)


def bird(
    replies: Mapping[str, bytes | Callable[[], bytes]], greeting: bytes = b"0001 BIRD 2.0.12 ready.\n"
) -> Handler:
    """A scripted BIRD: the greeting, then for each command line the reply scripted for it."""

    def handler(conn: socket.socket, stopping: threading.Event) -> None:
        conn.sendall(greeting)
        conn.settimeout(0.05)
        buffer = b""
        while not stopping.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                conn.sendall(answer(replies, line.decode()))

    return handler


def answer(replies: Mapping[str, bytes | Callable[[], bytes]], command: str) -> bytes:
    """The scripted reply to `command`. ``show route N protocol P`` is answered from the script's
    ``show route protocol P`` listing, filtered to N (8001 when N is not there), as BIRD does."""
    words = command.split()
    if (
        command not in replies
        and len(words) == 5
        and words[:2] == ["show", "route"]
        and words[3] == "protocol"
    ):
        whole = replies.get(f"show route protocol {words[4]}")
        if whole is not None:
            listing = whole() if callable(whole) else whole
            if not listing.startswith((b"1007", b"0000")):
                return listing  # an error (an unknown protocol): the same for one prefix
            rows = [row for row in listing.splitlines() if row.split()[:1] == [words[2].encode()]]
            if not rows:
                return b"8001 Network not found\n"
            return b"1007-Table master4:\n" + b"\n".join(rows) + b"\n0000 \n"
    reply = replies.get(command, b"9001 syntax error\n")
    return reply() if callable(reply) else reply


STATUS = (
    b"1000-BIRD 2.0.12\n1011-Router ID is 127.0.0.1\n Last reboot on 2026-11-21 07:01:45.925\n"
    b" Last reconfiguration on 2026-11-21 07:01:55.072\n0013 Daemon is up and running\n"
)


def read_request_line(conn: socket.socket) -> bytes:
    """Read one command line from a client that does not half-close (a stream request)."""
    conn.settimeout(2)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class FakeBird:
    """A BIRD that reads rhid's include files at every ``configure`` and lists their routes, as BIRD
    does; `delays` makes the n-th configure slow, `busy_for` makes each configure answer 0004 and
    ``show status`` say ``Reconfiguration in progress`` for that long (BIRD 3). A configure that
    arrives meanwhile is queued, answered 0005 and counted in `queued`: what rhid must never cause."""

    def __init__(self, directory: Path, delays: Mapping[int, float] | None = None, busy_for: float = 0.0):
        self.directory = directory
        self.delays = dict(delays or {})
        self.busy_for = busy_for
        self.busy_until = 0.0
        self.configures: list[float] = []  # when each configure arrived (time.monotonic())
        self.queued = 0
        self.routes: dict[str, list[str]] = {}
        self.applied: list[dict[str, list[str]]] = []  # the routes of every configure, in order
        self.lock = threading.Lock()

    def reconfigure(self) -> None:
        """What BIRD does on configure, or when an operator runs `birdc configure`."""
        with self.lock:
            now = time.monotonic()
            self.configures.append(now)
            if now < self.busy_until:
                self.queued += 1
            self.busy_until = max(self.busy_until, now) + self.busy_for
            self.routes = {}
            for path in sorted(self.directory.glob("*.ipv[46]*.conf")):
                table, family = path.name.split(".")[:2]
                protocol = table if family == "ipv4" else f"{table}_v6"
                self.routes[protocol] = [
                    line.split()[1] for line in path.read_text().splitlines() if line.startswith("route ")
                ]
            self.applied.append(dict(self.routes))

    def configure(self) -> bytes:
        delay = self.delays.get(len(self.configures), 0.0)
        queued = self.queued
        was_busy = time.monotonic() < self.busy_until
        self.reconfigure()
        if delay:
            time.sleep(delay)
        if self.queued > queued:
            return b"0005 Reconfiguration already in progress, queueing new config\n"
        if self.busy_for or was_busy:
            return b"0004 Reconfiguration in progress\n"
        return b"0003 Reconfigured\n"

    def status(self) -> bytes:
        busy = time.monotonic() < self.busy_until
        last = b"0013 Reconfiguration in progress\n" if busy else b"0013 Daemon is up and running\n"
        when = f"{len(self.configures):06d}".encode()
        return (
            b"1000-BIRD 3.1.8\n1011-Router ID is 127.0.0.1\n Last reboot on 2026-11-21 07:01:45.925\n"
            b" Last reconfiguration on 2026-11-21 07:01:55." + when + b"\n" + last
        )

    def listing(self, protocol: str) -> bytes:
        lines = [
            f" {prefix} blackhole [{protocol} 07:01] * (200)" for prefix in self.routes.get(protocol, [])
        ]
        if not lines:
            return b"0000 \n"
        return ("1007-Table master4:\n" + "\n".join(lines) + "\n0000 \n").encode()

    def handler(self, protocols: tuple[str, ...] = ("vol1",)) -> Handler:
        """The socket handler, answering `show route protocol P` for each of `protocols`."""
        script: dict[str, bytes | Callable[[], bytes]] = {
            "show status": self.status,
            "configure": self.configure,
        }
        for protocol in protocols:
            script[f"show route protocol {protocol}"] = lambda p=protocol: self.listing(p)  # type: ignore[misc]
        return bird(script)
