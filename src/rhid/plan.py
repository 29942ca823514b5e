"""The decision, as a value: what every route should be, why, since when, and when to look again. Pure.

    plan = decide(previous, rules, states, intents, now)

is rhid's one answer to "what should each route be?". Everything that reports or acts reads that
value and never re-derives a verdict: the BIRD side writes `plan.files()`; the loop logs
`plan.transitions` (computed here, once, by diffing the previous plan) with `plan.reason(route)`;
`rhid status` shows `plan.decisions` and `plan.since`; a stop is the `stopping` intent, which the
policy chain turns into a plan with every route withdrawn.

The rules' verdicts go through a chain of policies (`Policy`): small pure functions of
(decisions, their own state, the intents, now), each returning a `Step`: new decisions, its new
state, the lines to log and the earliest moment it needs to look again (the shape of structlog's
processor chain). Each also sees the previous plan's decisions (`before`: what BIRD is told now)
and the facts the plan is made from (`facts`: the proxies' and thresholds' health, to explain a
verdict). `draining` and `stopping` come first; the blast-radius guard (`rhid.guard`), flap
damping (`rhid.damping`) and graceful shutdown (`rhid.shutdown`) are modules of their own that the
daemon adds to the chain, in that order. A withdrawal the operator or the service asked for (a
drain, a stop, a rule removed by a reload) is `planned`; one the rules' verdict on health made is
not. The plan carries each policy's state
and `wake_at`, the soonest of those moments: the loop re-plans when a proxy's health moved, the
rules or intents changed, or `now >= plan.wake_at`, so that time alone can end a hold. Hysteresis
runs before (in `rhid.health`), on each proxy.

A rule's verdict is three-valued (`rhid.rules.Condition.verdict`): announce, withdraw, or not known
yet. A route whose verdict is not known yet is *held*: it stays as the previous plan had it (at
start: as rhid's files had it).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rhid import health
from rhid.drain import Drains
from rhid.model import (
    PLAIN,
    Attributes,
    Channel,
    LogLine,
    Network,
    Proxy,
    Route,
    Routes,
    ServerTerm,
    route_order,
)
from rhid.rules import Facts, Fate, Outcome, Rule, RuleSet, evaluate

MORE = "routes in this change, not listed one by one"
ROUTE_LINES = 100  # route.announced/withdrawn lines one plan logs one by one; the rest as one line


class RouteState(enum.Enum):
    """What rhid's files say about a route."""

    ANNOUNCED = "announced"
    DEGRADED = "degraded"  # announced, with the rule's degraded attributes (less preferred)
    WITHDRAWN = "withdrawn"


_STATE_OF = {
    Fate.ANNOUNCED: RouteState.ANNOUNCED,
    Fate.DEGRADED: RouteState.DEGRADED,
    Fate.WITHDRAWN: RouteState.WITHDRAWN,
}
_FATE_OF = {state: fate for fate, state in _STATE_OF.items()}


@dataclass(frozen=True, slots=True)
class Decision:
    """One route's fate: its state, whether it is held as it was, the rule behind it, and a note that
    overrides the rule's explanation (a stop, say)."""

    state: RouteState
    rule: Rule | None
    held: bool = False  # the verdict is not known yet: kept as the previous plan had it
    note: str | None = None
    attributes: Attributes = PLAIN  # what an announced route carries (a degraded one's MED, ...)
    # withdrawn by the operator's or the service's choice (a stop, a rule removed by a reload), not
    # because the node cannot serve: graceful shutdown applies to it, damping and the guard do not
    planned: bool = False
    until: float | None = None  # when a policy expects to change this decision (a hold's end, ...)

    @property
    def announced(self) -> bool:
        """True when the route is to be announced (plainly or degraded)."""
        return self.state is not RouteState.WITHDRAWN


