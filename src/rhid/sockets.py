"""Connecting to local control sockets (HAProxy's, BIRD's) with deadlines, failures in operator words."""

from __future__ import annotations

import grp
import os
import socket
import time

from rhid.errors import UnavailableError


def _group_of(path: str) -> str:
    try:
        gid = os.stat(path).st_gid
    except OSError:
        return "?"
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def connect(path: str, deadline: float, error: type[UnavailableError], program: str) -> socket.socket:
    """Connect to the UNIX socket at `path` before monotonic time `deadline`, or raise `error`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(path)
    except FileNotFoundError:
        sock.close()
        raise error(
            path, f"socket does not exist: is {program} running, and is this its path?", "missing"
        ) from None
    except ConnectionRefusedError:
        sock.close()
        raise error(
            path, f"connection refused: {program} is not running (stale socket file)", "refused"
        ) from None
    except PermissionError:
        sock.close()
        raise error(
            path,
            f"permission denied: uid {os.getuid()} needs to be in group '{_group_of(path)}' to use it",
            "permission",
        ) from None
    except TimeoutError:
        sock.close()
        raise error(path, f"{program} did not accept the connection in time", "timeout") from None
    except OSError as exc:
        sock.close()
        raise error(path, exc.strerror or str(exc)) from None
    return sock


def receive(sock: socket.socket, deadline: float, limit: int) -> bytes:
    """One recv of at most `limit` bytes before `deadline`; b"" at EOF. Raises TimeoutError."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)
    return sock.recv(limit)
