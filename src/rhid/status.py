"""`rhid status`: what the daemon knows, as a document it serves on its control socket.

The document is built here, purely, from the plan and the edges' reports (`document`), served by
`rhid.control`, fetched by the `rhid status` command (`fetch`) and rendered for people (`render`).
The wire protocol is one request line, ``status`` or ``status <prefix-or-address>``, and one JSON
reply, after which the daemon closes the connection; `rhid probe` asks ``route [<table>%]<prefix>``
and gets only that route's state (`route_answer`); ``guard release`` withdraws what the
blast-radius guard holds. The request is parsed strictly: nothing from it reaches another socket.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rhid import controlwire, drain, guard, health, names
from rhid.dialect import BIRD2, Dialect
from rhid.errors import StatusUnavailableError
from rhid.model import Network, Proxy, Route, ServerTerm, route_order
from rhid.plan import Plan

if TYPE_CHECKING:
    from rhid.haproxy import HAProxyReport
    from rhid.reconcile import BirdReport
    from rhid.rulefile import ReloadResult
from rhid.rules import RuleSet, attribute_words, render_rule
from rhid.stats import in_words

SOCKET_NAME = controlwire.SOCKET_NAME
MAX_REQUEST_BYTES = controlwire.MAX_REQUEST_BYTES


@dataclass(frozen=True, slots=True)
class Release:
    """The request ``guard release``: what the blast-radius guard holds is withdrawn now."""


RELEASE_REQUEST = b"guard release"


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """``route [<table>%]<prefix>`` (`rhid probe`): the route a rule names for exactly this prefix,
    in `table` or in any table."""

    prefix: Network
    table: str | None = None


def parse_request(line: bytes) -> Network | RouteQuery | drain.Request | Release | str | None:
    """A request line: None for the whole status, a network to explain one route, a route query,
    a drain or undrain, `Release` (guard release), or an error text."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return "request is not ASCII"
    if text == RELEASE_REQUEST.decode():
        return Release()
    command, _, argument = text.partition(" ")
    if command == "route":
        return parse_route_query(argument.strip())
    if command in {"drain", "undrain"}:
        return drain.parse_request(command, argument)
    if command != "status":
        return (
            "unknown request; send 'status', 'status <prefix>', 'route [<table>%]<prefix>', "
            "'drain <targets> <reason>', 'undrain <targets>' or 'guard release'"
        )
    return _status_target(argument.strip())


def _status_target(argument: str) -> Network | str | None:
    """``status``'s argument: none (the whole status), or a prefix or address."""
    if not argument:
        return None
    try:
        return ipaddress.ip_network(argument, strict=False)
    except ValueError:
        return f"not a prefix or address: {argument[:60]!r}"


def parse_route_query(text: str) -> RouteQuery | str:
    """``[<table>%]<prefix>``: a BIRD symbol, and a prefix without host bits (an address is its host
    route); or an error text."""
    table, sep, prefix = text.rpartition("%")
    if sep and not names.is_bird_symbol(table):
        return f"not a table name: {table[:60]!r}"
    try:
        return RouteQuery(ipaddress.ip_network(prefix, strict=True), table if sep else None)
    except ValueError:
        return f"not a prefix (host bits must be zero) or address: {prefix[:60]!r}"


