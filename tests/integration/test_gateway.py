"""The per-table gateway (`--gateway`) seen where it matters: at a BGP peer, as the route's next hop.

A gateway is a next hop on a network of the speaker's (BIRD leaves a route via anything else
dormant), so this lab puts the speaker BIRD(s) and the peer in two network namespaces of its own,
joined by a veth pair (198.18.21.0/24, 2001:db8:21::/64), with a direct eBGP session per family
exported as `rhid bird-config` says for a table with a gateway: without `next hop self`. HAProxy,
its servers and rhid stay on the host's loopback (rhid talks to BIRD over its UNIX socket). No
packet leaves the namespaces; every process is stopped by PID and the namespaces are removed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from rhid.birdconf import bird_snippets
from rhid.dialect import BIRD2, BIRD16, Dialect
from rhid.gateway import parse
from rhid.rules import parse_rules
from tests.cluster.lab import ip, process_start, remove_namespace
from tests.integration.lab import BIRD, Lab, bird16_programs, lab, wait_for

pytestmark = pytest.mark.integration

PREFIX = "rhgw"
NAMESPACE = re.compile(rf"{PREFIX}-(\d+)\.(\d+)-[a-z0-9]+\Z")
SPEAKER4, PEER4, GATEWAY4 = "198.18.21.1", "198.18.21.2", "198.18.21.99"
SPEAKER6, PEER6, GATEWAY6 = "2001:db8:21::1", "2001:db8:21::2", "2001:db8:21::99"
RULES = """\
10.21.0.1, 2001:db8:21:5::1 = all(b:be_app)
vol2%10.21.0.2 = always
"""
GATEWAYS = (parse(f"vol1={GATEWAY4}"), parse(f"vol1={GATEWAY6}"))
ROUTES = {"10.21.0.1/32", "2001:db8:21:5::1/128", "10.21.0.2/32"}


@dataclass
class Link:
    """The two namespaces: the speaker's and the peer's."""

    speaker: str
    peer: str


def remove_leftovers() -> None:
    """Namespaces an earlier run of this test left (its process is gone): removed."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAMESPACE.match(name)
        if match and process_start(int(match.group(1))) != match.group(2):
            remove_namespace(name)


@pytest.fixture
def link() -> Iterator[Link]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    remove_leftovers()
    tag = f"{PREFIX}-{os.getpid()}.{process_start(os.getpid())}"
    made = Link(f"{tag}-spk", f"{tag}-peer")
    try:
        for namespace in (made.speaker, made.peer):
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip(
            "link",
            "add",
            "rhgw-s",
            "netns",
            made.speaker,
            "type",
            "veth",
            "peer",
            "rhgw-p",
            "netns",
            made.peer,
        )
        for namespace, device, v4, v6 in (
            (made.speaker, "rhgw-s", SPEAKER4, SPEAKER6),
            (made.peer, "rhgw-p", PEER4, PEER6),
        ):
            ip("-n", namespace, "addr", "add", f"{v4}/24", "dev", device)
            ip("-n", namespace, "addr", "add", f"{v6}/64", "dev", device, "nodad")
            ip("-n", namespace, "link", "set", device, "up")
        yield made
    finally:
        for namespace in (made.speaker, made.peer):
            with suppress(subprocess.CalledProcessError):
                remove_namespace(namespace)


def speaker_configs(instance: Lab, dialect: Dialect) -> dict[str, str]:
    """Each speaker daemon's config: rhid's snippet with the gateways, and a direct eBGP session
    exporting as the snippet says (no `next hop self`)."""
    rules = parse_rules(RULES)
    snippets = bird_snippets(rules, str(instance.bird_dir), dialect, GATEWAYS)
    exports = {
        4: " || ".join(f'proto = "{dialect.protocol(c)}"' for c in sorted(rules.channels) if c.family == 4),
        6: " || ".join(f'proto = "{dialect.protocol(c)}"' for c in sorted(rules.channels) if c.family == 6),
    }
    sessions = {
        family: (
            f"protocol bgp up{family} {{\n  local {local} as 65001;\n  neighbor {peer} as 65002;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            + (
                f"  import none; export where {exports[family]};\n"
                if dialect.per_family
                else f"  ipv{family} {{ import none; export where {exports[family]}; }};\n"
            )
            + "}\n"
        )
        for family, local, peer in ((4, SPEAKER4, PEER4), (6, SPEAKER6, PEER6))
    }
    head = f"router id {SPEAKER4};\nprotocol device {{}}\n"
    if dialect.per_family:
        return {
            "speaker": head + snippets["bird.conf"] + sessions[4],
            "speaker6": head + snippets["bird6.conf"] + sessions[6],
        }
    return {"speaker": head + snippets["bird.conf"] + sessions[4] + sessions[6]}


