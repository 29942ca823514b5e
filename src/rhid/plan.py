"""The decision, as a value: what every route should be, and why. Pure.

    plan = decide(rules, states, announced, owned, now)

is rhid's one answer to "what should each route be?". Everything that reports or acts reads that
value and never re-derives a verdict: the BIRD side writes `plan.files()` and logs each route that
moved with `plan.reason(route)`; `rhid status` shows `plan.decisions`; a stop applies
`plan.withdrawn(...)`. A policy that can change a route (damping, a blast-radius guard, a drain) is
a small pure module of its own whose state is handed in here, and its effect is one more field of
a `Decision`, never a branch in the loop.

A rule's verdict is three-valued (`rhid.rules.Condition.verdict`): announce, withdraw, or not known
yet. A route whose verdict is not known yet is *held*: it stays as rhid's files have it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from rhid import health
from rhid.model import Channel, Network, Proxy, Route
from rhid.rules import Rule, RuleSet
from rhid.stats import in_words


class RouteState(enum.Enum):
    """What rhid's files say about a route."""

    ANNOUNCED = "announced"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Decision:
    """One route's fate: its state, whether it is held as it was, the rule behind it, and a note that
    overrides the rule's explanation (a stop, say)."""

    state: RouteState
    rule: Rule | None
    held: bool = False  # the verdict is not known yet: kept as the files had it
    note: str | None = None

    @property
    def announced(self) -> bool:
        """True when the route is to be announced."""
        return self.state is RouteState.ANNOUNCED


@dataclass(frozen=True, slots=True)
class Plan:
    """Every route's decision, the channels whose files rhid owns, and the health it was made from."""

    decisions: Mapping[Route, Decision]
    channels: frozenset[Channel]
    states: Mapping[Proxy, health.ProxyState] = field(default_factory=dict, repr=False)

    def files(self) -> dict[Channel, frozenset[Network]]:
        """What each include file should hold: every owned channel, with its announced prefixes."""
        files: dict[Channel, set[Network]] = {channel: set() for channel in self.channels}
        for route, decision in self.decisions.items():
            if decision.announced:
                files[route.channel].add(route.prefix)
        return {channel: frozenset(prefixes) for channel, prefixes in files.items()}

    @property
    def announced(self) -> int:
        """How many routes the plan announces."""
        return sum(1 for decision in self.decisions.values() if decision.announced)

    def reason(self, route: Route, states: Mapping[Proxy, health.ProxyState] | None = None) -> str:
        """Why the route is as it is, in operator words (built on demand: thousands of routes, few
        of which ever need their reason spelt out). A route the plan does not name has no rule.
        `states`: live health to quote (`rhid status`), the same verdicts as the plan's between
        re-plans but HAProxy's latest words; default the health the plan was made from."""
        decision = self.decisions.get(route)
        if decision is None:
            return explain(None, self.states)
        if decision.note is not None:
            return decision.note
        text = explain(decision.rule, self.states if states is None else states)
        return f"not known yet, kept as it was: {text}" if decision.held else text

    def withdrawn(self, note: str) -> Plan:
        """The same routes, all withdrawn, each for `note` (a stop)."""
        withdrawn = {
            route: Decision(RouteState.WITHDRAWN, d.rule, note=note) for route, d in self.decisions.items()
        }
        return Plan(withdrawn, self.channels, self.states)


EMPTY = Plan({}, frozenset())


def decide(
    rules: RuleSet,
    states: Mapping[Proxy, health.ProxyState],
    announced: Collection[Route],
    owned: Collection[Channel],
    now: float,
) -> Plan:
    """The plan for `now`.

    `states`: each proxy's health (a proxy missing is not known yet). `announced`: the routes rhid's
    files announce now. `owned`: the channels rhid has files for; a channel no rule uses any more is
    kept in the plan, empty, so that its file is emptied. `now` is the clock every time-based policy
    reads; the verdicts of today's rules do not depend on it.
    """
    del now  # the seam for time-based policies (damping, guards); hysteresis already ran in health
    up = {proxy: health.is_up(states.get(proxy, health.INITIAL)) for proxy in rules.proxies}
    decisions: dict[Route, Decision] = {}
    for rule in rules.rules:
        verdict = rule.condition.verdict(up)
        for route in rule.routes:
            if verdict is None:
                kept = RouteState.ANNOUNCED if route in announced else RouteState.WITHDRAWN
                decisions[route] = Decision(kept, rule, held=True)
            else:
                decisions[route] = Decision(RouteState.ANNOUNCED if verdict else RouteState.WITHDRAWN, rule)
    for route in announced:
        if route not in decisions:
            decisions[route] = Decision(RouteState.WITHDRAWN, None)
    return Plan(decisions, frozenset(rules.channels) | frozenset(owned), states)


def explain(rule: Rule | None, states: Mapping[Proxy, health.ProxyState]) -> str:
    """Why a rule decides as it does: each target's health and what HAProxy last said of it."""
    if rule is None:
        return "no rule names this route any more"
    condition = rule.condition
    if not condition.operands:
        return f"{condition.aggregate.value}()"
    parts = []
    for proxy in condition.operands:
        state = states.get(proxy, health.INITIAL)
        gone = "vanished from HAProxy; " if state.vanished else ""
        parts.append(f"{proxy} is {state.health.value} ({gone}{in_words(state.last_status)})")
    return f"{condition.aggregate.value}: " + ", ".join(parts)
