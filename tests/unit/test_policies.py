"""The policies that keep rhid from making an outage worse, each in the plan's chain with a fake
clock: graceful shutdown (RFC 8326), flap damping, the blast-radius guard, and how they meet."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest

from rhid import damping, guard, plan, shutdown
from rhid.drain import Drain
from rhid.health import Health, ProxyState
from rhid.model import PLAIN, Attributes, LogLine, Proxy, ProxyKind, Route
from rhid.plan import Decision, Intents, Plan, RouteState
from rhid.rules import RuleSet, parse_rules

GS = shutdown.Config(5.0)
DAMPING = damping.Config(half_life=30.0, suppress=2.5, reuse=1.0, max_suppress=120.0)
GUARD = guard.Config(share=50, minimum=5, hold=60.0, window=10.0)
STOP = "rhid stopping (--on-stop withdraw)"
MARKED = shutdown.degrade(PLAIN)


def backend(name: str) -> Proxy:
    return Proxy(ProxyKind.BACKEND, name)


def chain(
    *,
    gs: shutdown.Config | None = GS,
    damp: damping.Config | None = DAMPING,
    hold: guard.Config | None = GUARD,
) -> tuple[plan.Policy, ...]:
    """The daemon's order: the stop, the guard, damping, graceful shutdown (each one optional)."""
    links: list[plan.Policy] = [plan.stopping]
    if hold is not None:
        links.append(guard.policy(hold))
    if damp is not None:
        links.append(damping.policy(damp))
    if gs is not None:
        links.append(shutdown.policy(gs))
    return tuple(links)


class World:
    """Rules, each backend's health as the plan sees it, the intents, and the plans made so far."""

    def __init__(self, rules: str, links: Sequence[plan.Policy], now: float = 0.0) -> None:
        self.rules = parse_rules(rules)
        self.chain = links
        self.up = dict.fromkeys(self.rules.proxies, True)
        self.intents = Intents(haproxy_answers=True)
        self.plan = plan.decide(plan.initial(set(), set(), now), self.rules, self.states(), self.intents, now)
        self.plan = self.at(now)
        self.lines: list[LogLine] = []

    def states(self) -> dict[Proxy, ProxyState]:
        return {
            proxy: ProxyState(Health.UP if up else Health.DOWN, last_status="UP" if up else "DOWN")
            for proxy, up in self.up.items()
        }

    def at(self, now: float, rules: RuleSet | None = None) -> Plan:
        """Re-plan at `now` (with new `rules`: a reload)."""
        self.rules = rules or self.rules
        self.plan = plan.decide(self.plan, self.rules, self.states(), self.intents, now, chain=self.chain)
        self.lines = list(self.plan.lines)
        return self.plan

    def health(self, name: str, up: bool) -> None:
        self.up[backend(name)] = up

    def announced(self) -> set[str]:
        return {str(r.prefix) for r, d in self.plan.decisions.items() if d.announced}

    def events(self, name: str) -> list[LogLine]:
        return [line for line in self.lines if line.name == name]

    def moved(self) -> list[tuple[str, str]]:
        return [(str(t.route.prefix), t.after.value) for t in self.plan.transitions]


def route(text: str, table: str = "vol1") -> Route:
    return next(r for r in parse_rules(f"{table}%{text} = always\n").routes)


# ---- graceful shutdown -------------------------------------------------------------------------


