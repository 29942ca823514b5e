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
                reply = replies.get(line.decode(), b"9001 syntax error\n")
                conn.sendall(reply() if callable(reply) else reply)

    return handler


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
