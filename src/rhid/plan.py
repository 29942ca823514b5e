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

One change among 10,000 routes costs work in proportion to what it touches: a decided plan keeps a
`Memo` (the rules' decisions, each policy's output, its files), and the next `decide` with the same
rules, intents and chain re-decides only the routes fed by a proxy or threshold whose state
changed (`RuleSet.fed_by`) or whose decision just moved, runs each policy on those
(`Local`, `Incremental`), and says which file lines changed (`Plan.files_moved`) so that the BIRD
side rewrites and renders only those. The result is the full decide's, field for field.
"""

from __future__ import annotations

import enum
import itertools
import math
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

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

_Key = TypeVar("_Key")
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


class Change:
    """What an incremental `decide` tells a policy about its inputs (see `Incremental`): `dirty`,
    the routes whose decision or `before`'s may differ from the previous plan's (None: any may);
    `previous`, this policy's output in the previous plan (None: not known); `memo`, what it kept
    then; `order`, each route's place in the decisions (a policy's lines keep the full run's order);
    `announced`, how many routes `before` announces."""

    __slots__ = ("announced", "dirty", "memo", "order", "previous")

    def __init__(
        self,
        dirty: Collection[Route] | None,
        previous: Decisions | None,
        memo: object,
        order: Mapping[Route, int],
        announced: int,
    ) -> None:
        self.dirty, self.previous, self.memo, self.order, self.announced = (
            dirty,
            previous,
            memo,
            order,
            announced,
        )


@dataclass(frozen=True, slots=True)
class Delta:
    """An incremental policy's result: its `step` (decisions: the whole mapping), the routes whose
    result may differ from the previous plan's (`touched`; None: any may), and what it keeps for the
    next plan (`memo`)."""

    step: Step
    touched: Collection[Route] | None
    memo: object = None


class Incremental(Policy, Protocol):
    """A policy that can run on what changed: `delta` gives what a full call would, from `change`."""

    def delta(
        self,
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
        change: Change,
    ) -> Delta: ...


def _no_scope(state: object) -> Collection[Route]:
    del state  # a policy without state names no route
    return ()


class Local:
    """A policy whose result for a route reads only that route: its decision, `before`'s, its own
    state's entry for it (`scope(state)`: the routes that have one), the intents and the facts its
    rule reads. An incremental `decide` runs it on the routes that may have changed, those its
    state names and those its previous state named; every other route keeps the previous plan's
    result. That is exact when, for a route with no entry in the state before or after, the result
    (its decision; no line) does not depend on `now`, which holds for drains, the stop, damping and
    graceful shutdown (tests/unit/test_incremental.py compares against the full run)."""

    def __init__(self, step: Policy, scope: Callable[[object], Collection[Route]] = _no_scope) -> None:
        self.step = step
        self.scope = scope
        self.__name__ = step.__name__

    def __call__(
        self,
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
    ) -> Step:
        return self.step(decisions, state, intents, now, before=before, facts=facts)

    def delta(
        self,
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
        change: Change,
    ) -> Delta:
        """The step on the routes that may have changed (see the class). A link that hands its
        decisions through unchanged (no drain, no stop, no damped route: the common case) hands on
        the very mapping it got, so that a change of one route copies no 10,000-route mapping."""
        scope = frozenset(self.scope(state))
        previous, memo = change.previous, change.memo
        if change.dirty is None or previous is None or not isinstance(memo, _LocalMemo):
            step = self(decisions, state, intents, now, before=before, facts=facts)
            through = _same(step.decisions, decisions)
            if through:
                step = replace(step, decisions=decisions)
            return Delta(step, None, _LocalMemo(scope, through))
        run = set(change.dirty) | scope | memo.scope
        order = change.order
        present = sorted((route for route in run if route in decisions), key=order.__getitem__)
        step = self(
            {route: decisions[route] for route in present}, state, intents, now, before=before, facts=facts
        )
        if memo.through and all(step.decisions[route] is decisions[route] for route in present):
            return Delta(Step(decisions, step.state, step.lines, step.wake_at), run, _LocalMemo(scope, True))
        gone = [route for route in run if route not in decisions and route in previous]
        out = previous
        if gone or any(step.decisions[route] is not previous.get(route) for route in present):
            merged = dict(previous)
            for route in gone:
                del merged[route]
            merged.update(step.decisions)
            out = merged
        through = _same(out, decisions)
        return Delta(
            Step(decisions if through else out, step.state, step.lines, step.wake_at),
            run,
            _LocalMemo(scope, through),
        )


@dataclass(frozen=True, slots=True)
class _LocalMemo:
    """What a `Local` link keeps: the routes its state named, and whether it handed its decisions
    through unchanged (its output is its input)."""

    scope: frozenset[Route]
    through: bool


def _same(one: Decisions, other: Decisions) -> bool:
    """True when two mappings hold the same objects under the same keys in the same order (compared
    pairwise in C: no key is hashed)."""
    return one is other or (
        len(one) == len(other)
        and all(map(operator.is_, one, other))
        and all(map(operator.is_, one.values(), other.values()))
    )


def _stopping(
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


def _draining(
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


_stopping.__name__ = "stopping"
_draining.__name__ = "draining"
stopping = Local(_stopping)
draining = Local(_draining)
CHAIN: tuple[Policy, ...] = (draining, stopping)
_SERIAL = itertools.count(1)  # each decided plan's number (what its files changed is relative to its base's)


class Memo:
    """What a decided plan keeps for the next `decide` (never compared, never shown): the rules,
    intents and chain it was made with; the rules' decisions before the chain (`raw`) and each
    route's place in them; each policy's output and memo; the routes whose decision differs from
    the previous plan's (`moved`); the files (each channel's announced prefixes and attributes),
    what in them changed against the plan this one was made from (`files_moved`, None: not
    known), and how many routes it announces."""

    __slots__ = (
        "announced",
        "base",
        "chain",
        "files",
        "files_moved",
        "intents",
        "memos",
        "moved",
        "order",
        "raw",
        "rules",
        "serial",
        "stages",
    )

    def __init__(
        self,
        *,
        rules: RuleSet,
        intents: Intents,
        chain: tuple[Policy, ...],
        raw: dict[Route, Decision],
        order: Mapping[Route, int],
        stages: tuple[Decisions, ...],
        memos: tuple[object, ...],
        moved: Collection[Route],
        files: dict[Channel, Routes],
        files_moved: dict[Channel, set[Network]] | None,
        announced: int,
        base: int,
    ) -> None:
        self.rules, self.intents, self.chain = rules, intents, chain
        self.raw, self.order, self.stages, self.memos = raw, order, stages, memos
        self.moved, self.files, self.files_moved, self.announced = moved, files, files_moved, announced
        self.base = base  # the serial of the plan this one was made from (0: none)
        self.serial = next(_SERIAL)


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
    # what the next decide reuses (set by decide); a plan made otherwise has none. A plan changed
    # with dataclasses.replace KEEPS it, stale: pass memo=None (replace(plan, ..., memo=None)), or
    # files(), prefixes(), announced and the next decide read what the memo says, not the fields.
    memo: Memo | None = field(default=None, compare=False, repr=False)

    def files(self) -> dict[Channel, Routes]:
        """What each include file should hold: every owned channel, with its announced prefixes
        and what each carries (a copy: the caller may change it)."""
        if self.memo is not None:
            return {channel: dict(routes) for channel, routes in self.memo.files.items()}
        return _files(self.channels, self.decisions)

    def file(self, channel: Channel) -> Mapping[Network, Attributes]:
        """What one channel's include file should hold (not a copy: read it, do not change it)."""
        if self.memo is not None:
            return self.memo.files.get(channel, {})
        return _files((channel,), {r: d for r, d in self.decisions.items() if r.channel == channel})[channel]

    def files_moved(self, base: Plan | None) -> dict[Channel, set[Network]] | None:
        """The prefixes of each channel whose file line differs from `base`'s (gained, lost or
        carrying other attributes), when this plan was decided from `base`; None when that is not
        known (compare the files whole)."""
        memo = self.memo
        if memo is None or base is None or base.memo is None or memo.files_moved is None:
            return None
        return memo.files_moved if memo.base == base.memo.serial else None

    def prefixes(self) -> dict[Channel, frozenset[Network]]:
        """The prefixes each owned channel's file announces."""
        if self.memo is not None:
            return {channel: frozenset(routes) for channel, routes in self.memo.files.items()}
        return {channel: frozenset(routes) for channel, routes in self.files().items()}

    @property
    def announced(self) -> int:
        """How many routes the plan announces."""
        if self.memo is not None:
            return self.memo.announced
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
    channels (and those the routes are in: a channel that holds a route is owned), each since
    `now`."""
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
    channels = frozenset(owned) | {route.channel for route in carried}
    return Plan(decisions, channels, since=dict.fromkeys(carried, now))


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
    emptied), its policies' states and each route's `since`.

    Incremental: when `previous` was decided with the same rules (the same object), equal intents
    and the same chain, only the routes whose rule reads a proxy or threshold whose state changed
    (not the same object as in `previous.states`: health keeps an unchanged state's object) or whose
    previous decision moved are decided again, and each policy runs on those (`Incremental`; one
    that is not runs on everything, and so do the links after it); the rest keeps the previous
    plan's objects. The result equals a full decide's, field for field (the property in
    tests/unit/test_incremental.py)."""
    terms = {} if terms is None else terms
    facts = Facts(states, terms)
    before = previous.decisions
    links = tuple(chain)
    memo = previous.memo
    if memo is not None and (memo.rules is not rules or memo.chain != links or memo.intents != intents):
        memo = None
    dirty: set[Route] | None = None
    if memo is None:
        raw = _raw(rules, facts, before)
        order: Mapping[Route, int] = {route: at for at, route in enumerate(raw)}
    else:
        dirty = rules.fed_by(_changed(previous.states, states), _changed(previous.terms, terms))
        dirty.update(memo.moved)
        raw, order = _raw_again(memo.raw, rules, facts, before, dirty), memo.order
    announced_before = previous.announced
    chained: Decisions = raw
    touched: Collection[Route] | None = dirty
    policies: dict[str, object] = {}
    stages: list[Decisions] = []
    memos: list[object] = []
    lines: list[LogLine] = []
    wake_at = math.inf
    for at, link in enumerate(links):
        state = previous.policies.get(link.__name__)
        incremental = getattr(link, "delta", None)
        if incremental is None:
            made = Delta(link(chained, state, intents, now, before=before, facts=facts), None)
        else:
            change = Change(
                touched,
                None if memo is None else memo.stages[at],
                None if memo is None else memo.memos[at],
                order,
                announced_before,
            )
            made = incremental(chained, state, intents, now, before=before, facts=facts, change=change)
        step, touched = made.step, made.touched
        chained, policies[link.__name__] = step.decisions, step.state
        stages.append(chained)
        memos.append(made.memo)
        lines.extend(step.lines)
        wake_at = min(wake_at, step.wake_at)
    channels = frozenset(rules.channels) | previous.channels
    if touched is None or memo is None:
        transitions, since = _against(previous, chained, now)
        moved: Collection[Route] = _moved(before, chained, before.keys() | chained.keys())
        files = _files(channels, chained)
        files_moved = None
        announced = sum(1 for decision in chained.values() if decision.announced)
    else:
        transitions, since = _against_some(previous, chained, now, touched)
        moved = _moved(before, chained, touched)
        files, files_moved = _files_again(memo.files, chained, moved)
        announced = announced_before + sum(
            (route in chained and chained[route].announced) - (route in before and before[route].announced)
            for route in moved
        )
    made_memo = Memo(
        rules=rules,
        intents=intents,
        chain=links,
        raw=raw,
        order=order,
        stages=tuple(stages),
        memos=tuple(memos),
        moved=moved,
        files=files,
        files_moved=files_moved,
        announced=announced,
        base=previous.memo.serial if previous.memo is not None else 0,
    )
    return Plan(
        chained, channels, states, since, terms, transitions, policies, wake_at, tuple(lines), made_memo
    )


