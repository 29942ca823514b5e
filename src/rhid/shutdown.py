"""Graceful shutdown (RFC 8326): a planned withdrawal first keeps the route announced, marked, for a
while, so that routers move traffic away while this node still serves it. Pure: a policy of the
plan's chain (`rhid.plan.Policy`).

A withdrawal is planned when the operator or the service asked for it (rhid stopping with
``--on-stop withdraw``, a rule removed by a reload; `Decision.planned`): the node could still
serve. Such a route stays announced with the GRACEFUL_SHUTDOWN community 65535:0 (and, if asked,
a local preference or MED that makes it the worst path) for `seconds`, then is withdrawn. A route
the rules withdraw because of health is withdrawn at once, and so is a route under graceful
shutdown that becomes unhealthy (its withdrawal is no longer planned), or every route under it
when a second stop signal comes (`Intents.immediately`).

    the route's decision (from the policies before)   before     effect
    withdrawn, planned                                 announced  marked, announced until now + seconds
    withdrawn, planned, under graceful shutdown        (any)      marked, announced until its deadline
    withdrawn by health, or announced again            (any)      as it is; its graceful shutdown ends
    anything, with Intents.immediately                 (any)      as it is: no graceful shutdown

The state is each route's deadline and the attributes it carried when its graceful shutdown began;
`wake_at` is the soonest deadline, so that time alone withdraws it. The blast-radius guard marks
the routes it holds the same way (`degrade`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from rhid.model import Attributes, Route
from rhid.plan import Decision, Decisions, Intents, Policy, RouteState, Step, explain, route_lines
from rhid.rules import Facts

NAME = "graceful_shutdown"  # the policy's name: its state's key in `Plan.policies`
GRACEFUL_SHUTDOWN = (65535, 0)  # RFC 8326's well-known community


@dataclass(frozen=True, slots=True)
class Marks:
    """What a route about to leave carries besides 65535:0: a local preference (iBGP: 0 makes it
    the last resort without the router's help) and a MED (eBGP to routers of one AS), or None."""

    local_pref: int | None = None
    med: int | None = None

    def words(self) -> str:
        """The marks in operator words: ``community 65535:0, local-pref 0``."""
        found = ["community 65535:0"]
        if self.local_pref is not None:
            found.append(f"local-pref {self.local_pref}")
        if self.med is not None:
            found.append(f"MED {self.med}")
        return ", ".join(found)


NO_MARKS = Marks()


def degrade(attributes: Attributes, marks: Marks = NO_MARKS) -> Attributes:
    """`attributes` with the graceful-shutdown community added and the `marks` set (the same value
    however often it is applied)."""
    communities = attributes.communities
    if GRACEFUL_SHUTDOWN not in communities:
        communities = (*communities, GRACEFUL_SHUTDOWN)
    return replace(
        attributes,
        communities=communities,
        local_pref=attributes.local_pref if marks.local_pref is None else marks.local_pref,
        med=attributes.med if marks.med is None else marks.med,
    )


@dataclass(frozen=True, slots=True)
class Config:
    """How long a planned withdrawal waits (seconds; 0: none), and what the route carries meanwhile."""

    seconds: float
    marks: Marks = NO_MARKS


@dataclass(frozen=True, slots=True)
class Leaving:
    """A route under graceful shutdown: when it is withdrawn, and how it was announced before (its
    state, announced or degraded, and its attributes)."""

    until: float
    attributes: Attributes
    state: RouteState = RouteState.ANNOUNCED


State = Mapping[Route, Leaving]


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
    """The decisions with each planned withdrawal of an announced route delayed (see the table)."""
    current = leaving(state)
    if intents.immediately or config.seconds <= 0:
        return Step(decisions)
    out = dict(decisions)
    kept: dict[Route, Leaving] = {}
    started: list[tuple[Route, dict[str, object]]] = []
    for route, decision in decisions.items():
        if decision.announced or not decision.planned:
            continue  # announced again, or withdrawn by health: at once
        entry = current.get(route)
        if entry is None:
            was = before.get(route)
            if was is None or not was.announced:
                continue  # nothing to leave gracefully
            entry = Leaving(now + config.seconds, was.attributes, was.state)
            why = _why(decision, facts)
            started.append((route, {"seconds": config.seconds, "marks": config.marks.words(), "reason": why}))
        if now >= entry.until:
            continue  # its time is up: withdrawn
        kept[route] = entry
        out[route] = Decision(
            entry.state,
            decision.rule,
            note=(
                f"graceful shutdown (RFC 8326): announced with {config.marks.words()} so that routers "
                f"move traffic away first, withdrawn after --graceful-shutdown {config.seconds:g} s; "
                f"then: {_why(decision, facts)}"
            ),
            attributes=degrade(entry.attributes, config.marks),
            until=entry.until,
        )
    wake_at = min((entry.until for entry in kept.values()), default=math.inf)
    lines = route_lines("route.graceful_shutdown", "info", started)
    return Step(out, kept or None, tuple(lines), wake_at)


def _why(decision: Decision, facts: Facts) -> str:
    """Why the route is withdrawn once its graceful shutdown ends."""
    return decision.note if decision.note is not None else explain(decision.rule, facts)


def policy(config: Config) -> Policy:
    """The graceful-shutdown link of the chain, for `config`."""

    def graceful_shutdown(
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
    ) -> Step:
        return step(config, decisions, state, intents=intents, now=now, before=before, facts=facts)

    return graceful_shutdown


def leaving(state: object) -> State:
    """The routes under graceful shutdown in a plan's state of this policy."""
    return state if isinstance(state, Mapping) else {}
