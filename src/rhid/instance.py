"""One rhid per state directory: an exclusive lock held for the life of the process (I/O)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rhid.errors import AlreadyRunningError, CannotRunError

LOCK_NAME = ".rhid.lock"


@contextmanager
def instance_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` for the life of the process: one rhid per state directory."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CannotRunError(
            f"cannot write in --bird-dir {directory}: {exc.strerror or exc} (running as uid {os.getuid()}; "
            "rhid writes its include files, its lock and its status socket there)"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunningError(
                f"another rhid (pid {other}) already runs with --bird-dir {directory}; "
                "stop it first (systemctl stop hapee-extras-rhi) or use another directory"
            ) from None
        try:  # the pid only names the holder in the message above; a full /run must not stop rhid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)
