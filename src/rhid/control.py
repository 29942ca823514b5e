"""The control socket `rhid status` talks to: non-blocking, so no client can ever stall the loop.

Every client gets one deadline for its whole exchange (request line in, JSON reply out). The loop
selects on the listener and on each client's socket; a ready socket gets exactly one non-blocking
``recv`` or ``send`` and the loop moves on. A client that is slow, silent or never reads its reply
is dropped at its deadline. The reply is built by a function the daemon passes in, from the same
plan every other consumer reads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from rhid import status

log = structlog.get_logger("rhid")

CLIENT_DEADLINE = 1.0  # seconds for one client's whole exchange
MAX_CLIENTS = 16  # beyond this, new clients are refused at once (they retry)
SEND_CHUNK = 64 * 1024

Answer = Callable[[bytes], bytes]


@dataclass
class _Client:
    sock: socket.socket
    deadline: float
    request: bytes = b""
    reply: bytes | None = None
    sent: int = 0

    def fileno(self) -> int:
        return self.sock.fileno()


@dataclass
class ControlServer:
    """The listening socket and the clients in flight."""

    listener: socket.socket
    clients: list[_Client] = field(default_factory=list)

    def readers(self) -> list[object]:
        """What the loop should select for reading: the listener and clients still sending."""
        return [self.listener, *(c for c in self.clients if c.reply is None)]

    def writers(self) -> list[object]:
        """What the loop should select for writing: clients with a reply to take."""
        return [c for c in self.clients if c.reply is not None]

    def next_deadline(self) -> float | None:
        """The earliest client deadline, so the loop wakes to drop a client that never finishes."""
        return min((c.deadline for c in self.clients), default=None)

    def serve(self, readable: list[object], writable: list[object], now: float, answer: Answer) -> None:
        """One non-blocking step for every ready socket; drop clients past their deadline."""
        if self.listener in readable:
            self._accept(now)
        for client in list(self.clients):
            try:
                if client in readable:
                    self._receive(client, answer)
                elif client in writable:
                    self._send(client)
            except OSError as exc:
                log.debug("status.client_failed", reason=str(exc))
                self._drop(client)
                continue
            if client in self.clients and now >= client.deadline:
                log.debug("status.client_too_slow", deadline=CLIENT_DEADLINE)
                self._drop(client)

    def _accept(self, now: float) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self.clients) >= MAX_CLIENTS:
            sock.close()
            return
        sock.setblocking(False)
        self.clients.append(_Client(sock, now + CLIENT_DEADLINE))

    def _receive(self, client: _Client, answer: Answer) -> None:
        chunk = client.sock.recv(status.MAX_REQUEST_BYTES + 1)
        client.request += chunk
        if chunk and b"\n" not in client.request and len(client.request) <= status.MAX_REQUEST_BYTES:
            return  # more to come
        client.reply = answer(client.request[: status.MAX_REQUEST_BYTES])
        self._send(client)

    def _send(self, client: _Client) -> None:
        assert client.reply is not None  # noqa: S101 -- only clients with a reply are writable
        client.sent += client.sock.send(client.reply[client.sent : client.sent + SEND_CHUNK])
        if client.sent >= len(client.reply):
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
        listener.listen(8)
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
