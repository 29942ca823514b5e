"""`rhid status` in operator words: documents built by `status.document` from real facts, fed to the
renderer and to `problems` (one schema: the one the daemon serves)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rhid import guard, health, plan, shutdown, status
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, Proxy, ProxyKind, StreamState
from rhid.reconcile import BirdReport
from rhid.rulefile import ReloadResult
from rhid.rules import parse_rules
from rhid.stats import ABSENT, Observation, ProxyStatus

RULES = parse_rules("10.0.0.1 = all(b:a)\n10.0.0.2 = any(b:a,b:gone)\n", "/etc/x.cfg")
A = Proxy(ProxyKind.BACKEND, "a")
GONE = Proxy(ProxyKind.BACKEND, "gone")
THRESHOLDS = health.Thresholds(fall=3, rise=1)
HAPROXY = HAProxyReport(
    "/h.sock", HAProxyState.REACHABLE, None, None, (), StreamReport(StreamState.OFF, None, 0, 0)
)
BIRD = BirdReport("/b.ctl", BirdState.REACHABLE, "BIRD 2.0.12 ready.", True, (), None, None, ())


def observed(state: health.ProxyState, *statuses: ProxyStatus, now: float = 1.0) -> health.ProxyState:
    for one in statuses:
        state, _ = health.step(state, one, now, THRESHOLDS)
    return state


UP = ProxyStatus(Observation.UP, "UP")
DOWN = ProxyStatus(Observation.DOWN, "DOWN")
LIVE = {A: observed(health.INITIAL, UP), GONE: observed(health.INITIAL, UP)}


def document(
    *,
    live: Mapping[Proxy, health.ProxyState] = LIVE,
    planned: Mapping[Proxy, health.ProxyState] = LIVE,
    wanted: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    made = plan.decide(plan.initial(set(), set(), 1.0), RULES, planned, plan.NO_INTENTS, 1.0)
    facts = status.Facts(
        version="0", pid=7, started=0.0, summary="s", rules=RULES, rules_loaded=0.0,
        reload_result=ReloadResult("t"), plan=made, states=live, since={}, thresholds=THRESHOLDS,
        haproxy=HAPROXY, bird=BIRD, now=10.0, wall_now=1_000_000.0,
    )  # fmt: skip
    facts = replace(facts, **changes)
    return status.document(facts, ipaddress.ip_network(wanted) if wanted else None)


def test_a_healthy_daemon_has_no_problem() -> None:
    """Everything up and both peers fine: no PROBLEM line, and `problems` (exit 4) is empty."""
    made = document()
    assert status.problems(made) == []
    assert "PROBLEM" not in status.render(made)
    assert "ANNOUNCED" in status.render(made)


def test_an_unreachable_bird_is_never_called_in_sync() -> None:
    """With BIRD unreachable the line says so and that the files are current, never 'in sync'."""
    text = status.render(
        document(bird=replace(BIRD, state=BirdState.UNREACHABLE, problems=("BIRD is unreachable",)))
    )
    bird_line = next(line for line in text.splitlines() if line.startswith("bird:"))
    assert "in sync" not in bird_line
    assert "unreachable" in bird_line
    assert "PROBLEM: BIRD is unreachable" in text


def test_each_edge_problem_and_daemon_note_is_a_problem() -> None:
    """What the edges and the daemon report as problems is listed, in order, and rendered as PROBLEM lines."""
    made = document(
        haproxy=replace(HAPROXY, problems=("HAProxy: permission denied",)),
        bird=replace(BIRD, in_sync=False, problems=("BIRD lacks protocol vol1",)),
        notes=("/etc/x.cfg on disk is invalid",),
    )
    assert status.problems(made) == [
        "/etc/x.cfg on disk is invalid",
        "HAProxy: permission denied",
        "BIRD lacks protocol vol1",
    ]
    text = status.render(made)
    assert "PROBLEM: HAProxy: permission denied" in text
    assert "reachable, NOT in sync" in text


def test_live_health_and_counters_are_shown_between_re_plans() -> None:
    """A target whose fall count runs shows HAProxy's latest word and its count, not the plan's."""
    falling = observed(LIVE[A], DOWN, DOWN)
    text = status.render(document(live={**LIVE, A: falling}))
    assert "HAProxy last said 'DOWN'; down 2/3" in text
    assert "b:a is up (HAProxy last said 'DOWN')" in text


def test_a_vanished_or_unknown_target_is_a_problem() -> None:
    """A proxy HAProxy no longer has, or never had, is a PROBLEM naming the rule lines."""
    vanished = observed(LIVE[GONE], ABSENT)
    assert vanished.vanished
    found = status.problems(document(live={**LIVE, GONE: vanished}))
    assert len(found) == 1
    assert "b:gone (line 2) vanished from HAProxy" in found[0]
    never = observed(health.INITIAL, ABSENT)
    found = status.problems(document(live={A: LIVE[A], GONE: never}))
    assert found == ["b:gone (line 2): HAProxy has no such proxy; it counts as down"]


def test_each_route_says_why_and_its_targets() -> None:
    """Every route line is followed by the plan's reason and each target's counters."""
    text = status.render(document(planned={}))
    assert "      why: not known yet, kept as it was: all: b:a is up (HAProxy last said 'UP')" in text
    assert "down 0/3, up 1/1" in text
    assert "(line 1: vol1%10.0.0.1/32 = all(b:a))" in text


def test_one_route_is_explained_by_address() -> None:
    """`rhid status ADDRESS` lists only the routes that contain it."""
    made = document(wanted="10.0.0.2")
    assert [route["prefix"] for route in made["routes"]] == ["10.0.0.2/32"]


def test_an_error_reply_renders_as_one_line() -> None:
    """The daemon's error document is one 'rhid:' line."""
    assert status.render({"error": "bad request"}) == "rhid: bad request"


