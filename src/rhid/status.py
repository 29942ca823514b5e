"""`rhid status`: what the daemon knows, as a document it serves on its control socket.

The document is built here, purely, from the plan and the edges' reports (`document`), served by
`rhid.control`, fetched by the `rhid status` command (`fetch`) and rendered for people (`render`).
The wire protocol is one request line, ``status`` or ``status <prefix-or-address>``, and one JSON
reply, after which the daemon closes the connection. The request is parsed strictly: nothing
from it reaches another socket.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rhid import health, sockets
from rhid.dialect import BIRD2, Dialect
from rhid.errors import StatusUnavailableError
from rhid.model import Network, Proxy, Route, route_order
from rhid.plan import Plan

if TYPE_CHECKING:
    from rhid.haproxy import HAProxyReport
    from rhid.reconcile import BirdReport
    from rhid.rulefile import ReloadResult
from rhid.rules import RuleSet, render_rule
from rhid.stats import in_words

SOCKET_NAME = "rhid.sock"
MAX_REQUEST_BYTES = 256
MAX_REPLY_BYTES = 64 * 1024 * 1024


def parse_request(line: bytes) -> Network | str | None:
    """A request line: None for the whole status, a network to explain one route, or an error text."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return "request is not ASCII"
    command, _, argument = text.partition(" ")
    if command != "status":
        return "unknown request; send 'status' or 'status <prefix>'"
    if not argument:
        return None
    try:
        return ipaddress.ip_network(argument.strip(), strict=False)
    except ValueError:
        return f"not a prefix or address: {argument[:60]!r}"