def _changed(old: Mapping[_Key, object], new: Mapping[_Key, object]) -> list[_Key]:
    """The keys whose value is not the same object in both (or is in one only). Two mappings with
    the same keys in the same order (health keeps its dict's order) are compared in C, pairwise."""
    if old is new:
        return []
    if len(old) == len(new) and all(map(operator.is_, old, new)):
        return list(itertools.compress(new, map(operator.is_not, old.values(), new.values())))
    found: list[_Key] = []
    fresh = 0  # keys of `new` that `old` lacks
    for key, value in new.items():
        was = old.get(key, _MISSING)
        if was is not value:
            found.append(key)
            fresh += was is _MISSING
    if len(old) > len(new) - fresh:  # some key of `old` is not in `new`
        found.extend(key for key in old if key not in new)
    return found


_MISSING = object()


def _raw(rules: RuleSet, facts: Facts, before: Decisions) -> dict[Route, Decision]:
    """The rules' decisions for every route (before the chain); a route the previous plan announced
    that no rule names any more is withdrawn, planned."""
    decisions: dict[Route, Decision] = {}
    for rule in rules.rules:
        outcome = evaluate(rule, facts)
        for route in rule.routes:
            decisions[route] = _decision(rule, outcome, before.get(route))
    for route, decision in before.items():
        if route not in decisions and decision.announced:
            decisions[route] = Decision(RouteState.WITHDRAWN, None, planned=True)
    return decisions


