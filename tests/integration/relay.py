"""A relay between rhid and HAProxy's stats socket: it records every command rhid sends, and it may
drop a share of the event stream's lines on purpose (a ring losing lines to a slow reader).

It listens on a UNIX socket in the test's directory and, for each connection rhid opens, connects
to the real socket and passes the command on. A poll's reply goes back untouched; the event stream
(``show events RING -nw``) goes back line by line, each line dropped with probability `drop` (a
seeded random sequence: the same run every time). Threads only; nothing leaves the test's
directory. The test (or bench) starts it and closes it.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FULL_POLL = re.compile(rb"show stat -1 ")
TARGETED_POLL = re.compile(rb"show stat ([1-9][0-9]*) ")


@dataclass
class Command:
    """One command line rhid sent, and when the relay got it (monotonic seconds)."""

    at: float
    line: bytes

    @property
    def full(self) -> bool:
        """A poll of every proxy (``show stat -1 <mask> -1``)."""
        return FULL_POLL.search(self.line) is not None

    @property
    def targeted(self) -> tuple[str, ...]:
        """The proxy ids a targeted poll asked for (empty for anything else)."""
        return tuple(match.decode() for match in TARGETED_POLL.findall(self.line))


@dataclass
class Relay:
    """Listens at `path`, relays to `upstream`; drops each event line with probability `drop`."""

    path: Path
    upstream: Path
    drop: float = 0.0
    seed: int = 26
    commands: list[Command] = field(default_factory=list)
    forwarded: int = 0  # event lines passed on
    dropped: int = 0  # event lines dropped on purpose
    dropped_lines: list[tuple[float, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(self.path))
        self._server.listen(64)
        self._server.settimeout(0.2)
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def polls(self, since: float = 0.0, until: float = float("inf")) -> list[Command]:
        """The polls (full or targeted) rhid sent between `since` and `until`."""
        with self._lock:
            return [c for c in self.commands if since <= c.at <= until and (c.full or c.targeted)]

    def close(self) -> None:
        """Stop accepting, and close every connection relayed so far."""
        self._stopping.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._open += [client, upstream]
        try:
            upstream.connect(str(self.upstream))
            request = b""
            client.settimeout(5)
            while b"\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    break
                request += chunk
            with self._lock:
                self.commands.append(Command(time.monotonic(), request))
            upstream.sendall(request)
            if b"show events" in request and b"-nw" in request:
                self._stream(client, upstream)
            else:
                upstream.shutdown(socket.SHUT_WR)
                while chunk := upstream.recv(65536):
                    client.sendall(chunk)
        except OSError:
            pass
        finally:
            client.close()
            upstream.close()

    def _stream(self, client: socket.socket, upstream: socket.socket) -> None:
        """Pass the stream on line by line, dropping some."""
        upstream.settimeout(0.2)
        buffer = b""
        while not self._stopping.is_set():
            try:
                chunk = upstream.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            kept = []
            for line in lines:
                if line.strip() and self._random.random() < self.drop:
                    with self._lock:
                        self.dropped += 1
                        self.dropped_lines.append((time.monotonic(), line))
                    continue
                kept.append(line + b"\n")
                with self._lock:
                    self.forwarded += 1
            if kept:
                client.sendall(b"".join(kept))
