"""`rhid run` and `rhid status` as processes: the daemon's own promises (rules in force, reloads,
its state directory, its status client), against fake HAProxy and BIRD sockets.

Uses the harness of test_process (one daemon per test, stopped by PID whatever happens).
"""

# The harness's fixtures are imported by name, which pytest then injects as arguments:
# ruff: noqa: F401, F811
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault import fakes
from tests.fault.test_process import ANNOUNCED, GOOD, Daemon, Serve, announce, rhid, serve
from tests.integration.lab import wait_for
from tests.integration.test_faults import fill, tmpfs

DOWN = GOOD.replace(b"be,BACKEND,UP", b"be,BACKEND,DOWN")
BAD_RULES = "10.0.0.1 = all(b:be\n"  # unclosed parenthesis


def hang_up_unread(conn: socket.socket, _: threading.Event) -> None:
    """Close without reading the request: the client's next read gets ECONNRESET."""
    time.sleep(0.2)
    conn.close()


def rhid_status(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `rhid status` against a daemon's directory, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "rhid", "status", "--bird-dir", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_a_refused_reload_shows_as_a_problem_and_a_restart_runs_on_the_last_good_rules(
    rhid: Daemon, serve: Serve
) -> None:
    """A file broken on disk is a PROBLEM (exit 4); restarted on it, rhid runs the last good rules, watched"""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n", "--on-stop", "hold")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    rhid.rules.write_text(BAD_RULES)  # what `systemctl reload` refuses in ExecReload: no SIGHUP reaches rhid

    def invalid_on_disk() -> subprocess.CompletedProcess[str] | None:
        rhid.notify.collect()  # read what rhid tells systemd, as systemd does
        done = rhid_status(rhid.dir)
        return done if "on disk is invalid" in done.stdout else None

    done = wait_for("rhid status to see the broken file", invalid_on_disk, 10)
    assert done.returncode == 4, done.stdout
    assert "PROBLEM: " + str(rhid.rules) + " on disk is invalid (" in done.stdout
    assert rhid.stop() == 0
    assert "10.0.0.1/32" in rhid.file(), "--on-stop hold kept the route"

    rhid.start(BAD_RULES, "--on-stop", "hold")  # the restart finds the broken file
    wait_for(
        "started on the last good copy", lambda: "rules.invalid_started_on_last_good" in rhid.names(), 10
    )
    rhid.notify.wait("READY=1")
    done = rhid_status(rhid.dir)
    assert done.returncode == 4
    assert "in force: the last good copy of the rules" in done.stdout
    serve(rhid.haproxy, fakes.replying(DOWN))
    wait_for("the route withdrawn: the held route is watched", lambda: "10.0.0.1/32" not in rhid.file(), 10)