def route_answer(
    rules: RuleSet,
    plan: Plan,
    states: Mapping[Proxy, health.ProxyState],
    query: RouteQuery,
    terms: Mapping[ServerTerm, health.TermState] | None = None,
) -> dict[str, Any]:
    """What `rhid probe` reads: each route a rule names for the asked prefix (in the asked table, or
    in every table), with its decision in the plan. A lookup per table, whatever the number of rules."""
    tables = [query.table] if query.table is not None else sorted({c.table for c in rules.channels})
    routes = []
    for table in tables:
        route = Route(table, query.prefix)
        rule = rules.by_route.get(route)
        if rule is None:
            continue
        decision = plan.decisions.get(route)
        routes.append(
            {
                "route": str(route),
                "rule_line": rule.line,
                "state": decision.state.value if decision is not None else "not planned yet",
                "announced": decision.announced if decision is not None else None,
                "reason": plan.reason(route, states, terms) if decision is not None else "not planned yet",
            }
        )
    return {"prefix": str(query.prefix), "table": query.table, "routes": routes}


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
    terms: Mapping[ServerTerm, health.TermState] = field(default_factory=dict)  # threshold terms' health
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

    def term(server_term: ServerTerm) -> dict[str, Any]:
        held = facts.terms.get(server_term, health.INITIAL_TERM)
        state, counts = held.state, held.servers
        return {
            "term": str(server_term),
            "health": state.health.value,
            "status": state.last_status,
            "servers_up": None if counts is None else counts.up,
            "servers_total": None if counts is None else counts.total,
            "sessions": None if counts is None else counts.sessions,
            "since": wall(state.since) if state.health is not health.Health.UNKNOWN else None,
            "down_count": state.down_count,
            "up_count": state.up_count,
            "fall": facts.thresholds.fall,
            "rise": facts.thresholds.rise,
        }

    routes = []
    # every route of the rules, and those no rule names any more that are still announced (a
    # graceful shutdown after a reload)
    leaving = [r for r, d in facts.plan.decisions.items() if d.announced and r not in facts.rules.by_route]
    for route in sorted([*facts.rules.routes, *leaving], key=route_order):
        if wanted is not None and not matches(route.prefix, wanted):
            continue
        rule = facts.rules.by_route.get(route)
        decision = facts.plan.decisions.get(route)
        until = decision.until if decision is not None else None
        routes.append(
            {
                "prefix": str(route.prefix),
                "table": route.table,
                "protocol": facts.dialect.protocol(route.channel),
                "rule_line": rule.line if rule is not None else None,
                "rule": render_rule(rule) if rule is not None else None,
                "announced": decision is not None and decision.announced,
                "state": decision.state.value if decision is not None else "not planned yet",
                "held": decision is not None and decision.held,
                "reason": facts.plan.reason(route, facts.states, facts.terms)
                if decision is not None
                else "not planned yet",
                "since": wall(facts.since.get(route, facts.started)),
                "until": wall(until) if until is not None else None,
                "degraded": None
                if rule is None or rule.degraded is None
                else attribute_words(rule.degraded.attributes),
                "targets": [target(proxy) for proxy in dict.fromkeys(rule.proxies())] if rule else [],
                "terms": [term(server_term) for server_term in dict.fromkeys(rule.server_terms())]
                if rule
                else [],
            }
        )
    held = guard.of(facts.plan.policies.get(guard.NAME))
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
        "withdrawn": max(len(facts.rules.routes) - announced + len(leaving), 0),
        "guard": {
            "holding": len(held.held),
            "since": wall(held.since),
            "until": wall(held.until),
            "routes": guard.sample(held.held),
            "reasons": list(held.reasons),
        }
        if held.holding
        else None,
        "routes": routes,
        "problems": [
            *facts.notes,
            *guard_problems(held, wall),
            *facts.haproxy.problems,  # each edge's own sentences
            *facts.bird.problems,
            *target_problems(facts.rules, facts.states, facts.haproxy.names),
        ],
    }


def guard_problems(held: guard.Guard, wall: Callable[[float], str]) -> list[str]:
    """The blast-radius guard's hold, in operator words (a page: health says the node should not
    serve most of its routes, and only the guard keeps them)."""
    if not held.holding:
        return []
    shown = ", ".join(guard.sample(held.held)) + (" ..." if len(held.held) > guard.SAMPLE else "")
    why = "; ".join(held.reasons)
    return [
        f"the blast-radius guard holds {len(held.held)} route(s) announced that health would withdraw "
        f"({shown}) since {wall(held.since)}: {why}; they are withdrawn at {wall(held.until)} unless "
        "health returns: check the shared cause (every route at once), or run `rhid guard release` "
        "to withdraw them now"
    ]


