"""Talking to the service manager: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING), its
signals (SIGTERM, SIGINT, SIGHUP) as a socket the loop can wait on, and asking systemd whether the
stop under way is half of a restart.

Without NOTIFY_SOCKET every notify call is a no-op. A notify socket that fails (a dead path, a full
buffer) is logged once and never stops the loop (nor blocks it): routing matters more than telling
systemd.

systemd tells a stopping service nothing about why it stops. But while `systemctl restart` (or a
package upgrade's `deb-systemd-invoke restart`) stops the service, the unit's job is of type
``restart``; during `systemctl stop` it is ``stop``. `restarting` reads that from systemd's job list.
An unprivileged ``systemctl list-jobs`` needs the D-Bus system bus, which a node may not have; so
the unit's ExecStop (run as root, which reaches systemd over its private socket) saves the list to
``/run/<unit>.stop-jobs`` just before systemd sends SIGTERM, and rhid reads that file first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

log = structlog.get_logger("rhid")


class Notifier:
    """Sends sd_notify messages when systemd asked for them, without ever blocking.

    The datagram goes to $NOTIFY_SOCKET with MSG_DONTWAIT: if the service manager stops reading and
    its queue is full (the kernel's default is 10 datagrams), the message is dropped, not waited
    for; the loop goes on polling and routing. (systemd-python's `daemon.notify` blocks there.)
    A READY=1 that was dropped rides along with the next message until one is taken (unless a
    reload or stop begins first): systemd must learn that the start is over, or it times it out.
    """

    def __init__(self) -> None:
        path = os.environ.get("NOTIFY_SOCKET", "")
        self.enabled = bool(path)
        self.address = "\0" + path[1:] if path.startswith("@") else path  # @: the abstract namespace
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) if self.enabled else None
        self._failing = False
        self._last_status = ""
        self._ready_pending = False

    def send(self, *assignments: str) -> None:
        """Send `KEY=value` lines in one datagram."""
        if self.sock is None:
            return
        lines = list(assignments)
        if not {"RELOADING=1", "STOPPING=1"}.isdisjoint(lines):
            self._ready_pending = False  # the reload's or the stop's own READY=1 (or exit) follows
        elif self._ready_pending and "READY=1" not in lines:
            lines.append("READY=1")
        try:
            self.sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as exc:  # EAGAIN: the manager is not reading; ENOENT, ECONNREFUSED: gone
            if not self._failing:
                log.error("notify.failed", socket=os.environ.get("NOTIFY_SOCKET"), reason=str(exc))
            self._failing = True
            self._ready_pending = self._ready_pending or "READY=1" in lines
        else:
            self._ready_pending = False
            if self._failing:
                log.info("notify.recovered")
            self._failing = False

    @property
    def watchdog_period(self) -> float | None:
        """systemd's watchdog period in seconds ($WATCHDOG_USEC), or None without a watchdog."""
        value = os.environ.get("WATCHDOG_USEC", "")
        return int(value) / 1e6 if value.isdigit() and int(value) > 0 else None

    def keepalive(self) -> None:
        """WATCHDOG=1 while the loop waits on a slow peer within a bounded deadline."""
        self.send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """STATUS=, sent only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")


RESTART_JOBS = frozenset({"restart", "try-restart", "reload-or-restart", "try-reload-or-restart"})
_UNIT = re.compile(r"[A-Za-z0-9:_.\\@-]+\.service\Z")
SYSTEMCTL_TIMEOUT = 2.0
STOP_JOBS = "/run/{unit}.stop-jobs"  # written by the unit's ExecStop, removed by its ExecStopPost
STOP_JOBS_FRESH = 60.0  # seconds: an older file is a leftover, not this stop's


def unit_of_cgroup(text: str) -> str | None:
    """The service unit a process runs in, from /proc/self/cgroup (``0::/system.slice/x.service``)."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if _UNIT.match(part):
                return part
    return None


def is_restart_job(listing: str, unit: str) -> bool:
    """True when ``systemctl list-jobs --no-legend`` shows a restart job for `unit`."""
    for line in listing.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == unit and words[2] in RESTART_JOBS:
            return True
    return False


def restarting() -> bool | None:
    """Is systemd restarting this service (True), stopping it (False), or can it not tell (None)?"""
    if not os.environ.get("INVOCATION_ID"):
        return None  # not started by systemd
    systemctl = shutil.which("systemctl")
    try:
        with open("/proc/self/cgroup", encoding="ascii", errors="replace") as stream:
            unit = unit_of_cgroup(stream.read())
        if unit is None:
            return None
        saved = saved_jobs(STOP_JOBS.format(unit=unit), time.time())
        if saved is not None:
            return is_restart_job(saved, unit)
        if systemctl is None:
            return None
        listing = subprocess.run(
            [systemctl, "list-jobs", "--no-legend", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("service.job_unknown", reason=str(exc))
        return None
    return is_restart_job(listing, unit)


def saved_jobs(path: str, now: float) -> str | None:
    """The job list the unit's ExecStop saved for this stop, or None if there is no fresh one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            if now - os.fstat(stream.fileno()).st_mtime > STOP_JOBS_FRESH:
                return None
            return stream.read(1 << 20)
    except OSError:
        return None


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})  # the signals that stop rhid


@contextmanager
def signals() -> Iterator[socket.socket]:
    """Deliver SIGTERM/SIGINT/SIGHUP through a socketpair, so waiting for the next tick wakes at once."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    handled = (*sorted(STOP_SIGNALS), signal.SIGHUP)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield reader
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reader.close()
        writer.close()


def drain(reader: socket.socket) -> list[int]:
    """The signal numbers waiting in the wake-up socket."""
    try:
        return list(reader.recv(4096))
    except BlockingIOError:
        return []