@dataclass(frozen=True, slots=True)
class Transition:
    """A route whose state differs from the previous plan's (a route the previous plan did not
    have was withdrawn)."""

    route: Route
    before: RouteState
    after: RouteState

    @property
    def event(self) -> str:
        """The log event: ``route.announced``, ``route.degraded`` or ``route.withdrawn``."""
        if self.after is RouteState.ANNOUNCED:
            return "route.announced"
        return "route.degraded" if self.after is RouteState.DEGRADED else "route.withdrawn"


@dataclass(frozen=True, slots=True)
class Intents:
    """What the operator or the service asks of the plan besides the rules, and what the edges know
    that a policy needs: `stopping` (the note of a stop that withdraws every route, or None);
    `drains` (routes taken out on purpose); `immediately` (a second stop signal: no graceful
    shutdown); `guard_releases` (how many times `rhid guard release` was asked: a new one releases
    what the guard holds); `haproxy_answers` (HAProxy's last poll was answered and readable: only
    then may the guard hold withdrawals, since a dead HAProxy means the node cannot serve)."""

    stopping: str | None = None
    drains: Drains = field(default_factory=dict)
    immediately: bool = False
    guard_releases: int = 0
    haproxy_answers: bool = False


NO_INTENTS = Intents()
Decisions = Mapping[Route, Decision]


@dataclass(frozen=True, slots=True)
class Step:
    """What one policy made of the decisions: the new decisions, its new state, the lines to log,
    and the earliest moment it needs to run again (math.inf: only when something else changes)."""

    decisions: Decisions
    state: object = None
    lines: tuple[LogLine, ...] = ()
    wake_at: float = math.inf


class Policy(Protocol):
    """One link of the chain: a pure function of the decisions so far, its own state from the
    previous plan (None at first), the intents and `now`; `before` is the previous plan's decisions
    (a route it lacks was withdrawn), `facts` the health this plan is made from."""

    __name__: str

    def __call__(
        self,
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
    ) -> Step: ...


def stopping(
    decisions: Decisions,
    state: object,
    intents: Intents,
    now: float,
    *,
    before: Decisions,
    facts: Facts,
) -> Step:
    """A stop that withdraws (`--on-stop withdraw`): every route withdrawn. The withdrawal of a
    route the rules would announce (or hold announced) is planned, for the stop's note; a route
    health withdraws stays as health says, for health's reason (graceful shutdown keeps only the
    former a while)."""
    del state, now, before, facts  # no state, no timing: the stop's own policy withdraws at once
    if intents.stopping is None:
        return Step(decisions)
    note = intents.stopping
    return Step(
        {
            route: Decision(RouteState.WITHDRAWN, d.rule, note=note, planned=True) if d.announced else d
            for route, d in decisions.items()
        }
    )


def draining(
    decisions: Decisions,
    state: object,
    intents: Intents,
    now: float,
    *,
    before: Decisions,
    facts: Facts,
) -> Step:
    """Drained routes (`rhid drain`) are withdrawn whatever their health, for the drain's reason; the
    withdrawal of a route the rules would announce is planned (graceful shutdown applies)."""
    del state, now, before, facts  # a drain holds until `rhid undrain`: no state, no timing
    if not intents.drains:
        return Step(decisions)
    drained = dict(decisions)
    for route, drain in intents.drains.items():
        decision = decisions.get(route)
        if decision is not None:
            note = f"drained since {drain.since}: {drain.reason!r}"
            drained[route] = Decision(
                RouteState.WITHDRAWN, decision.rule, note=note, planned=decision.announced
            )
    return Step(drained)


CHAIN: tuple[Policy, ...] = (draining, stopping)


