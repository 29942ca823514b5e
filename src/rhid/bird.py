"""The BIRD control-socket client (I/O), and the start-up check that rhid may use the socket. What
rhid does with BIRD (files, ``configure``, verify, backoff) is `rhid.reconcile.BirdSide`'s.

The client keeps one persistent connection, one command in flight, deadlines on every read. It
never sends ``help``, ``quit`` or ``exit`` (BIRD does not answer them). Any EOF, timeout or
garbled reply closes the connection; the next request reconnects and reads a fresh greeting.

While it waits for a reply it also watches the daemon's signal socket (`interrupt`, from
`rhid.service.signals`): a pending SIGTERM or SIGINT abandons the wait at once
(BirdInterruptedError), so a ``configure`` BIRD takes long over never keeps rhid from withdrawing
on ``systemctl stop``. It only peeks: the loop still reads and handles the signal. A pending SIGHUP
does not interrupt (a reload can wait for the reply); the socket is then peeked every
`INTERRUPT_POLL` seconds, since it stays readable until the loop drains it.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

from rhid import birdwire, sockets
from rhid.errors import BirdInterruptedError, BirdProtocolError, BirdUnavailableError, FatalError
from rhid.service import STOP_SIGNALS

READ_CHUNK = 256 * 1024
KEEPALIVE_EVERY = 1.0  # seconds between keepalive calls while waiting on BIRD (watchdog: 10 s)
INTERRUPT_POLL = 0.1  # seconds between peeks at the signal socket while only a SIGHUP is pending


def stop_pending(interrupt: socket.socket) -> bool:
    """True when the signal socket holds a SIGTERM or SIGINT the loop has not read yet (peeked only)."""
    try:
        pending = interrupt.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # every signal queued
    except (BlockingIOError, InterruptedError):
        return False
    return any(byte in STOP_SIGNALS for byte in pending)


class BirdClient:
    """A connection to BIRD's control socket that reconnects on demand."""

    def __init__(
        self,
        path: str,
        timeout: float,
        keepalive: Callable[[], None] | None = None,
        keepalive_every: float = KEEPALIVE_EVERY,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.keepalive = keepalive
        self.keepalive_every = keepalive_every
        self.interrupt: socket.socket | None = None  # the daemon's signal socket, once it runs
        self._sock: socket.socket | None = None
        self._reader = birdwire.ReplyReader()
        self.greeting = ""
        self.connections = 0
        # the command sent without waiting (`send`), its deadline, and whether the greeting of a
        # connection opened for it is still to come
        self.deadline: float | None = None
        self._greeting_due = False

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._sock is not None

    def connect(self) -> str:
        """Open a connection and read the greeting; returns its text, e.g. ``BIRD 2.0.12 ready.``."""
        self.close()
        deadline = time.monotonic() + self.timeout
        self._sock = sockets.connect(self.path, deadline, BirdUnavailableError, "BIRD")
        self._reader = birdwire.ReplyReader()
        greeting = self._read(deadline)
        if greeting.code != birdwire.GREETING:
            self.close()
            raise BirdProtocolError(f"{self.path}: expected the 0001 greeting, got {greeting.code:04d}")
        self.greeting = greeting.text
        self.connections += 1
        return self.greeting

    def request(self, command: str, timeout: float | None = None) -> birdwire.Reply:
        """Send one command and return its complete reply."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None  # noqa: S101 -- connect() set it or raised
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        try:
            self._sock.sendall(birdwire.encode(command))
        except OSError as exc:
            self.close()
            raise BirdUnavailableError(self.path, f"send failed: {exc.strerror or exc}", "closed") from None
        return self._read(deadline)

    def _read(self, deadline: float) -> birdwire.Reply:
        sock = self._sock
        assert sock is not None  # noqa: S101 -- only called while connected
        try:
            while True:
                chunk = self._receive(sock, deadline)
                if not chunk:
                    raise BirdUnavailableError(
                        self.path, "BIRD closed the connection (stopped or restarted?)", "closed"
                    )
                replies = self._reader.feed(chunk)
                if len(replies) > 1 or (replies and self._reader.pending):
                    raise BirdProtocolError(f"{self.path}: more than one reply to one command")
                if replies:
                    return replies[0]
        except TimeoutError:
            self.close()
            raise BirdUnavailableError(self.path, "no complete reply in time", "timeout") from None
        except OSError as exc:
            self.close()
            raise BirdUnavailableError(
                self.path, f"connection failed: {exc.strerror or exc}", "closed"
            ) from None
        except (BirdUnavailableError, BirdProtocolError):
            self.close()
            raise

    def _receive(self, sock: socket.socket, deadline: float) -> bytes:
        """One read before `deadline`, calling `keepalive` every `keepalive_every` s while waiting;
        BirdInterruptedError as soon as a stop signal is pending on `interrupt`."""
        interrupt = self._watched()
        if self.keepalive is None and interrupt is None:
            return sockets.receive(sock, deadline, READ_CHUNK)
        next_keepalive = time.monotonic() + self.keepalive_every if self.keepalive else deadline
        peek_at = 0.0  # when to look at the signal socket again (0: select on it)
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError
            until = min(deadline, next_keepalive)
            watched = [sock]
            if interrupt is not None and now >= peek_at:
                self._stop_if_signalled(interrupt)
                watched.append(interrupt)
            elif interrupt is not None:
                until = min(until, peek_at)
            readable, _, _ = select.select(watched, [], [], max(0.0, until - now))
            if sock in readable:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                return sock.recv(READ_CHUNK)
            if interrupt is not None and interrupt in readable:
                # a stop signal: raised at the top of the loop; only a SIGHUP: peek again in a while
                peek_at = time.monotonic() + (0.0 if stop_pending(interrupt) else INTERRUPT_POLL)
            elif self.keepalive is not None and time.monotonic() >= next_keepalive:
                self.keepalive()
                next_keepalive = time.monotonic() + self.keepalive_every

    def _watched(self) -> socket.socket | None:
        """The signal socket to watch while waiting, if the loop that owns it still runs."""
        if self.interrupt is not None and self.interrupt.fileno() < 0:
            self.interrupt = None
        return self.interrupt

    def _stop_if_signalled(self, interrupt: socket.socket) -> None:
        if stop_pending(interrupt):
            raise BirdInterruptedError(
                self.path, "stopped waiting: rhid received a stop signal", "interrupted"
            )

    def close(self) -> None:
        """Close the connection, if any (and forget a command in flight)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.deadline = None
        self._greeting_due = False

    # ---- without waiting: the loop selects on the socket ------------------------------------------

    def send(self, command: str, timeout: float | None, now: float) -> None:
        """Send one command without waiting for its reply (`take_reply` reads it once `fileno` is
        readable). Opens a connection first if needed; its greeting is read before the reply."""
        limit = timeout if timeout is not None else self.timeout
        if self._sock is None:
            self._sock = sockets.connect(self.path, now + self.timeout, BirdUnavailableError, "BIRD")
            self._sock.setblocking(False)
            self._reader = birdwire.ReplyReader()
            self._greeting_due = True
        try:
            self._sock.setblocking(True)
            self._sock.settimeout(max(self.timeout, 0.001))  # one short line: the buffer takes it
            self._sock.sendall(birdwire.encode(command))
            self._sock.setblocking(False)
        except OSError as exc:
            self.close()
            raise BirdUnavailableError(self.path, f"send failed: {exc.strerror or exc}", "closed") from None
        self.deadline = now + limit

    def fileno(self) -> int:
        """The connection's descriptor, for select (-1 when closed)."""
        return self._sock.fileno() if self._sock is not None else -1

    def take_reply(self) -> birdwire.Reply | None:
        """Read what has arrived; the reply once complete (None: not yet). Raises like `request`."""
        sock = self._sock
        assert sock is not None  # noqa: S101 -- only called with a command in flight
        try:
            while True:
                try:
                    chunk = sock.recv(READ_CHUNK)
                except BlockingIOError:
                    return None
                if not chunk:
                    raise BirdUnavailableError(
                        self.path, "BIRD closed the connection (stopped or restarted?)", "closed"
                    )
                reply = self._complete(self._reader.feed(chunk))
                if reply is not None:
                    return reply
        except OSError as exc:
            self.close()
            raise BirdUnavailableError(
                self.path, f"connection failed: {exc.strerror or exc}", "closed"
            ) from None
        except (BirdUnavailableError, BirdProtocolError):
            self.close()
            raise

    def _complete(self, replies: list[birdwire.Reply]) -> birdwire.Reply | None:
        """The command's reply among `replies`, after the greeting of a new connection."""
        if self._greeting_due and replies:
            greeting = replies.pop(0)
            if greeting.code != birdwire.GREETING:
                raise BirdProtocolError(f"{self.path}: expected the 0001 greeting, got {greeting.code:04d}")
            self.greeting = greeting.text
            self.connections += 1
            self._greeting_due = False
        if len(replies) > 1 or (replies and self._reader.pending):
            raise BirdProtocolError(f"{self.path}: more than one reply to one command")
        if not replies:
            return None
        self.deadline = None
        return replies[0]

    def expire(self, now: float) -> None:
        """Raise (and close) when the command in flight has had its time."""
        if self.deadline is not None and now >= self.deadline:
            self.close()
            raise BirdUnavailableError(self.path, "no complete reply in time", "timeout")


def check_access(path: str, timeout: float) -> None:
    """At start-up, a BIRD socket we may not open is fatal (B8); a missing or stopped BIRD is not (B1)."""
    client = BirdClient(path, timeout)
    try:
        client.connect()
    except BirdUnavailableError as exc:
        if exc.kind == "permission":
            raise FatalError(f"cannot use BIRD's control socket {exc.path}: {exc.reason}") from None
    except BirdProtocolError:
        pass  # the loop reports it and retries
    finally:
        client.close()
