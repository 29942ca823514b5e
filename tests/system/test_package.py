"""The Debian package under real systemd: built on Debian's minimal base, then install, enable,
reload, watchdog, restart, upgrade, stop, remove and purge, in containers booted with
systemd-nspawn: Debian 12 with bird2, Debian 13 with bird2, Debian 13 with bird3.

The package is built once by scripts/build-deb.sh in a root holding only Debian 12's
`debootstrap --variant=minbase` and a clone of the repository. Each node holds its suite's minimal
base plus systemd, Debian's haproxy and bird2 or bird3, nothing else (no dbus, no python3
libraries: the package brings what it needs), and its HAProxy's socket is the vendor's
(/var/run/hapee-extras/hapee-lb.sock, group hapee). A BIRD peer on the host's loopback is the
upstream router whose table proves what the network sees. The tests run in order on one node, as
an operator's session would, then again on the next node.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rhid.birdconf import bird_snippet
from rhid.rules import parse_rules
from tests.integration.lab import PEER_ADDRESS, SPEAKER_ADDRESS, Lab, free_port, wait_for
from tests.system.container import NODES, Container, build_in_root, minimal_root, node_root, remove_root

pytestmark = [pytest.mark.system, pytest.mark.timeout(1200)]  # building and debootstrapping take minutes

ROOT = Path(__file__).parents[2]
UNIT = "hapee-extras-rhi"
RULES = "10.70.0.1 = all(b:be_app)\n10.70.0.2 = all(b:be_b)\n"
NEW_RULES = "10.70.0.1 = all(b:be_app)\n10.70.0.3 = all(b:be_b)\n"
BOTH = {"10.70.0.1/32", "10.70.0.2/32"}
SOCKET = "/var/run/hapee-extras/hapee-lb.sock"  # HAProxy Enterprise's, rhid's default


class Node:
    """The container (the HAProxy node), its package, and the host's BIRD peer."""

    def __init__(self, container: Container, peer: Lab, deb: Path) -> None:
        self.container = container
        self.peer = peer
        self.deb = deb

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.container.run(*argv, check=check)

    def haproxy(self, command: str) -> None:
        """An operator's command on the node's HAProxy admin socket (through rhid's own client)."""
        code = f"from rhid.haproxy import fetch; print(fetch('{SOCKET}', b'{command}\\n', 5))"
        self.run("python3", "-c", code)

    def main_pid(self) -> int:
        """rhid's main PID inside the container, once the service is active with one (never 0 or 1:
        a signal to those would reach a process group or the container's init)."""

        def active_pid() -> int | None:
            shown = self.run("systemctl", "show", "-p", "ActiveState", "-p", "MainPID", UNIT).stdout
            fields = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
            pid = int(fields.get("MainPID", "0"))
            return pid if fields.get("ActiveState") == "active" and pid > 1 else None

        return wait_for("rhid's main process", active_pid, 60, every=0.2)

    def journal(self) -> list[dict[str, str]]:
        out = self.run("journalctl", "-u", UNIT, "-o", "json", "--no-pager").stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def events(self) -> list[str]:
        return [entry.get("RHID_EVENT", "") for entry in self.journal()]

    def routes_stay(self, expected: set[str], seconds: float) -> None:
        """The peer's table is `expected` at every look for `seconds` (no flap, however short)."""
        deadline = time.monotonic() + seconds
        looks = 0
        while time.monotonic() < deadline:
            table = self.peer.birdc("peer", "show route")
            if table is not None:  # birdc could not connect this time: no look, not an empty table
                looks += 1
                seen = set(re.findall(r"^(\S+/\d+)\s", table, flags=re.MULTILINE))
                assert seen == expected, self.run("journalctl", "-u", UNIT, "--no-pager", "-n", "30").stdout
            time.sleep(0.05)
        assert looks >= seconds * 5, f"only {looks} looks at the peer in {seconds} s"


