"""Fault matrix rows at levels I and S: real haproxy and bird2, rhid as a subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rhid.cli import main
from rhid.errors import HAProxyUnavailableError
from rhid.haproxy import HAProxyClient
from tests.integration.lab import Lab, NotifyListener, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

NOBODY = 65534
RULES = "10.50.0.1 = all(b:be_app)\n10.50.0.2 = all(b:be_b)\n"
BACKENDS = {"be_app": ["web1"], "be_b": ["web2"]}
BOTH = {"10.50.0.1/32", "10.50.0.2/32"}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [])
        instance.start_rhid(RULES, "--interval", "0.2", "--fall", "2")
        instance.wait_peer_routes(BOTH)
        yield instance


def test_c1_bad_rules_at_start_exit_before_ready(tmp_path: Path) -> None:
    """C1: a syntax error at start-up exits 1 with file:line:col, sends no READY, touches no BIRD file."""
    with lab(tmp_path) as instance:
        notify = NotifyListener(tmp_path / "n.sock")
        try:
            proc = instance.start_rhid("10.0.0.1 = all(b:x\n", env={"NOTIFY_SOCKET": str(notify.path)})
            assert proc.wait(10) == 1
            assert "hapee-rhi.cfg:1:19: expected ',' or ')'" in instance.log("rhid")
            assert "READY=1" not in notify.lines()
            assert not instance.bird_dir.exists()
        finally:
            notify.close()


def test_c6_reload_to_an_empty_file_is_refused(running: Lab) -> None:
    """C6: a reload that would remove every rule is refused (a truncated deploy), routes stay."""
    (running.root / "hapee-rhi.cfg").write_text("# truncated by a bad deploy\n")
    running.procs["rhid"].send_signal(signal.SIGHUP)
    wait_for("the refusal", lambda: any(e["event"] == "rules.reload_failed" for e in running.events()), 5)
    failed = next(e for e in running.events() if e["event"] == "rules.reload_failed")
    assert "has no rules" in failed["errors"][0]
    time.sleep(0.6)
    assert running.peer_routes() == BOTH


def as_nobody(action: Callable[[], object]) -> tuple[int, str]:
    """Run `action` in a forked child that dropped to uid/gid nobody; return (exit status, its output).

    Forking (rather than exec'ing an interpreter as nobody) works wherever the checkout lives: the
    child already has every module loaded, so it never needs to read the repository.
    """
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 70
        stream = os.fdopen(writer, "w", buffering=1)
        sys.stdout = sys.stderr = stream  # pytest's capture objects stand in the child's way otherwise
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result = action()
            status = result if isinstance(result, int) else 0
        except BaseException as exc:  # report anything to the parent
            stream.write(f"{type(exc).__name__}: {exc}\n")
        finally:
            stream.flush()
            os._exit(status)
    os.close(writer)
    with os.fdopen(reader) as stream:
        output = stream.read()
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status), output


def listening_socket(path: Path) -> socket.socket:
    """A UNIX socket at `path`, root-owned, mode 0660: other users get EACCES."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    path.chmod(0o660)
    return listener


def test_h3_haproxy_socket_permission_names_the_group(public_dir: Path) -> None:
    """H3: EACCES on the stats socket is an unavailable HAProxy, reported naming the missing group."""
    path = public_dir / "haproxy.sock"

    def poll() -> int:
        try:
            HAProxyClient(str(path), 1.0).poll([])
        except HAProxyUnavailableError as exc:
            print(exc.kind, exc.reason, flush=True)
        return 0

    with listening_socket(path):
        code, output = as_nobody(poll)
    assert code == 0, output
    assert output.startswith("permission permission denied: uid 65534 needs to be in group 'root'"), output


def test_b8_bird_socket_permission_is_fatal_at_start(public_dir: Path) -> None:
    """B8: rhid run exits 1 at start-up when it may not use BIRD's socket, naming the group."""
    bird = public_dir / "bird.ctl"
    rules = public_dir / "r.cfg"
    rules.write_text(RULES)
    rules.chmod(0o644)
    argv = ["run", "-c", str(rules), "--bird-socket", str(bird), "--log-format", "json",
            "--haproxy-socket", str(public_dir / "none.sock"),
            "--bird-dir", str(public_dir / "dir")]  # fmt: skip
    with listening_socket(bird):
        code, output = as_nobody(lambda: main(argv))
    assert code == 1, output
    assert "cannot use BIRD's control socket" in output
    assert "needs to be in group 'root'" in output


def test_h2_haproxy_missing_at_boot(tmp_path: Path) -> None:
    """H2: rhid starts and is READY without HAProxy; routes appear only once HAProxy answers."""
    with lab(tmp_path) as instance:
        notify = NotifyListener(tmp_path / "n.sock")
        try:
            instance.bird_dir.mkdir()
            from rhid.rules import parse_rules  # noqa: PLC0415 -- only this test builds BIRD first

            instance.write_speaker_config(parse_rules(RULES))
            instance.start_speaker()
            instance.start_peer()
            instance.wait_established()
            instance.start_rhid(RULES, "--interval", "0.2", env={"NOTIFY_SOCKET": str(notify.path)})
            notify.wait("READY=1")
            time.sleep(0.6)
            assert instance.peer_routes() == set()
            for web in BACKENDS.values():
                instance.start_web(web[0])
            instance.start_haproxy(BACKENDS, [])
            instance.wait_peer_routes(BOTH)
        finally:
            notify.close()


def test_h4_haproxy_reload_keeps_vanished_and_guards_pending(tmp_path: Path) -> None:
    """H4: after an HAProxy reload a removed backend keeps its status; a pending first check is no UP."""
    rules = "10.60.0.1 = all(b:be_app)\n10.60.0.2 = all(b:be_gone)\n10.60.0.3 = all(b:be_dead)\n"
    backends = {"be_app": ["web1"], "be_gone": ["web2"], "be_dead": ["ghost"]}
    slow_checks = {"be_dead": "check inter 3s fall 1 rise 1"}
    with lab(tmp_path) as instance:
        standard_lab(
            instance, rules, backends, [], master=True, checks=slow_checks, dead=frozenset({"ghost"})
        )
        instance.start_rhid(rules, "--interval", "0.1", "--fall", "1", "--rise", "1")
        instance.wait_peer_routes({"10.60.0.1/32", "10.60.0.2/32"})
        del backends["be_gone"]
        instance.reload_haproxy(backends, [], slow_checks)
        wait_for(
            "rhid to see the reload",
            lambda: any(e["event"] == "haproxy.reloaded" for e in instance.events()),
            10,
        )
        deadline = time.monotonic() + 1.5  # be_dead's first check after the reload is ~3 s away: INI
        while time.monotonic() < deadline:
            assert instance.peer_routes() == {"10.60.0.1/32", "10.60.0.2/32"}
        vanished = [e for e in instance.events() if e["event"] == "proxy.vanished"]
        assert [(e["proxy"], e["keeps"]) for e in vanished] == [("b:be_gone", "up")]
        assert not [e for e in instance.events() if e["event"] == "proxy.up" and "b:be_dead" in e["proxies"]]


def test_b3_operator_undo_and_broken_bird_conf(running: Lab) -> None:
    """B3: `configure undo` is healed within a poll; a broken bird.conf is reported with BIRD's position."""
    running.haproxy("disable server be_b/s1")
    running.wait_peer_routes({"10.50.0.1/32"})
    assert running.birdc("speaker", "configure undo") is not None
    wait_for(  # the peer may not have seen the undo yet: its routes alone cannot prove the heal
        "rhid to notice the operator's configure",
        lambda: any(e["event"] == "bird.mismatch" and e["why"] == "status changed" for e in running.events()),
        5,
    )
    running.wait_peer_routes({"10.50.0.1/32"}, timeout=5)

    config = running.root / "speaker.conf"
    good = config.read_text()
    config.write_text(good + "protocol static broken {\n")
    running.haproxy("enable server be_b/s1")
    wait_for("BIRD's refusal", lambda: [e for e in running.events() if e["event"] == "bird.refused"], 10)
    refused = next(e for e in running.events() if e["event"] == "bird.refused")
    assert refused["code"] == 8002
    assert "speaker.conf:" in refused["bird_says"]
    status = running.rhid("status", "--json", "--bird-dir", str(running.bird_dir)).stdout
    assert "8002" in status
    assert running.peer_routes() == {"10.50.0.1/32"}, "BIRD keeps its old routes"
    config.write_text(good)
    running.wait_peer_routes(BOTH, timeout=40)  # the next retry of the backoff


def test_p3_p5_stopped_loop_sends_no_watchdog_and_resumes_fresh(tmp_path: Path) -> None:
    """P3/P5: while rhid is stopped no WATCHDOG=1 is sent; after SIGCONT it counts fresh polls only."""
    with lab(tmp_path) as instance:
        notify = NotifyListener(tmp_path / "n.sock")
        try:
            standard_lab(instance, RULES, BACKENDS, [])
            instance.start_rhid(
                RULES, "--interval", "0.2", "--fall", "3", env={"NOTIFY_SOCKET": str(notify.path)}
            )
            instance.wait_peer_routes(BOTH)
            proc = instance.procs["rhid"]
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.3)
            pings = notify.lines().count("WATCHDOG=1")
            instance.haproxy("disable server be_b/s1")
            time.sleep(1.5)
            assert notify.lines().count("WATCHDOG=1") == pings, "a stopped loop must not feed the watchdog"
            proc.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            instance.wait_peer_routes({"10.50.0.1/32"})
            assert time.monotonic() - resumed >= 0.3, "withdrawn on stale time, not on fresh polls"
            wait_for("pings again", lambda: notify.lines().count("WATCHDOG=1") > pings + 2, 5)
        finally:
            notify.close()