def test_a_stop_keeps_every_route_announced_with_65535_0_for_the_delay_then_withdraws() -> None:
    """A stop marks each announced route with GRACEFUL_SHUTDOWN and withdraws it only after the delay."""
    world = World("10.0.0.1 = all(b:a)\n2001:db8::1 = always\n", chain())
    world.intents = replace(world.intents, stopping=STOP)
    made = world.at(10.0)
    assert world.announced() == {"10.0.0.1/32", "2001:db8::1/128"}
    assert made.transitions == ()
    assert all(d.attributes.communities == ((65535, 0),) and d.until == 15.0 for d in made.decisions.values())
    assert made.wake_at == 15.0
    assert [line.fields["prefix"] for line in world.events("route.graceful_shutdown")] == [
        "10.0.0.1/32",
        "2001:db8::1/128",
    ]
    assert made.reason(route("10.0.0.1")).startswith("graceful shutdown (RFC 8326): announced with community")
    assert made.reason(route("10.0.0.1")).endswith(f"then: {STOP}")
    assert made.files()[route("10.0.0.1").channel][route("10.0.0.1").prefix] == MARKED
    world.at(14.9)
    assert len(world.announced()) == 2
    assert world.events("route.graceful_shutdown") == [], "logged once, when it begins"
    done = world.at(15.0)
    assert world.announced() == set()
    assert world.moved() == [("10.0.0.1/32", "withdrawn"), ("2001:db8::1/128", "withdrawn")]
    assert done.reason(route("10.0.0.1")) == STOP
    assert done.wake_at == math.inf
    assert done.policies[shutdown.NAME] is None


def test_a_route_under_graceful_shutdown_that_becomes_unhealthy_is_withdrawn_at_once() -> None:
    """Health's withdrawals stay immediate: at the stop, and during its graceful shutdown."""
    world = World("10.0.0.1 = all(b:a)\n10.0.0.2 = all(b:b)\n10.0.0.3 = all(b:c)\n", chain(hold=None))
    world.health("c", False)
    world.at(1.0)
    world.intents = replace(world.intents, stopping=STOP)
    world.at(10.0)
    assert world.announced() == {"10.0.0.1/32", "10.0.0.2/32"}, "an unhealthy route is not kept"
    world.health("b", False)
    world.at(11.0)
    assert world.announced() == {"10.0.0.1/32"}
    assert world.moved() == [("10.0.0.2/32", "withdrawn")]
    world.health("b", True)  # healthy again during the stop: it does not come back
    world.at(12.0)
    assert world.announced() == {"10.0.0.1/32"}
    world.at(15.0)
    assert world.announced() == set()


def test_a_second_stop_signal_withdraws_at_once() -> None:
    """Intents.immediately ends every graceful shutdown now."""
    world = World("10.0.0.1 = always\n", chain())
    world.intents = replace(world.intents, stopping=STOP)
    world.at(1.0)
    world.intents = replace(world.intents, immediately=True)
    world.at(2.0)
    assert world.announced() == set()
    assert world.moved() == [("10.0.0.1/32", "withdrawn")]


def test_a_rule_removed_by_a_reload_leaves_gracefully_and_a_rule_added_back_stays() -> None:
    """A reload's withdrawal is planned: 65535:0 first; a route a later reload names again is plain."""
    world = World("10.0.0.1 = always\n10.0.0.2 = always\n", chain())
    world.at(1.0, parse_rules("10.0.0.1 = always\n"))
    assert world.announced() == {"10.0.0.1/32", "10.0.0.2/32"}
    leaving = world.plan.decisions[route("10.0.0.2")]
    assert leaving.attributes == MARKED
    assert leaving.rule is None
    assert world.plan.reason(route("10.0.0.2")).endswith("then: no rule names this route any more")
    world.at(3.0)
    assert world.announced() == {"10.0.0.1/32", "10.0.0.2/32"}
    world.at(6.0)
    assert world.announced() == {"10.0.0.1/32"}
    assert world.plan.reason(route("10.0.0.2")) == "no rule names this route any more"
    world.at(7.0)
    assert route("10.0.0.2") not in world.plan.decisions, "forgotten once withdrawn"

    again = World("10.0.0.1 = always\n10.0.0.2 = always\n", chain())
    again.at(1.0, parse_rules("10.0.0.1 = always\n"))
    again.at(2.0, parse_rules("10.0.0.1 = always\n10.0.0.2 = always\n"))
    back = again.plan.decisions[route("10.0.0.2")]
    assert back.attributes == PLAIN
    assert back.until is None
    assert again.plan.policies[shutdown.NAME] is None
    assert again.plan.transitions == ()


