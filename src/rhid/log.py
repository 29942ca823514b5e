"""Logging set-up: structlog events with fields, to wherever the operator will read them.

* ``journal``: native journald fields (``RHID_EVENT=route.withdrawn``, ``RHID_PREFIX=...``), chosen
  automatically when ``$JOURNAL_STREAM`` says stderr is the journal (as under systemd).
* ``console``: readable lines, chosen automatically on a terminal.
* ``json``: one JSON object per line otherwise.

A logging failure (stdout closed, journald stalled) never reaches the loop: the event is dropped
(and, on the journal, counted in a later `log.dropped` event).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping, MutableMapping
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


JOURNAL_SOCKET = "/run/systemd/journal/socket"
MAX_FIELD_BYTES = 32 * 1024  # a datagram must fit the socket's buffer: longer values are cut


def encode_journal(fields: Mapping[str, str]) -> bytes:
    """journald's native protocol: ``KEY=value`` lines; a value holding a newline is sent as
    ``KEY``, a newline, its length as 64-bit little-endian, the bytes, and a newline."""
    parts: list[bytes] = []
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if len(data) > MAX_FIELD_BYTES:
            data = data[:MAX_FIELD_BYTES] + b" ... (cut by rhid)"
        name = key.encode("ascii")
        if b"\n" in data:
            parts.append(name + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(name + b"=" + data + b"\n")
    return b"".join(parts)


class JournalWriter:
    """A structlog logger that sends each event's fields to journald, and never blocks or raises.

    The datagram is sent with MSG_DONTWAIT: when journald stops reading and its queue is full, the
    event is dropped, counted, and the count is logged with the first event that gets through.
    (systemd's own `journal.send` blocks in that case, and with it the loop: no poll, no watchdog.)
    """

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dropped = 0

    def msg(self, **fields: str) -> None:
        """Send one event (structlog passes the final processor's dict as keyword arguments)."""
        if self.dropped and self._send(
            journal_fields({"event": "log.dropped", "level": "warning", "count": self.dropped})
        ):
            self.dropped = 0
        if not self._send(fields):
            self.dropped += 1

    def _send(self, fields: Mapping[str, str]) -> bool:
        try:
            self.sock.sendto(encode_journal(fields), socket.MSG_DONTWAIT, self.path)
        except OSError:  # EAGAIN: journald stalled; ENOENT/ECONNREFUSED: no journald; EMSGSIZE
            return False
        return True

    def close(self) -> None:
        """Close the socket (a new `configure` replaces this writer)."""
        self.sock.close()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


_journal_writers: list[JournalWriter] = []  # the one in use, closed when `configure` replaces it


def _to_journal(_: object, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {"fields": journal_fields(event)}


def _unwrap(_: object, __: str, event: MutableMapping[str, Any]) -> Any:
    return event["fields"]


def configure(
    level: str = "info",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
    journal_socket: str = JOURNAL_SOCKET,
) -> str:
    """Route every structlog event to the chosen sink, filtered by `level`. Returns the format used."""
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "journal" if journal_is_stderr(stream=out) else "console" if _isatty(out) else "json"
    processors: list[structlog.typing.Processor] = [structlog.processors.add_log_level]
    factory: Any
    while _journal_writers:
        _journal_writers.pop().close()
    if fmt == "journal":  # journald stamps every entry itself
        processors += [_to_journal, _unwrap]
        writer = JournalWriter(journal_socket)
        _journal_writers.append(writer)
        factory = lambda *_: writer  # noqa: E731
    else:
        processors += [structlog.processors.TimeStamper(fmt="iso", utc=True)]
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