def haproxy_config(frontend_port: int, server_port: int) -> str:
    """Debian's haproxy, its stats socket where and as HAProxy Enterprise puts it (group hapee, which
    no package of this node knows), a dedicated ring at level notice."""
    return f"""global
    stats socket {SOCKET} mode 660 level admin group hapee
    user haproxy
    group haproxy
    log ring@rhid local0 notice
ring rhid
    format timed
    size 65536
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe_www
    bind 127.0.0.1:{frontend_port}
    default_backend be_app
backend be_app
    server s1 127.0.0.1:{server_port}
backend be_b
    server s1 127.0.0.1:{server_port}
"""


def bird_config(speaker_port: int, peer_port: int) -> str:
    """The node's BIRD: rhid's snippet for both rule files, one BGP session to the host's peer."""
    snippet = bird_snippet(parse_rules(RULES + NEW_RULES.split("\n")[1] + "\n"), "/run/rhid")
    return (
        f"router id {SPEAKER_ADDRESS};\nprotocol device {{}}\n{snippet}"
        f"protocol bgp uplink {{\n  local {SPEAKER_ADDRESS} port {speaker_port} as 65001;\n"
        f"  neighbor {PEER_ADDRESS} port {peer_port} as 65002;\n  multihop; strict bind yes;\n"
        "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
        '  ipv4 { import none; export where proto = "vol1"; next hop self; };\n}\n'
    )


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rhid-system-", dir="/var/tmp") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def deb(work: Path) -> Path:
    """The .deb, built once by scripts/build-deb.sh on Debian 12's minimal base, and installed on
    every node (build once, install many)."""
    base = work / "build-root"
    try:
        minimal_root(base, "bookworm", work / "build.log")
        built = build_in_root(ROOT, base, work / "build.log")
        return Path(shutil.copy(built, work / built.name))
    finally:
        remove_root(base)


@pytest.fixture(scope="module", params=sorted(NODES))
def node(request: pytest.FixtureRequest, work: Path, deb: Path) -> Iterator[Node]:
    name: str = request.param
    suite, bird = NODES[name]
    root, log = work / f"root-{name}", work / f"{name}.log"
    (work / name).mkdir()
    container = Container(root, work / f"nspawn-{name}.log")
    peer = Lab(work / name)
    try:
        minimal_root(root, suite, log)
        node_root(root, bird, log)
        shutil.copy(deb, root / "var/tmp" / deb.name)
        container.boot()
        peer.ports["speaker_bgp"] = free_port(SPEAKER_ADDRESS)
        peer.ports["peer_bgp"] = free_port(PEER_ADDRESS)
        yield Node(container, peer, Path("/var/tmp") / deb.name)
    finally:
        container.shut_down()
        peer.close()
        remove_root(root)


def test_install_neither_enables_nor_starts_and_ships_no_live_rule(node: Node) -> None:
    """`apt install ./rhid_*.deb` pulls its dependencies from Debian, creates the user and /run/rhid,
    installs the unit disabled, and a conffile whose example rules are all commented out (the
    service would refuse to start on it)."""
    for service in ("haproxy", "bird"):  # as scripts/apt.sh installed them: programs, no services
        assert node.run("systemctl", "is-enabled", service, check=False).stdout.strip() == "disabled"
        assert node.run("systemctl", "is-active", service, check=False).stdout.strip() == "inactive"
    node.run("apt-get", "update")
    installed = node.run("apt-get", "install", "-y", str(node.deb)).stdout
    assert re.search(r"^Setting up python3-systemd", installed, re.M), (
        "a dependency came from Debian's archive"
    )
    assert node.run("dpkg-query", "-W", "dbus", check=False).returncode != 0, (
        "no D-Bus: the package needs none"
    )
    assert node.run("systemctl", "is-enabled", UNIT, check=False).stdout.strip() == "disabled"
    assert node.run("systemctl", "is-active", UNIT, check=False).stdout.strip() == "inactive"
    assert "rhid" in node.run("id", "rhid").stdout
    assert node.run("stat", "-c", "%U %a", "/run/rhid").stdout.split() == ["rhid", "755"]
    check = node.run("rhid", "check", check=False)
    assert check.returncode == 1
    assert "has no rules" in check.stderr
    assert "/etc/hapee-extras/hapee-rhi.cfg" in node.run("cat", "/var/lib/dpkg/info/rhid.conffiles").stdout
    node.run("test", "-f", "/usr/share/man/man8/rhid.8.gz")


