"""The control socket `rhid status` talks to: non-blocking, so no client can ever stall the loop.

The loop selects on the listener and on each client's socket; a ready socket gets one
non-blocking ``recv`` or ``send`` and the loop moves on. A client has `CLIENT_DEADLINE` to send
its request line. Its reply is made by a function the daemon passes in, from the same plan every
other consumer reads: a byte string, or an iterator of byte strings (a listing of every route,
megabytes at 10,000 routes), which is pulled a piece at a time as the client's socket drains, and
for at most `TURN_BUDGET` seconds per loop turn over all clients (at least one piece), in turn, so
that polls and the watchdog go on while listings go out. A replying client is dropped when its
socket has taken nothing for `CLIENT_DEADLINE` while bytes waited for it, or at `REPLY_DEADLINE`
whatever it does; never because the daemon was busy. Beyond `MAX_CLIENTS` connections (up to as
many again), or `MAX_LISTINGS` streamed replies, a client is told the daemon is busy (it retries),
as soon as its request line is in.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from rhid import status

log = structlog.get_logger("rhid")

CLIENT_DEADLINE = 1.0  # seconds to send the request line; and without progress while a reply waits
REPLY_DEADLINE = 60.0  # seconds for one client's whole exchange, however it goes
MAX_CLIENTS = 32  # connections at once; beyond, a client is told the daemon is busy
MAX_LISTINGS = 16  # streamed replies at once (each a listing of every route); beyond, busy
TURN_BUDGET = 0.01  # seconds of making replies per loop turn, over all clients (at least one piece)
SEND_CHUNK = 256 * 1024  # a client's buffer is refilled below this
BACKLOG = 32

Reply = bytes | Iterator[bytes]
Answer = Callable[[bytes], Reply]


def busy(reason: str) -> bytes:
    """The answer to a client beyond the limits: an error document that says to retry."""
    return json.dumps({"error": f"busy: {reason}; try again", "busy": True}).encode() + b"\n"


@dataclass
class _Client:
    sock: socket.socket
    deadline: float  # the next moment it is dropped at, unless it makes progress
    last: float  # accepted + REPLY_DEADLINE: dropped then whatever
    refused: bool = False  # beyond MAX_CLIENTS: its request is read, and answered with `busy`
    request: bytes = b""
    answered: bool = False
    pending: bytearray = field(default_factory=bytearray)  # made, not yet sent
    pieces: Iterator[bytes] | None = None  # the rest of a streamed reply

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def done(self) -> bool:
        """Everything of its reply is sent."""
        return self.answered and not self.pending and self.pieces is None


@dataclass
class ControlServer:
    """The listening socket and the clients in flight."""

    listener: socket.socket
    clients: list[_Client] = field(default_factory=list)
    turn: int = 0  # which client is served first: each in turn

    def readers(self) -> list[object]:
        """What the loop should select for reading: the listener and clients still sending."""
        return [self.listener, *(c for c in self.clients if not c.answered)]

    def writers(self) -> list[object]:
        """What the loop should select for writing: clients with a reply to take."""
        return [c for c in self.clients if c.answered]

    def next_deadline(self) -> float | None:
        """The earliest client deadline, so the loop wakes to drop a client that never finishes."""
        return min((min(c.deadline, c.last) for c in self.clients), default=None)

    @property
    def listings(self) -> int:
        """Streamed replies in flight (listings, prefixes, overviews not yet made)."""
        return sum(1 for c in self.clients if c.pieces is not None)

    def serve(self, readable: list[object], writable: list[object], now: float, answer: Answer) -> None:
        """One non-blocking step for every ready socket, at most `TURN_BUDGET` of making replies;
        drop clients past their deadline."""
        if self.listener in readable:
            self._accept(now)
        stop = time.monotonic() + TURN_BUDGET
        ready: list[_Client] = []
        for client in list(self.clients):
            try:
                if client in readable:
                    self._receive(client, answer, now)
                elif client in writable:
                    ready.append(client)
            except OSError as exc:
                self._fail(client, exc)
        self._write(ready, now, stop)
        for client in list(self.clients):
            if now >= client.deadline or now >= client.last:
                log.debug("status.client_too_slow", deadline=CLIENT_DEADLINE)
                self._drop(client)

    def _write(self, ready: list[_Client], now: float, stop: float) -> None:
        """Refill and send, each ready client in turn, one piece at a time, until the budget is
        spent (at least one piece this turn)."""
        if not ready:
            return
        self.turn = (self.turn + 1) % len(ready)
        ready = ready[self.turn :] + ready[: self.turn]
        made = False
        while ready:
            for client in list(ready):
                if (
                    client.pieces is not None
                    and len(client.pending) < SEND_CHUNK
                    and (not made or time.monotonic() < stop)
                ):
                    piece = next(client.pieces, None)
                    made = True
                    if piece is None:
                        client.pieces = None
                    else:
                        client.pending += piece
                try:
                    self._send(client, now)
                except OSError as exc:
                    self._fail(client, exc)
                    ready.remove(client)
                    continue
                if client.done:
                    self._drop(client)
                if client not in self.clients or client.pending or client.pieces is None:
                    ready.remove(client)  # finished, or its socket is full: next turn
            if time.monotonic() >= stop:
                break

    def _accept(self, now: float) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        serving = sum(1 for c in self.clients if not c.refused)
        if len(self.clients) >= 2 * MAX_CLIENTS:  # as many again are told they are refused: no more
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock, now + CLIENT_DEADLINE, now + REPLY_DEADLINE, refused=serving >= MAX_CLIENTS)
        self.clients.append(client)

    def _receive(self, client: _Client, answer: Answer, now: float) -> None:
        chunk = client.sock.recv(status.MAX_REQUEST_BYTES + 1)
        client.request += chunk
        if chunk and b"\n" not in client.request and len(client.request) <= status.MAX_REQUEST_BYTES:
            return  # more to come
        request = client.request[: status.MAX_REQUEST_BYTES]
        if client.refused:  # its request read (closing on it unread would reset the connection)
            reply: Reply = busy(f"answering {MAX_CLIENTS} client(s) already")
        elif self.listings >= MAX_LISTINGS and isinstance(status.parse_request(request), status.Listing):
            reply = busy(f"{self.listings} status replies are being streamed")
        else:
            reply = answer(request)
        client.answered = True
        if isinstance(reply, bytes):
            client.pending += reply
        else:
            client.pieces = reply
        client.deadline = now + CLIENT_DEADLINE
        if client.pieces is None:  # a short answer goes at once; a listing waits for its turn
            self._send(client, now)
            if client.done:
                self._drop(client)

    def _send(self, client: _Client, now: float) -> None:
        """Send what is made; a client that took bytes, or for which none waited, is not too slow."""
        if client.pending:
            sent = client.sock.send(client.pending)
            del client.pending[:sent]
            if not sent:
                return
        client.deadline = now + CLIENT_DEADLINE

    def _fail(self, client: _Client, exc: OSError) -> None:
        log.debug("status.client_failed", reason=str(exc))
        if client in self.clients:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        client.sock.close()
        self.clients.remove(client)

    def close(self) -> None:
        """Close every client and the listener."""
        for client in list(self.clients):
            self._drop(client)
        self.listener.close()


@contextmanager
def control_socket(path: Path) -> Iterator[ControlServer | None]:
    """The `rhid status` socket, mode 0660 so only its owner and group can read the status.

    If it cannot be created (a path over the 107-byte AF_UNIX limit, a read-only directory, a
    directory in its place), rhid routes on without it: `rhid status` is a convenience, routing is
    the job.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        path.unlink(missing_ok=True)  # a leftover of a killed rhid; the instance lock says it is ours now
        listener.bind(str(path))
        os.chmod(path, 0o660)
        listener.listen(BACKLOG)
        listener.setblocking(False)
    except OSError as exc:
        listener.close()
        log.error("status.unavailable", socket=str(path), reason=str(exc))
        yield None
        return
    server = ControlServer(listener)
    try:
        yield server
    finally:
        server.close()
        path.unlink(missing_ok=True)