@dataclass(frozen=True, slots=True)
class Plan:
    """Every route's decision, the channels whose files rhid owns, the health it was made from,
    each route's `since` (when its state last changed, or when a rule first named it), the
    transitions against the previous plan, the policies' states and `wake_at`."""

    decisions: Mapping[Route, Decision]
    channels: frozenset[Channel]
    states: Mapping[Proxy, health.ProxyState] = field(default_factory=dict, repr=False)
    since: Mapping[Route, float] = field(default_factory=dict, repr=False)
    terms: Mapping[ServerTerm, health.TermState] = field(default_factory=dict, repr=False)
    transitions: tuple[Transition, ...] = ()
    policies: Mapping[str, object] = field(default_factory=dict, repr=False)
    wake_at: float = math.inf
    lines: tuple[LogLine, ...] = ()  # what the policies asked to log when this plan was made

    def files(self) -> dict[Channel, Routes]:
        """What each include file should hold: every owned channel, with its announced prefixes
        and what each carries."""
        files: dict[Channel, Routes] = {channel: {} for channel in self.channels}
        for route, decision in self.decisions.items():
            if decision.announced:
                files[route.channel][route.prefix] = decision.attributes
        return files

    def prefixes(self) -> dict[Channel, frozenset[Network]]:
        """The prefixes each owned channel's file announces."""
        return {channel: frozenset(routes) for channel, routes in self.files().items()}

    @property
    def announced(self) -> int:
        """How many routes the plan announces."""
        return sum(1 for decision in self.decisions.values() if decision.announced)

    def reason(
        self,
        route: Route,
        states: Mapping[Proxy, health.ProxyState] | None = None,
        terms: Mapping[ServerTerm, health.TermState] | None = None,
    ) -> str:
        """Why the route is as it is, in operator words (built on demand: thousands of routes, few
        of which ever need their reason spelt out). A route the plan does not name has no rule.
        `states`, `terms`: live health to quote (`rhid status`), the same verdicts as the plan's
        between re-plans but HAProxy's latest words; default the health the plan was made from."""
        decision = self.decisions.get(route)
        facts = Facts(self.states if states is None else states, self.terms if terms is None else terms)
        if decision is None:
            return explain(None, facts)
        if decision.note is not None:
            return decision.note
        text = explain(decision.rule, facts)
        return f"not known yet, kept as it was: {text}" if decision.held else text

    def due(self, now: float) -> bool:
        """True when a policy asked to look again at `now` or before."""
        return now >= self.wake_at


EMPTY = Plan({}, frozenset())


def initial(
    announced: Collection[Route] | Mapping[Route, Attributes], owned: Collection[Channel], now: float
) -> Plan:
    """The plan rhid's files hold at start: `announced` routes (with what each carries: a route
    with BGP attributes was degraded), held as they are until a verdict is known, in the `owned`
    channels, each since `now`."""
    carried = announced if isinstance(announced, Mapping) else dict.fromkeys(announced, PLAIN)
    decisions = {
        route: Decision(
            RouteState.ANNOUNCED if attributes.plain else RouteState.DEGRADED,
            None,
            held=True,
            attributes=attributes,
        )
        for route, attributes in carried.items()
    }
    return Plan(decisions, frozenset(owned), since=dict.fromkeys(carried, now))


def decide(
    previous: Plan,
    rules: RuleSet,
    states: Mapping[Proxy, health.ProxyState],
    intents: Intents,
    now: float,
    *,
    terms: Mapping[ServerTerm, health.TermState] | None = None,
    chain: Sequence[Policy] = CHAIN,
) -> Plan:
    """The plan for `now`, made from the rules' verdicts on `states` and `terms` (a proxy or
    threshold missing is not known yet) and the policy `chain`, against the `previous` plan: its
    held routes, its channels (a channel no rule uses any more is kept, empty, so that its file is
    emptied), its policies' states and each route's `since`."""
    terms = {} if terms is None else terms
    facts = Facts(states, terms)
    before = previous.decisions
    decisions: dict[Route, Decision] = {}
    for rule in rules.rules:
        outcome = evaluate(rule, facts)
        for route in rule.routes:
            decisions[route] = _decision(rule, outcome, before.get(route))
    for route, decision in before.items():
        if route not in decisions and decision.announced:
            decisions[route] = Decision(RouteState.WITHDRAWN, None, planned=True)
    chained: Decisions = decisions
    policies: dict[str, object] = {}
    lines: list[LogLine] = []
    wake_at = math.inf
    for link in chain:
        step = link(chained, previous.policies.get(link.__name__), intents, now, before=before, facts=facts)
        chained, policies[link.__name__] = step.decisions, step.state
        lines.extend(step.lines)
        wake_at = min(wake_at, step.wake_at)
    channels = frozenset(rules.channels) | previous.channels
    transitions, since = _against(previous, chained, now)
    return Plan(chained, channels, states, since, terms, transitions, policies, wake_at, tuple(lines))


