"""rhid as a system service: the unit file, sd_notify, reload, `rhid status`, the instance lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, NotifyListener, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

UNIT = Path(__file__).parents[2] / "packaging" / "systemd" / "hapee-extras-rhi.service"
RULES = "10.30.0.1 = all(b:be_app)\n10.30.0.2 = all(b:be_b)\nvol2%10.30.0.3 = any(b:be_app,b:be_b)\n"
NEW_RULES = "10.30.0.1 = all(b:be_app)\nvol2%10.30.0.3 = any(b:be_app,b:be_b)\n10.30.0.4 = all(b:be_b)\n"
BACKENDS = {"be_app": ["web1"], "be_b": ["web2"]}


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: scripts/install.sh installs systemd")
    return subprocess.run(
        [tool, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_unit_file_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (ExecStart pointing at this checkout's rhid), including
    its Documentation=man:rhid(8), found in this checkout's page as the package installs it."""
    rhid = Path(sys.executable).parent / "rhid"
    unit = tmp_path / UNIT.name
    helper = UNIT.parents[1] / "libexec" / "socket-groups"
    unit.write_text(
        UNIT.read_text()
        .replace("/usr/bin/rhid", str(rhid))
        .replace("/usr/libexec/rhid/socket-groups", str(helper))
    )
    (tmp_path / "man" / "man8").mkdir(parents=True)
    shutil.copy(UNIT.parents[1] / "rhid.8", tmp_path / "man" / "man8" / "rhid.8")
    result = analyze("verify", str(unit), env={"MANPATH": str(tmp_path / "man")})
    assert result.returncode == 0, result.stderr + result.stdout


def test_unit_file_is_hardened() -> None:
    """`systemd-analyze security --offline=yes` scores the unit at most 1.5 (Debian's bird: 9.6)."""
    result = analyze("security", "--offline=yes", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 1.5, result.stdout


def test_unit_runs_unprivileged_with_socket_groups() -> None:
    """The unit runs as user rhid, joining its sockets' groups as root first, no capabilities, Type=notify."""
    text = UNIT.read_text()
    assert "SupplementaryGroups=" not in text, "no group must exist for the unit to start"
    assert "ExecStartPre=/usr/bin/rhid check" not in text, "rhid run validates, keeping the last good rules"
    for line in ["Type=notify", "User=rhid", "ExecStartPre=+/usr/libexec/rhid/socket-groups",
                 "CapabilityBoundingSet=", "RuntimeDirectory=rhid", "RuntimeDirectoryPreserve=yes",
                 "ExecReload=/usr/bin/rhid check", "WatchdogSec=",
                 "Restart=on-failure", "EnvironmentFile=-/etc/default/hapee-extras-rhi",
                 "EnvironmentFile=-/etc/sysconfig/hapee-extras-rhi"]:  # fmt: skip
        assert line in text, line
    tmpfiles = (UNIT.parent / "rhid.tmpfiles").read_text()
    assert re.search(r"^d /run/rhid 0755 rhid rhid", tmpfiles, re.MULTILINE)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Lab, NotifyListener]]:
    with lab(tmp_path) as instance:
        notify = NotifyListener(tmp_path / "notify.sock")
        try:
            standard_lab(instance, RULES + "10.30.0.4 = all(b:be_b)\n", BACKENDS, [])
            instance.start_rhid(
                RULES, "--interval", "0.2", "--fall", "2", env={"NOTIFY_SOCKET": str(notify.path)}
            )
            yield instance, notify
        finally:
            notify.close()


def test_ready_only_after_a_complete_cycle(served: tuple[Lab, NotifyListener]) -> None:
    """READY=1 comes once BIRD already holds the routes; STATUS= summarises; WATCHDOG=1 repeats."""
    instance, notify = served
    notify.wait("READY=1")
    speaker = instance.birdc("speaker", "show route") or ""
    assert "10.30.0.1/32" in speaker, "READY=1 before BIRD had the routes"
    lines = notify.lines()
    assert lines.index("READY=1") > 0
    assert any(
        line.startswith("STATUS=3 announced, 0 withdrawn; HAProxy reachable; BIRD reachable")
        for line in lines
    )
    wait_for("watchdog pings", lambda: notify.lines().count("WATCHDOG=1") >= 5, 5)
    lines = notify.lines()
    first_status = next(i for i, line in enumerate(lines) if line.startswith("STATUS="))
    assert lines.index("WATCHDOG=1") > first_status, "WATCHDOG=1 only after a completed cycle"


def test_reload_moves_only_changed_routes(served: tuple[Lab, NotifyListener]) -> None:
    """SIGHUP with a new file: RELOADING=1 then READY=1; kept rules are untouched, others move (a
    removed rule's route after its graceful shutdown)."""
    instance, notify = served
    notify.wait("READY=1")
    instance.wait_peer_routes({"10.30.0.1/32", "10.30.0.2/32", "10.30.0.3/32"})
    before = len(instance.events())
    (instance.root / "hapee-rhi.cfg").write_text(NEW_RULES)
    instance.procs["rhid"].send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING=1")
    notify.wait("READY=1", after=reloading)
    instance.wait_peer_routes({"10.30.0.1/32", "10.30.0.3/32", "10.30.0.4/32"})
    moved = [(e["event"], e["prefix"]) for e in instance.events()[before:] if e["event"].startswith("route.")]
    assert sorted(moved) == [
        ("route.announced", "10.30.0.4/32"),
        ("route.graceful_shutdown", "10.30.0.2/32"),
        ("route.withdrawn", "10.30.0.2/32"),
    ]


