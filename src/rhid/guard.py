"""The blast-radius guard: never let one correlated signal withdraw most of this node's routes at
once while HAProxy itself is fine. Pure: a policy of the plan's chain (`rhid.plan.Policy`).

A shared dependency down (a database every health check asks), a bad HAProxy configuration
pushed to every node: each makes every node withdraw every prefix at the same moment, turning a
partial failure into a total one. So when health would withdraw more than `share` of the routes
this node announces (counting those it withdrew within the last `window` seconds) and more than
`minimum` of them, while HAProxy answers, the guard holds those withdrawals: the routes stay
announced (`degraded`: marked with the graceful-shutdown community, so that routers prefer other
nodes that still announce them plainly, and keep this one where every node is in the same state),
`guard.holding` is logged at critical level and `rhid status` shows it as a problem. The hold ends
when health returns (nothing left to hold), when it outlasts `hold` seconds (the routes are
withdrawn), or at once on `rhid guard release` (`Intents.guard_releases`). A withdrawal the
operator or the service asked for (a stop, a reload) is never held, and nothing is held while
HAProxy does not answer (`Intents.haproxy_answers`): a dead HAProxy means the node cannot serve.

    guard    what comes                                              effect
    idle     health withdraws > share and > minimum (window counted)  holding them, until now + hold
    idle     fewer                                                    withdrawn; counted in the window
    holding  more routes withdrawn by health                          held too, until the same end
    holding  health returns for every held route                      idle (guard.released)
    holding  the hold's end comes, or rhid guard release              idle; the held routes withdrawn
    any      rhid stopping, or HAProxy does not answer                idle; nothing held
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

from rhid.model import LogLine, Route, route_order
from rhid.plan import Decision, Decisions, Intents, Policy, Step, explain
from rhid.rules import Facts
from rhid.shutdown import NO_MARKS, Marks, degrade

NAME = "guard"  # the policy's name: its state's key in `Plan.policies`
SAMPLE = 10  # routes and reasons a log line names one by one


@dataclass(frozen=True, slots=True)
class Config:
    """When to hold (`share` percent, more than `minimum` routes, counting `window` seconds back),
    for how long (`hold` seconds), and whether held routes are marked (`degraded`, with `marks`)."""

    share: int
    minimum: int
    hold: float
    window: float
    degraded: bool = True
    marks: Marks = NO_MARKS


@dataclass(frozen=True, slots=True)
class Guard:
    """The guard's state: the routes it holds (none: idle), since and until when; the health
    withdrawals it let through recently (when, how many); the releases asked for so far."""

    held: frozenset[Route] = frozenset()
    since: float = 0.0
    until: float = math.inf
    recent: tuple[tuple[float, int], ...] = ()
    releases: int = 0
    reasons: tuple[str, ...] = field(default=(), compare=False)  # why health would withdraw them

    @property
    def holding(self) -> bool:
        """True while the guard holds routes."""
        return bool(self.held)


IDLE = Guard()


def of(state: object) -> Guard:
    """The guard's state in a plan's state of this policy."""
    return state if isinstance(state, Guard) else IDLE


def step(
    config: Config,
    decisions: Decisions,
    state: object,
    *,
    intents: Intents,
    now: float,
    before: Decisions,
    facts: Facts,
) -> Step:
    """The decisions with a correlated mass withdrawal held (see the table)."""
    guard = of(state)
    releases = intents.guard_releases
    leaving = {
        route
        for route, decision in decisions.items()
        if not decision.announced and not decision.planned and not decision.held and _announced(before, route)
    }
    recent = tuple((at, count) for at, count in guard.recent if at > now - config.window)
    bypass = (
        "rhid is stopping"
        if intents.stopping is not None
        else None
        if intents.haproxy_answers
        else "HAProxy does not answer: the node cannot serve"
    )
    if bypass is not None:
        lines = _released(guard, bypass, leaving) if guard.holding else ()
        return Step(decisions, Guard(recent=_counted(recent, now, leaving), releases=releases), lines)
    if guard.holding:
        held = guard.held & leaving
        added = leaving - guard.held
        why = (
            "rhid guard release"
            if releases > guard.releases
            else f"held for --guard-hold {config.hold:g} s: the condition outlasted the hold"
            if now >= guard.until
            else "health returned"
            if not held and not added
            else None
        )
        if why is not None:
            # what it let go is judged, not counted again: the next withdrawal starts a fresh window
            return Step(decisions, Guard(releases=releases), _released(guard, why, leaving))
        holding = held | added
        lines = (
            _holding(
                config, decisions, holding, added, before=before, facts=facts, now=now, until=guard.until
            )
            if added
            else ()
        )
        reasons = _reasons(decisions, holding, facts)
        made = Guard(holding, guard.since, guard.until, (), releases, reasons)
        return Step(
            _held(config, decisions, holding, before=before, facts=facts, until=guard.until),
            made,
            lines,
            guard.until,
        )
    withdrawn = sum(count for _, count in recent)
    counted = len(leaving) + withdrawn
    announced = sum(1 for decision in before.values() if decision.announced) + withdrawn
    if leaving and counted * 100 > config.share * announced and counted > config.minimum:
        until = now + config.hold
        lines = _holding(
            config, decisions, leaving, leaving, before=before, facts=facts, now=now, until=until
        )
        reasons = _reasons(decisions, leaving, facts)
        made = Guard(frozenset(leaving), now, until, (), releases, reasons)
        return Step(
            _held(config, decisions, leaving, before=before, facts=facts, until=until), made, lines, until
        )
    return Step(decisions, Guard(recent=_counted(recent, now, leaving), releases=releases))


def _announced(before: Decisions, route: Route) -> bool:
    was = before.get(route)
    return was is not None and was.announced


def _counted(
    recent: tuple[tuple[float, int], ...], now: float, leaving: Collection[Route]
) -> tuple[tuple[float, int], ...]:
    """The window with the withdrawals let through now."""
    return (*recent, (now, len(leaving))) if leaving else recent


def _held(
    config: Config,
    decisions: Decisions,
    holding: Collection[Route],
    *,
    before: Decisions,
    facts: Facts,
    until: float,
) -> dict[Route, Decision]:
    """The decisions with the `holding` routes kept announced, as before (marked if degraded)."""
    out = dict(decisions)
    for route in holding:
        decision, was = decisions[route], before[route]
        out[route] = Decision(
            was.state,  # announced or degraded, as BIRD has it
            decision.rule,
            note=(
                f"blast-radius guard: health would withdraw this route with {len(holding) - 1} others "
                f"at once while HAProxy answers; held announced"
                f"{' with ' + config.marks.words() if config.degraded else ''} until --guard-hold "
                f"{config.hold:g} s have passed or `rhid guard release`, unless health returns; health "
                f"says: {decision.note or explain(decision.rule, facts)}"
            ),
            attributes=degrade(was.attributes, config.marks) if config.degraded else was.attributes,
            until=until,
        )
    return out


def _reasons(decisions: Decisions, routes: Collection[Route], facts: Facts) -> tuple[str, ...]:
    """Why health would withdraw `routes`: each distinct explanation, the commonest first, with how
    many routes it withdraws."""
    counts: dict[str, int] = {}
    for route in routes:
        text = explain(decisions[route].rule, facts)
        counts[text] = counts.get(text, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(f"{count} route{'s' if count > 1 else ''}: {text}" for text, count in ranked[:SAMPLE])


def _holding(
    config: Config,
    decisions: Decisions,
    holding: Collection[Route],
    added: Collection[Route],
    *,
    before: Decisions,
    facts: Facts,
    now: float,
    until: float,
) -> tuple[LogLine, ...]:
    """The critical line of a hold that starts (or grows: `added`), naming routes and reasons."""
    announced = sum(1 for decision in before.values() if decision.announced)
    fields: dict[str, object] = {
        "count": len(holding),
        "announced": announced,
        "share": config.share,
        "minimum": config.minimum,
        "hold": config.hold,
        "withdrawn_in": round(until - now, 1),
        "degraded": config.degraded,
        "routes": sample(holding),
        "reasons": list(_reasons(decisions, added, facts)),
        "hint": "rhid guard release withdraws them now; rhid status shows them",
    }
    if len(added) != len(holding):
        fields["added"] = len(added)
    return (LogLine("guard.holding", "critical", fields),)


def _released(guard: Guard, why: str, leaving: Collection[Route]) -> tuple[LogLine, ...]:
    """The line of a hold that ends: why, and how many of its routes are withdrawn now."""
    withdrawn = guard.held & set(leaving)
    level = "warning" if withdrawn else "info"
    fields: dict[str, object] = {"why": why, "count": len(guard.held), "withdrawn": len(withdrawn)}
    if withdrawn:
        fields["routes"] = sample(withdrawn)
    return (LogLine("guard.released", level, fields),)


def sample(routes: Collection[Route]) -> list[str]:
    """The first routes, in route order, one by one."""
    return [str(route) for route in sorted(routes, key=route_order)[:SAMPLE]]


def policy(config: Config) -> Policy:
    """The blast-radius guard's link of the chain, for `config`."""

    def guard(
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
    ) -> Step:
        return step(config, decisions, state, intents=intents, now=now, before=before, facts=facts)

    return guard
