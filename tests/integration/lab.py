"""A lab of real programs on loopback for integration tests: HAProxy, a BIRD speaker, a BIRD peer.

Everything runs in one temp directory with its own sockets; every process is started here and
stopped by PID in `Lab.close`, even when a test fails. Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rhid.birdconf import bird_snippet, bird_snippets, export_filter
from rhid.dialect import BIRD16
from rhid.gateway import Gateway
from rhid.haproxy import fetch
from rhid.rules import RuleSet, parse_rules

T = TypeVar("T")
# The programs under test: Debian 12's by default; scripts/stacks.sh names other stacks' here.
HAPROXY = os.environ.get("RHID_HAPROXY") or "/usr/sbin/haproxy"
BIRD = os.environ.get("RHID_BIRD") or "/usr/sbin/bird"
BIRDC = os.environ.get("RHID_BIRDC") or "/usr/sbin/birdc"
# The BIRD executable itself when RHID_BIRD is a wrapper: test_bird_names reads its keywords.
BIRD_EXECUTABLE = os.environ.get("RHID_BIRD_EXECUTABLE") or BIRD
# BIRD 1.6 (two daemons) unpacked beside bird2 by scripts/bird16.sh; RHID_BIRD16 names another root.
BIRD16_ROOT = Path(
    os.environ.get("RHID_BIRD16")
    or Path(os.environ.get("RHID_STACKS_CACHE") or "/var/tmp/rhid-stacks") / "bookworm-bird"
)
SPEAKER_ADDRESS = "127.0.0.1"
PEER_ADDRESS = "127.0.0.2"


@dataclass(frozen=True)
class Bird16:
    """BIRD 1.6's programs: one daemon per family and their client."""

    bird: Path
    bird6: Path
    birdc: Path


def bird16_programs() -> Bird16 | None:
    """BIRD 1.6 as scripts/bird16.sh unpacked it, or None when it is not there."""
    sbin = BIRD16_ROOT / "usr" / "sbin"
    found = Bird16(sbin / "bird", sbin / "bird6", sbin / "birdc")
    return found if all(os.access(path, os.X_OK) for path in (found.bird, found.bird6, found.birdc)) else None


