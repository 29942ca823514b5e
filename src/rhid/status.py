"""`rhid status`: what the daemon knows, as a document it serves on its control socket.

The document is built here, purely, from the plan and the edges' reports (`document`), served by
`rhid.control`, fetched by the `rhid status` command (`fetch`) and rendered for people (`render`).
The wire protocol is one request line and one JSON reply, after which the daemon closes the
connection: ``status`` is the overview (`overview`: counts by state, the peers, the problems, and a
sample of the routes that are not plainly announced), ``status routes`` every route
(`document`), ``status <prefix-or-address>`` the routes for that prefix; `rhid probe` asks
``route [<table>%]<prefix>`` and gets only that route's state (`route_answer`); ``guard release``
withdraws what the blast-radius guard holds. The request is parsed strictly: nothing from it
reaches another socket.

A listing of 10,000 routes is megabytes: it is never built in one piece on the daemon's time.
`chunks` yields it as byte strings of `CHUNK_ROUTES` routes each, from the facts of one moment (the
plan is immutable: holding it is a snapshot), and `rhid.control` pulls a few chunks per loop turn
as each client's socket drains; joined, the chunks are exactly ``json.dumps(document(...))``.
"""

from __future__ import annotations

import datetime
import heapq
import ipaddress
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rhid import controlwire, drain, guard, health, names
from rhid.dialect import BIRD2, Dialect
from rhid.errors import StatusUnavailableError
from rhid.model import Network, Proxy, Route, ServerTerm, route_order
from rhid.plan import Decision, Plan, RouteState

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
LISTING_REQUEST = b"status routes"
SAMPLE = 20  # routes not plainly announced that the overview shows one by one
CHUNK_ROUTES = 50  # routes per chunk of a listing: the work the loop does per step of one client


@dataclass(frozen=True, slots=True)
class Listing:
    """The request ``status routes``: every route, with its rule, reason and targets."""


Wanted = Network | Listing | None  # what a status request asks: a prefix, every route, the overview


@dataclass(frozen=True, slots=True)
class RouteQuery:
    """``route [<table>%]<prefix>`` (`rhid probe`): the route a rule names for exactly this prefix,
    in `table` or in any table."""

    prefix: Network
    table: str | None = None


def parse_request(line: bytes) -> Network | Listing | RouteQuery | drain.Request | Release | str | None:
    """A request line: None for the overview, `Listing` for every route, a network to explain one
    route, a route query, a drain or undrain, `Release` (guard release), or an error text."""
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
            "unknown request; send 'status', 'status routes', 'status <prefix>', 'route [<table>%]<prefix>', "
            "'drain <targets> <reason>', 'undrain <targets>' or 'guard release'"
        )
    return _status_target(argument.strip())


def _status_target(argument: str) -> Network | Listing | str | None:
    """``status``'s argument: none (the overview), ``routes`` (every route), or a prefix or address."""
    if not argument:
        return None
    if argument == "routes":
        return Listing()
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
    drained: Collection[Route] = frozenset()  # the routes `rhid drain` took out


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


class _Entries:
    """How one moment's facts turn a route into its status entry (the wall clock read once, each
    distinct instant formatted once)."""

    __slots__ = ("facts", "times")

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.times: dict[float, str] = {}

    def wall(self, moment: float) -> str:
        """A monotonic instant as the document's local time."""
        text = self.times.get(moment)
        if text is None:
            text = self.times[moment] = wall_time(moment, self.facts.now, self.facts.wall_now)
        return text

    def target(self, proxy: Proxy) -> dict[str, Any]:
        """One target's live health and counts."""
        facts = self.facts
        state = facts.states.get(proxy, health.INITIAL)
        return {
            "proxy": str(proxy),
            "health": state.health.value,
            "haproxy_status": state.last_status,
            "since": self.wall(state.since) if state.health is not health.Health.UNKNOWN else None,
            "down_count": state.down_count,
            "up_count": state.up_count,
            "fall": facts.thresholds.fall,
            "rise": facts.thresholds.rise,
        }

    def term(self, server_term: ServerTerm) -> dict[str, Any]:
        """One threshold term's live health and server counts."""
        facts = self.facts
        held = facts.terms.get(server_term, health.INITIAL_TERM)
        state, counts = held.state, held.servers
        return {
            "term": str(server_term),
            "health": state.health.value,
            "status": state.last_status,
            "servers_up": None if counts is None else counts.up,
            "servers_total": None if counts is None else counts.total,
            "sessions": None if counts is None else counts.sessions,
            "since": self.wall(state.since) if state.health is not health.Health.UNKNOWN else None,
            "down_count": state.down_count,
            "up_count": state.up_count,
            "fall": facts.thresholds.fall,
            "rise": facts.thresholds.rise,
        }

    def route(self, route: Route) -> dict[str, Any]:
        """One route: its rule, decision, reason, since when, and each of its targets."""
        facts = self.facts
        rule = facts.rules.by_route.get(route)
        decision = facts.plan.decisions.get(route)
        until = decision.until if decision is not None else None
        return {
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
            "since": self.wall(facts.since.get(route, facts.started)),
            "until": self.wall(until) if until is not None else None,
            "degraded": None
            if rule is None or rule.degraded is None
            else attribute_words(rule.degraded.attributes),
            "targets": [self.target(proxy) for proxy in dict.fromkeys(rule.proxies())] if rule else [],
            "terms": [self.term(server_term) for server_term in dict.fromkeys(rule.server_terms())]
            if rule
            else [],
        }