def test_enable_now_is_active_only_after_the_first_cycle(node: Node) -> None:
    """`systemctl enable --now` returns once rhid is READY, which is after its first complete cycle:
    the routes are in BIRD by then, and reach the peer. BIRD starts with rhid's snippet and the unit
    starts while /run/rhid does not exist; rhid joins group hapee, which owns HAProxy's socket; the
    options in RHID_ARGS of /etc/default/hapee-extras-rhi reach `rhid run`."""
    node.run("groupadd", "--system", "hapee")
    node.run("install", "-d", "-o", "haproxy", "-g", "hapee", "-m", "2750", "/run/hapee-extras")
    node.container.write("/etc/haproxy/haproxy.cfg", haproxy_config(free_port(), free_port()))
    node.container.write(
        "/etc/bird/bird.conf", bird_config(node.peer.ports["speaker_bgp"], node.peer.ports["peer_bgp"])
    )
    node.run("rm", "-rf", "/run/rhid")  # as after a reboot once the package's tmpfiles entry is gone
    node.run("systemctl", "restart", "haproxy", "bird")
    node.peer.start_peer()
    node.peer.wait_established()
    node.container.write("/etc/hapee-extras/hapee-rhi.cfg", RULES)
    defaults = node.run("cat", "/etc/default/hapee-extras-rhi").stdout
    assert "RHID_ARGS=" in defaults, "the shipped file documents RHID_ARGS"
    node.container.write("/etc/default/hapee-extras-rhi", defaults + 'RHID_ARGS="--fall 2 --rise 1"\n')
    node.run("test", "!", "-e", "/run/rhid")
    node.run("systemctl", "enable", "--now", UNIT)
    assert node.run("systemctl", "is-active", UNIT).stdout.strip() == "active"
    cmdline = node.run("cat", f"/proc/{node.main_pid()}/cmdline").stdout.split("\0")
    assert cmdline[-5:-1] == ["--fall", "2", "--rise", "1"], cmdline
    speaker = node.run("birdc", "show", "route", "protocol", "vol1").stdout
    assert "10.70.0.1/32" in speaker, "in BIRD before READY"
    assert "10.70.0.2/32" in speaker, "in BIRD before READY"
    node.peer.wait_peer_routes(BOTH)
    assert node.run("rhid", "status").returncode == 0
    assert "hapee" in node.run("id", "-nG", "rhid").stdout.split()


def test_reload_moves_one_route_and_a_bad_file_changes_nothing(node: Node) -> None:
    """`systemctl reload` with a good file moves only the changed route; with a bad one it fails and
    nothing changes, neither the process nor the routes."""
    pid = node.main_pid()
    node.container.write("/etc/hapee-extras/hapee-rhi.cfg", NEW_RULES)
    node.run("systemctl", "reload", UNIT)
    node.peer.wait_peer_routes({"10.70.0.1/32", "10.70.0.3/32"})
    assert node.main_pid() == pid
    node.container.write("/etc/hapee-extras/hapee-rhi.cfg", "10.70.0.1/24 = all(b:be_app)\n")
    failed = node.run("systemctl", "reload", UNIT, check=False)
    assert failed.returncode != 0
    assert node.run("systemctl", "is-active", UNIT).stdout.strip() == "active"
    assert node.main_pid() == pid
    node.routes_stay({"10.70.0.1/32", "10.70.0.3/32"}, 1.0)
    node.container.write("/etc/hapee-extras/hapee-rhi.cfg", RULES)
    node.run("systemctl", "reload", UNIT)
    node.peer.wait_peer_routes(BOTH)


