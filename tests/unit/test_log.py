"""Where log events go: journald fields, JSON lines, and a writer that never raises."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

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


def test_json_lines_off_a_terminal() -> None:
    """Auto format on a non-terminal writes one JSON object per event."""
    out = io.StringIO()
    assert log.configure("info", "auto", out) == "json"
    structlog.get_logger().info("route.announced", prefix="10.0.0.1/32")
    structlog.get_logger().debug("hidden")
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["event"] == "route.announced"


def test_closed_stream_never_raises() -> None:
    """Logging to a closed stream drops the event instead of killing the loop."""
    out = io.StringIO()
    log.configure("info", "json", out)
    out.close()
    structlog.get_logger().error("still.routing")


def test_journal_without_journald_never_raises() -> None:
    """The journal sink swallows a missing journald socket."""
    log.configure("info", "journal")
    structlog.get_logger().warning("no.journald.here", detail="x")