def _leaving(facts: Facts) -> list[Route]:
    """Routes no rule names any more that are still announced (a graceful shutdown after a reload)."""
    return [r for r, d in facts.plan.decisions.items() if d.announced and r not in facts.rules.by_route]


def listed(facts: Facts, wanted: Network | None) -> list[Route]:
    """The routes a listing shows, in `route_order`: every route of the rules and those leaving, or
    those for the prefix or address `wanted`."""
    every = [*facts.rules.routes, *_leaving(facts)]
    if wanted is not None:
        every = [route for route in every if matches(route.prefix, wanted)]
    return sorted(every, key=route_order)


def _head(facts: Facts, entries: _Entries, leaving: int, bound: int | None = None) -> dict[str, Any]:
    """What every status document begins with: the daemon, its rules, the peers, the counts, the
    guard and the problems (the proxies HAProxy lacks: the first `bound` of them, and one line for
    the rest, when bounded)."""
    missing = target_problems(facts.rules, facts.states, facts.haproxy.names)
    if bound is not None and len(missing) > bound:
        rest = len(missing) - bound
        missing = [
            *missing[:bound],
            f"and {rest} more of the proxies the rules name are missing from HAProxy or vanished "
            "(rhid status --routes lists each)",
        ]
    wall = entries.wall
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
        "withdrawn": max(len(facts.rules.routes) - announced + leaving, 0),
        "guard": {
            "holding": len(held.held),
            "since": wall(held.since),
            "until": wall(held.until),
            "routes": guard.sample(held.held),
            "reasons": list(held.reasons),
        }
        if held.holding
        else None,
        "problems": [
            *facts.notes,
            *guard_problems(held, wall),
            *facts.haproxy.problems,  # each edge's own sentences
            *facts.bird.problems,
            *missing,
        ],
    }


def document(facts: Facts, wanted: Network | None) -> dict[str, Any]:
    """Every route `rhid status routes` lists (or those for the prefix `wanted`), with its reasons,
    after the daemon's head (peers, rules, counts, problems). `routes` comes last, so that `chunks`
    can stream it."""
    entries = _Entries(facts)
    head = _head(facts, entries, len(_leaving(facts)))
    return {**head, "routes": [entries.route(route) for route in listed(facts, wanted)]}


def chunks(facts: Facts, wanted: Network | None, per_chunk: int = CHUNK_ROUTES) -> Iterator[bytes]:
    """`document(facts, wanted)` as JSON, a line, in pieces of `per_chunk` routes: each piece is
    made only when asked for, and the pieces joined are exactly ``json.dumps(document(...))`` and a
    newline."""
    entries = _Entries(facts)
    routes = listed(facts, wanted)
    head = json.dumps(_head(facts, entries, len(_leaving(facts))))
    yield (head[:-1] + ', "routes": [').encode()
    for start in range(0, len(routes), per_chunk):
        text = ", ".join(json.dumps(entries.route(route)) for route in routes[start : start + per_chunk])
        yield (text if start == 0 else ", " + text).encode()
    yield b"]}\n"


def plainly_announced(decision: Decision | None) -> bool:
    """True for a route as it should be when all is well: announced without degraded attributes, on
    a known verdict, with no policy holding it (a drained route is withdrawn)."""
    return (
        decision is not None
        and decision.state is RouteState.ANNOUNCED
        and not decision.held
        and decision.until is None
    )


