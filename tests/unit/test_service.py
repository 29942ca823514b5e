"""Telling a restart from a stop: systemd's job for the unit, read from `systemctl list-jobs`."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rhid.service import Notifier, is_restart_job, saved_jobs, unit_of_cgroup

LISTING = """\
 4117 hapee-extras-rhi.service restart running
 4120 haproxy.service          start   waiting
"""


def test_unit_is_read_from_the_cgroup() -> None:
    """/proc/self/cgroup's v2 and v1 lines name the service unit; a session scope names none."""
    assert unit_of_cgroup("0::/system.slice/hapee-extras-rhi.service\n") == "hapee-extras-rhi.service"
    assert unit_of_cgroup("12:pids:/system.slice/rhid@x.service\n1:name=systemd:/\n") == "rhid@x.service"
    assert unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n") is None


def test_restart_job_is_recognised_only_for_our_unit() -> None:
    """A restart job of this unit is a restart; a stop job, or another unit's restart, is not."""
    assert is_restart_job(LISTING, "hapee-extras-rhi.service")
    assert not is_restart_job(LISTING.replace("restart", "stop"), "hapee-extras-rhi.service")
    assert not is_restart_job(LISTING, "haproxy.service")
    assert not is_restart_job("No jobs running.\n", "hapee-extras-rhi.service")


def test_the_job_list_saved_by_execstop_is_read_only_while_fresh(tmp_path: Path) -> None:
    """The list ExecStop saved is this stop's for a minute; older, or missing, it says nothing."""
    saved = tmp_path / "hapee-extras-rhi.service.stop-jobs"
    saved.write_text(LISTING)
    now = saved.stat().st_mtime
    listing = saved_jobs(str(saved), now + 1)
    assert listing is not None
    assert is_restart_job(listing, "hapee-extras-rhi.service")
    assert saved_jobs(str(saved), now + 61) is None
    assert saved_jobs(str(tmp_path / "missing"), now) is None


def test_a_dropped_ready_rides_along_until_systemd_takes_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY=1 sent while systemd's queue is full is resent with the next message, once."""
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    notifier = Notifier()
    try:
        while True:  # fill the queue
            try:
                assert notifier.sock is not None
                notifier.sock.sendto(b"WATCHDOG=1", socket.MSG_DONTWAIT, str(path))
            except BlockingIOError:
                break
        notifier.send("READY=1")  # dropped
        while True:
            try:
                listener.recv(100)
            except BlockingIOError:
                break
        notifier.send("WATCHDOG=1")
        notifier.send("WATCHDOG=1")
        assert listener.recv(100) == b"WATCHDOG=1\nREADY=1"
        assert listener.recv(100) == b"WATCHDOG=1"
    finally:
        listener.close()
        if notifier.sock is not None:
            notifier.sock.close()