def test_an_invalid_file_without_a_last_good_copy_still_refuses_to_start(rhid: Daemon, serve: Serve) -> None:
    """A first start on a broken file exits 1 with the file:line error, announcing nothing."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start(BAD_RULES)
    assert rhid.proc is not None
    assert rhid.proc.wait(10) == 1
    assert f"{rhid.rules}:1:" in rhid.log.read_text()
    assert rhid.file() == ""


def test_a_burst_of_sighups_is_coalesced_and_cycles_go_on(rhid: Daemon, serve: Serve) -> None:
    """15 SIGHUPs 50 ms apart: never two reloads without a completed cycle (WATCHDOG=1) between them."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rules = "".join(f"10.{i // 250}.{i % 250}.1 = all(b:be)\n" for i in range(5000))
    rhid.start(rules)
    rhid.notify.wait("READY=1", timeout=30)
    assert rhid.proc is not None
    for _ in range(15):
        rhid.proc.send_signal(signal.SIGHUP)
        time.sleep(0.05)
    wait_for("the burst handled", lambda: rhid.names().count("rules.reloaded") >= 1, 20)
    time.sleep(1.0)
    lines = [line for line in rhid.notify.lines() if line in {"RELOADING=1", "WATCHDOG=1"}]
    reloads = [i for i, line in enumerate(lines) if line == "RELOADING=1"]
    assert reloads, lines
    for first, second in itertools.pairwise(reloads):
        assert "WATCHDOG=1" in lines[first:second], f"two reloads back to back: {lines}"
    assert len(reloads) <= 15


def test_rhid_status_shows_live_counters_between_re_plans(rhid: Daemon, serve: Serve) -> None:
    """While a fall count runs, `rhid status` shows HAProxy's latest word and the count, not the plan's."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n", "--fall", "1000")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    serve(rhid.haproxy, fakes.replying(DOWN))

    def counting() -> str | None:
        text = rhid_status(rhid.dir, "--routes").stdout  # an announced route: listed with --routes
        return text if "HAProxy last said 'DOWN'; down " in text else None

    text = wait_for("the fall count in rhid status", counting, 10)
    assert "down 0/1000" not in text
    assert "ANNOUNCED" in text


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (fakes.replying(b""), "closed the connection without an answer"),
        (fakes.replying(b'{"version": "0", "pid'), "not a status document"),
        (fakes.replying(b"<html>hello</html>"), "not a status document"),
        (hang_up_unread, "the connection broke"),
    ],
)
def test_every_way_of_not_getting_an_answer_is_exit_3_in_one_line(
    tmp_path: Path, serve: Serve, handler: fakes.Handler, words: str
) -> None:
    """An empty, truncated, foreign or reset reply from rhid.sock is exit 3 with one 'rhid:' line."""
    serve(tmp_path / "rhid.sock", handler)
    done = rhid_status(tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("rhid: cannot reach the daemon"), done.stderr
    assert words in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_status_connection_is_exit_3(tmp_path: Path) -> None:
    """A stale rhid.sock nobody listens on is exit 3 with one line, never a traceback."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "rhid.sock"))
    stale.close()
    done = rhid_status(tmp_path)
    assert done.returncode == 3
    assert done.stderr.startswith("rhid: cannot reach the daemon")
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run rhid as another user")
@pytest.mark.parametrize("make", ["root-owned", "missing-under-root-owned"])
def test_a_bird_dir_rhid_cannot_write_is_one_line_exit_1(public_dir: Path, make: str) -> None:
    """`rhid run` with a --bird-dir it may not create or write says so in one line (exit 1), no traceback."""
    rules = public_dir / "hapee-rhi.cfg"
    rules.write_text("10.0.0.1 = all(b:be)\n")
    rules.chmod(0o644)
    locked = public_dir / "locked"
    locked.mkdir(mode=0o755)
    bird_dir = locked if make == "root-owned" else locked / "rhid"
    done = subprocess.run(
        [shutil.which("setpriv") or "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "rhid", "run", "-c", str(rules),
         "--haproxy-socket", str(public_dir / "h.sock"), "--bird-socket", str(public_dir / "b.ctl"),
         "--bird-dir", str(bird_dir), "--log-format", "json"],
        capture_output=True, text=True, timeout=20, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rhid: cannot "), last
    assert str(bird_dir) in last
    assert "uid 65534" in last
    assert stat.S_IMODE(locked.stat().st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_a_stalled_journald_never_freezes_routing(rhid: Daemon, serve: Serve, public_dir: Path) -> None:
    """journald's queue full and never read: rhid starts, keeps cycling, and withdraws when HAProxy dies."""
    journal_dir = public_dir / "run" / "systemd" / "journal"
    journal_dir.mkdir(parents=True)
    journald = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journald.bind(str(journal_dir / "socket"))
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    try:
        with contextlib.suppress(BlockingIOError):  # fill journald's queue: it never reads
            while True:
                filler.sendto(b"MESSAGE=filler\n", str(journal_dir / "socket"))
        serve(rhid.haproxy, fakes.replying(GOOD))
        rhid.rules.write_text("10.0.0.1 = all(b:be)\n")
        argv = [sys.executable, "-m", "rhid", "run", "-c", str(rhid.rules),
                "--haproxy-socket", str(rhid.haproxy), "--bird-socket", str(rhid.bird),
                "--bird-dir", str(rhid.dir), "--log-format", "journal", "--log-level", "debug",
                "--interval", "0.1", "--haproxy-events", "none"]  # fmt: skip
        # A private mount namespace in which /run is the test's: rhid's journald is the stalled socket.
        rhid.proc = subprocess.Popen(
            [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private",
             "sh", "-c", 'mount --bind "$0" /run && exec "$@"', str(public_dir / "run"), *argv],
            env={**os.environ, "NOTIFY_SOCKET": str(rhid.notify.path)},
        )  # fmt: skip
        rhid.notify.wait("READY=1", timeout=20)
        wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
        serve(rhid.haproxy, fakes.replying(b""))  # HAProxy answers nothing: unreadable...
        (rhid.haproxy).unlink()  # ...then gone: down after --fall polls, with every event logged
        moment = time.monotonic()
        wait_for("the route withdrawn", lambda: "10.0.0.1/32" not in rhid.file(), 10)
        wait_for("cycles going on", lambda: rhid.cycles_after(moment) >= 10, 10)
    finally:
        journald.close()
        filler.close()


def test_a_reload_follows_the_defaults_file_and_says_what_needs_a_restart(rhid: Daemon, serve: Serve) -> None:
    """After editing HAPEE_LB_SOCKET and RHID_ARGS, a reload polls the new socket and pages for a restart."""
    defaults = rhid.root / "hapee-extras-rhi"
    old, new = rhid.root / "old.sock", rhid.root / "new.sock"
    defaults.write_text(f'HAPEE_LB_SOCKET="{old}"\nRHID_ARGS=""\n')
    serve(old, fakes.replying(GOOD))
    serve(new, fakes.replying(DOWN))
    rhid.rules.write_text("10.0.0.1 = all(b:be)\n")
    argv = [sys.executable, "-m", "rhid", "run", "-c", str(rhid.rules), "--defaults-file", str(defaults),
            "--bird-socket", str(rhid.bird), "--bird-dir", str(rhid.dir), "--log-format", "json",
            "--interval", "0.1", "--haproxy-events", "none"]  # fmt: skip
    with rhid.log.open("ab") as out:
        rhid.proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": str(rhid.notify.path)},
        )
    rhid.notify.wait("READY=1")
    wait_for("the route announced from the old socket", lambda: "10.0.0.1/32" in rhid.file(), 10)
    defaults.write_text(f'HAPEE_LB_SOCKET="{new}"\nRHID_ARGS="--fall 1"\nRHID_RULES=/etc/other.cfg\n')
    rhid.proc.send_signal(signal.SIGHUP)
    wait_for("the route withdrawn: the new socket says DOWN", lambda: "10.0.0.1/32" not in rhid.file(), 10)
    rhid.notify.collect()  # systemd reads every notification: so does the test, or rhid would wait on it
    done = rhid_status(rhid.dir)
    assert f"haproxy: reachable ({new})" in done.stdout
    assert done.returncode == 4
    assert "PROBLEM: RHID_ARGS ('' -> '--fall 1') and RHID_RULES ('' -> '/etc/other.cfg') in " in done.stdout
    assert "only systemctl restart hapee-extras-rhi applies it" in done.stdout


def test_a_service_manager_that_stops_reading_never_freezes_routing(rhid: Daemon, serve: Serve) -> None:
    """NOTIFY_SOCKET never read (its queue fills after 10 datagrams): rhid still polls and withdraws."""
    serve(rhid.haproxy, fakes.replying(GOOD))
    rhid.start("10.0.0.1 = all(b:be)\n")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    time.sleep(2.0)  # 20 cycles, each with WATCHDOG=1, into a queue nobody reads
    serve(rhid.haproxy, fakes.replying(DOWN))
    wait_for("the route withdrawn", lambda: "10.0.0.1/32" not in rhid.file(), 10)
    assert "notify.failed" in rhid.names()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_withdraw_needs_no_free_space_and_waits_out_a_reconfiguration(tmp_path: Path, serve: Serve) -> None:
    """`rhid withdraw` on a full /run removes the file, and configures only once BIRD is not busy."""
    bird = fakes.FakeBird(tmp_path / "rhid", busy_for=0.5)
    with tmpfs(tmp_path / "rhid") as directory:
        announce(directory, ANNOUNCED)
        (directory / ".rhid.lock").touch()
        fill(directory)
        bird.reconfigure()  # BIRD is busy reconfiguring for the next 0.5 s
        serve(tmp_path / "bird.ctl", bird.handler())
        done = subprocess.run(
            [sys.executable, "-m", "rhid", "withdraw", "--bird-dir", str(directory),
             "--bird-socket", str(tmp_path / "bird.ctl")],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not (directory / "vol1.ipv4.conf").exists()
    assert bird.queued == 0, "no configure was queued behind BIRD's reconfiguration"
    assert bird.routes == {}


def test_a_start_after_a_stop_refuses_a_broken_file_despite_the_copy(rhid: Daemon, serve: Serve) -> None:
    """After `systemctl stop` (files emptied) a start on a broken file exits 1: the copy is for held routes"""
    serve(rhid.haproxy, fakes.replying(GOOD))
    serve(rhid.bird, fakes.FakeBird(rhid.dir).handler())
    rhid.start("10.0.0.1 = all(b:be)\n")
    wait_for("the route announced", lambda: "10.0.0.1/32" in rhid.file(), 10)
    rhid.notify.collect()
    assert rhid.stop() == 0, "withdrawn and confirmed"
    assert "10.0.0.1/32" not in rhid.file()
    rhid.start(BAD_RULES)
    assert rhid.proc is not None
    assert rhid.proc.wait(10) == 1
    assert "10.0.0.1/32" not in rhid.file()