def target_problems(
    rules: RuleSet, states: Mapping[Proxy, health.ProxyState], advice: Mapping[str, str] | None = None
) -> list[str]:
    """Proxies the rules name that HAProxy does not have: never seen, or vanished since; each with
    the closest name HAProxy has, where the HAProxy side found one (`advice`: by proxy, as text)."""
    found = []
    for proxy, at in sorted(rules.lines_of.items(), key=lambda item: item[1][0]):
        state = states.get(proxy, health.INITIAL)
        where = (
            f"line{'s' if len(at) > 1 else ''} {', '.join(map(str, at[:5]))}{' ...' if len(at) > 5 else ''}"
        )
        hint = f"; {advice[str(proxy)]}" if advice and str(proxy) in advice else ""
        if state.vanished:
            found.append(
                f"{proxy} ({where}) vanished from HAProxy (renamed or removed by a reload?); "
                f"it keeps its last health only for a while: fix the rule or HAProxy's config{hint}"
            )
        elif state.never_seen:
            found.append(f"{proxy} ({where}): HAProxy has no such proxy; it counts as down{hint}")
    return found


def ask(path: str, request: bytes, timeout: float = 5.0) -> dict[str, Any]:
    """Send one request line (a drain, say) to the daemon at `path`; its JSON answer."""
    data = controlwire.exchange(path, request, timeout)
    if isinstance(data, controlwire.NoAnswer):
        raise StatusUnavailableError(data.path, data.reason)
    try:
        answer = json.loads(data)
    except ValueError:
        raise StatusUnavailableError(path, "the daemon's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise StatusUnavailableError(path, "the daemon's answer is not a JSON object")
    return answer


def fetch(path: str, prefix: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """Ask the daemon at `path` for its status (or one route's)."""
    asked = b" " + prefix.encode("ascii", "replace")[: MAX_REQUEST_BYTES - 8] if prefix else b""
    reply = controlwire.exchange(path, b"status" + asked + b"\n", timeout)
    if isinstance(reply, controlwire.NoAnswer):
        raise StatusUnavailableError(reply.path, reply.reason)
    return parse_reply(path, reply)


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


def _term_line(term: dict[str, Any]) -> str:
    total = term["servers_total"]
    if total is None:
        seen = in_words(term["status"])
    else:
        share = f" ({term['servers_up'] * 100 // total} %)" if total else ""
        seen = f"{term['servers_up']} of {total} servers up{share}"
    return (
        f"      {term['term']:<24} {term['health']:<8} {seen}; "
        f"down {term['down_count']}/{term['fall']}, up {term['up_count']}/{term['rise']}"
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
        state = {"announced": "ANNOUNCED", "degraded": "DEGRADED"}.get(route.get("state", ""), "withdrawn")
        until = f" until {route['until']}" if route.get("until") else ""
        rule = "no rule any more" if route["rule"] is None else f"line {route['rule_line']}: {route['rule']}"
        lines.append(
            f"  {route['prefix']:<20} table {route['table']:<8} {state:<9} since {route['since']}{until}"
            f"  ({rule})"
        )
        lines.append(f"      why: {route['reason']}")
        lines.extend(_target_line(target) for target in route["targets"])
        lines.extend(_term_line(term) for term in route.get("terms", ()))
    return "\n".join(lines)


def _bird_state(bird: dict[str, Any]) -> str:
    if bird.get("unused"):
        return "not used: no rule has a route of its family"
    if bird["state"] != "reachable":
        return f"{bird['state']}: rhid's files are current, BIRD reads them when it is back"
    return "reachable, in sync" if bird["in_sync"] else "reachable, NOT in sync"


def problems(document: dict[str, Any]) -> list[str]:
    """What an operator should be paged for (`rhid status` exits 4): the document's own list."""
    found: list[str] = document["problems"]
    return found


def _error(peer: dict[str, Any]) -> str:
    return f"\n         last error: {peer['last_error']}" if peer.get("last_error") else ""