def test_rhids_own_words_are_never_quoted_as_haproxys() -> None:
    """With HAProxy unreachable, a target reads 'HAProxy unreachable', never "HAProxy says 'HAProxy ...'"."""
    unreachable = ProxyStatus(Observation.DOWN, "HAProxy unreachable")
    dead = observed(LIVE[A], unreachable, unreachable, unreachable)
    text = status.render(document(live={**LIVE, A: dead}, planned={**LIVE, A: dead}))
    assert "HAProxy unreachable: HAProxy said nothing of it; down 3/3" in text
    assert "said 'HAProxy" not in text
    assert "b:a is down (HAProxy unreachable: HAProxy said nothing of it)" in text
    never = status.render(document(live={}, planned={}))
    assert "not polled yet" in never
    assert "'never polled'" not in never


def guarded_plan() -> tuple[plan.Plan, Any]:
    """Twelve routes of one backend whose health would withdraw them all at once: the guard holds."""
    rules = parse_rules("".join(f"10.0.9.{i} = all(b:a)\n" for i in range(1, 13)), "/etc/x.cfg")
    chain = (plan.stopping, guard.policy(guard.Config(50, 5, 60.0, 10.0)))
    intents = plan.Intents(haproxy_answers=True)
    up = {A: observed(health.INITIAL, UP)}
    made = plan.decide(plan.initial(set(), set(), 1.0), rules, up, intents, 1.0, chain=chain)
    down = {A: observed(up[A], DOWN, DOWN, DOWN)}
    return plan.decide(made, rules, down, intents, 2.0, chain=chain), rules


def test_a_guard_hold_is_a_problem_with_its_routes_reasons_and_end() -> None:
    """rhid status shows the hold: a PROBLEM naming the routes, why, until when, and the release."""
    made, rules = guarded_plan()
    shown = document(plan=made, rules=rules)
    assert shown["guard"]["holding"] == 12
    assert shown["guard"]["routes"][:2] == ["vol1%10.0.9.1/32", "vol1%10.0.9.2/32"]
    [problem] = status.problems(shown)
    assert problem.startswith("the blast-radius guard holds 12 route(s) announced that health would withdraw")
    assert "vol1%10.0.9.10/32 ..." in problem
    assert "12 routes: all: b:a is down (HAProxy last said 'DOWN')" in problem
    assert problem.endswith("or run `rhid guard release` to withdraw them now")
    until = status.wall_time(62.0, 10.0, 1_000_000.0)
    assert f"withdrawn at {until}" in problem
    text = status.render(shown)
    assert f" until {until}  (line 1: vol1%10.0.9.1/32 = all(b:a))" in text
    assert "why: blast-radius guard: health would withdraw this route with 11 others" in text
    assert document()["guard"] is None


def test_a_route_no_rule_names_under_graceful_shutdown_is_listed() -> None:
    """After a reload removed its rule, a route still announced (leaving gracefully) is shown."""
    chain = (plan.stopping, shutdown.policy(shutdown.Config(5.0)))
    before = plan.decide(plan.initial(set(), set(), 1.0), RULES, LIVE, plan.NO_INTENTS, 1.0, chain=chain)
    fewer = parse_rules("10.0.0.1 = all(b:a)\n", "/etc/x.cfg")
    made = plan.decide(before, fewer, LIVE, plan.NO_INTENTS, 2.0, chain=chain)
    shown = document(plan=made, rules=fewer)
    leaving = shown["routes"][1]
    assert (leaving["prefix"], leaving["rule"], leaving["announced"]) == ("10.0.0.2/32", None, True)
    assert leaving["until"] == status.wall_time(7.0, 10.0, 1_000_000.0)
    text = status.render(shown)
    assert "(no rule any more)" in text
    assert (shown["announced"], shown["withdrawn"]) == (2, 0), "the leaving route is no withdrawn rule"
    assert "why: graceful shutdown (RFC 8326)" in text
    assert status.problems(shown) == []