def matches(prefix: Network, wanted: Network) -> bool:
    """A route is explained when it equals the asked prefix or contains the asked address."""
    if prefix.version != wanted.version:
        return False
    return prefix == wanted or (wanted.prefixlen == wanted.max_prefixlen and wanted.network_address in prefix)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the daemon hands over for one status document: every value it reports, none recomputed."""

    version: str
    pid: int
    started: float  # monotonic
    summary: str
    rules: RuleSet
    rules_loaded: float
    reload_result: ReloadResult
    plan: Plan
    states: Mapping[Proxy, health.ProxyState]  # live health: the plan's is as of its last re-plan
    since: Mapping[Route, float]  # when each route last moved, or was first named by a rule
    thresholds: health.Thresholds
    haproxy: HAProxyReport
    bird: BirdReport
    now: float  # monotonic, and the wall clock at the same moment
    wall_now: float
    notes: tuple[str, ...] = ()  # the daemon's own problems (the rule file on disk, its settings)
    dialect: Dialect = BIRD2  # the BIRD spoken to: its protocol names


def wall_time(moment: float, now: float, wall_now: float) -> str:
    """A monotonic instant as local ISO time for people, given one moment on both clocks."""
    stamp = wall_now - (now - moment)
    return datetime.datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="seconds")


def summary(announced: int, routes: int, haproxy: str, bird: BirdReport, reload_result: ReloadResult) -> str:
    """The one-line STATUS= text systemd shows."""
    sync = "" if bird.in_sync else ", not in sync"
    withdrawn = max(routes - announced, 0)
    text = f"{announced} announced, {withdrawn} withdrawn; HAProxy {haproxy}; BIRD {bird.words}{sync}"
    if reload_result.failed:
        text += "; reload failed, old rules kept"
    return text


def document(facts: Facts, wanted: Network | None) -> dict[str, Any]:
    """Everything `rhid status` shows: peers, rules, and every route with its reasons."""

    def wall(moment: float) -> str:
        return wall_time(moment, facts.now, facts.wall_now)

    def target(proxy: Proxy) -> dict[str, Any]:
        state = facts.states.get(proxy, health.INITIAL)
        return {
            "proxy": str(proxy),
            "health": state.health.value,
            "haproxy_status": state.last_status,
            "since": wall(state.since) if state.health is not health.Health.UNKNOWN else None,
            "down_count": state.down_count,
            "up_count": state.up_count,
            "fall": facts.thresholds.fall,
            "rise": facts.thresholds.rise,
        }

    routes = []
    for route in sorted(facts.rules.routes, key=route_order):
        if wanted is not None and not matches(route.prefix, wanted):
            continue
        rule = facts.rules.by_route[route]
        decision = facts.plan.decisions.get(route)
        routes.append(
            {
                "prefix": str(route.prefix),
                "table": route.table,
                "protocol": facts.dialect.protocol(route.channel),
                "rule_line": rule.line,
                "rule": render_rule(rule),
                "announced": decision is not None and decision.announced,
                "held": decision is not None and decision.held,
                "reason": facts.plan.reason(route, facts.states)
                if decision is not None
                else "not planned yet",
                "since": wall(facts.since.get(route, facts.started)),
                "targets": [target(proxy) for proxy in rule.condition.operands],
            }
        )
    announced = facts.plan.announced
    return {
        "version": facts.version,
        "pid": facts.pid,
        "started": wall(facts.started),
        "status": facts.summary,
        "rules": {
            "path": facts.rules.path,
            "count": len(facts.rules.rules),
            "loaded": wall(facts.rules_loaded),
            "reload": str(facts.reload_result),
        },
        "haproxy": facts.haproxy.document(),
        "bird": facts.bird.document(),
        "announced": announced,
        "withdrawn": max(len(facts.rules.routes) - announced, 0),
        "routes": routes,
        "problems": [
            *facts.notes,
            *facts.haproxy.problems,  # each edge's own sentences
            *facts.bird.problems,
            *target_problems(facts.rules, facts.states),
        ],
    }


def target_problems(rules: RuleSet, states: Mapping[Proxy, health.ProxyState]) -> list[str]:
    """Proxies the rules name that HAProxy does not have: never seen, or vanished since."""
    lines: dict[Proxy, list[int]] = {}
    for rule in rules.rules:
        for proxy in rule.condition.operands:
            lines.setdefault(proxy, []).append(rule.line)
    found = []
    for proxy, at in sorted(lines.items(), key=lambda item: item[1][0]):
        state = states.get(proxy, health.INITIAL)
        where = (
            f"line{'s' if len(at) > 1 else ''} {', '.join(map(str, at[:5]))}{' ...' if len(at) > 5 else ''}"
        )
        if state.vanished:
            found.append(
                f"{proxy} ({where}) vanished from HAProxy (renamed or removed by a reload?); "
                f"it keeps its last health only for a while: fix the rule or HAProxy's config"
            )
        elif state.never_seen:
            found.append(f"{proxy} ({where}): HAProxy has no such proxy; it counts as down")
    return found


def fetch(path: str, prefix: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the daemon at `path` for its status (or one route's)."""
    deadline = time.monotonic() + timeout
    sock = sockets.connect(path, deadline, StatusUnavailableError, "rhid")
    chunks: list[bytes] = []
    size = 0
    try:
        sock.sendall(b"status" + (b" " + prefix.encode("ascii", "replace") if prefix else b"") + b"\n")
        sock.shutdown(socket.SHUT_WR)
        while chunk := sockets.receive(sock, deadline, 65536):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise StatusUnavailableError(path, "reply too large")
            chunks.append(chunk)
    except TimeoutError:
        raise StatusUnavailableError(path, "the daemon did not answer in time") from None
    except OSError as exc:  # reset or refused mid-exchange (too many clients at once, a dying daemon)
        raise StatusUnavailableError(path, f"the connection broke: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return parse_reply(path, b"".join(chunks))


def parse_reply(path: str, data: bytes) -> dict[str, Any]:
    """The daemon's JSON reply; an empty, truncated or foreign one means no answer."""
    if not data:
        raise StatusUnavailableError(path, "the daemon closed the connection without an answer")
    try:
        document = json.loads(data)
    except ValueError:
        raise StatusUnavailableError(
            path, f"the reply is not a status document ({len(data)} bytes)"
        ) from None
    if not isinstance(document, dict) or not ("error" in document or "problems" in document):
        raise StatusUnavailableError(path, "the reply is not a status document (another program?)")
    return document


def _target_line(target: dict[str, Any]) -> str:
    return (
        f"      {target['proxy']:<24} {target['health']:<8} {in_words(target['haproxy_status'])}; "
        f"down {target['down_count']}/{target['fall']}, up {target['up_count']}/{target['rise']}"
    )


def render(document: dict[str, Any]) -> str:
    """The status document in operator words."""
    if "error" in document:
        return f"rhid: {document['error']}"
    haproxy, bird, rules = document["haproxy"], document["bird"], document["rules"]
    lines = [
        f"rhid {document['version']} (pid {document['pid']}), up since {document['started']}",
        f"rules:   {rules['path']}: {rules['count']} rules, loaded {rules['loaded']}",
        f"         last reload: {rules['reload']}",
        f"haproxy: {haproxy['state']} ({haproxy['socket']})" + _error(haproxy),
        *(
            [f"bird:    {_bird_state(bird)} ({bird['socket']})" + _error(bird)]
            if "daemons" not in bird
            else [
                f"{daemon['name'] + ':':<8} {_bird_state(daemon)} ({daemon['socket']})" + _error(daemon)
                for daemon in bird["daemons"]
            ]
        ),
        *(f"gateway: {gateway}" for gateway in bird.get("gateways", ())),
    ]
    lines.append(f"routes:  {document['announced']} announced, {document['withdrawn']} withdrawn")
    lines.extend(f"PROBLEM: {problem}" for problem in problems(document))
    for route in document["routes"]:
        state = "ANNOUNCED" if route["announced"] else "withdrawn"
        lines.append(
            f"  {route['prefix']:<20} table {route['table']:<8} {state:<9} since {route['since']}"
            f"  (line {route['rule_line']}: {route['rule']})"
        )
        lines.append(f"      why: {route['reason']}")
        lines.extend(_target_line(target) for target in route["targets"])
    return "\n".join(lines)


def _bird_state(bird: dict[str, Any]) -> str:
    if bird["state"] != "reachable":
        return f"{bird['state']}: rhid's files are current, BIRD reads them when it is back"
    return "reachable, in sync" if bird["in_sync"] else "reachable, NOT in sync"


def problems(document: dict[str, Any]) -> list[str]:
    """What an operator should be paged for (`rhid status` exits 4): the document's own list."""
    found: list[str] = document["problems"]
    return found


def _error(peer: dict[str, Any]) -> str:
    return f"\n         last error: {peer['last_error']}" if peer.get("last_error") else ""