def _raw_again(
    raw: Mapping[Route, Decision], rules: RuleSet, facts: Facts, before: Decisions, dirty: Iterable[Route]
) -> dict[Route, Decision]:
    """`raw` (the previous plan's rules' decisions, same rules) with the `dirty` routes decided
    again; a decision equal to the previous one keeps its object."""
    again = dict(raw)
    outcomes: dict[int, Outcome] = {}
    for route in dirty:
        rule = rules.by_route.get(route)
        kept = before.get(route)
        if rule is None:
            if kept is None or not kept.announced:
                again.pop(route, None)
                continue
            made = Decision(RouteState.WITHDRAWN, None, planned=True)
        else:
            outcome = outcomes.get(id(rule))
            if outcome is None:
                outcome = outcomes[id(rule)] = evaluate(rule, facts)
            made = _decision(rule, outcome, kept)
        old = again.get(route)
        if old is None or old != made:
            again[route] = made
    return again


def _moved(before: Decisions, after: Decisions, routes: Iterable[Route]) -> frozenset[Route]:
    """The `routes` whose decision differs between `before` and `after` (or is in one only)."""
    return frozenset(route for route in routes if before.get(route) != after.get(route))


def _files(channels: Iterable[Channel], decisions: Decisions) -> dict[Channel, Routes]:
    """Every channel's announced prefixes and what each carries (a route of a channel not among
    `channels`, which only a hand-made plan has, adds its channel)."""
    files: dict[Channel, Routes] = {channel: {} for channel in channels}
    for route, decision in decisions.items():
        if decision.announced:
            files.setdefault(route.channel, {})[route.prefix] = decision.attributes
    return files


