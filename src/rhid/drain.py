"""Drains: routes an operator takes out of service on purpose, and the file that keeps them. Pure.

A drain is an intent that lasts: `rhid drain` asks the daemon, which writes the drains to
``<state-dir>/drains.json`` (a persistent directory: systemd's ``StateDirectory=rhid``,
``/var/lib/rhid``) before it acts, so a drain outlives a restart, a reload and a reboot. The plan
withdraws a drained route (`rhid.plan.draining`) whatever its health, with the drain's words as its
reason. This module parses and renders that file and the control-socket requests; the daemon does
the I/O.

    request   drain <targets> <reason>     targets: all, or [<table>%]<prefix>[,...]
              undrain <targets>
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rhid.errors import DrainFileError
from rhid.model import Route
from rhid.names import is_bird_symbol

FILE_NAME = "drains.json"
MAX_REASON = 120
_REASON = re.compile(r"[ -~]*\Z")  # printable ASCII: it travels on the control socket and into logs
DEFAULT_TABLE = "vol1"


@dataclass(frozen=True, slots=True)
class Drain:
    """Why a route is drained (`reason`, the operator's words), since when (local ISO time)."""

    reason: str
    since: str


Drains = Mapping[Route, Drain]


@dataclass(frozen=True, slots=True)
class Request:
    """A drain or undrain request: its routes (`None`: every route the rules name) and reason."""

    drain: bool
    targets: tuple[Route, ...] | None
    reason: str = ""


def parse_targets(text: str) -> tuple[Route, ...] | str | None:
    """``all`` (None), or comma-separated ``[<table>%]<prefix>`` (an address is its host route);
    or an error text."""
    if text == "all":
        return None
    routes = []
    for item in text.split(","):
        table, sep, prefix = item.rpartition("%")
        if sep and not is_bird_symbol(table):
            return f"not a table name: {table[:60]!r}"
        try:
            network = ipaddress.ip_network(prefix, strict=True)
        except ValueError:
            return f"not a prefix (host bits must be zero) or address: {prefix[:60]!r}"
        routes.append(Route(table if sep else DEFAULT_TABLE, network))
    return tuple(routes)


def parse_request(command: str, argument: str) -> Request | str:
    """``drain <targets> <reason>`` or ``undrain <targets>``; or an error text."""
    targets_text, _, reason = argument.strip().partition(" ")
    if not targets_text:
        return f"{command}: say which routes (all, or [<table>%]<prefix>[,...])"
    targets = parse_targets(targets_text)
    if isinstance(targets, str):
        return targets
    reason = reason.strip()
    if command == "undrain":
        return Request(False, targets)
    if len(reason) > MAX_REASON or not _REASON.match(reason):
        return f"a drain's reason is printable ASCII of at most {MAX_REASON} characters"
    return Request(True, targets, reason or "drained by rhid drain")


def parse_file(data: bytes, path: str) -> dict[Route, Drain]:
    """The drains file's routes and drains. Raises DrainFileError for anything but the file
    `render_file` writes."""
    try:
        document = json.loads(data.decode("utf-8"))
        entries = document["drains"]
        drains: dict[Route, Drain] = {}
        for entry in entries:
            parsed = parse_targets(str(entry["route"]))
            reason, since = entry["reason"], entry["since"]
            if isinstance(parsed, str) or parsed is None or len(parsed) != 1:
                raise ValueError(f"not a route: {entry['route']!r}")
            if not isinstance(reason, str) or not isinstance(since, str) or not _REASON.match(reason + since):
                raise ValueError("a drain's reason and time are printable ASCII text")
            drains[parsed[0]] = Drain(reason, since)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise DrainFileError(path, str(exc)) from None
    return drains


def render_file(drains: Drains) -> bytes:
    """The drains file: one entry per drained route, sorted (a stable file)."""
    entries = [
        {"route": str(route), "reason": drain.reason, "since": drain.since}
        for route, drain in sorted(drains.items(), key=lambda item: str(item[0]))
    ]
    return (json.dumps({"drains": entries}, indent=1) + "\n").encode()
