"""The whole pipeline without sockets: scripted HAProxy replies and clock ticks in, the exact include
files and BIRD commands out, compared with one readable golden transcript (data/pipeline.golden).

Regenerate the transcript after an intended change with RHID_UPDATE_GOLDEN=1, and read the diff.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from structlog.testing import capture_logs

from rhid import birdwire, routefiles, stats
from rhid.daemon import Daemon
from rhid.errors import HAProxyUnavailableError
from rhid.haproxy import HAProxySide
from rhid.model import Proxy
from rhid.reconcile import BirdSide
from rhid.rules import parse_rules
from rhid.settings import Settings

GOLDEN = Path(__file__).parent / "data" / "pipeline.golden"
RULES = "10.0.0.1 = all(b:be_app)\n10.0.0.2 = any(b:be_app,b:be_b)\n2001:db8::1 = all(b:be_b)\n"
HEADER = "# pxname,svname,status,type,check_status,\n"


def reply(app: str, b: str) -> bytes:
    rows = f"be_app,BACKEND,{app},1,,\nbe_b,BACKEND,{b},1,,\n"
    return f"Name: HAProxy\nPid: 42\n\n{HEADER}{rows}\n".encode()


# (what happens, HAProxy's reply to the poll at that tick: bytes, or None for a dead socket)
SCRIPT: list[tuple[str, bytes | None]] = [
    ("both backends up", reply("UP", "UP")),
    ("be_b down, first poll (fall 2)", reply("UP", "DOWN")),
    ("be_b down, second poll", reply("UP", "DOWN")),
    ("HAProxy answers garbage", b"<html>502 Bad Gateway</html>\n\n"),
    ("HAProxy dead, first poll", None),
    ("HAProxy dead, second poll", None),
    ("HAProxy back, both up", reply("UP", "UP")),
]


class ScriptedHAProxy:
    """A poller whose replies are the script's bytes, parsed by rhid's own parser."""

    def __init__(self) -> None:
        self.master = False
        self.pid: str | None = None
        self.reloaded_from: str | None = None
        self.next: bytes | None = None

    def poll(self, wanted: Collection[Proxy]) -> stats.Snapshot:
        if self.next is None:
            raise HAProxyUnavailableError("haproxy.sock", "connection refused", "refused")
        snapshot = stats.parse_poll(self.next, wanted)
        self.pid = snapshot.pid
        return snapshot


class ScriptedBird:
    """A BIRD that records every command, and on ``configure`` reads rhid's files as BIRD would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = "bird.ctl"
        self.greeting = "BIRD 2.0.12 ready."
        self.connections = 1
        self.commands: list[str] = []
        self.routes: dict[str, list[str]] = {}
        self.configured = 0

    def connect(self) -> str:
        return self.greeting

    def request(self, command: str, timeout: float | None = None) -> birdwire.Reply:
        self.commands.append(command)
        if command == birdwire.CONFIGURE:
            self.configured += 1
            for path in sorted(self.directory.glob("*.conf")):
                channel = routefiles.channel_of(path.name)
                assert channel is not None
                prefixes, _ = routefiles.parse_routes(path.read_text(), channel.family)
                self.routes[channel.protocol] = sorted(map(str, prefixes))
            return birdwire.Reply(3, ((3, "Reconfigured"),))
        if command == birdwire.SHOW_STATUS:
            lines = (
                (1000, "BIRD 2.0.12"),
                (1011, "Last reboot on 1"),
                (1011, f"Last reconfiguration on {self.configured}"),
            )
            return birdwire.Reply(13, (*lines, (13, "Daemon is up and running")))
        words = command.split()  # show route [PREFIX] protocol P
        protocol, only = words[-1], words[2] if len(words) == 5 else None
        routes = [prefix for prefix in self.routes.get(protocol, []) if only in {None, prefix}]
        if only is not None and not routes:
            return birdwire.Reply(8001, ((8001, "Network not found"),))
        listing = tuple((1007, f"{prefix} blackhole [{protocol}]") for prefix in routes)
        return birdwire.Reply(0, (*listing, (0, "")))

    def close(self) -> None:
        pass