def test_health_changes_reach_the_peer(node: Node) -> None:
    """Disabling a backend's only server withdraws its route at the peer; enabling it brings it back."""
    node.haproxy("disable server be_b/s1")
    node.peer.wait_peer_routes({"10.70.0.1/32"})
    node.haproxy("enable server be_b/s1")
    node.peer.wait_peer_routes(BOTH)


def test_journal_carries_structured_fields(node: Node) -> None:
    """journald has each event as native fields: RHID_EVENT, RHID_PREFIX, RHID_REASON, PRIORITY."""
    withdrawn = [entry for entry in node.journal() if entry.get("RHID_EVENT") == "route.withdrawn"]
    assert withdrawn, node.events()
    assert withdrawn[-1]["RHID_PREFIX"] == "10.70.0.2/32"
    assert "b:be_b is down" in withdrawn[-1]["RHID_REASON"]
    assert withdrawn[-1]["SYSLOG_IDENTIFIER"] == "rhid"


def test_restart_and_upgrade_do_not_withdraw(node: Node) -> None:
    """`systemctl restart` and a package upgrade restart rhid without the routes leaving the peer."""
    pid = node.main_pid()
    restart = node.container.spawn("systemctl", "restart", UNIT)
    node.routes_stay(BOTH, 3.0)
    assert restart.wait(30) == 0
    assert node.main_pid() != pid
    assert "daemon.restarting" in node.events()
    pid = node.main_pid()
    upgrade = node.container.spawn("apt-get", "install", "-y", "--reinstall", str(node.deb))
    node.routes_stay(BOTH, 4.0)
    assert upgrade.wait(120) == 0
    assert node.main_pid() != pid, "the upgrade restarted rhid"
    node.routes_stay(BOTH, 1.0)


def test_the_documented_group_override_works(node: Node) -> None:
    """The README's drop-in (reset ExecStartPre= and SupplementaryGroups=, then name the groups)
    gives rhid its sockets' groups without the helper: HAProxy is read, the routes hold."""
    dropin = f"/etc/systemd/system/{UNIT}.service.d"
    node.run("gpasswd", "-d", "rhid", "hapee")
    node.run("mkdir", "-p", dropin)
    node.container.write(
        f"{dropin}/groups.conf",
        "[Service]\nExecStartPre=\nSupplementaryGroups=\nSupplementaryGroups=bird hapee\n",
    )
    try:
        node.run("systemctl", "daemon-reload")
        node.run("systemctl", "restart", UNIT)
        assert "hapee" not in node.run("id", "-nG", "rhid").stdout.split(), "the helper did not run"
        gid = node.run("getent", "group", "hapee").stdout.split(":")[2]
        status = node.run("cat", f"/proc/{node.main_pid()}/status").stdout
        groups = re.search(r"^Groups:(.*)$", status, re.M)
        assert groups, status
        assert gid in groups.group(1).split(), status
        node.haproxy("disable server be_b/s1")
        node.peer.wait_peer_routes({"10.70.0.1/32"})
        node.haproxy("enable server be_b/s1")
        node.peer.wait_peer_routes(BOTH)
    finally:
        node.run("rm", "-rf", dropin)
        node.run("systemctl", "daemon-reload")
    node.run("systemctl", "restart", UNIT)
    assert "hapee" in node.run("id", "-nG", "rhid").stdout.split(), "the helper ran again"
    node.peer.wait_peer_routes(BOTH)