def _files_again(
    files: Mapping[Channel, Routes], decisions: Decisions, moved: Iterable[Route]
) -> tuple[dict[Channel, Routes], dict[Channel, set[Network]]]:
    """The previous plan's `files` with the `moved` routes' lines as `decisions` has them (each
    channel changed is a new dict; the others are shared), and each channel's prefixes whose line
    changed."""
    again = dict(files)
    changed: dict[Channel, set[Network]] = {}
    for route in moved:
        decision = decisions.get(route)
        channel, prefix = route.channel, route.prefix
        was = files.get(channel, {}).get(prefix)
        now = decision.attributes if decision is not None and decision.announced else None
        if was == now:
            continue
        if channel not in changed:
            again[channel] = dict(files.get(channel, {}))
            changed[channel] = set()
        changed[channel].add(prefix)
        if now is None:
            del again[channel][prefix]
        else:
            again[channel][prefix] = now
    return again, changed


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


def _against_some(
    previous: Plan, decisions: Decisions, now: float, touched: Iterable[Route]
) -> tuple[tuple[Transition, ...], dict[Route, float]]:
    """`_against` for a plan that differs from `previous` at most at the `touched` routes."""
    transitions: list[Transition] = []
    since = dict(previous.since)
    for route in touched:
        decision = decisions.get(route)
        if decision is None:
            since.pop(route, None)
            continue
        kept = previous.decisions.get(route)
        was = kept.state if kept is not None else RouteState.WITHDRAWN
        if was is not decision.state:
            transitions.append(Transition(route, was, decision.state))
            since[route] = now
        since.setdefault(route, now)  # (a route new to the plan: decided since now)
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
