"""Flap damping per route, in the spirit of RFC 2439, on the time scale of health checks. Pure: a
policy of the plan's chain (`rhid.plan.Policy`).

Each withdrawal health causes (an announced route whose rule now says withdraw; not a planned one,
not one whose verdict is unknown) adds `PENALTY` (1) to the route's penalty, which halves every
`half_life` seconds. A withdrawal that brings the penalty to `suppress` or more suppresses the
route: the withdrawal itself goes through at once (the node cannot serve), but the route is not
announced again until its penalty has decayed below `reuse`, however healthy it looks meanwhile.
The penalty never exceeds the ceiling ``reuse * 2 ** (max_suppress / half_life)``, so a route is
kept withdrawn at most `max_suppress` seconds after its last withdrawal (RFC 2439's maximum
suppress time). Withdrawals while suppressed add to the penalty (the backend still flaps).

    event (the route's decision from the policies before)   effect
    announced before, now withdrawn by health               penalty += 1 (up to the ceiling);
                                                            suppressed once it is >= suppress
    suppressed, the rule says announce                      withdrawn, until its reuse time
    suppressed, reuse time reached                          not suppressed (route.reused): as its rule says
    not suppressed, penalty below reuse / 2                 forgotten

The state is each damped route's penalty (as of when it was last computed), whether it is
suppressed and until when, its withdrawals, and whether its decision was announced (so that a
verdict flipping while the route is suppressed still counts). `wake_at` is the soonest reuse
time, so that time alone announces a route again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rhid.model import Route
from rhid.plan import Decision, Decisions, Intents, Policy, RouteState, Step, explain, route_lines
from rhid.rules import Facts

NAME = "damping"  # the policy's name: its state's key in `Plan.policies`
PENALTY = 1.0  # what one withdrawal adds: the thresholds count withdrawals


@dataclass(frozen=True, slots=True)
class Config:
    """The damping parameters: seconds for `half_life` and `max_suppress`, penalties (in
    withdrawals) for `suppress` and `reuse`."""

    half_life: float
    suppress: float
    reuse: float
    max_suppress: float

    def __post_init__(self) -> None:
        if not (self.half_life > 0 and self.max_suppress > 0 and 0 < self.reuse < self.suppress):
            raise ValueError(f"damping needs positive times and 0 < reuse < suppress: {self}")
        if self.ceiling < self.suppress:
            raise ValueError(f"a penalty capped at {self.ceiling:g} never reaches suppress {self.suppress:g}")

    @property
    def ceiling(self) -> float:
        """The highest penalty: it decays to `reuse` in `max_suppress` seconds."""
        return self.reuse * 2 ** (self.max_suppress / self.half_life)

    def decayed(self, penalty: float, seconds: float) -> float:
        """`penalty` after `seconds` of decay."""
        return penalty * 2 ** (-seconds / self.half_life)

    def reuse_after(self, penalty: float) -> float:
        """Seconds until `penalty` decays below `reuse` (0 when it is below already)."""
        return max(0.0, self.half_life * math.log2(penalty / self.reuse))


@dataclass(frozen=True, slots=True)
class Flaps:
    """One damped route: its penalty as of `at`, its withdrawals counted, whether its decision (as
    this policy got it) was announced, and, while suppressed, when it may be announced again."""

    penalty: float
    at: float
    withdrawals: int
    up: bool
    reuse_at: float | None = None  # None: not suppressed

    @property
    def suppressed(self) -> bool:
        """True while the route is kept withdrawn."""
        return self.reuse_at is not None


State = Mapping[Route, Flaps]


def damped(state: object) -> State:
    """The damped routes in a plan's state of this policy."""
    return state if isinstance(state, Mapping) else {}


def step(
    config: Config,
    decisions: Decisions,
    state: object,
    *,
    before: Decisions,
    now: float,
    facts: Facts,
) -> Step:
    """The decisions with each suppressed route kept withdrawn (see the table)."""
    current = damped(state)
    out = dict(decisions)
    kept: dict[Route, Flaps] = {}
    suppressed: list[tuple[Route, dict[str, object]]] = []
    reused: list[tuple[Route, dict[str, object]]] = []
    for route, decision in decisions.items():
        entry = current.get(route)
        if entry is not None:
            was_up = entry.up
        else:
            was = before.get(route)
            was_up = was is not None and was.announced
        by_health = not decision.announced and not decision.planned and not decision.held
        withdrawn_now = was_up and by_health
        if entry is None and not withdrawn_now:
            continue  # the common case: a route that does not flap
        penalty = config.decayed(entry.penalty, now - entry.at) if entry is not None else 0.0
        withdrawals = entry.withdrawals if entry is not None else 0
        reuse_at = entry.reuse_at if entry is not None else None
        if withdrawn_now:
            penalty = min(penalty + PENALTY, config.ceiling)
            withdrawals += 1
            if reuse_at is not None or penalty >= config.suppress:
                if reuse_at is None:
                    fields = {"penalty": round(penalty, 2), "withdrawals": withdrawals}
                    suppressed.append((route, {**fields, "reuse_in": round(config.reuse_after(penalty), 1)}))
                reuse_at = now + config.reuse_after(penalty)
        if reuse_at is not None and now >= reuse_at:
            reuse_at = None
            reused.append((route, {"withdrawals": withdrawals}))
        if reuse_at is None and penalty < config.reuse / 2:
            continue  # forgotten: it stopped flapping
        kept[route] = Flaps(penalty, now, withdrawals, decision.announced, reuse_at)
        if reuse_at is not None and decision.announced:
            out[route] = Decision(
                RouteState.WITHDRAWN,
                decision.rule,
                note=(
                    f"flap damping: withdrawn {withdrawals} times by health recently (penalty "
                    f"{penalty:.2f}, suppressed from {config.suppress:g}); kept withdrawn until the "
                    f"penalty, halving every {config.half_life:g} s, is below {config.reuse:g}, at most "
                    f"--damping-max-suppress {config.max_suppress:g} s after its last withdrawal; its rule "
                    f"says announce: {explain(decision.rule, facts)}"
                ),
                attributes=decision.attributes,
                until=reuse_at,
            )
    wake_at = min((f.reuse_at for f in kept.values() if f.reuse_at is not None), default=math.inf)
    lines = route_lines("route.damped", "warning", suppressed) + route_lines("route.reused", "info", reused)
    return Step(out, kept or None, tuple(lines), wake_at)


def policy(config: Config) -> Policy:
    """The flap-damping link of the chain, for `config`."""

    def damping(
        decisions: Decisions,
        state: object,
        intents: Intents,
        now: float,
        *,
        before: Decisions,
        facts: Facts,
    ) -> Step:
        del intents  # damping asks nothing of the operator
        return step(config, decisions, state, before=before, now=now, facts=facts)

    return damping
