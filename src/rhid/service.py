"""Talking to the service manager (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

Without NOTIFY_SOCKET every call is a no-op. A notify socket that fails (a dead path, a full
buffer) is logged once and never stops the loop: routing matters more than telling systemd.
"""

from __future__ import annotations

import os

import structlog
from systemd import daemon as sd_daemon

log = structlog.get_logger("rhid")


class Notifier:
    """Sends sd_notify messages when systemd asked for them."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._failing = False
        self._last_status = ""

    def send(self, *assignments: str) -> None:
        """Send `KEY=value` lines in one datagram."""
        if not self.enabled:
            return
        try:
            sd_daemon.notify("\n".join(assignments))
        except OSError as exc:
            if not self._failing:
                log.error("notify.failed", socket=os.environ.get("NOTIFY_SOCKET"), reason=str(exc))
            self._failing = True
        else:
            if self._failing:
                log.info("notify.recovered")
            self._failing = False

    def status(self, text: str) -> None:
        """STATUS=, sent only when it changed."""
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")
