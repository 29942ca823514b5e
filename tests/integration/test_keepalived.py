"""Real keepalived (Debian's) moving a VIP by `rhid probe`, in two network namespaces.

    node1 (ns) 192.0.2.1/24 veth0 ──── veth0 192.0.2.2/24 (ns) node2      VIP 192.0.2.100

Each node runs a real backend server, HAProxy health-checking it, and keepalived whose
`track_script` runs `rhid probe 192.0.2.100` every second, as the README's keepalived section
shows: with a daemon per node (rhid run and its BIRD, the probe asks the daemon), or with
`--standalone` (the probe polls that node's HAProxy itself). node1 has the higher priority and
takes the VIP; killing its backend server makes its probe exit 1, keepalived enters FAULT and the
VIP moves to node2 (seen with `ip addr` in the namespaces); the server's return moves it back,
unless `nopreempt`. The namespaces are named after this process and removed, with everything left
in them, however the test ends (tests/cluster/lab.py's convention, so its clean-up of a crashed
run removes ours too).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rhid.birdconf import bird_snippet
from rhid.haproxy import fetch
from rhid.rules import parse_rules
from tests.cluster.lab import IP, PREFIX, ip, process_start, remove_leftovers, remove_namespace
from tests.integration.lab import BIRD, HAPROXY, Lab, lab, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces, veth links and VRRP need root"),
]

KEEPALIVED = shutil.which("keepalived") or "/usr/sbin/keepalived"
# The console script beside this interpreter (the checkout's .venv), else the installed one.
RHID = shutil.which("rhid", path=str(Path(sys.executable).parent)) or shutil.which("rhid") or "/usr/bin/rhid"
VIP = "192.0.2.100"
RULES = f"{VIP} = all(b:be_app)\n"
WEB_PORT = 8080
# The README's vrrp_script timing: asking the daemon costs little, so every second; --standalone
# compiles the rule file at each run (about 0.15 s of CPU, more on a loaded machine): every 2 s.
SCRIPT_TIMING = {"daemon": (1, 2), "standalone": (2, 5)}  # interval, timeout (seconds)
FAILOVER = 20.0  # seconds: FAULT after two failed runs, then the backup's takeover (under 2 adverts)
TAKEOVER = 20.0  # a first master (3 adverts + skew) or a preempting one


@dataclass
class Node:
    """One keepalived node in its namespace: a backend server, HAProxy, keepalived (and in daemon mode
    rhid run with its BIRD)."""

    lab: Lab
    name: str
    namespace: str
    address: str
    priority: int

    @property
    def dir(self) -> Path:
        return self.lab.root / self.name

    def spawn(self, part: str, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.lab.spawn(f"{self.name}-{part}", [IP, "netns", "exec", self.namespace, *argv], env=env)

    def stop(self, part: str, sig: int = signal.SIGTERM) -> None:
        self.lab.stop(f"{self.name}-{part}", sig)

    def start_web(self) -> None:
        self.spawn("web", [sys.executable, "-m", "http.server", str(WEB_PORT), "--bind", "127.0.0.1"])
        wait_for(f"{self.name}'s web server", self.web_listens, 10)

    def web_listens(self) -> bool:
        return bool(ip("netns", "exec", self.namespace, "ss", "-Hltn", f"sport = :{WEB_PORT}").strip())

    def start_haproxy(self) -> None:
        config = self.dir / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"    stats socket {self.dir / 'haproxy.sock'} mode 600 level admin\n"
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
            "    timeout server 5s\n    timeout check 1s\n"
            "backend be_app\n"
            f"    server s1 127.0.0.1:{WEB_PORT} check inter 100ms fall 1 rise 1\n"
        )
        self.spawn("haproxy", [HAPROXY, "-f", str(config), "-db"])
        wait_for(f"{self.name}'s HAProxy", self.haproxy_answers, 10)

    def haproxy_answers(self) -> bool:
        try:
            return b"be_app,BACKEND,0,0" in fetch(str(self.dir / "haproxy.sock"), b"show stat\n", 1.0)
        except Exception:  # not up yet: refused, missing, garbled
            return False

    def start_daemon(self) -> None:
        """rhid run and the BIRD it writes for (static protocols only: BIRD's part is not tested here)."""
        rules = parse_rules(RULES)
        bird_dir = self.dir / "rhid"
        bird_dir.mkdir()
        (self.dir / "bird.conf").write_text(
            f"router id {self.address};\nprotocol device {{}}\n" + bird_snippet(rules, str(bird_dir))
        )
        ctl = str(self.dir / "bird.ctl")
        self.spawn(
            "bird", [BIRD, "-f", "-c", str(self.dir / "bird.conf"), "-s", ctl, "-P", str(self.dir / "b.pid")]
        )
        wait_for(f"{self.name}'s BIRD", (self.dir / "bird.ctl").exists, 10)
        self.spawn("rhid", [sys.executable, "-m", "rhid", "run", "-c", str(self.dir / "hapee-rhi.cfg"),
                            "--haproxy-socket", str(self.dir / "haproxy.sock"), "--bird-socket", ctl,
                            "--bird-dir", str(bird_dir), "--interval", "0.2", "--fall", "1",
                            "--log-format", "json"])  # fmt: skip
        wait_for(f"{self.name}'s rhid to answer", (bird_dir / "rhid.sock").exists, 15)

    def probe_command(self, mode: str) -> str:
        """The track_script's command line: keepalived splits it at spaces and runs it without a shell.

        It is the `rhid` command, as the package installs it: keepalived resolves the symbolic links
        of a script's path, so a virtualenv's `python` (a link) would run as the plain interpreter,
        outside the virtualenv."""
        common = [RHID, "probe"]
        if mode == "standalone":
            return " ".join([*common, "--standalone", "-c", str(self.dir / "hapee-rhi.cfg"),
                             "--haproxy-socket", str(self.dir / "haproxy.sock"), VIP])  # fmt: skip
        return " ".join([*common, "--bird-dir", str(self.dir / "rhid"), VIP])

    def start_keepalived(self, mode: str, *, nopreempt: bool) -> None:
        state = "MASTER" if self.priority > 100 and not nopreempt else "BACKUP"
        config = self.dir / "keepalived.conf"
        config.write_text(
            "global_defs {\n"
            f"    router_id rhid_{self.name}\n"
            "    script_user root\n"
            "}\n"
            "vrrp_script chk_rhid {\n"
            f'    script "{self.probe_command(mode)}"\n'
            f"    interval {SCRIPT_TIMING[mode][0]}\n    timeout {SCRIPT_TIMING[mode][1]}\n"
            "    fall 2\n    rise 2\n"  # one slow run (a loaded machine) is not a failover
            "}\n"
            "vrrp_instance VI_1 {\n"
            f"    state {state}\n"
            "    interface veth0\n"
            "    virtual_router_id 51\n"
            f"    priority {self.priority}\n"
            "    advert_int 1\n" + ("    nopreempt\n" if nopreempt else "") + "    virtual_ipaddress {\n"
            f"        {VIP}/32 dev veth0\n"
            "    }\n"
            "    track_script {\n        chk_rhid\n    }\n"
            "}\n"
        )
        pids = [f"--{kind}={self.dir / (kind + '.pid')}" for kind in ("pid", "vrrp_pid", "checkers_pid")]
        self.spawn("keepalived", [KEEPALIVED, "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
                                  "--vrrp", f"--use-file={config}", *pids])  # fmt: skip

    def has_vip(self) -> bool:
        shown = ip("-n", self.namespace, "-4", "-o", "addr", "show", "dev", "veth0")
        return re.search(rf"\sinet {re.escape(VIP)}/32\s", shown) is not None

    def keepalived_log(self) -> str:
        return self.lab.log(f"{self.name}-keepalived")


@dataclass
class Pair:
    lab: Lab
    nodes: tuple[Node, Node]

    def holder(self) -> str | None:
        """Which node has the VIP: one name, "both" (never acceptable) or None."""
        holders = [node.name for node in self.nodes if node.has_vip()]
        if len(holders) > 1:
            return "both"
        return holders[0] if holders else None

    def wait_holder(self, name: str, timeout: float) -> None:
        wait_for(f"the VIP on {name} alone", lambda: self.holder() == name, timeout, every=0.1)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two namespaces joined by a veth pair, torn down with whatever runs in them, however the test ends."""
    remove_leftovers()
    owner = f"{os.getpid()}.{process_start(os.getpid())}"
    namespaces = [f"{PREFIX}-{owner}-vrrp{index}" for index in (1, 2)]
    with lab(tmp_path) as instance:
        try:
            for namespace in namespaces:
                ip("netns", "add", namespace)
                ip("-n", namespace, "link", "set", "lo", "up")
            ip("link", "add", "veth0", "netns", namespaces[0], "type", "veth", "peer", "name", "veth0",
               "netns", namespaces[1])  # fmt: skip
            nodes = []
            for index, (namespace, priority) in enumerate(zip(namespaces, (150, 100), strict=True), start=1):
                address = f"192.0.2.{index}"
                ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "veth0")
                ip("-n", namespace, "link", "set", "veth0", "up")
                node = Node(instance, f"node{index}", namespace, address, priority)
                node.dir.mkdir()
                (node.dir / "hapee-rhi.cfg").write_text(RULES)
                nodes.append(node)
            yield Pair(instance, (nodes[0], nodes[1]))
        finally:
            instance.close()  # keepalived first (the last started), which drops its VIP as it stops
            for namespace in namespaces:
                remove_namespace(namespace)


@pytest.mark.parametrize(
    ("mode", "nopreempt"),
    [("daemon", False), ("standalone", True)],
    ids=["daemon-preempt", "standalone-nopreempt"],
)
def test_a_failed_backend_moves_the_vip_to_the_backup(pair: Pair, mode: str, nopreempt: bool) -> None:
    """The MASTER's backend dies: its probe exits 1, keepalived faults and node2 takes the VIP; the
    backend's return gives it back (preempt), or leaves it on node2 (nopreempt)."""
    first, second = pair.nodes
    for node in pair.nodes:
        node.start_web()
        node.start_haproxy()
        if mode == "daemon":
            node.start_daemon()
    for node in pair.nodes:
        node.start_keepalived(mode, nopreempt=nopreempt)
    pair.wait_holder("node1", TAKEOVER)

    first.stop("web", signal.SIGKILL)  # a real health-check failure, not an admin action
    pair.wait_holder("node2", FAILOVER)
    assert re.search(r"VRRP_Script\(chk_rhid\) failed \(exited with status 1\)", first.keepalived_log()), (
        first.keepalived_log()[-2000:]
    )
    assert "Entering FAULT STATE" in first.keepalived_log()

    if mode == "daemon":
        assert '"event": "route.withdrawn"' in pair.lab.log("node1-rhid"), "the daemon withdrew it first"
    first.start_web()
    wait_for(
        "node1's probe to succeed again",
        lambda: first.keepalived_log().count("VRRP_Script(chk_rhid) succeeded") >= 2,
        10,
    )
    if nopreempt:
        wait_for(
            "node1 back as BACKUP", lambda: first.keepalived_log().count("Entering BACKUP STATE") >= 2, 10
        )
        for _ in range(50):  # 5 s: longer than a master-down interval (3 adverts and the skew)
            assert pair.holder() == "node2", "nopreempt: the VIP stays where it is"
            time.sleep(0.1)
    else:
        pair.wait_holder("node1", TAKEOVER)
    assert "status 4" not in first.keepalived_log() + second.keepalived_log(), (
        "the probe's question was answerable"
    )
