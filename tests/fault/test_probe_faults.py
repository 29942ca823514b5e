"""`rhid probe` against a control socket that misbehaves: never 0 or 1, always exit 3 in one line.

keepalived reads only the exit status: a probe that cannot tell must never say "announced" (0), nor
"withdrawn" (1) for a daemon it could not ask; within --timeout, whatever the socket does.
"""

# The harness's fixtures are imported by name, which pytest then injects as arguments:
# ruff: noqa: F401, F811
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fault import fakes
from tests.fault.test_process import GOOD, Daemon, Serve, rhid, serve
from tests.integration.lab import wait_for

DOWN = GOOD.replace(b"be,BACKEND,UP", b"be,BACKEND,DOWN")


def probe(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`rhid probe` as keepalived's vrrp_script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rhid", "probe", "--bird-dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def hang_up_unread(conn: socket.socket, _: threading.Event) -> None:
    """Close without reading the request: the client's next read gets ECONNRESET."""
    time.sleep(0.2)
    conn.close()


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (fakes.replying(b""), "the daemon's reply is not an answer to a route query (empty or not JSON)"),
        (fakes.replying(b'{"routes": [{"route"'), "not an answer to a route query (empty or not JSON)"),
        (fakes.replying(b"<html>hello</html>"), "not an answer to a route query (empty or not JSON)"),
        (fakes.replying(b'{"problems": []}'), "not an answer to a route query (no routes)"),
        (fakes.replying(b'{"error": "unknown request; send \'status\'"}\n'), "did not take the question"),
        (hang_up_unread, "cannot reach the daemon"),
        (fakes.silent, "the daemon did not answer in time"),
        (fakes.endless, "cannot reach the daemon"),
    ],
)
def test_every_way_of_not_getting_an_answer_is_exit_3_in_one_line(
    tmp_path: Path, serve: Serve, handler: fakes.Handler, words: str
) -> None:
    """An empty, truncated, foreign, refusing, reset, silent or endless reply: exit 3, one 'rhid:' line,
    within the timeout."""
    serve(tmp_path / "rhid.sock", handler)
    start = time.monotonic()
    done = probe(tmp_path, "--timeout", "0.5", "192.0.2.10")
    assert time.monotonic() - start < 5
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("rhid: ")
    assert words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_stale_socket_and_a_missing_one_are_exit_3(tmp_path: Path) -> None:
    """Nobody listening on rhid.sock, or no rhid.sock at all: exit 3, saying which."""
    done = probe(tmp_path, "192.0.2.10")
    assert done.returncode == 3
    assert "socket does not exist: is rhid running" in done.stderr
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "rhid.sock"))
    stale.close()
    done = probe(tmp_path, "192.0.2.10")
    assert done.returncode == 3
    assert "connection refused: rhid is not running" in done.stderr
    assert done.stderr.count("\n") == 1


def test_the_probe_follows_the_daemons_hysteresis(rhid: Daemon, serve: Serve) -> None:
    """Against `rhid run` (fake HAProxy, no BIRD): 0 while announced, still 0 while the fall count
    runs, 1 once the daemon withdrew the route, 0 again when it is back."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n", "--fall", "1000", "--interval", "0.1")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    assert probe(rhid.dir, "10.0.0.1").returncode == 0
    serve(rhid.haproxy, fakes.replying(DOWN))
    time.sleep(0.5)  # a few down polls of the 1000 --fall needs
    done = probe(rhid.dir, "10.0.0.1")
    assert done.returncode == 0, "the fall count has started; the route is still announced"
    rhid.stop(signal.SIGKILL)  # the files keep the route: the next rhid starts with it announced
    rhid.start("10.0.0.1 = all(b:be)\n", "--fall", "2", "--interval", "0.1")
    wait_for("the new rhid to withdraw it", lambda: "10.0.0.1/32" not in rhid.file(), 10)
    done = probe(rhid.dir, "10.0.0.1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("vol1%10.0.0.1/32: withdrawn: all: b:be is down"), done.stdout
    serve(rhid.haproxy, fakes.replying(GOOD))
    wait_for("the route back", lambda: "10.0.0.1/32" in rhid.file(), 10)
    assert probe(rhid.dir, "10.0.0.1").returncode == 0