def test_a_drain_leaves_gracefully_and_a_degraded_route_stays_degraded_while_it_leaves() -> None:
    """`rhid drain` is planned: 65535:0 first; a degraded route keeps its state and its attributes."""
    world = World(
        "10.0.0.1 = always\n10.0.0.2 = all(b:a) degraded any(b:b) med 200 community 65000:666\n",
        (plan.draining, *chain()),
    )
    world.health("a", False)
    world.at(1.0)
    assert world.plan.decisions[route("10.0.0.2")].state is RouteState.DEGRADED
    drains = {r: Drain("maintenance", "t") for r in world.rules.routes}
    world.intents = replace(world.intents, drains=drains)
    world.at(2.0)
    assert world.announced() == {"10.0.0.1/32", "10.0.0.2/32"}
    leaving = world.plan.decisions[route("10.0.0.2")]
    assert leaving.state is RouteState.DEGRADED
    assert leaving.attributes == Attributes(med=200, communities=((65000, 666), (65535, 0)))
    assert world.plan.reason(route("10.0.0.1")).endswith("then: drained since t: 'maintenance'")
    assert world.plan.transitions == ()
    world.at(7.0)
    assert world.announced() == set()


def test_a_planned_withdrawal_of_a_withdrawn_route_waits_for_nothing() -> None:
    """Only an announced route is kept a while: a stop does not announce a withdrawn one."""
    world = World("10.0.0.1 = never\n", chain())
    world.intents = replace(world.intents, stopping=STOP)
    world.at(1.0)
    assert world.announced() == set()
    assert world.plan.wake_at == math.inf


def test_no_graceful_shutdown_with_zero_seconds() -> None:
    """--graceful-shutdown 0: the stop withdraws at once, as before."""
    world = World("10.0.0.1 = always\n", chain(gs=shutdown.Config(0.0)))
    world.intents = replace(world.intents, stopping=STOP)
    world.at(1.0)
    assert world.announced() == set()


def test_marks_are_added_to_the_routes_attributes_once() -> None:
    """degrade adds 65535:0 to the communities a route has and sets the marks, idempotently."""
    marks = shutdown.Marks(local_pref=0, med=4000)
    base = Attributes(med=10, communities=((65000, 1),))
    marked = shutdown.degrade(base, marks)
    assert marked == Attributes(med=4000, local_pref=0, communities=((65000, 1), (65535, 0)))
    assert shutdown.degrade(marked, marks) == marked
    assert shutdown.degrade(base) == replace(base, communities=((65000, 1), (65535, 0)))
    assert marks.words() == "community 65535:0, local-pref 0, MED 4000"
    world = World("10.0.0.1 = always\n", chain(gs=shutdown.Config(5.0, marks)))
    world.intents = replace(world.intents, stopping=STOP)
    world.at(1.0)
    assert world.plan.decisions[route("10.0.0.1")].attributes == shutdown.degrade(PLAIN, marks)
    assert "local-pref 0, MED 4000" in world.plan.reason(route("10.0.0.1"))


# ---- flap damping -------------------------------------------------------------------------------


def flap(
    world: World, name: str, start: float, every: float, until: float
) -> tuple[float, list[tuple[str, str]]]:
    """Flip backend `name` down and up every `every` seconds from `start` to `until`, re-planning
    each time: the time of the last flip, and every change of the plan."""
    now, up, changes = start, False, []
    while now <= until:
        world.health(name, up)
        world.at(now)
        changes.extend(world.moved())
        up = not up
        now = round(now + every, 6)
    return now - every, changes


