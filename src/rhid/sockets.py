"""Connecting to local control sockets (HAProxy's, BIRD's) with deadlines, failures in operator words."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import time
from dataclasses import dataclass

from rhid.errors import UnavailableError


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a socket refused us (EACCES), in the terms an operator fixes it with: the socket's mode,
    owner and group, and who rhid runs as. `mode` is None when the socket cannot even be stat'ed."""

    path: str
    mode: int | None
    owner: str
    group: str
    uid: int
    uid_is_owner: bool
    in_group: bool

    @property
    def lets_in(self) -> bool:
        """True when the socket's own mode would let rhid's uid write to it (EACCES came from elsewhere)."""
        if self.mode is None:
            return False
        return bool(
            (self.uid_is_owner and self.mode & stat.S_IWUSR)
            or (self.in_group and self.mode & stat.S_IWGRP)
            or self.mode & stat.S_IWOTH
        )

    @property
    def needs_group(self) -> str | None:
        """The group that would let rhid in, when the socket's mode lets its group write."""
        if self.mode is None or self.lets_in or not self.mode & stat.S_IWGRP:
            return None
        return self.group

    def sentence(self) -> str:
        """One operator sentence: what is wrong and what to change."""
        if self.mode is None:
            return (
                f"permission denied: uid {self.uid} may not use it, and its mode cannot even be read: "
                f"a directory above it is closed to uid {self.uid}"
            )
        where = f"the socket is mode {self.mode:04o}, owner {self.owner}, group {self.group}"
        if self.lets_in:
            return (
                f"permission denied although {where}, which lets uid {self.uid} in: a directory above "
                "it is closed to that uid, or a security module refuses"
            )
        if self.needs_group is not None:
            return (
                f"permission denied: uid {self.uid} needs to be in group '{self.group}' to use it ({where})"
            )
        return (
            f"permission denied: uid {self.uid} may not use it: {where}, and its group may not write to "
            "it (give its `stats socket` line `mode 660` and a `group` rhid's user is in)"
        )

    def fields(self) -> dict[str, str]:
        """For the log line: path, mode, owner, group, uid, and the group rhid needs."""
        return {
            "path": self.path,
            "mode": "?" if self.mode is None else f"{self.mode:04o}",
            "owner": self.owner,
            "group": self.group,
            "uid": str(self.uid),
            "needs_group": self.needs_group or "-",
        }


def denial(path: str) -> Denial:
    """Look at the socket that refused us (I/O: stat and the user and group databases)."""
    uid = os.geteuid()
    groups = {os.getegid(), *os.getgroups()}
    try:
        info = os.stat(path)
    except OSError:
        return Denial(path, None, "?", "?", uid, uid_is_owner=False, in_group=False)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return Denial(
        path,
        stat.S_IMODE(info.st_mode),
        owner,
        group,
        uid,
        uid_is_owner=info.st_uid == uid,
        in_group=info.st_gid in groups,
    )


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
        raise error(path, denial(path).sentence(), "permission") from None
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
