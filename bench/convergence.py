"""Benchmark: from HAProxy's state change to the route's withdrawal and return at a BGP peer.

One lab on loopback: real HAProxy 2.6 (one backend, one server checked with `inter 100ms fall 1`,
logging to a ring), a BIRD 2 peer router, and each tool as the speaker side in turn:

    vendor   rhid at the vendor's defaults: poll every 1 s, fall 3, no event stream
    poll1    rhid polling every 1 s, fall 1
    events   rhid with the event wake-up (HAProxy's ring), fall 1
    events3  rhid with the event wake-up and fall 3 (fast polls at 0.1 s finish the count)
    ahc      anycast-healthchecker 0.9.10 (PyPI) at its fastest sensible setting (0.1 s, rise/fail 1),
             with its own BIRD speaker
    exabgp   ExaBGP 4.2 (Debian) with its healthcheck helper at 0.1 s, rise/fall 1, peering directly

Triggers alternate: an admin `disable server`/`enable server`, and a killed/restarted server.
t0 is HAProxy's own timestamp of the change (from its ring), t1 the moment the peer's table
changes (polled over its control socket). Prints a table and writes JSON; asserts nothing.

    python bench/convergence.py [--transitions 200] [--modes vendor,poll1,events,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import BIRD, BIRDC, PEER_ADDRESS, Lab, free_port, lab, wait_for

from rhid.bird import BirdClient
from rhid.haproxy import EventStream
from rhid.rules import parse_rules

RHID_VIP, AHC_VIP, EXABGP_VIP = "192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"
AHC_ADDRESS, EXABGP_ADDRESS = "127.0.0.3", "127.0.0.4"
RESULTS = Path(__file__).parent / "results"
CHECK_SCRIPT = """#!/bin/sh
# exit 0 only if HAProxy's BACKEND row for $2 says UP (the same check for every tool)
printf 'show stat %s 2 -1\\n' "$2" | socat - UNIX-CONNECT:"$1" |
  awk -F, '$2 == "BACKEND" { found = 1; up = ($18 == "UP") } END { exit !(found && up) }'
"""
STAMP = re.compile(r"^<\d+>(\S+) ")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Peer:
    """The upstream BIRD: one BGP session per speaker, read over its control socket."""

    def __init__(self, instance: Lab, ports: dict[str, int]) -> None:
        self.instance = instance
        sessions = [
            ("from_rhid", "127.0.0.1", ports["rhid_speaker"], ports["peer_rhid"], 65001, ""),
            ("from_ahc", AHC_ADDRESS, ports["ahc_speaker"], ports["peer_ahc"], 65003, ""),
            ("from_exabgp", EXABGP_ADDRESS, 179, ports["peer_exabgp"], 65004, "  passive on;\n"),
        ]
        text = f"router id {PEER_ADDRESS};\nprotocol device {{}}\n"
        for name, address, their_port, our_port, asn, extra in sessions:
            text += (
                f"protocol bgp {name} {{\n  local {PEER_ADDRESS} port {our_port} as 65002;\n"
                f"  neighbor {address} port {their_port} as {asn};\n  multihop; strict bind yes;\n{extra}"
                "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
                "  ipv4 { import all; export none; };\n}\n"
            )
        config = instance.root / "peer.conf"
        config.write_text(text)
        instance.spawn(
            "peer", [BIRD, "-f", "-c", str(config), "-s", str(instance.ctl("peer")), "-P", "peer.pid"]
        )
        wait_for("the peer", lambda: instance.birdc("peer", "show status") is not None, 10)
        self.client = BirdClient(str(instance.ctl("peer")), 2.0)

    def wait(self, prefix: str, present: bool, timeout: float = 30.0) -> float:
        """Spin on the peer's table until `prefix` is (not) there; return the wall-clock time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.client.request(f"show route {prefix}")
            if any(code == 1007 for code, _ in reply.lines) == present:
                return time.time()
            time.sleep(0.0002)
        raise AssertionError(f"{prefix} never {'appeared' if present else 'left'} at the peer")

    def established(self, session: str) -> bool:
        return "Established" in (self.instance.birdc("peer", f"show protocols {session}") or "")


