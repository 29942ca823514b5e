"""The rule language's new forms against the real programs: `rhid check` on a real file, HAProxy's
own rows for server counts, and BIRD taking (and carrying over eBGP) a degraded route's attributes."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from rhid import health, stats
from rhid.dialect import BIRD2
from rhid.errors import HAProxyUnavailableError
from rhid.haproxy import fetch
from rhid.model import Attributes, Proxy, ProxyKind, ServerTerm, Threshold
from rhid.rules import parse_rules
from tests.integration.lab import BIRD, HAPROXY, PEER_ADDRESS, SPEAKER_ADDRESS, Lab, free_port, lab, wait_for

pytestmark = pytest.mark.integration

RULES = """\
# Full share while half of be_app is up; with fewer, still announced but less preferred.
192.0.2.10 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666
192.0.2.11 = any(all(b:a,b:b), all(b:c,b:d))
192.0.2.12 = atleast(2, b:a, b:b, b:c)
vol2%192.0.2.13, 2001:db8::13 = all(b:be_app>=3, not(f:fe_maint))
"""
APP = Proxy(ProxyKind.BACKEND, "be_app")


def test_rhid_check_validates_a_real_file_of_the_new_forms(tmp_path: Path) -> None:
    """`python -m rhid check` on a file of every new form exits 0 with its summary, `--json` shows the
    tree, and a wrong file exits 1 with each error's file:line:col and hint."""
    path = tmp_path / "hapee-rhi.cfg"
    path.write_text(RULES)
    command = [sys.executable, "-m", "rhid", "check", "-c", str(path)]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "4 rules, 5 routes (4 IPv4, 1 IPv6) in 2 tables (vol1, vol2)" in checked.stdout
    described = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60, check=False)
    data = json.loads(described.stdout)
    assert data["rules"][1]["condition"]["operands"][0] == {
        "aggregate": "all",
        "operands": [{"kind": "backend", "name": "a"}, {"kind": "backend", "name": "b"}],
    }
    assert data["thresholds"] == ["b:be_app>=3", "b:be_app>=50%"]
    path.write_text("192.0.2.10 = atleast(3, b:a, b:b)\n192.0.2.11 = all(b:x) degraded any(b:x)\n")
    wrong = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 1
    assert f"{path}:1:22: atleast(3, ...) can never be true: it has 2 operands" in wrong.stderr
    assert f"{path}:2:23: the degraded clause sets no attribute" in wrong.stderr
    assert "hint: add what routers should see" in wrong.stderr


def haproxy_config(instance: Lab, webs: list[int]) -> Path:
    """One backend of four checked servers and a backup, on two live web servers."""
    config = instance.root / "haproxy.cfg"
    servers = [
        f"    server s{n} 127.0.0.1:{webs[n % 2]} check inter 100ms fall 1 rise 1" for n in range(1, 5)
    ]
    config.write_text(
        "global\n"
        f"    stats socket {instance.haproxy_socket} mode 600 level admin\n"
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n"
        "backend be_app\n" + "\n".join(servers) + "\n"
        f"    server bk 127.0.0.1:{webs[0]} check inter 100ms backup\n"
    )
    return config


def poll(instance: Lab) -> tuple[stats.ProxyStatus, int]:
    """One poll with server rows, as rhid reads it, and the `act` HAProxy prints on the BACKEND row."""
    data = fetch(
        str(instance.haproxy_socket), stats.poll_command(False, stats.typemask_for([APP], True)), 5.0
    )
    snapshot = stats.parse_poll(data, stats.ProxyIndex.of([APP], [APP]), servers=True)
    lines = data.decode().split("\n")
    header = next(line for line in lines if line.startswith("# pxname"))[2:].split(",")
    backend = next(line.split(",") for line in lines if line.startswith("be_app,BACKEND,"))
    return snapshot.status_of(APP), int(backend[header.index("act")])


def test_server_counts_follow_maintenance_drain_and_weight_on_a_real_haproxy(tmp_path: Path) -> None:
    """On HAProxy itself: the backup is left out, MAINT, DRAIN and weight 0 stay in the total but are
    not up, the up count is HAProxy's own `act`, and b:be_app>=50% falls after --fall polls below it."""
    with lab(tmp_path) as instance:
        webs = [instance.start_web("web1"), instance.start_web("web2")]
        instance.spawn("haproxy", [HAPROXY, "-f", str(haproxy_config(instance, webs)), "-db"])

        def checked() -> bool:
            try:
                return poll(instance)[0].observation is stats.Observation.UP
            except HAProxyUnavailableError:  # not listening yet
                return False

        wait_for("HAProxy's first checks", checked, 15)
        seen = []
        for command in (
            None,
            "disable server be_app/s1",
            "set server be_app/s2 state drain",
            "set weight be_app/s3 0",
            "disable server be_app/s4",
        ):
            if command is not None:
                instance.haproxy(command)
            status, act = poll(instance)
            assert status.servers is not None
            seen.append((status.servers.up, status.servers.total, act))
        assert seen == [(4, 4, 4), (3, 4, 3), (2, 4, 2), (1, 4, 1), (0, 4, 0)]

        half = ServerTerm(APP, Threshold(50, percent=True))
        thresholds = health.Thresholds(fall=2, rise=1)
        instance.haproxy("enable server be_app/s1")
        instance.haproxy("enable server be_app/s4")
        states, _, _ = health.observe_terms({}, [half], {APP: poll(instance)[0]}, 0.0, thresholds)
        assert states[half].state.health is health.Health.UP  # 2 of 4 up: half
        instance.haproxy("disable server be_app/s4")
        for now in (1.0, 2.0):
            states, _, _ = health.observe_terms(states, [half], {APP: poll(instance)[0]}, now, thresholds)
            assert states[half].servers == stats.Counts(1, 4, 0)
            assert states[half].state.health is (health.Health.UP if now == 1.0 else health.Health.DOWN)