def test_metrics_need_the_drop_in_and_serve_the_host_with_it(node: Node) -> None:
    """`--metrics-listen` under the unit's own sandbox cannot open an IP socket: rhid says which
    drop-in to install and routes as before. With the package's drop-in (its port changed, as an
    operator may) a scraper on the host reads on loopback what the peer sees; the exposure score is
    the one the drop-in states; removing it closes the sandbox again."""
    port = free_port()
    defaults = node.run("cat", "/etc/default/hapee-extras-rhi").stdout
    dropin = f"/etc/systemd/system/{UNIT}.service.d"
    # Three restarts follow the previous test's two: keep systemd's start limit (5 in 10 s) out of it.
    node.run("systemctl", "reset-failed", UNIT)
    try:
        node.container.write(
            "/etc/default/hapee-extras-rhi", defaults + f'RHID_ARGS="--metrics-listen 127.0.0.1:{port}"\n'
        )
        node.run("systemctl", "restart", UNIT)
        wait_for("metrics.unavailable", lambda: "metrics.unavailable" in node.events(), 30, every=0.5)
        refused = [e for e in node.journal() if e.get("RHID_EVENT") == "metrics.unavailable"][-1]
        assert "drop-in" in refused["RHID_HINT"], refused
        node.peer.wait_peer_routes(BOTH)
        node.container.write("/etc/default/hapee-extras-rhi", defaults)
        shipped = node.run("cat", "/usr/share/rhid/systemd/metrics.conf").stdout
        node.run("mkdir", "-p", dropin)
        node.container.write(f"{dropin}/metrics.conf", shipped.replace("127.0.0.1:9198", f"127.0.0.1:{port}"))
        node.run("systemctl", "daemon-reload")
        node.run("systemctl", "restart", UNIT)
        node.peer.wait_peer_routes(BOTH)

        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                    text: str = reply.read().decode()
            except OSError:
                return None
            return text if "rhid_ready 1.0" in text else None

        text = wait_for("rhid's metrics from the host", page, 30, every=0.5)
        for prefix in BOTH:
            assert f'rhid_route_announced{{prefix="{prefix}",table="vol1"}} 1.0' in text, text
        assert "rhid_bird_in_sync 1.0" in text
        out = node.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
        score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        stated = re.search(r"scores ([0-9.]+) with it", shipped)
        assert score, out
        assert stated, shipped
        assert score.group(1) == stated.group(1), out
    finally:
        node.container.write("/etc/default/hapee-extras-rhi", defaults)
        node.run("rm", "-rf", dropin)
        node.run("systemctl", "daemon-reload")
    before = len(node.journal())
    node.run("systemctl", "reset-failed", UNIT)
    node.run("systemctl", "restart", UNIT)
    node.peer.wait_peer_routes(BOTH)

    def ready() -> list[str | None] | None:  # the journal may lag behind systemctl's return
        events = [entry.get("RHID_EVENT") for entry in node.journal()[before:]]
        return events if "daemon.ready" in events else None

    events = wait_for("daemon.ready in the journal", ready, 30, every=0.5)
    assert "metrics.listening" not in events, "off again without the drop-in"


def test_a_hung_loop_is_restarted_by_the_watchdog(node: Node) -> None:
    """SIGSTOP to rhid's main process: systemd's watchdog kills and restarts it; routes held meanwhile."""
    pid = node.main_pid()
    restarts = int(node.run("systemctl", "show", "-p", "NRestarts", "--value", UNIT).stdout)
    node.run("kill", "-STOP", str(pid))
    node.routes_stay(BOTH, 8.0)
    wait_for("a new rhid", lambda: node.main_pid() != pid, 40, every=0.5)
    assert int(node.run("systemctl", "show", "-p", "NRestarts", "--value", UNIT).stdout) == restarts + 1
    node.peer.wait_peer_routes(BOTH)
    assert node.run("systemctl", "is-active", UNIT).stdout.strip() == "active"