def test_bad_reload_changes_nothing_and_says_so(served: tuple[Lab, NotifyListener]) -> None:
    """SIGHUP with a broken file keeps rules and routes; STATUS and `rhid status` (exit 4) say so."""
    instance, notify = served
    notify.wait("READY=1")
    instance.wait_peer_routes({"10.30.0.1/32", "10.30.0.2/32", "10.30.0.3/32"})
    (instance.root / "hapee-rhi.cfg").write_text("10.30.0.1/24 = all(b:be_app)\n")
    instance.procs["rhid"].send_signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING=1")
    notify.wait("READY=1", after=reloading)
    assert any("reload failed" in line for line in notify.lines()[reloading:] if line.startswith("STATUS="))
    failed = [e for e in instance.events() if e["event"] == "rules.reload_failed"]
    assert "hapee-rhi.cfg:1:1: 10.30.0.1/24 has host bits set" in failed[0]["errors"][0]
    assert instance.peer_routes() == {"10.30.0.1/32", "10.30.0.2/32", "10.30.0.3/32"}
    result = instance.rhid("status", "--bird-dir", str(instance.bird_dir))
    assert "last reload: failed" in result.stdout, result.stdout + result.stderr
    assert "PROBLEM: the last reload failed" in result.stdout
    assert result.returncode == 4, "a failed reload is a problem a monitoring check must see"


def test_status_explains_every_route(served: tuple[Lab, NotifyListener]) -> None:
    """`rhid status --routes` lists routes with rule, state, since and each target's status and
    counters; `rhid status` counts them by state and lists only the one not announced."""
    instance, notify = served
    notify.wait("READY=1")
    instance.haproxy("disable server be_b/s1")
    instance.wait_peer_routes({"10.30.0.1/32", "10.30.0.3/32"})
    overview = instance.rhid("status", "--json", "--bird-dir", str(instance.bird_dir))
    assert overview.returncode == 0, overview.stderr
    summary = json.loads(overview.stdout)
    assert "routes" not in summary
    assert summary["counts"] == {**summary["counts"], "announced": 2, "withdrawn": 1, "degraded": 0}
    assert [route["prefix"] for route in summary["attention"]["routes"]] == ["10.30.0.2/32"]
    assert summary["attention"]["more"] == 0
    text = instance.rhid("status", "--bird-dir", str(instance.bird_dir)).stdout
    assert "by state: 2 announced, 1 withdrawn" in text, text
    assert "10.30.0.2/32" in text, text
    assert "10.30.0.1/32" not in text, text
    result = instance.rhid("status", "--routes", "--json", "--bird-dir", str(instance.bird_dir))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["haproxy"]["state"] == "reachable"
    assert document["bird"] == {**document["bird"], "state": "reachable", "in_sync": True, "last_error": None}
    routes = {route["prefix"]: route for route in document["routes"]}
    assert routes["10.30.0.2/32"]["announced"] is False
    (target,) = routes["10.30.0.2/32"]["targets"]
    assert target == {**target, "proxy": "b:be_b", "health": "down", "haproxy_status": "DOWN", "fall": 2}
    assert target["down_count"] >= 2
    assert routes["10.30.0.3/32"]["table"] == "vol2"

    one = instance.rhid("status", "10.30.0.2", "--bird-dir", str(instance.bird_dir))
    assert one.returncode == 0, one.stderr
    assert "10.30.0.2/32" in one.stdout
    assert "10.30.0.1/32" not in one.stdout
    assert "b:be_b" in one.stdout
    assert "HAProxy last said 'DOWN'" in one.stdout
    missing = instance.rhid("status", "192.0.2.99", "--bird-dir", str(instance.bird_dir))
    assert missing.returncode == 1
    assert "no rule announces 192.0.2.99" in missing.stderr


def test_status_socket_is_private(served: tuple[Lab, NotifyListener]) -> None:
    """The control socket is mode 0660: only its owner and group may ask."""
    instance, notify = served
    notify.wait("READY=1")
    assert (instance.bird_dir / "rhid.sock").stat().st_mode & 0o777 == 0o660


def test_second_instance_is_refused(served: tuple[Lab, NotifyListener]) -> None:
    """A second rhid on the same directory exits 1 naming the running one; the first keeps going."""
    instance, notify = served
    notify.wait("READY=1")
    second = instance.start_rhid(RULES, name="second")
    assert second.wait(10) == 1
    pid = instance.procs["rhid"].pid
    assert f"another rhid (pid {pid}) already runs with --bird-dir" in instance.log("second")
    assert instance.procs["rhid"].poll() is None


def test_stopping_is_announced(served: tuple[Lab, NotifyListener]) -> None:
    """SIGTERM sends STOPPING=1 before the routes are withdrawn and rhid exits 0."""
    instance, notify = served
    notify.wait("READY=1")
    assert instance.stop("rhid") == 0
    assert "STOPPING=1" in notify.lines()
    instance.wait_peer_routes(set())


def test_dead_notify_socket_is_logged_once_and_routing_goes_on(tmp_path: Path) -> None:
    """NOTIFY_SOCKET naming a dead path: one notify.failed event, routes still announced."""
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [])
        instance.start_rhid(RULES, "--interval", "0.2", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
        instance.wait_peer_routes({"10.30.0.1/32", "10.30.0.2/32", "10.30.0.3/32"})
        wait_for("a few cycles", lambda: len(instance.events()) > 8, 5)
        failures = [e for e in instance.events() if e["event"] == "notify.failed"]
        assert len(failures) == 1