def bird_config(root: Path, port: tuple[int, int], peer: bool) -> Path:
    """A speaker whose static protocol reads `routes.conf` and exports with the README's filter, or
    the peer that imports everything."""
    local, remote = (PEER_ADDRESS, SPEAKER_ADDRESS) if peer else (SPEAKER_ADDRESS, PEER_ADDRESS)
    ports = (port[1], port[0]) if peer else port
    config = root / ("peer.conf" if peer else "speaker.conf")
    static = "" if peer else f'protocol static vol1 {{\n  ipv4;\n  include "{root}/routes.conf";\n}}\n'
    export = (
        "export none;"
        if peer
        else 'export filter { if proto = "vol1" then { if defined(bgp_med) then bgp_med = bgp_med; accept; } '
        "reject; };"
    )
    config.write_text(
        f"router id {local};\nprotocol device {{}}\n{static}"
        f"protocol bgp session {{\n  local {local} port {ports[0]} as {65002 if peer else 65001};\n"
        f"  neighbor {remote} port {ports[1]} as {65001 if peer else 65002};\n"
        "  multihop; strict bind yes; connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
        f"  ipv4 {{ import {'all' if peer else 'none'}; {export} next hop self; }};\n}}\n"
    )
    return config


def routes_of(shown: str) -> dict[str, str]:
    """`show route all` split into each route's lines, by prefix."""
    routes: dict[str, str] = {}
    prefix = ""
    for line in shown.splitlines():
        if line[:1].isdigit():
            prefix = line.split()[0]
        routes[prefix] = routes.get(prefix, "") + line + "\n"
    return routes


def test_bird_carries_a_degraded_routes_attributes_to_its_ebgp_peer(tmp_path: Path) -> None:
    """BIRD takes the dialect's route line of a degraded rule's attributes and, with the export
    filter the README gives, the eBGP peer sees the MED, the communities and the large
    communities (local-pref is iBGP only, never sent over eBGP)."""
    rule = parse_rules(
        "192.0.2.10 = all(b:a) degraded any(b:a) med 200 local-pref 300 community 65000:666 "
        "community 65535:0 large-community 4294967295:1:2\n"
    ).rules[0]
    assert rule.degraded is not None
    attributes: Attributes = rule.degraded.attributes
    with lab(tmp_path) as instance:
        (instance.root / "routes.conf").write_text(
            BIRD2.route_line(ipaddress.ip_network("192.0.2.10/32"), attributes)
            + "\n"
            + BIRD2.route_line(ipaddress.ip_network("192.0.2.11/32"))
            + "\n"
        )
        port = (free_port(SPEAKER_ADDRESS), free_port(PEER_ADDRESS))
        for name, peer in (("speaker", False), ("peer", True)):
            config = bird_config(instance.root, port, peer)
            parsed = subprocess.run(
                [BIRD, "-p", "-c", str(config)], capture_output=True, text=True, check=False
            )
            assert parsed.returncode == 0, parsed.stderr
            instance.spawn(
                name, [BIRD, "-f", "-c", str(config), "-s", str(instance.ctl(name)), "-P", f"{name}.pid"]
            )
            wait_for(f"{name}'s control socket", partial(instance.birdc, name, "show status"), 10)

        def both_routes() -> str | None:
            shown = instance.birdc("peer", "show route all")
            return (
                shown if shown is not None and "192.0.2.10/32" in shown and "192.0.2.11/32" in shown else None
            )

        seen = wait_for("both routes at the peer", both_routes, 30)
        # BIRD 2 prints `BGP.med: 200`, BIRD 3 `bgp_med: 200` (newer-stacks notes, section 4)
        shown = routes_of(seen.replace("BGP.", "bgp_"))
        degraded, plain = shown["192.0.2.10/32"], shown["192.0.2.11/32"]
        assert "bgp_med: 200" in degraded
        assert "(65000,666)" in degraded
        assert "(65535,0)" in degraded
        assert "(4294967295, 1, 2)" in degraded
        assert "bgp_local_pref: 300" not in degraded  # eBGP: the peer's own default, not ours
        assert "bgp_med" not in plain
        assert "bgp_community" not in plain