def test_a_backend_flapping_every_0_3_s_is_suppressed_at_the_third_withdrawal_then_reused() -> None:
    """W A W A W, then no more announcements while it flaps, then one when the penalty decays."""
    world = World("10.0.0.1 = all(b:a)\n", chain(hold=None))
    last, changes = flap(world, "a", 1.0, 0.3, 20.0)
    assert changes == [("10.0.0.1/32", "withdrawn"), ("10.0.0.1/32", "announced")] * 2 + [
        ("10.0.0.1/32", "withdrawn")
    ]
    flaps = damping.damped(world.plan.policies[damping.NAME])[route("10.0.0.1")]
    assert flaps.suppressed
    assert flaps.penalty == pytest.approx(DAMPING.ceiling, rel=0.05)
    assert flaps.withdrawals == 32  # down at 1.0, 1.6, ... 19.6
    world.health("a", True)
    world.at(last + 0.3)
    assert world.announced() == set()
    decision = world.plan.decisions[route("10.0.0.1")]
    assert decision.note is not None
    assert decision.note.startswith("flap damping: withdrawn 32 times")
    assert decision.note.endswith("its rule says announce: all: b:a is up (HAProxy last said 'UP')")
    reuse_at = world.plan.wake_at
    assert decision.until == reuse_at
    assert reuse_at <= last + DAMPING.max_suppress + 1e-6, "never longer than --damping-max-suppress"
    assert reuse_at >= last + DAMPING.max_suppress - 1.0
    world.at(reuse_at - 0.01)
    assert world.announced() == set()
    world.at(reuse_at)
    assert world.announced() == {"10.0.0.1/32"}
    assert [line.fields["prefix"] for line in world.events("route.reused")] == ["10.0.0.1/32"]


def test_the_damped_line_says_the_penalty_and_when() -> None:
    """route.damped is a warning with the penalty, the withdrawals and the seconds to reuse."""
    world = World("10.0.0.1 = all(b:a)\n", chain(hold=None))
    lines: list[LogLine] = []
    for now in (1.0, 1.3, 1.6, 1.9, 2.2):
        world.health("a", now in (1.3, 1.9))
        world.at(now)
        lines += world.events("route.damped")
    assert len(lines) == 1
    assert lines[0].level == "warning"
    assert lines[0].fields["withdrawals"] == 3
    assert lines[0].fields["penalty"] == pytest.approx(2.95, abs=0.01)
    assert lines[0].fields["reuse_in"] == pytest.approx(30 * math.log2(2.95), abs=0.5)


def test_a_single_failure_and_even_two_are_never_damped() -> None:
    """One or two withdrawals: the route comes back as soon as health does."""
    world = World("10.0.0.1 = all(b:a)\n", chain(hold=None))
    for now in (1.0, 2.0, 3.0, 4.0):
        world.health("a", now in (2.0, 4.0))
        world.at(now)
        assert ("10.0.0.1/32" in world.announced()) is (now in (2.0, 4.0))


def test_a_damped_route_is_forgotten_once_its_penalty_has_decayed() -> None:
    """An old withdrawal stops counting: the state empties below half the reuse penalty."""
    world = World("10.0.0.1 = all(b:a)\n", chain(hold=None))
    world.health("a", False)
    world.at(1.0)
    world.health("a", True)
    world.at(2.0)
    assert route("10.0.0.1") in damping.damped(world.plan.policies[damping.NAME])
    world.at(2.0 + 30.0 + 0.1)  # penalty 1 halves once: below 0.5
    assert world.plan.policies[damping.NAME] is None


def test_planned_and_unknown_withdrawals_are_not_flaps() -> None:
    """A stop, a reload's removal and a verdict not known yet add no penalty."""
    world = World("10.0.0.1 = all(b:a)\n10.0.0.2 = always\n", chain(hold=None, gs=None))
    world.at(1.0, parse_rules("10.0.0.1 = all(b:a)\n"))
    del world.up[backend("a")]  # not known any more: held
    world.at(2.0)
    assert world.plan.decisions[route("10.0.0.1")].held
    world.intents = replace(world.intents, stopping=STOP)
    world.at(3.0)
    assert world.announced() == set()
    assert world.plan.policies[damping.NAME] is None