class Ring:
    """The bench's own subscription to HAProxy's ring: the exact time of each state change."""

    def __init__(self, instance: Lab) -> None:
        self.stream = EventStream(str(instance.haproxy_socket), "rhid", 5.0)

    def next_change(self, pattern: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.stream.read().decode("utf-8", "replace").split("\n"):
                stamp = STAMP.match(line)
                if stamp and pattern in line:
                    return datetime.datetime.fromisoformat(stamp.group(1)).timestamp()
            time.sleep(0.0005)
        raise AssertionError(f"HAProxy never logged {pattern!r}")


def measure(instance: Lab, peer: Peer, vip: str, transitions: int, rng: random.Random) -> dict[str, Any]:
    """Alternate admin and kill triggers; record (t1 - t0) for each withdrawal and return."""
    ring = Ring(instance)
    samples: dict[str, list[float]] = {"withdraw": [], "announce": []}
    try:
        for index in range(transitions // 2):
            admin = index % 2 == 0  # alternate an operator's action and a real check failure
            steps: list[tuple[str, Callable[[], object], str, bool]] = [
                ("withdraw", (lambda: instance.haproxy("disable server be_app/s1")) if admin
                 else (lambda: instance.stop("web1")), "no server available", False),
                ("announce", (lambda: instance.haproxy("enable server be_app/s1")) if admin
                 else (lambda: instance.start_web("web1")), "Server be_app/s1 is UP", True),
            ]  # fmt: skip
            for kind, act, logged, present in steps:
                time.sleep(rng.uniform(0.2, 1.2))  # a uniform phase against the tools' poll loops
                act()
                t0 = ring.next_change(logged)
                samples[kind].append(peer.wait(vip, present=present) - t0)
    finally:
        ring.stream.close()
    summary: dict[str, Any] = {}
    for kind, values in samples.items():
        summary[kind] = {
            "n": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
        }
    return summary


@dataclass
class Bench:
    """What every mode shares: the lab, the peer, the ports, the check script, the pacing."""

    instance: Lab
    peer: Peer
    ports: dict[str, int]
    check: Path
    transitions: int
    rng: random.Random


def run_rhid(bench: Bench, args: list[str]) -> dict[str, Any]:
    instance, peer, transitions, rng = bench.instance, bench.peer, bench.transitions, bench.rng
    instance.start_rhid(f"{RHID_VIP} = all(b:be_app)\n", *args, name="rhid")
    try:
        peer.wait(RHID_VIP, present=True)
        time.sleep(1.5)
        return measure(instance, peer, RHID_VIP, transitions, rng)
    finally:
        instance.stop("rhid")
        peer.wait(RHID_VIP, present=False)


def ahc_venv() -> Path:
    venv = RESULTS / "venv-ahc"
    if not (venv / "bin" / "anycast-healthchecker").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "anycast-healthchecker==0.9.10"], check=True
        )
    return venv / "bin" / "anycast-healthchecker"


def run_ahc(bench: Bench) -> dict[str, Any]:
    instance, peer, ports, check = bench.instance, bench.peer, bench.ports, bench.check
    binary = ahc_venv()
    root = instance.root / "ahc"
    root.mkdir()
    prefixes = root / "anycast-prefixes.conf"
    prefixes.write_text("define ACAST_PS_ADVERTISE =\n    [\n        10.189.200.255/32\n    ];\n")
    speaker = root / "bird.conf"
    speaker.write_text(
        f'router id {AHC_ADDRESS};\nprotocol device {{}}\ninclude "{prefixes}";\n'
        f"protocol static ahc_vip {{\n  ipv4;\n  route {AHC_VIP} blackhole;\n}}\n"
        f"protocol bgp uplink {{\n  local {AHC_ADDRESS} port {ports['ahc_speaker']} as 65003;\n"
        f"  neighbor {PEER_ADDRESS} port {ports['peer_ahc']} as 65002;\n  multihop; strict bind yes;\n"
        "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
        "  ipv4 { import none; export where net ~ ACAST_PS_ADVERTISE; next hop self; };\n}\n"
    )
    ctl = root / "bird.ctl"
    instance.spawn("ahc_bird", [BIRD, "-f", "-c", str(speaker), "-s", str(ctl), "-P", str(root / "bird.pid")])
    wait_for("the AHC speaker's BGP session", lambda: peer.established("from_ahc"), 30, every=0.2)
    config = root / "ahc.conf"
    config.write_text(
        "[daemon]\n"
        f"pidfile = {root / 'ahc.pid'}\nbird_conf = {prefixes}\nbird_variable = ACAST_PS_ADVERTISE\n"
        f"bird_reconfigure_cmd = {BIRDC} -s {ctl} configure\nbird_keep_changes = false\n"
        f"log_file = {root / 'ahc.log'}\nstderr_file = {root / 'stderr.log'}\n"
        f"stdout_file = {root / 'stdout.log'}\n"
        "loglevel = info\n"
    )
    checks = root / "checks.d"
    checks.mkdir()
    (checks / "be_app.conf").write_text(
        "[be_app]\n"
        f"check_cmd = {check} {instance.haproxy_socket} be_app\ncheck_interval = 0.1\ncheck_timeout = 1\n"
        "check_rise = 1\ncheck_fail = 1\ncheck_disabled = false\non_disabled = withdraw\n"
        f"ip_prefix = {AHC_VIP}\n"
        "ip_check_disabled = true\n"
    )
    instance.spawn("ahc", [str(binary), "-f", str(config), "-d", str(checks)])
    try:
        peer.wait(AHC_VIP, present=True)
        time.sleep(1.5)
        return measure(instance, peer, AHC_VIP, bench.transitions, bench.rng)
    finally:
        instance.stop("ahc")
        instance.stop("ahc_bird")