def overview(facts: Facts, sample: int = SAMPLE) -> dict[str, Any]:
    """What `rhid status` shows by default, bounded whatever the number of routes: the head, the
    routes counted by state, and the first `sample` routes (in `route_order`) that are not plainly
    announced (withdrawn, degraded, held, drained, leaving), with how many more there are."""
    entries = _Entries(facts)
    leaving = _leaving(facts)
    counts = {state.value: 0 for state in RouteState}
    held = drained = 0
    attention: list[Route] = list(leaving)
    decisions = facts.plan.decisions
    for route in facts.rules.routes:
        decision = decisions.get(route)
        if decision is not None:
            counts[decision.state.value] += 1
            held += decision.held
        drained += route in facts.drained
        if not plainly_announced(decision):
            attention.append(route)
    shown = heapq.nsmallest(sample, attention, key=route_order)
    return {
        **_head(facts, entries, len(leaving), sample),
        "counts": {
            **counts,
            "not_planned_yet": len(facts.rules.routes) - sum(counts.values()),
            "held": held,
            "drained": drained,
            "leaving": len(leaving),
            "guarded": len(guard.of(facts.plan.policies.get(guard.NAME)).held),
        },
        "attention": {
            "count": len(attention),
            "routes": [entries.route(route) for route in shown],
            "more": len(attention) - len(shown),
        },
    }


def overview_chunks(facts: Facts) -> Iterator[bytes]:
    """`overview(facts)` as JSON, a line, made when first asked for (tens of milliseconds at 10,000
    routes: a burst of clients gets them made one per loop turn, not all in one)."""
    yield json.dumps(overview(facts)).encode() + b"\n"


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


def fetch(
    path: str, prefix: str | None, timeout: float = 5.0, *, routes: bool = False, idle: float | None = None
) -> dict[str, Any]:
    """Ask the daemon at `path` for its overview, every route (`routes`) or one prefix's routes.
    `idle` bounds each wait for the next piece of a long reply (`timeout` then bounds the whole)."""
    if prefix:
        request = b"status " + prefix.encode("ascii", "replace")[: MAX_REQUEST_BYTES - 8]
    else:
        request = LISTING_REQUEST if routes else b"status"
    reply = controlwire.exchange(path, request + b"\n", timeout, idle=idle)
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
    counts = document.get("counts")
    if counts is not None:
        lines.append(f"         {_counts(counts)}")
    lines.extend(f"PROBLEM: {problem}" for problem in problems(document))
    attention = document.get("attention")
    if attention is not None:
        if attention["count"]:
            lines.append(f"not plainly announced: {attention['count']} route(s)")
        routes = attention["routes"]
    else:
        routes = document["routes"]
    for route in routes:
        lines.extend(_route_lines(route))
    if attention is not None and attention["more"]:
        lines.append(f"  ... and {attention['more']} more: rhid status --routes lists every route")
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    """The overview's counts by state, the nonzero ones, in a fixed order."""
    words = (
        ("announced", "announced"),
        ("degraded", "degraded"),
        ("withdrawn", "withdrawn"),
        ("held", "held (verdict not known yet)"),
        ("guarded", "held by the blast-radius guard"),
        ("drained", "drained"),
        ("leaving", "leaving (no rule any more)"),
        ("not_planned_yet", "not planned yet"),
    )
    shown = [f"{counts[key]} {text}" for key, text in words if counts.get(key)]
    return "by state: " + (", ".join(shown) if shown else "no routes")


def _route_lines(route: dict[str, Any]) -> list[str]:
    """One route's lines: prefix, table, state, since, rule; why; each target and term."""
    state = {"announced": "ANNOUNCED", "degraded": "DEGRADED"}.get(route.get("state", ""), "withdrawn")
    until = f" until {route['until']}" if route.get("until") else ""
    rule = "no rule any more" if route["rule"] is None else f"line {route['rule_line']}: {route['rule']}"
    return [
        f"  {route['prefix']:<20} table {route['table']:<8} {state:<9} since {route['since']}{until}"
        f"  ({rule})",
        f"      why: {route['reason']}",
        *(_target_line(target) for target in route["targets"]),
        *(_term_line(term) for term in route.get("terms", ())),
    ]


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