def next_hops(instance: Lab) -> dict[str, str]:
    """Each route the peer has, and the BGP next hop it learned for it (the first address)."""
    output = instance.birdc("peer", "show route all") or ""
    found: dict[str, str] = {}
    prefix = None
    for line in output.splitlines():
        route = re.match(r"(\S+/\d+)\s", line)
        if route:
            prefix = route.group(1)
        hop = re.search(r"(?:BGP\.next_hop|bgp_next_hop): (\S+)", line)  # BIRD 2, BIRD 3
        if hop and prefix is not None:
            found[prefix] = hop.group(1)
    return found


@pytest.mark.parametrize("version", ["1.6", "2"])
def test_the_peer_sees_a_tables_gateway_as_its_routes_next_hop(
    version: str, link: Link, tmp_path: Path
) -> None:
    """--gateway vol1=198.18.21.99: vol1's IPv4 route reaches the peer with that next hop, vol2's
    blackhole with the speaker's own; vol1's IPv6 route with its gateway on BIRD 2, and with the
    speaker's address on BIRD 1.6 (its bird6 announces itself: what rhid bird-config says); the
    gateway's routes follow health like any other."""
    dialect = BIRD16 if version == "1.6" else BIRD2
    programs = bird16_programs()
    if dialect is BIRD16 and programs is None:
        pytest.skip("BIRD 1.6 is missing: bash scripts/bird16.sh")
    with lab(tmp_path) as instance:
        for web in ("web1",):
            instance.start_web(web)
        instance.start_haproxy({"be_app": ["web1"]}, [])
        instance.bird_dir.mkdir()
        netns = ["ip", "netns", "exec"]
        for name, text in speaker_configs(instance, dialect).items():
            config = tmp_path / f"{name}.conf"
            config.write_text(text)
            if dialect is BIRD16:
                assert programs is not None
                binary = str(programs.bird if name == "speaker" else programs.bird6)
                instance.clients[name] = str(programs.birdc)
            else:
                binary = BIRD
            argv = [binary, "-f", "-c", str(config), "-s", str(instance.ctl(name)), "-P", f"{name}.pid"]
            instance.spawn(name, [*netns, link.speaker, *argv])
            instance.wait_answers(name)
        peer = tmp_path / "peer.conf"
        peer.write_text(
            f"router id {PEER4};\nprotocol device {{}}\n"
            f"protocol bgp d4 {{ local {PEER4} as 65002; neighbor {SPEAKER4} as 65001;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            "  ipv4 { import all; export none; }; }\n"
            f"protocol bgp d6 {{ local {PEER6} as 65002; neighbor {SPEAKER6} as 65001;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            "  ipv6 { import all; export none; }; }\n"
        )
        argv = [BIRD, "-f", "-c", str(peer), "-s", str(instance.ctl("peer")), "-P", "peer.pid"]
        instance.spawn("peer", [*netns, link.peer, *argv])
        wait_for("the peer's socket", lambda: instance.birdc("peer", "show status"), 10)

        gateways = [f"--gateway={gateway}" for gateway in GATEWAYS]
        instance.start_rhid(RULES, "--interval", "0.2", "--fall", "1", *gateways)
        wait_for("every route at the peer", lambda: set(next_hops(instance)) == ROUTES, 30, every=0.1)
        hops = next_hops(instance)
        assert hops["10.21.0.1/32"] == GATEWAY4
        assert hops["10.21.0.2/32"] == SPEAKER4, "a blackhole route leads to the speaker"
        assert hops["2001:db8:21:5::1/128"] == (SPEAKER6 if dialect is BIRD16 else GATEWAY6)
        text = (instance.bird_dir / "vol1.ipv4.conf").read_text()
        assert f"route 10.21.0.1/32 via {GATEWAY4};" in text

        instance.haproxy("disable server be_app/s1")
        wait_for("vol1's routes withdrawn", lambda: set(next_hops(instance)) == {"10.21.0.2/32"}, 10)
        instance.haproxy("enable server be_app/s1")
        wait_for("vol1's routes back", lambda: next_hops(instance).get("10.21.0.1/32") == GATEWAY4, 10)
        status = instance.rhid("status", "--bird-dir", str(instance.bird_dir))
        assert f"gateway: vol1={GATEWAY4}" in status.stdout
        assert status.returncode == 0, status.stdout
        assert instance.stop("rhid") == 0
        wait_for("every route withdrawn", lambda: not next_hops(instance), 10)