def test_a_suppressed_route_still_down_when_reused_stays_withdrawn() -> None:
    """Reuse follows the rule: a route whose backend is down when its penalty decays stays out."""
    world = World("10.0.0.1 = all(b:a)\n", chain(hold=None))
    for now in (1.0, 1.3, 1.6, 1.9, 2.2):
        world.health("a", now in (1.3, 1.9))
        world.at(now)
    reuse_at = world.plan.wake_at
    assert world.announced() == set()
    world.at(reuse_at)
    assert world.announced() == set()
    assert len(world.events("route.reused")) == 1
    world.health("a", True)
    world.at(reuse_at + 1)
    assert world.announced() == {"10.0.0.1/32"}


def test_damping_refuses_parameters_that_cannot_work() -> None:
    """reuse must be below suppress, and the ceiling must reach suppress."""
    with pytest.raises(ValueError, match="0 < reuse < suppress"):
        damping.Config(30.0, 1.0, 1.0, 120.0)
    with pytest.raises(ValueError, match="never reaches suppress"):
        damping.Config(30.0, 2.5, 1.0, 10.0)
    assert damping.damped("not a state") == {}
    assert DAMPING.reuse_after(0.5) == 0.0


# ---- the blast-radius guard ---------------------------------------------------------------------

TWENTY = "".join(f"10.0.1.{i} = all(b:shared)\n" for i in range(1, 19)) + "".join(
    f"10.0.1.{i} = all(b:shared,b:two)\n" for i in (19, 20)
)
ALL = {f"10.0.1.{i}/32" for i in range(1, 21)}


def test_a_backend_two_routes_use_withdraws_them_at_once() -> None:
    """2 of 20 routes: below the share and the minimum, so the guard lets it through."""
    world = World(TWENTY, chain())
    world.health("two", False)
    world.at(1.0)
    assert world.announced() == ALL - {"10.0.1.19/32", "10.0.1.20/32"}
    assert world.events("guard.holding") == []


def test_the_shared_backend_down_holds_every_route_for_the_hold_then_withdraws() -> None:
    """20 of 20 at once while HAProxy answers: held, marked, logged critical; withdrawn after the hold."""
    world = World(TWENTY, chain())
    world.health("shared", False)
    made = world.at(1.0)
    assert world.announced() == ALL
    assert made.transitions == ()
    held = made.decisions[route("10.0.1.1")]
    assert held.attributes == MARKED
    assert held.until == 61.0
    assert made.reason(route("10.0.1.1")).startswith("blast-radius guard: health would withdraw this route")
    assert made.reason(route("10.0.1.1")).endswith("all: b:shared is down (HAProxy last said 'DOWN')")
    [line] = world.events("guard.holding")
    assert line.level == "critical"
    assert line.fields["count"] == 20
    assert line.fields["announced"] == 20
    assert line.fields["routes"] == [f"vol1%10.0.1.{i}/32" for i in range(1, 11)]  # in address order
    assert line.fields["reasons"] == [
        "18 routes: all: b:shared is down (HAProxy last said 'DOWN')",
        "2 routes: all: b:shared is down (HAProxy last said 'DOWN'), b:two is up (HAProxy last said 'UP')",
    ]
    assert made.wake_at == 61.0
    state = guard.of(made.policies[guard.NAME])
    assert state.holding
    assert len(state.held) == 20
    assert state.since == 1.0
    world.at(60.9)
    assert world.announced() == ALL
    world.at(61.0)
    assert world.announced() == set()
    [released] = world.events("guard.released")
    assert released.level == "warning"
    assert released.fields["withdrawn"] == 20
    assert "outlasted the hold" in str(released.fields["why"])
    assert not guard.of(world.plan.policies[guard.NAME]).holding
    world.at(62.0)
    assert world.announced() == set(), "not held again"


def test_health_returning_during_a_hold_ends_it_without_a_flap() -> None:
    """The routes never left BIRD: no transition at all, and an info line."""
    world = World(TWENTY, chain())
    world.health("shared", False)
    world.at(1.0)
    world.health("shared", True)
    made = world.at(5.0)
    assert world.announced() == ALL
    assert made.transitions == ()
    assert made.decisions[route("10.0.1.1")].attributes == PLAIN
    [released] = world.events("guard.released")
    assert (released.level, released.fields["why"], released.fields["withdrawn"]) == (
        "info",
        "health returned",
        0,
    )
    assert made.wake_at == math.inf


