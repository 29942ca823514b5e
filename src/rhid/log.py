"""Logging set-up: structlog events with fields, to wherever the operator will read them.

* ``journal``: native journald fields (``RHID_EVENT=route.withdrawn``, ``RHID_PREFIX=...``), chosen
  automatically when ``$JOURNAL_STREAM`` says stderr is the journal (as under systemd).
* ``console``: readable lines, chosen automatically on a terminal.
* ``json``: one JSON object per line otherwise.

A logging failure (stdout closed, journald stalled) never reaches the loop: the event is dropped.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console", "journal"]
PRIORITIES = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
_FIELD = re.compile(r"[^A-Z0-9_]")


def journal_fields(event: MutableMapping[str, Any]) -> dict[str, str]:
    """journald fields for one event: MESSAGE, PRIORITY, and every key as RHID_<KEY>."""
    level = str(event.get("level", "info"))
    name = str(event.get("event", ""))
    details = " ".join(f"{key}={value}" for key, value in event.items() if key not in {"event", "level"})
    fields = {
        "MESSAGE": f"{name} {details}".strip(),
        "PRIORITY": str(PRIORITIES.get(level, 6)),
        "SYSLOG_IDENTIFIER": "rhid",
    }
    for key, value in event.items():
        fields["RHID_" + _FIELD.sub("_", str(key).upper())] = str(value)
    return fields


def journal_is_stderr(environ: MutableMapping[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``device:inode``) names the file behind stderr."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


class SafeWriter:
    """A structlog logger that writes lines to a stream and never raises."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        try:
            self._stream.write(message + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed or the reader gone: routing goes on without this line

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class JournalWriter:
    """A structlog logger that sends each event's fields to journald, and never raises."""

    def msg(self, **fields: str) -> None:
        """Send one event (structlog passes the final processor's dict as keyword arguments)."""
        try:
            from systemd import journal  # noqa: PLC0415 -- only when the journal is in use

            journal.send(**fields)
        except (OSError, ValueError, ImportError):
            pass

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _to_journal(_: object, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {"fields": journal_fields(event)}


def _unwrap(_: object, __: str, event: MutableMapping[str, Any]) -> Any:
    return event["fields"]


def configure(level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None) -> str:
    """Route every structlog event to the chosen sink, filtered by `level`. Returns the format used."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "journal" if journal_is_stderr(stream=out) else "console" if _isatty(out) else "json"
    processors: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    factory: Any
    if fmt == "journal":
        processors += [_to_journal, _unwrap]
        factory = lambda *_: JournalWriter()  # noqa: E731
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(colors=False)
            if fmt == "console"
            else structlog.processors.JSONRenderer()
        )
        factory = lambda *_: SafeWriter(out)  # noqa: E731
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return fmt


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False
