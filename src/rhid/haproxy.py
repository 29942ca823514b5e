"""The HAProxy client: one fresh connection per poll, a deadline and a byte cap on every read.

Never hold a connection across polls: after an HAProxy reload, a held connection keeps talking to
the old, stopping worker (shared/notes/haproxy-runtime-api.md §5.5).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

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
    """Polls one stats socket; detects a master CLI socket and prefixes its commands with ``@1``."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.master = False

    def poll(self, wanted: Iterable[Proxy]) -> stats.Snapshot:
        """One poll: the status of every wanted proxy, or an Unavailable/Protocol error."""
        data = fetch(self.path, stats.poll_command(self.master), self.timeout)
        if not self.master and stats.is_master_cli_refusal(data):
            self.master = True
            data = fetch(self.path, stats.poll_command(self.master), self.timeout)
        return stats.parse_poll(data, wanted)