def run_exabgp(bench: Bench) -> dict[str, Any]:
    instance, peer, ports, check = bench.instance, bench.peer, bench.ports, bench.check
    root = instance.root / "exabgp"
    root.mkdir()
    helper = root / "healthcheck.sh"
    helper.write_text(
        "#!/bin/sh\nexec /usr/bin/python3 -m exabgp healthcheck "
        "--no-syslog --no-ip-setup --withdraw-on-down "
        f"--cmd '{check} {instance.haproxy_socket} be_app' --ip {EXABGP_VIP} "
        f"--next-hop {EXABGP_ADDRESS} --interval 0.1 --fast-interval 0.1 --rise 1 --fall 1\n"
    )
    helper.chmod(0o755)
    config = root / "exabgp.conf"
    config.write_text(
        f"process hc {{\n  run {helper};\n  encoder text;\n}}\n"
        f"neighbor {PEER_ADDRESS} {{\n  router-id {EXABGP_ADDRESS};\n  local-address {EXABGP_ADDRESS};\n"
        f"  local-as 65004;\n  peer-as 65002;\n  connect {ports['peer_exabgp']};\n"
        "  family { ipv4 unicast; }\n  api { processes [ hc ]; }\n}\n"
    )
    env = {**os.environ, "exabgp.daemon.user": "root", "exabgp.daemon.drop": "false",
           "exabgp.api.cli": "false",
           "exabgp.tcp.bind": "", "exabgp.log.destination": "stderr"}  # fmt: skip
    instance.spawn("exabgp", ["/usr/sbin/exabgp", str(config)], env=env)
    try:
        peer.wait(EXABGP_VIP, present=True, timeout=60)
        time.sleep(1.5)
        return measure(instance, peer, EXABGP_VIP, bench.transitions, bench.rng)
    finally:
        instance.stop("exabgp")


def prerequisites() -> None:
    missing = [tool for tool in ("socat", "exabgp") if shutil.which(tool) is None]
    if missing:
        subprocess.run(["/usr/bin/apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip


MODES: dict[str, list[str]] = {
    "vendor": ["--interval", "1", "--fall", "3", "--haproxy-events", "none"],
    "poll1": ["--interval", "1", "--fall", "1", "--haproxy-events", "none"],
    "events": ["--interval", "1", "--fall", "1"],
    "events3": ["--interval", "1", "--fall", "3"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--transitions", type=int, default=200, help="per mode (half withdrawals, half returns)"
    )
    parser.add_argument("--modes", default="vendor,poll1,events,events3,ahc,exabgp")
    parser.add_argument("--json", type=Path, default=RESULTS / "convergence.json")
    parser.add_argument("--workdir", type=Path, help="keep the lab's files here (default: a temp dir)")
    args = parser.parse_args()
    prerequisites()
    RESULTS.mkdir(exist_ok=True)
    rng = random.Random(2026)  # noqa: S311 -- pacing, not secrets
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rhid-conv-") as tmp, lab(args.workdir or Path(tmp)) as instance:
        ports = {name: free_port(address) for name, address in [
            ("rhid_speaker", "127.0.0.1"), ("ahc_speaker", AHC_ADDRESS), ("peer_rhid", PEER_ADDRESS),
            ("peer_ahc", PEER_ADDRESS), ("peer_exabgp", PEER_ADDRESS)]}  # fmt: skip
        instance.ports.update(speaker_bgp=ports["rhid_speaker"], peer_bgp=ports["peer_rhid"])
        instance.start_web("web1")
        instance.start_haproxy({"be_app": ["web1"]}, [], ring=True)
        check = instance.root / "check.sh"
        check.write_text(CHECK_SCRIPT)
        check.chmod(0o755)
        peer = Peer(instance, ports)
        instance.write_speaker_config(parse_rules(f"{RHID_VIP} = all(b:be_app)\n"))
        instance.start_speaker()
        wait_for("rhid's speaker session", lambda: peer.established("from_rhid"), 30, every=0.2)
        bench = Bench(instance, peer, ports, check, args.transitions, rng)
        for mode in args.modes.split(","):
            started = time.monotonic()
            if mode in MODES:
                results[mode] = run_rhid(bench, MODES[mode])
            else:
                results[mode] = {"ahc": run_ahc, "exabgp": run_exabgp}[mode](bench)
            results[mode]["seconds"] = round(time.monotonic() - started, 1)
            print(json.dumps({"mode": mode, **results[mode]}), flush=True)
        peer.client.close()
    base = results.get("events", {}).get("withdraw", {}).get("p50_ms")
    print(f"\n{'mode':<9}{'withdraw p50/p99/max ms':>28}{'return p50/p99/max ms':>28}{'x rhid events':>15}")
    for mode, data in results.items():
        w, a = data["withdraw"], data["announce"]
        ratio = f"{w['p50_ms'] / base:.0f}x" if base else "-"
        print(f"{mode:<9}{w['p50_ms']:>10} {w['p99_ms']:>8} {w['max_ms']:>8}"
              f"{a['p50_ms']:>10} {a['p99_ms']:>8} {a['max_ms']:>8}{ratio:>15}")  # fmt: skip
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
