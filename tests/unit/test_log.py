"""Where log events go: journald fields, JSON lines, and a writer that never raises."""

from __future__ import annotations

import io
import json
import os
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


def test_journal_without_journald_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal sink tries journald, and swallows a missing journald socket."""
    from systemd import journal  # noqa: PLC0415 -- the module the sink imports lazily

    tried: list[dict[str, str]] = []

    def refuse(**fields: str) -> None:
        tried.append(fields)
        raise OSError("no journald here")

    monkeypatch.setattr(journal, "send", refuse)
    log.configure("info", "journal")
    structlog.get_logger().warning("no.journald.here", detail="x")
    assert [fields["RHID_EVENT"] for fields in tried] == ["no.journald.here"]