def transcript(tmp_path: Path) -> str:
    """Run the script through a Daemon with scripted edges; write down everything that came out."""
    directory = tmp_path / "rhid"
    settings = Settings("rules.cfg", "haproxy.sock", "bird.ctl", directory, interval=1.0, fall=2, rise=1)
    haproxy = ScriptedHAProxy()
    bird = ScriptedBird(directory)
    daemon = Daemon(
        settings,
        parse_rules(RULES),
        haproxy=HAProxySide("haproxy.sock", 1.0, poller=haproxy),
        bird_side=BirdSide(directory, bird),
    )
    out = [f"rules:\n{RULES}"]
    files_before: dict[str, str] = {}
    with capture_logs() as events:
        for tick, (what, data) in enumerate(SCRIPT):
            haproxy.next = data
            seen = len(events)
            daemon.cycle(float(tick))
            out.append(f"t={tick} {what}")
            for path in sorted(directory.glob("*.conf")):
                text = path.read_text().replace(routefiles.HEADER, "")
                if files_before.get(path.name) != text:
                    files_before[path.name] = text
                    shown = ", ".join(line.split()[1] for line in text.splitlines()) or "(empty)"
                    out.append(f"  file {path.name}: {shown}")
            out.extend(f"  bird> {command}" for command in bird.commands)
            bird.commands.clear()
            for event in events[seen:]:
                if event["event"].startswith(("route.", "proxy.", "haproxy.")):
                    grouped = ", ".join(event.get("proxies", []))  # one line for many proxies
                    subject = (
                        event.get("prefix")
                        or event.get("proxy")
                        or grouped
                        or event.get("reason")
                        or event.get("pid")
                    )
                    out.append(f"  log {event['event']} {subject}")
                    if event["event"].startswith("route."):  # each route's transition, and why
                        out.append(f"      {event['was']} -> {event['event'][6:]}: {event['reason']}")
        tick, seen = len(SCRIPT), len(events)
        code = daemon.shut_down(float(tick))
        out.append(f"t={tick} stop (SIGTERM, --on-stop withdraw, --graceful-shutdown 5)")
        while code is None:  # the loop's part: cycles until the graceful shutdown is over
            haproxy.next = reply("UP", "UP")
            daemon.cycle(float(tick))
            out.append(f"t={tick} cycle")
            if daemon.stop_due():
                code = daemon.finish_stop(float(tick))
                out.append(f"  withdrawn: exit {code}")
            show_files(out, directory, bird, files_before)
            tick += 1
        out.extend(
            f"  log {event['event']} {event.get('prefix', '')}".rstrip()
            for event in events[seen:]
            if event["event"].startswith(("route.", "daemon."))
        )
    return "\n".join(out) + "\n"


def show_files(out: list[str], directory: Path, bird: ScriptedBird, before: dict[str, str]) -> None:
    """Each include file that changed (its lines, attributes and all), and the commands BIRD got."""
    for path in sorted(directory.glob("*.conf")):
        lines = path.read_text().replace(routefiles.HEADER, "").splitlines()
        text = " | ".join(line.removeprefix("route ") for line in lines) or "(empty)"
        if before.get(path.name) != text:
            before[path.name] = text
            out.append(f"  file {path.name}: {text}")
    out.extend(f"  bird> {command}" for command in bird.commands)
    bird.commands.clear()


def test_pipeline_transcript_matches_the_golden_file(tmp_path: Path) -> None:
    """HAProxy replies and ticks in; include files, BIRD commands and route events out, exactly."""
    got = transcript(tmp_path)
    if os.environ.get("RHID_UPDATE_GOLDEN"):
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text()
