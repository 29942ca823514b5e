"""The control socket's wire, client side: one request line out, the reply read to its end.

`rhid status` and `rhid probe` ask the running daemon through here (the daemon's side is
`rhid.control`). It is light on purpose, since keepalived runs `rhid probe` every second: an
exchange that gets its answer loads the socket module and nothing of rhid's. A failure is a value
(`NoAnswer`) in operator words; only a connection that fails loads `rhid.sockets` to say why,
exactly as for HAProxy's and BIRD's sockets. `rhid status` raises StatusUnavailableError from it.
"""

from __future__ import annotations

import socket
import time

SOCKET_NAME = "rhid.sock"  # in the daemon's --bird-dir
MAX_REQUEST_BYTES = 256
MAX_REPLY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 65536


class NoAnswer:
    """Why the daemon at `path` gave no answer, in operator words."""

    __slots__ = ("path", "reason")

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason

    def __repr__(self) -> str:
        return f"NoAnswer({self.path!r}, {self.reason!r})"


def exchange(path: str, request: bytes, timeout: float, idle: float | None = None) -> bytes | NoAnswer:
    """Send one request line to the daemon at `path`, half-close, read the reply to EOF: the whole
    exchange within `timeout` seconds, and, with `idle`, each wait for more of the reply within
    `idle` seconds too (a long listing streams: it may take long, but never stalls). The reply's
    bytes, or why there are none."""
    if len(request) > MAX_REQUEST_BYTES or not request.endswith(b"\n"):
        raise AssertionError(f"not one request line: {request[:60]!r}")
    deadline = time.monotonic() + timeout
    sock = connect(path, deadline)
    if isinstance(sock, NoAnswer):
        return sock
    chunks: list[bytes] = []
    size = 0
    try:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # a daemon that answered at once (too busy) and closed: its answer is still to read
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining if idle is None else min(remaining, idle))
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                return NoAnswer(path, "reply too large")
            chunks.append(chunk)
    except TimeoutError:
        return NoAnswer(path, "the daemon did not answer in time")
    except OSError as exc:  # reset or refused mid-exchange (a dying daemon)
        return NoAnswer(path, f"the connection broke: {exc.strerror or exc}")
    finally:
        sock.close()


def connect(path: str, deadline: float) -> socket.socket | NoAnswer:
    """A connection to the daemon's socket before `deadline`, or why there is none."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(path)
    except OSError:
        sock.close()
    else:
        return sock
    # Only a failure pays for the words: rhid.sockets connects once more (the daemon may have just
    # come up) and otherwise says why, as it does for HAProxy's and BIRD's sockets.
    from rhid import sockets  # noqa: PLC0415
    from rhid.errors import StatusUnavailableError  # noqa: PLC0415

    try:
        return sockets.connect(path, deadline, StatusUnavailableError, "rhid")
    except StatusUnavailableError as exc:
        return NoAnswer(path, exc.reason)
