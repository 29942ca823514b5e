"""Where log events go: journald fields, JSON lines, and a writer that never raises."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from rhid import log


def test_journal_fields_are_native() -> None:
    """Each event key becomes RHID_<KEY>, with MESSAGE, PRIORITY and SYSLOG_IDENTIFIER set."""
    fields = log.journal_fields(
        {"event": "route.withdrawn", "level": "warning", "prefix": "10.0.0.1/32", "rule-line": 3}
    )
    assert fields["MESSAGE"] == "route.withdrawn prefix=10.0.0.1/32 rule-line=3"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "rhid"
    assert fields["RHID_EVENT"] == "route.withdrawn"
    assert fields["RHID_RULE_LINE"] == "3"


def test_journal_stream_detection(tmp_path: Path) -> None:
    """JOURNAL_STREAM=dev:inode selects the journal only when it names the file behind the stream."""
    with (tmp_path / "stream").open("w") as stream:
        info = os.fstat(stream.fileno())
        assert log.journal_is_stderr({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}, stream)
        assert not log.journal_is_stderr({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"}, stream)
        assert not log.journal_is_stderr({}, stream)
        assert not log.journal_is_stderr({"JOURNAL_STREAM": "garbage"}, stream)


@pytest.fixture(autouse=True)
def restore_structlog() -> Iterator[None]:
    """Each test here reconfigures structlog; put back what the rest of the session uses."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


def test_json_lines_off_a_terminal() -> None:
    """Auto format on a non-terminal writes one JSON object per event."""
    out = io.StringIO()
    assert log.configure("info", "auto", out) == "json"
    structlog.get_logger().info("route.announced", prefix="10.0.0.1/32")
    structlog.get_logger().debug("hidden")
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["event"] == "route.announced"


def test_closed_stream_drops_the_event_and_logging_goes_on() -> None:
    """An event to a closed stream is dropped without raising; the next stream gets the next event."""
    out = io.StringIO()
    log.configure("info", "json", out)
    out.close()
    structlog.get_logger().error("still.routing")  # must not raise
    fresh = io.StringIO()
    log.configure("info", "json", fresh)
    structlog.get_logger().error("after.the.failure")
    assert json.loads(fresh.getvalue())["event"] == "after.the.failure"


def read_journal(data: bytes) -> dict[str, str]:
    """Decode journald's native protocol (the test's own reader, written from the protocol's spec)."""
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            data = rest
        else:
            size = struct.unpack("<Q", rest[:8])[0]
            fields[line.decode()] = rest[8 : 8 + size].decode()
            data = rest[8 + size + 1 :]
    return fields


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[socket.socket]:
    """A datagram socket standing in for journald's, never read unless the test reads it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "journal.sock"))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def test_journal_events_arrive_as_native_fields_without_a_timestamp(journald: socket.socket) -> None:
    """Each event is one datagram of native fields; multi-line values survive; no timestamp= in MESSAGE."""
    log.configure("info", "journal", journal_socket=journald.getsockname())
    structlog.get_logger().warning("route.withdrawn", prefix="10.0.0.1/32", errors="a\nb")
    fields = read_journal(journald.recv(65536))
    assert fields["RHID_EVENT"] == "route.withdrawn"
    assert fields["RHID_ERRORS"] == "a\nb"
    assert fields["PRIORITY"] == "4"
    assert "timestamp" not in fields["MESSAGE"]
    assert "RHID_TIMESTAMP" not in fields


def test_a_stalled_journald_never_blocks_and_the_loss_is_counted(journald: socket.socket) -> None:
    """With journald's queue full, logging returns at once; the dropped count comes with the next event."""
    log.configure("info", "journal", journal_socket=journald.getsockname())
    logger = structlog.get_logger()
    started = time.monotonic()
    for number in range(2000):
        logger.info("flood", number=number)
    assert time.monotonic() - started < 5.0, "every send returned at once"
    received = []
    with contextlib.suppress(BlockingIOError):
        while True:
            received.append(read_journal(journald.recv(65536)))
    assert 0 < len(received) < 2000
    logger.info("after")
    first, second = read_journal(journald.recv(65536)), read_journal(journald.recv(65536))
    assert first["RHID_EVENT"] == "log.dropped"
    assert int(first["RHID_COUNT"]) == 2000 - len(received)
    assert second["RHID_EVENT"] == "after"


def test_journal_without_journald_never_raises(tmp_path: Path) -> None:
    """No journald socket at all: events are dropped without raising."""
    log.configure("info", "journal", journal_socket=str(tmp_path / "nothing-here"))
    structlog.get_logger().warning("no.journald.here", detail="x")
