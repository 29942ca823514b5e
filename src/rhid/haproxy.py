"""The HAProxy client: one fresh connection per poll, a deadline and a byte cap on every read.

Never hold a connection across polls: after an HAProxy reload, a held connection keeps talking to
the old, stopping worker (docs/notes/haproxy-runtime-api.md §5.5).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Collection

from rhid import sockets, stats
from rhid.errors import HAProxyProtocolError, HAProxyUnavailableError
from rhid.rules import Proxy

READ_CHUNK = 256 * 1024


def fetch(path: str, command: bytes, timeout: float, limit: int = stats.MAX_REPLY_BYTES) -> bytes:
    """Send one command line, half-close, read to EOF. The whole exchange must fit in `timeout`."""
    deadline = time.monotonic() + timeout
    sock = sockets.connect(path, deadline, HAProxyUnavailableError, "HAProxy")
    chunks: list[bytes] = []
    size = 0
    try:
        sock.sendall(command)
        sock.shutdown(socket.SHUT_WR)  # required by the master CLI, free on the worker socket
        while chunk := sockets.receive(sock, deadline, READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise HAProxyProtocolError(f"{path}: reply larger than {limit} bytes")
            chunks.append(chunk)
    except TimeoutError:
        # Accepted but silent: the process is hung, and a hung HAProxy cannot serve (counts as down).
        raise HAProxyUnavailableError(path, f"no complete reply within {timeout:.3g} s", "timeout") from None
    except OSError as exc:
        # Reset in the middle of a reply: what arrived says nothing either way (fault matrix H6).
        raise HAProxyProtocolError(f"{path}: connection broken mid-reply: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return b"".join(chunks)


class HAProxyClient:
    """Polls one stats socket; detects a master CLI socket and prefixes its commands with ``@1``.

    Server rows are fetched only while the INI guard needs them: from the start and after every
    new worker Pid (an HAProxy start or reload), until one such poll shows no first check pending
    in the named backends. A first check is pending only after a start or reload.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.master = False
        self.servers = True
        self.pid: str | None = None
        self.reloaded_from: str | None = None  # the previous worker's Pid, after a poll that saw a new one
        self._index: tuple[Collection[Proxy], stats.ProxyIndex] | None = None

    def poll(self, wanted: Collection[Proxy]) -> stats.Snapshot:
        """One poll: the status of every wanted proxy, or an Unavailable/Protocol error."""
        snapshot = self._poll(wanted)
        if not self.servers and snapshot.pid != self.pid:
            self.servers = True  # a new worker: its first checks may be pending; ask again with servers
            snapshot = self._poll(wanted)
        self.servers = snapshot.pending
        self.reloaded_from = self.pid if self.pid not in {None, snapshot.pid} else None
        self.pid = snapshot.pid
        return snapshot

    def _poll(self, wanted: Collection[Proxy]) -> stats.Snapshot:
        if self._index is None or self._index[0] is not wanted:  # rebuilt only when the rules change
            self._index = (wanted, stats.ProxyIndex.of(wanted))
        data = fetch(self.path, self._command(wanted), self.timeout)
        if not self.master and stats.is_master_cli_refusal(data):
            self.master = True
            data = fetch(self.path, self._command(wanted), self.timeout)
        return stats.parse_poll(data, self._index[1])

    def _command(self, wanted: Collection[Proxy]) -> bytes:
        return stats.poll_command(self.master, stats.typemask_for(wanted, self.servers))


def find_ring(path: str, timeout: float) -> str | None:
    """Ask HAProxy which log ring it has (``show events``); None if it has none."""
    return stats.pick_ring(stats.parse_sinks(fetch(path, b"show events\n", timeout, limit=1 << 20)))


class EventStream:
    """One long-lived connection streaming an HAProxy ring (``show events RING -nw``).

    Only a wake-up signal: a state-change line makes the daemon poll at once. It is never
    half-closed (that ends the stream) and never written to after the command (any key stops it).
    """

    MAX_BUFFER = 1 << 20

    def __init__(self, path: str, ring: str, timeout: float) -> None:
        self.path = path
        self.ring = ring
        deadline = time.monotonic() + timeout
        self.sock = sockets.connect(path, deadline, HAProxyUnavailableError, "HAProxy")
        try:
            self.sock.sendall(stats.events_command(ring))
        except OSError as exc:
            self.sock.close()
            raise HAProxyUnavailableError(path, f"event stream: {exc.strerror or exc}", "closed") from None
        self.sock.setblocking(False)
        self._buffer = b""
        self._started = False
        self.reads = 0  # recv calls that returned data: what a busy ring costs, in `rhid status`
        self.received = 0

    def fileno(self) -> int:
        """For select()."""
        return self.sock.fileno()

    def read(self) -> bytes:
        """The complete lines that arrived, as one block (b"" if none). Raises Unavailable at EOF,
        Protocol on a refusal or a line longer than MAX_BUFFER."""
        try:
            chunk = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise HAProxyUnavailableError(
                self.path, f"event stream: {exc.strerror or exc}", "closed"
            ) from None
        if not chunk:
            raise HAProxyUnavailableError(
                self.path, "event stream closed (HAProxy reloaded or stopped?)", "closed"
            )
        self.reads += 1
        self.received += len(chunk)
        self._buffer += chunk
        end = self._buffer.rfind(b"\n") + 1
        if not end:
            if len(self._buffer) > self.MAX_BUFFER:
                raise HAProxyProtocolError(f"{self.path}: event line longer than {self.MAX_BUFFER} bytes")
            return b""
        block, self._buffer = self._buffer[:end], self._buffer[end:]
        if not self._started and block.strip():
            self._started = True
            if block.lstrip().startswith(stats.EVENT_REFUSALS):
                first = block.lstrip().split(b"\n", 1)[0].decode("utf-8", "replace")
                raise HAProxyProtocolError(f"{self.path}: show events {self.ring}: {first}")
        return block

    def close(self) -> None:
        """Close the stream."""
        self.sock.close()