def test_part_of_a_hold_recovering_and_more_routes_failing_join_the_hold() -> None:
    """A held route whose health returns leaves the hold; new withdrawals during it are held too."""
    rules = "".join(f"10.0.2.{i} = all(b:a)\n" for i in range(1, 9)) + "".join(
        f"10.0.3.{i} = all(b:b)\n" for i in range(1, 5)
    )
    world = World(rules, chain(damp=None))
    world.health("a", False)
    world.at(1.0)
    assert len(world.announced()) == 12
    world.health("b", False)
    world.at(2.0)
    [grown] = world.events("guard.holding")
    assert (grown.fields["count"], grown.fields["added"]) == (12, 4)
    world.health("a", True)
    world.at(3.0)
    assert world.plan.decisions[route("10.0.2.1")].attributes == PLAIN
    assert len(guard.of(world.plan.policies[guard.NAME]).held) == 4
    world.at(61.0)
    assert world.announced() == {f"10.0.2.{i}/32" for i in range(1, 9)}


def test_guard_release_withdraws_the_held_routes_at_once() -> None:
    """`rhid guard release` (a new release intent) ends the hold now; an old one never does."""
    world = World(TWENTY, chain())
    world.intents = replace(world.intents, guard_releases=1)  # asked before: nothing held then
    world.at(0.5)
    world.health("shared", False)
    world.at(1.0)
    assert world.announced() == ALL
    world.intents = replace(world.intents, guard_releases=2)
    world.at(2.0)
    assert world.announced() == set()
    assert world.events("guard.released")[0].fields["why"] == "rhid guard release"


def test_a_dead_haproxy_bypasses_the_guard() -> None:
    """Nothing is held while HAProxy does not answer, and a hold ends when it stops answering."""
    world = World(TWENTY, chain())
    world.intents = replace(world.intents, haproxy_answers=False)
    world.health("shared", False)
    world.at(1.0)
    assert world.announced() == set()

    held = World(TWENTY, chain())
    held.health("shared", False)
    held.at(1.0)
    held.intents = replace(held.intents, haproxy_answers=False)
    held.at(2.0)
    assert held.announced() == set()
    assert "HAProxy does not answer" in str(held.events("guard.released")[0].fields["why"])


def test_a_node_with_few_routes_behaves_as_without_the_guard() -> None:
    """All of 5 routes at once is not more than --guard-min 5: withdrawn at once."""
    world = World("".join(f"10.0.4.{i} = all(b:a)\n" for i in range(1, 6)), chain())
    world.health("a", False)
    world.at(1.0)
    assert world.announced() == set()


def test_withdrawals_within_the_window_count_together() -> None:
    """8 of 20, then 4 more 2 s later: 12 of 20 within --guard-window, so the 4 are held."""
    rules = "".join(f"10.0.5.{i} = all(b:a)\n" for i in range(1, 9))
    rules += "".join(f"10.0.6.{i} = all(b:b)\n" for i in range(1, 5))
    rules += "".join(f"10.0.7.{i} = all(b:c)\n" for i in range(1, 9))
    world = World(rules, chain())
    world.health("a", False)
    world.at(1.0)
    assert len(world.announced()) == 12
    world.health("b", False)
    world.at(3.0)
    assert len(world.announced()) == 12, "held"
    [line] = world.events("guard.holding")
    assert line.fields["count"] == 4

    later = World(rules, chain())
    later.health("a", False)
    later.at(1.0)
    later.health("b", False)
    later.at(12.0)  # beyond the window: 4 of 12 alone
    assert len(later.announced()) == 8