def _decision(rule: Rule, outcome: Outcome, kept: Decision | None) -> Decision:
    """A route's decision from its rule's outcome. Not known yet: held as the previous plan had it
    when that is still possible; else degraded when that is (announced, but less preferred, until
    the rest is known); else as it was."""
    if outcome.fate is not None:
        state = _STATE_OF[outcome.fate]
        return Decision(state, rule, attributes=outcome.attributes if state is RouteState.DEGRADED else PLAIN)
    was = kept.state if kept is not None else RouteState.WITHDRAWN
    if _FATE_OF[was] not in outcome.possible and Fate.DEGRADED in outcome.possible:
        return Decision(RouteState.DEGRADED, rule, held=True, attributes=outcome.attributes)
    attributes = kept.attributes if kept is not None and was is not RouteState.WITHDRAWN else PLAIN
    return Decision(was, rule, held=True, attributes=attributes)


def _against(
    previous: Plan, decisions: Decisions, now: float
) -> tuple[tuple[Transition, ...], dict[Route, float]]:
    """The transitions and each route's `since`, against the `previous` plan."""
    transitions: list[Transition] = []
    since: dict[Route, float] = {}
    old_since = previous.since
    for route, decision in decisions.items():
        kept = previous.decisions.get(route)
        was = kept.state if kept is not None else RouteState.WITHDRAWN
        if was is not decision.state:
            transitions.append(Transition(route, was, decision.state))
            since[route] = now
        else:
            since[route] = old_since.get(route, now) if kept is not None else now
    transitions.sort(key=lambda t: route_order(t.route))
    return tuple(transitions), since


def transition_lines(made: Plan, limit: int = ROUTE_LINES) -> list[LogLine]:
    """The log lines of a plan's transitions: one per route up to `limit` per event, with the rule's
    line and the reason; one line for the rest (journald's rate limit keeps the others)."""
    lines: list[LogLine] = []
    counted: dict[str, int] = {}
    for transition in made.transitions:
        event = transition.event
        counted[event] = counted.get(event, 0) + 1
        if counted[event] > limit:
            continue
        route = transition.route
        decision = made.decisions[route]
        fields: dict[str, object] = {
            "prefix": str(route.prefix),
            "table": route.table,
            "rule_line": decision.rule.line if decision.rule else None,
            "was": transition.before.value,
            "reason": made.reason(route),
        }
        lines.append(LogLine(event, "info", fields))
    lines.extend(
        LogLine(event, "info", {"count": count - limit, "more": MORE})
        for event, count in counted.items()
        if count > limit
    )
    return lines


def route_lines(
    event: str, level: str, items: Sequence[tuple[Route, dict[str, object]]], limit: int = ROUTE_LINES
) -> list[LogLine]:
    """One `event` line per route (its prefix and table first, then `fields`) up to `limit`, then
    one line with the count of the rest: a policy's per-route lines, capped like the transitions'."""
    lines = [
        LogLine(event, level, {"prefix": str(route.prefix), "table": route.table, **fields})
        for route, fields in items[:limit]
    ]
    if len(items) > limit:
        lines.append(LogLine(event, level, {"count": len(items) - limit, "more": MORE}))
    return lines


def explain(rule: Rule | None, facts: Facts | Mapping[Proxy, health.ProxyState]) -> str:
    """Why a rule decides as it does: each node's verdict, each target's health and what HAProxy
    last said of it (`rhid.rules.Rule.explain`); `facts` may be the proxies' health alone."""
    if rule is None:
        return "no rule names this route any more"
    return rule.explain(facts if isinstance(facts, Facts) else Facts(facts))