# In each speaker's config: BIRD logs to stderr (the lab's log file), where `reconfigurations`
# counts what `show status` cannot tell (its time of the last one moves between two reads).
LOG_RECONFIGURATIONS = "log stderr { info, remote, warning, error, auth, fatal, bug };\n"


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on `address` right now."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.01) -> T:
    """Call `check` until it returns something other than None/False; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@dataclass
class Lab:
    """The processes of one test and the paths they use."""

    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)  # the birdc of each BIRD not Debian's bird2
    bird16: Bird16 | None = None  # set by write_speakers16: the speakers are BIRD 1.6's two daemons

    @property
    def bird_dir(self) -> Path:
        return self.root / "rhid"

    @property
    def haproxy_socket(self) -> Path:
        return self.root / "haproxy.sock"

    def ctl(self, name: str) -> Path:
        return self.root / f"{name}.ctl"

    # ---- processes --------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        if name in self.procs and self.procs[name].poll() is None:
            raise AssertionError(f"{name} is already running")
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **kwargs)
        log.close()
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send `sig` to the process we started under `name` (by PID) and wait for it."""
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        """Stop every process, the last started first; an rhid (`rhid*`, a node's `*-rhid`) by
        SIGKILL: its graceful stop (seconds) is for the tests that ask for it."""
        for name in reversed(list(self.procs)):
            rhid = name.startswith("rhid") or name.endswith("-rhid")
            self.stop(name, signal.SIGKILL if rhid else signal.SIGTERM)

    def reconfigurations(self, name: str) -> int:
        """How many reconfigurations the BIRD started as `name` has logged."""
        return self.log(name).count("Reconfigured")

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- HTTP servers that HAProxy health-checks ------------------------------------------

    def start_web(self, name: str) -> int:
        port = self.ports.setdefault(name, free_port())
        self.spawn(name, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"])
        wait_for(f"{name} to listen", lambda: _listening(port), 10)
        return port

    # ---- HAProxy ------------------------------------------------------------------------------

    def start_haproxy(
        self,
        backends: dict[str, list[str]],
        frontends: list[str],
        master: bool = False,
        checks: dict[str, str] | None = None,
        ring: bool = False,
    ) -> None:
        """Backends map names to web server names (each one a checked server)."""
        config = self.write_haproxy_config(backends, frontends, checks, ring=ring)
        argv = [HAPROXY, "-f", str(config), "-db"]
        if master:
            argv[1:1] = ["-W", "-S", str(self.root / "master.sock")]
        self.spawn("haproxy", argv)
        wait_for("HAProxy's stats socket", self.haproxy_answers, 10)

    def reload_haproxy(
        self,
        backends: dict[str, list[str]],
        frontends: list[str],
        checks: dict[str, str] | None = None,
        ring: bool = False,
    ) -> None:
        """Rewrite the config and reload the master-worker HAProxy (SIGUSR2 to the master we started)."""
        self.write_haproxy_config(backends, frontends, checks, ring=ring)
        self.procs["haproxy"].send_signal(signal.SIGUSR2)

    def write_haproxy_config(
        self,
        backends: dict[str, list[str]],
        frontends: list[str],
        checks: dict[str, str] | None = None,
        *,
        ring: bool = False,
    ) -> Path:
        lines = [
            "global",
            f"    stats socket {self.haproxy_socket} mode 600 level admin",
            f"    stats socket {self.root / 'user.sock'} mode 600 level user",
            "    stats timeout 30s",
        ]
        if ring:  # HAProxy logs to a ring that rhid can stream (with `log global` in defaults)
            lines += [
                "    log ring@rhid local0 notice",  # a dedicated ring: state changes, no traffic
                "ring rhid",
                "    format timed",
                "    size 65536",
            ]
        lines += [
            "defaults",
            "    mode http",
            *(["    log global"] if ring else []),
            "    timeout connect 1s",
            "    timeout client 5s",
            "    timeout server 5s",
        ]
        for index, frontend in enumerate(frontends):
            port = self.ports.setdefault(f"fe{index}", free_port())
            lines += [
                f"frontend {frontend}",
                f"    bind 127.0.0.1:{port}",
                f"    default_backend {next(iter(backends))}",
            ]
        for backend, servers in backends.items():
            lines.append(f"backend {backend}")
            check = (checks or {}).get(backend, "check inter 100ms fall 1 rise 1")
            for number, web in enumerate(servers, start=1):
                port = self.ports.setdefault(web, free_port())  # a web never started is a closed port
                lines.append(f"    server s{number} 127.0.0.1:{port} {check}")
        config = self.root / "haproxy.cfg"
        config.write_text("\n".join(lines) + "\n")
        return config

    def haproxy_answers(self) -> bool:
        """True when HAProxy's admin socket answers `show info`."""
        try:
            return fetch(str(self.haproxy_socket), b"show info\n", 1.0).startswith(b"Name: HAProxy")
        except Exception:
            return False

    def haproxy(self, command: str) -> str:
        """Run an admin command on HAProxy's socket (the test acts as the operator)."""
        reply = fetch(str(self.haproxy_socket), command.encode() + b"\n", 5.0).decode()
        if reply.strip():
            raise AssertionError(f"HAProxy refused {command!r}: {reply!r}")
        return reply

    # ---- BIRD ---------------------------------------------------------------------------------

    def write_speaker_config(self, rules: RuleSet) -> Path:
        """The speaker's bird.conf: rhid's own `bird-config` snippet plus a BGP session to the peer."""
        self.bird_dir.mkdir(exist_ok=True)
        speaker_port = self.ports.setdefault("speaker_bgp", free_port(SPEAKER_ADDRESS))
        peer_port = self.ports.setdefault("peer_bgp", free_port(PEER_ADDRESS))
        v4 = " || ".join(f'proto = "{c.protocol}"' for c in rules.channels if c.family == 4) or "false"
        v6 = " || ".join(f'proto = "{c.protocol}"' for c in rules.channels if c.family == 6) or "false"
        export4, export6 = f"export where {v4};", f"export where {v6};"
        if any(rule.degraded is not None for rule in rules.rules):  # what `rhid bird-config` prints then
            export4 = export_filter([c.protocol for c in rules.channels if c.family == 4])
            export6 = export_filter([c.protocol for c in rules.channels if c.family == 6])
        config = self.root / "speaker.conf"
        config.write_text(
            LOG_RECONFIGURATIONS + f"router id {SPEAKER_ADDRESS};\n"
            "protocol device {}\n" + bird_snippet(rules, str(self.bird_dir)) + "protocol bgp uplink {\n"
            f"  local {SPEAKER_ADDRESS} port {speaker_port} as 65001;\n"
            f"  neighbor {PEER_ADDRESS} port {peer_port} as 65002;\n"
            "  multihop; strict bind yes;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            f"  ipv4 {{ import none; {export4} next hop self; }};\n"
            # an IPv6 route over this IPv4 session needs an IPv6 next hop; "self" would be IPv4
            f"  ipv6 {{ import none; {export6} next hop address 2001:db8:ffff::1; }};\n"
            "}\n"
        )
        return config

    def start_speaker(self) -> None:
        config = self.root / "speaker.conf"
        self.spawn(
            "speaker", [BIRD, "-f", "-c", str(config), "-s", str(self.ctl("speaker")), "-P", "speaker.pid"]
        )
        wait_for("speaker's control socket", lambda: self.birdc("speaker", "show status") is not None, 10)

    def start_peer(self, extra: str = "") -> None:
        """The upstream router; `extra` is appended to its config (more protocols a test needs)."""
        speaker_port = self.ports["speaker_bgp"]
        peer_port = self.ports["peer_bgp"]
        config = self.root / "peer.conf"
        config.write_text(
            f"router id {PEER_ADDRESS};\n"
            "protocol device {}\n"
            "protocol bgp downlink {\n"
            f"  local {PEER_ADDRESS} port {peer_port} as 65002;\n"
            f"  neighbor {SPEAKER_ADDRESS} port {speaker_port} as 65001;\n"
            "  multihop; strict bind yes;\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
            "  ipv4 { import all; export none; };\n"
            "  ipv6 { import all; export none; };\n"
            "}\n" + extra
        )
        self.spawn("peer", [BIRD, "-f", "-c", str(config), "-s", str(self.ctl("peer")), "-P", "peer.pid"])
        wait_for("peer's control socket", lambda: self.birdc("peer", "show status") is not None, 10)

    def birdc(self, name: str, command: str) -> str | None:
        """Ask a BIRD through Debian's own birdc (an independent witness); None if it is not up."""
        result = subprocess.run(
            [self.clients.get(name, BIRDC), "-s", str(self.ctl(name)), *command.split()],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if result.returncode != 0 or "Unable to connect" in result.stdout:
            return None
        return result.stdout

    def wait_answers(self, name: str, timeout: float = 10) -> None:
        """Wait until the BIRD started as `name` answers on its control socket."""
        wait_for(f"{name}'s control socket", lambda: self.birdc(name, "show status") is not None, timeout)

    def wait_established(self, timeout: float = 30) -> None:
        sessions = ("downlink", "downlink6") if self.bird16 is not None else ("downlink",)
        for session in sessions:

            def established(session: str = session) -> bool:
                return "Established" in (self.birdc("peer", f"show protocols {session}") or "")

            wait_for(f"the BGP session {session} to be Established", established, timeout, every=0.1)

    # ---- BIRD 1.6: bird (IPv4) and bird6 (IPv6) as the speakers, each with a session to the peer --

    def write_speakers16(self, rules: RuleSet, gateways: tuple[Gateway, ...] = ()) -> tuple[Path, Path]:
        """bird.conf and bird6.conf of BIRD 1.6's two daemons: `rhid bird-config`'s snippets plus a
        BGP session each to the peer (BIRD 1.6 listens on a port set globally, not per session)."""
        found = bird16_programs()
        if found is None:
            raise AssertionError("BIRD 1.6 is missing: bash scripts/bird16.sh")
        self.bird16 = found
        self.clients.update(speaker=str(found.birdc), speaker6=str(found.birdc))
        self.bird_dir.mkdir(exist_ok=True)
        snippets = bird_snippets(rules, str(self.bird_dir), BIRD16, gateways)
        v4 = " || ".join(f'proto = "{c.table}"' for c in rules.channels if c.family == 4) or "false"
        v6 = " || ".join(f'proto = "{c.table}"' for c in rules.channels if c.family == 6) or "false"
        configs = []
        for name, address, export in (
            ("speaker", SPEAKER_ADDRESS, f"export where {v4}; next hop self;"),
            # the peer drops an IPv6 next hop of ::1: give the routes one of the documentation's
            (
                "speaker6",
                "::1",
                f"export filter {{ if {v6} then {{ bgp_next_hop = 2001:db8:ffff::1; accept; }} reject; }};",
            ),
        ):
            port = self.ports.setdefault(f"{name}_bgp", free_port(address))
            peer = PEER_ADDRESS if name == "speaker" else "::1"
            peer_port = self.ports.setdefault(f"peer_{name}_bgp", free_port(peer))
            config = self.root / f"{name}.conf"
            config.write_text(
                LOG_RECONFIGURATIONS + f"router id {SPEAKER_ADDRESS};\n"
                f"listen bgp address {address} port {port};\n"
                "protocol device {}\n"
                + snippets["bird.conf" if name == "speaker" else "bird6.conf"]
                + "protocol bgp uplink {\n"
                f"  local {address} as 65001;\n"
                f"  neighbor {peer} port {peer_port} as 65002;\n"
                "  multihop;\n"
                "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
                f"  import none; {export}\n"
                "}\n"
            )
            configs.append(config)
        return configs[0], configs[1]

    def start_speaker16(self, name: str) -> None:
        """Start one of BIRD 1.6's daemons: `speaker` (bird) or `speaker6` (bird6)."""
        found = self.bird16
        assert found is not None, "write_speakers16 first"
        binary = found.bird if name == "speaker" else found.bird6
        config = self.root / f"{name}.conf"
        self.spawn(
            name, [str(binary), "-f", "-c", str(config), "-s", str(self.ctl(name)), "-P", f"{name}.pid"]
        )
        wait_for(f"{name}'s control socket", lambda: self.birdc(name, "show status") is not None, 10)

    def start_peer16(self) -> None:
        """The upstream router (BIRD 2): one session to bird over IPv4, one to bird6 over IPv6."""
        sessions = []
        for name, session, local, neighbor in (
            ("speaker", "downlink", PEER_ADDRESS, SPEAKER_ADDRESS),
            ("speaker6", "downlink6", "::1", "::1"),
        ):
            family = "ipv4" if name == "speaker" else "ipv6"
            sessions.append(
                f"protocol bgp {session} {{\n"
                f"  local {local} port {self.ports[f'peer_{name}_bgp']} as 65002;\n"
                f"  neighbor {neighbor} port {self.ports[f'{name}_bgp']} as 65001;\n"
                "  multihop; strict bind yes;\n"
                "  connect delay time 1; connect retry time 1; error wait time 1, 2;\n"
                f"  {family} {{ import all; export none; }};\n"
                "}\n"
            )
        config = self.root / "peer.conf"
        config.write_text(f"router id {PEER_ADDRESS};\nprotocol device {{}}\n" + "".join(sessions))
        self.spawn("peer", [BIRD, "-f", "-c", str(config), "-s", str(self.ctl("peer")), "-P", "peer.pid"])
        wait_for("peer's control socket", lambda: self.birdc("peer", "show status") is not None, 10)

    def peer_routes(self) -> set[str]:
        """The prefixes the upstream router has learned: what the network really sees."""
        output = self.birdc("peer", "show route") or ""
        return set(re.findall(r"^(\S+/\d+)\s", output, flags=re.MULTILINE))

    def wait_peer_routes(self, expected: set[str], timeout: float = 15) -> float:
        """Wait until the peer's table is exactly `expected`; return the seconds it took."""
        start = time.monotonic()
        wait_for(
            f"the peer to have exactly {sorted(expected)}", lambda: self.peer_routes() == expected, timeout
        )
        return time.monotonic() - start

    # ---- rhid -------------------------------------------------------------------------------

    def start_rhid(
        self, rules_text: str, *extra: str, name: str = "rhid", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        rules_path = self.root / "hapee-rhi.cfg"
        rules_path.write_text(rules_text)
        argv = [
            sys.executable, "-m", "rhid", "run", "-c", str(rules_path),
            "--haproxy-socket", str(self.root / self._socket_for(extra)),
            "--bird-socket", str(self.ctl("speaker")), "--bird-dir", str(self.bird_dir),
            "--bird6-socket", str(self.ctl("speaker6")),
            "--state-dir", str(self.root / "state"), "--log-format", "json", *extra,
        ]  # fmt: skip
        argv = [arg for arg in argv if arg not in {"--master", "--user-level"}]
        return self.spawn(name, argv, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    def rhid(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an `rhid` command (status, check ...) as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "rhid", *args], capture_output=True, text=True, timeout=30, check=False
        )

    @staticmethod
    def _socket_for(extra: tuple[str, ...]) -> str:
        if "--master" in extra:
            return "master.sock"
        return "user.sock" if "--user-level" in extra else "haproxy.sock"

    def events(self, name: str = "rhid") -> list[dict[str, Any]]:
        """rhid's structlog events (JSON lines) so far."""
        found = []
        for line in self.log(name).splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: collects what rhid tells systemd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def collect(self) -> list[str]:
        """Every message so far (each may carry several KEY=value lines)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return [text for _, text in self.messages]
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for message in self.collect() for line in message.split("\n")]

    def wait(self, line: str, after: int = 0, timeout: float = 15) -> int:
        """Wait until `line` appears at an index >= `after` of lines(); return that index."""

        def found() -> int | None:
            lines = self.lines()
            return next((i + 1 for i in range(after, len(lines)) if lines[i] == line), None)

        return wait_for(f"{line!r} on NOTIFY_SOCKET", found, timeout) - 1

    def close(self) -> None:
        self.sock.close()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A Lab whose processes are all stopped, by PID, however the test ends."""
    instance = Lab(tmp_path)
    try:
        yield instance
    finally:
        instance.close()


def standard_lab(
    instance: Lab,
    rules_text: str,
    backends: dict[str, list[str]],
    frontends: list[str],
    *,
    master: bool = False,
    checks: dict[str, str] | None = None,
    dead: frozenset[str] = frozenset(),
    ring: bool = False,
) -> RuleSet:
    """Start web servers (but the `dead` ones), HAProxy, the speaker (rhid's snippet) and the peer."""
    for web in sorted({web for servers in backends.values() for web in servers} - dead):
        instance.start_web(web)
    instance.start_haproxy(backends, frontends, master=master, checks=checks, ring=ring)
    rules = parse_rules(rules_text)
    instance.write_speaker_config(rules)
    instance.start_speaker()
    instance.start_peer()
    instance.wait_established()
    return rules


def bird16_lab(
    instance: Lab,
    rules_text: str,
    backends: dict[str, list[str]],
    frontends: list[str],
    gateways: tuple[Gateway, ...] = (),
) -> RuleSet:
    """As `standard_lab`, with BIRD 1.6's bird and bird6 as the speakers."""
    for web in sorted({web for servers in backends.values() for web in servers}):
        instance.start_web(web)
    instance.start_haproxy(backends, frontends)
    rules = parse_rules(rules_text)
    instance.write_speakers16(rules, gateways)
    instance.start_speaker16("speaker")
    instance.start_speaker16("speaker6")
    instance.start_peer16()
    instance.wait_established()
    return rules