def test_p7_closed_stderr_does_not_stop_routing(tmp_path: Path) -> None:
    """P7: with its log stream closed, rhid keeps routing."""
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [])
        rules = tmp_path / "hapee-rhi.cfg"
        rules.write_text(RULES)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rhid", "run", "-c", str(rules), "--interval", "0.2", "--fall", "1",
             "--haproxy-socket", str(instance.haproxy_socket), "--bird-socket", str(instance.ctl("speaker")),
             "--bird-dir", str(instance.bird_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        instance.procs["rhid"] = proc
        assert proc.stderr is not None
        proc.stderr.close()  # the reader is gone: every write now fails with EPIPE
        instance.wait_peer_routes(BOTH)
        instance.haproxy("disable server be_app/s1")
        instance.wait_peer_routes({"10.50.0.2/32"})
        assert proc.poll() is None


def test_p2_killed_mid_work_restarts_without_withdrawing(running: Lab) -> None:
    """P2/B7: SIGKILL holds the routes (fail-static); the next rhid reconciles without a withdraw."""
    running.stop("rhid", signal.SIGKILL)
    time.sleep(0.5)
    assert running.peer_routes() == BOTH
    assert not list(running.bird_dir.glob(".*.tmp")), "no half-written file is left for BIRD"
    running.start_rhid(RULES, "--interval", "0.2", "--fall", "2", name="rhid2")
    wait_for("a few cycles", lambda: len(running.events("rhid2")) > 4, 5)
    assert not [e for e in running.events("rhid2") if e["event"].startswith("route.")]
    assert running.peer_routes() == BOTH


def test_c7_ten_thousand_rules_batched_then_diffs_only(tmp_path: Path) -> None:
    """C7: 10,000 rules reach the peer with one configure; steady state sends none; one change, one."""
    rules = "".join(f"10.70.{i // 256}.{i % 256} = all(b:be_app)\n" for i in range(9_999))
    rules += "10.71.0.1 = all(b:be_b)\n"
    with lab(tmp_path) as instance:
        standard_lab(instance, rules, BACKENDS, [])
        instance.start_rhid(rules, "--interval", "0.2", "--fall", "1", "--log-level", "debug")

        def peer_count() -> int:
            output = instance.birdc("peer", "show route count") or ""
            found = [int(word) for word in output.split() if word.isdigit()]
            return found[0] if found else 0

        wait_for("10,000 routes at the peer", lambda: peer_count() == 10_000, 60, every=0.2)
        time.sleep(1.0)  # five quiet cycles

        def configures() -> int:
            return sum(1 for e in instance.events() if e["event"] == "bird.configured")

        assert configures() == 1, "the first reconcile is one batch, and quiet cycles send nothing"
        instance.haproxy("disable server be_b/s1")
        wait_for("one route to go", lambda: peer_count() == 9_999, 10, every=0.1)
        time.sleep(0.6)
        assert configures() == 2
        withdrawn = [e["prefix"] for e in instance.events() if e["event"] == "route.withdrawn"]
        assert withdrawn == ["10.71.0.1/32"]


MOUNT = shutil.which("mount") or "/usr/bin/mount"
UMOUNT = shutil.which("umount") or "/usr/bin/umount"


@contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    """A small tmpfs mounted at `path` for this test (root only), unmounted however the test ends."""
    path.mkdir(exist_ok=True)
    result = subprocess.run(
        [MOUNT, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run([UMOUNT, str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of `directory` to ENOSPC with one filler file; return it."""
    filler = directory / "filler"
    error = None
    with filler.open("ab", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 4096)
        except OSError as exc:
            error = exc
    assert error is not None
    assert error.errno == errno.ENOSPC, error
    return filler


def bird_report(instance: Lab) -> tuple[int, dict[str, Any]]:
    result = instance.rhid("status", "--json", "--bird-dir", str(instance.bird_dir))
    return result.returncode, json.loads(result.stdout)["bird"]


def test_a_full_run_still_withdraws_and_says_what_it_cannot_write(tmp_path: Path) -> None:
    """15.8/16.2: on a full tmpfs a withdrawal still reaches the peer (file rewritten in place, then
    removed: BIRD 2's wildcard include takes no file); an announcement that needs space is reported
    (write_error, not in sync, a PROBLEM) and retried until space is back; the stop confirms."""
    with tmpfs(tmp_path / "rhid"), lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [])
        instance.start_rhid(RULES, "--interval", "0.2", "--fall", "1", "--rise", "1")
        instance.wait_peer_routes(BOTH)
        filler = fill(instance.bird_dir)
        instance.haproxy("disable server be_b/s1")
        instance.wait_peer_routes({"10.50.0.1/32"})
        assert "10.50.0.2" not in (instance.bird_dir / "vol1.ipv4.conf").read_text()

        instance.haproxy("enable server be_b/s1")  # the file must grow: no space for that
        path = str(instance.bird_dir / "vol1.ipv4.conf")
        code, bird = wait_for(
            "the write error", lambda: (r := bird_report(instance))[1]["write_error"] and r, 10
        )
        assert path in bird["write_error"]
        assert bird["in_sync"] is False
        assert any(path in problem for problem in bird["problems"]), bird["problems"]
        assert code == 4
        assert instance.peer_routes() == {"10.50.0.1/32"}

        filler.unlink()  # space is back: the next cycle's retry announces it
        instance.wait_peer_routes(BOTH)
        wait_for("in sync again", lambda: bird_report(instance)[1]["in_sync"], 10)
        assert bird_report(instance)[1]["write_error"] is None

        fill(instance.bird_dir)
        assert instance.stop("rhid") == 0, "the withdrawal is on disk and confirmed by BIRD"
        instance.wait_peer_routes(set())
        assert not (instance.bird_dir / "vol1.ipv4.conf").exists(), "emptied by removal"


def test_a_stop_whose_withdrawal_cannot_reach_the_disk_exits_non_zero(running: Lab) -> None:
    """15.8: --on-stop withdraw that cannot empty a file (a non-empty directory stands in its place:
    no replace, no rewrite, no removal works) exits 6 and logs it as critical, naming the path."""
    path = running.bird_dir / "vol1.ipv4.conf"
    path.unlink()
    path.mkdir()
    (path / "x").touch()
    assert running.stop("rhid") == 6
    stopping = [e for e in running.events() if e["event"] == "daemon.stopping"]
    [critical] = [e for e in stopping if e["level"] == "critical"]  # after the graceful shutdown's line
    assert "NOT emptied" in critical["files"]
    assert str(path) in critical["errors"][0]


def test_a_table_bird_conf_lacks_is_a_problem_not_in_sync(tmp_path: Path) -> None:
    """16.1: a table in the rules but not in bird.conf: `rhid status` is not in sync, exit 4, and its
    PROBLEM names the protocol and `rhid bird-config`."""
    rules = RULES + "vol2%10.50.0.9 = always\n"
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [])  # BIRD's config has only vol1's protocols
        instance.start_rhid(rules, "--interval", "0.2")
        instance.wait_peer_routes(BOTH)
        code, bird = wait_for(
            "the missing protocol", lambda: (r := bird_report(instance))[1]["missing_protocols"] and r, 10
        )
        assert bird["missing_protocols"] == ["vol2"]
        assert bird["in_sync"] is False
        assert code == 4
        assert [p for p in bird["problems"] if "vol2" in p and "rhid bird-config" in p], bird["problems"]


def test_a_line_added_to_a_file_is_removed_and_withdrawn(running: Lab) -> None:
    """15.7: a route added by hand to rhid's file and applied by an operator's configure is removed
    from the file and withdrawn at the peer within a few cycles."""
    path = running.bird_dir / "vol1.ipv4.conf"
    path.write_text(path.read_text() + "route 10.50.9.9/32 blackhole;\n")
    assert running.birdc("speaker", "configure") is not None
    wait_for("the route gone from the file", lambda: "10.50.9.9" not in path.read_text(), 10)
    running.wait_peer_routes(BOTH, timeout=10)
    assert any(e["event"] == "files.rewritten" for e in running.events())