def test_a_hold_without_degrading_keeps_the_attributes() -> None:
    """--guard-degraded off: held routes stay exactly as they were announced."""
    world = World(TWENTY, chain(hold=replace(GUARD, degraded=False)))
    world.health("shared", False)
    world.at(1.0)
    assert world.plan.decisions[route("10.0.1.1")].attributes == PLAIN
    assert guard.of("not a state") is guard.IDLE


# ---- how they meet ------------------------------------------------------------------------------


def test_a_damped_route_stays_withdrawn_during_a_guard_hold_and_held_routes_gain_no_penalty() -> None:
    """The guard never announces a suppressed route, nor counts it; damping never counts a held one."""
    rules = "10.0.8.1 = all(b:flappy,b:shared)\n" + "".join(
        f"10.0.8.{i} = all(b:shared)\n" for i in range(2, 12)
    )
    world = World(rules, chain())
    for now in (1.0, 1.3, 1.6, 1.9, 2.2):  # three withdrawals: suppressed
        world.health("flappy", now in (1.3, 1.9))
        world.at(now)
    world.health("flappy", True)
    world.at(2.5)
    assert "10.0.8.1/32" not in world.announced()
    world.health("shared", False)
    world.at(3.0)
    [line] = world.events("guard.holding")
    assert (line.fields["count"], line.fields["announced"]) == (10, 10), "the damped route is not counted"
    assert world.announced() == {f"10.0.8.{i}/32" for i in range(2, 12)}
    world.health("shared", True)
    world.at(10.0)
    damped = damping.damped(world.plan.policies[damping.NAME])
    assert set(damped) == {route("10.0.8.1")}, "held routes never reached BIRD as withdrawals"
    assert "10.0.8.1/32" not in world.announced(), "still suppressed"
    world.health("shared", False)
    world.at(11.0)
    world.at(71.0)  # the hold outlasted: withdrawn, and now a flap each
    damped = damping.damped(world.plan.policies[damping.NAME])
    assert len(damped) == 11
    assert damped[route("10.0.8.2")].withdrawals == 1


def test_a_stop_during_a_guard_hold_withdraws_the_held_routes_at_once() -> None:
    """Held routes are health's withdrawals: the stop withdraws them; healthy ones leave gracefully."""
    world = World(TWENTY + "10.0.9.1 = always\n", chain())
    world.health("shared", False)
    world.at(1.0)
    assert len(world.announced()) == 21
    world.intents = replace(world.intents, stopping=STOP)
    world.at(2.0)
    assert world.announced() == {"10.0.9.1/32"}
    assert world.events("guard.released")[0].fields["why"] == "rhid is stopping"


def test_the_stop_marks_only_what_the_rules_would_announce_as_planned() -> None:
    """plan.stopping: an announced route's withdrawal is planned, for the stop; health's stays health's."""
    rules = parse_rules("10.0.0.1 = always\n10.0.0.2 = never\n")
    made = plan.decide(plan.initial(set(), set(), 0.0), rules, {}, Intents(stopping=STOP), 0.0)
    planned = {str(r.prefix): d.planned for r, d in made.decisions.items()}
    assert planned == {"10.0.0.1/32": True, "10.0.0.2/32": False}
    assert made.reason(Route("vol1", rules.routes[1].prefix)) == "never()", "health's own reason"
    assert all(isinstance(d, Decision) and d.state is RouteState.WITHDRAWN for d in made.decisions.values())


def routes_of(lines: Iterable[LogLine]) -> list[object]:
    return [line.fields.get("prefix") for line in lines]


def test_per_route_lines_are_capped_like_transitions() -> None:
    """A policy's per-route lines stop at the limit, then say how many more."""
    items: list[tuple[Route, dict[str, object]]] = [(route(f"10.1.0.{i}"), {"x": i}) for i in range(1, 6)]
    lines = plan.route_lines("route.damped", "warning", items, limit=3)
    assert routes_of(lines) == ["10.1.0.1/32", "10.1.0.2/32", "10.1.0.3/32", None]
    assert lines[-1].fields == {"count": 2, "more": plan.MORE}