def test_a_restart_that_cannot_start_withdraws_once_no_rhid_runs(node: Node) -> None:
    """A restart on an invalid file with no last good copy holds the routes through the stop, then
    fails for good; the unit's OnFailure= (rhid withdraw) withdraws them at the peer."""
    node.run("rm", "-f", "/run/rhid/rules.last-good")
    node.container.write("/etc/hapee-extras/hapee-rhi.cfg", "10.70.0.1/24 = all(b:be_app)\n")
    try:
        node.run("systemctl", "restart", UNIT, check=False)
        wait_for(
            "the unit to fail for good",
            lambda: node.run("systemctl", "is-failed", UNIT, check=False).stdout.strip() == "failed",
            60,
            every=0.5,
        )
        node.peer.wait_peer_routes(set(), timeout=30)
        withdraw = node.run("journalctl", "-u", f"{UNIT}-withdraw", "--no-pager").stdout
        assert "route(s) withdrawn" in withdraw, withdraw
    finally:
        node.container.write("/etc/hapee-extras/hapee-rhi.cfg", RULES)
        node.run("systemctl", "reset-failed", UNIT, check=False)
    node.run("systemctl", "start", UNIT)
    node.peer.wait_peer_routes(BOTH)


def test_security_exposure_is_what_the_readme_says(node: Node) -> None:
    """`systemd-analyze security` of the installed unit scores what the README states."""
    out = node.run("systemd-analyze", "security", "--no-pager", UNIT).stdout
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert score, out
    readme = (ROOT / "README.md").read_text()
    stated = re.search(r"`systemd-analyze security hapee-extras-rhi` scores ([0-9.]+)", readme)
    assert stated, "the README states the score"
    assert score.group(1) == stated.group(1), out


def test_stop_withdraws(node: Node) -> None:
    """`systemctl stop` withdraws every route (the unit's default --on-stop withdraw)."""
    node.run("systemctl", "stop", UNIT)
    node.peer.wait_peer_routes(set())
    assert "daemon.restarting" not in node.events()[-5:]


def test_an_upgrade_leaves_a_stopped_node_stopped(node: Node) -> None:
    """A package upgrade of an enabled but stopped node (in maintenance) does not start it: its
    routes stay withdrawn."""
    assert node.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    node.run("apt-get", "install", "-y", "--reinstall", str(node.deb))
    assert node.run("systemctl", "is-active", UNIT, check=False).stdout.strip() == "inactive"
    node.routes_stay(set(), 2.0)


def test_remove_stops_and_purge_removes_the_configuration(node: Node) -> None:
    """`apt remove` stops the service (routes withdrawn) and warns about a bird.conf whose includes
    would keep BIRD from starting without /run/rhid; with rhid's snippet BIRD still starts;
    `apt purge` removes rhid's configuration."""
    node.run("systemctl", "start", UNIT)
    node.peer.wait_peer_routes(BOTH)
    current = node.run("cat", "/etc/bird/bird.conf").stdout
    node.container.write("/etc/bird/bird.conf", current.replace("/run/rhi[d]/", "/run/rhid/"))
    removed = node.run("apt-get", "remove", "-y", "rhid")
    assert 'includes "/run/rhid/..." files' in removed.stdout + removed.stderr
    node.peer.wait_peer_routes(set())
    assert node.run("systemctl", "is-active", UNIT, check=False).stdout.strip() != "active"
    assert node.run("test", "-e", "/etc/hapee-extras/hapee-rhi.cfg", check=False).returncode == 0
    node.container.write("/etc/bird/bird.conf", current)
    node.run("rm", "-rf", "/run/rhid")  # as at the next boot
    node.run("systemctl", "restart", "bird")
    assert "Reconfigured" in node.run("birdc", "configure").stdout
    node.run("apt-get", "purge", "-y", "rhid")
    for path in ["/etc/hapee-extras/hapee-rhi.cfg", "/etc/default/hapee-extras-rhi"]:
        assert node.run("test", "-e", path, check=False).returncode != 0, path
