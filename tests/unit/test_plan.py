"""The planner: one pure decision of what every route should be, and why."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from rhid.health import INITIAL, Health, ProxyState
from rhid.model import Attributes, Channel, Proxy, ProxyKind, Route, route_order
from rhid.plan import NO_INTENTS, Intents, RouteState, decide, explain, initial
from rhid.rules import parse_rules

B = ProxyKind.BACKEND
F = ProxyKind.FRONTEND
N = ipaddress.ip_network
V4 = Channel("vol1", 4)


def states(up: Mapping[Proxy, bool | None]) -> dict[Proxy, ProxyState]:
    """Health states that say what `up` says (None: never read)."""
    return {
        proxy: INITIAL if value is None else ProxyState(Health.UP if value else Health.DOWN, last_status="x")
        for proxy, value in up.items()
    }


def test_all_any_never_always_per_table_and_family() -> None:
    """The plan announces exactly the routes whose condition holds, per table and family."""
    rules = parse_rules(
        "10.0.0.1 = all(b:a,b:b)\n"
        "10.0.0.2 = any(b:a,f:c)\n"
        "10.0.0.3 = never(b:a)\n"
        "vol2%2001:db8::4 = always\n"
        "2001:db8::5 = all(f:c)\n"
    )
    up = {Proxy(B, "a"): True, Proxy(B, "b"): False, Proxy(F, "c"): False}
    assert decide(initial(set(), set(), 0.0), rules, states(up), NO_INTENTS, 0.0).prefixes() == {
        V4: frozenset({N("10.0.0.2/32")}),
        Channel("vol1", 6): frozenset(),
        Channel("vol2", 6): frozenset({N("2001:db8::4/128")}),
    }
    up[Proxy(B, "b")] = True
    assert (
        N("10.0.0.1/32")
        in decide(initial(set(), set(), 0.0), rules, states(up), NO_INTENTS, 0.0).prefixes()[V4]
    )


def test_a_proxy_never_read_holds_its_route_as_it_was() -> None:
    """A proxy missing from the health map is not known yet: its route is held, announced or not."""
    rules = parse_rules("10.0.0.1 = any(b:ghost)\n")
    route = rules.routes[0]
    withdrawn = decide(initial(set(), set(), 0.0), rules, {}, NO_INTENTS, 0.0)
    assert withdrawn.prefixes() == {V4: frozenset()}
    assert withdrawn.decisions[route].held
    announced = decide(initial({route}, set(), 0.0), rules, {}, NO_INTENTS, 0.0)
    assert announced.prefixes() == {V4: frozenset({route.prefix})}
    assert announced.decisions[route].state is RouteState.ANNOUNCED
    assert announced.reason(route).startswith("not known yet, kept as it was: any: b:ghost is unknown")


def test_routes_and_files_no_rule_names_any_more_are_withdrawn() -> None:
    """An announced route no rule names is withdrawn, and an owned channel no rule uses is emptied."""
    rules = parse_rules("10.0.0.1 = always\n")
    stale = Route("old", N("10.9.0.1/32"))
    decided = decide(initial({stale}, {Channel("old", 4)}, 0.0), rules, {}, NO_INTENTS, 0.0)
    assert decided.prefixes() == {V4: frozenset({N("10.0.0.1/32")}), Channel("old", 4): frozenset()}
    assert decided.reason(stale) == "no rule names this route any more"
    assert decided.reason(Route("other", N("10.9.0.2/32"))) == "no rule names this route any more"


def test_a_backend_and_a_frontend_of_one_name_are_distinct() -> None:
    """`b:www` and `f:www` are different proxies."""
    rules = parse_rules("10.0.0.1 = all(b:www)\n")
    up = {Proxy(F, "www"): True, Proxy(B, "www"): False}
    assert decide(initial(set(), set(), 0.0), rules, states(up), NO_INTENTS, 0.0).prefixes() == {
        V4: frozenset()
    }


def test_withdrawn_plan_keeps_the_channels_and_says_why() -> None:
    """A stop's plan withdraws every route, for the reason given, and still owns every file."""
    rules = parse_rules("10.0.0.1 = always\n2001:db8::1 = always\n")
    stopping = decide(initial(set(), set(), 0.0), rules, {}, Intents(stopping="rhid stopping"), 0.0)
    assert stopping.prefixes() == {V4: frozenset(), Channel("vol1", 6): frozenset()}
    assert {stopping.reason(route) for route in rules.routes} == {"rhid stopping"}
    assert stopping.announced == 0


def test_reasons_name_each_target_and_what_haproxy_said() -> None:
    """The reason reads like the operator's question: each target's health and HAProxy's words."""
    rules = parse_rules("10.0.0.1 = all(b:a,f:w)\n10.0.0.2 = never\n")
    health = {
        Proxy(B, "a"): ProxyState(Health.DOWN, last_status="DOWN"),
        Proxy(F, "w"): ProxyState(Health.UP, last_status="OPEN"),
    }
    decided = decide(initial(set(), set(), 0.0), rules, health, NO_INTENTS, 0.0)
    assert decided.reason(rules.routes[0]) == (
        "all: b:a is down (HAProxy last said 'DOWN'), f:w is up (HAProxy last said 'OPEN')"
    )
    assert decided.reason(rules.routes[1]) == "never()"
    assert explain(None, {}) == "no rule names this route any more"


def test_routes_sort_by_table_family_address_and_length() -> None:
    """`rhid status` lists routes by table, then IPv4 before IPv6, then address and length."""
    routes = [
        Route("vol2", N("10.0.0.0/8")),
        Route("vol1", N("2001:db8::/32")),
        Route("vol1", N("10.0.0.0/16")),
        Route("vol1", N("10.0.0.0/8")),
    ]
    assert sorted(routes, key=route_order) == [routes[3], routes[2], routes[1], routes[0]]


def test_a_degraded_rule_announces_with_its_attributes_and_logs_its_transitions() -> None:
    """Main false, degraded true: the route is announced with the clause's attributes (in the file),
    and its transitions read announced -> degraded -> withdrawn."""
    rules = parse_rules("10.0.0.1 = all(b:a) degraded any(b:b) med 200 community 65000:666\n")
    route = rules.routes[0]
    a, b = Proxy(B, "a"), Proxy(B, "b")
    first = decide(initial(set(), set(), 0.0), rules, states({a: True, b: True}), NO_INTENTS, 0.0)
    second = decide(first, rules, states({a: False, b: True}), NO_INTENTS, 1.0)
    third = decide(second, rules, states({a: False, b: False}), NO_INTENTS, 2.0)
    assert first.decisions[route].state is RouteState.ANNOUNCED
    assert second.decisions[route].state is RouteState.DEGRADED
    [attributes] = second.files()[V4].values()
    assert (attributes.med, attributes.communities) == (200, ((65000, 666),))
    assert [(t.before, t.after, t.event) for t in (*second.transitions, *third.transitions)] == [
        (RouteState.ANNOUNCED, RouteState.DEGRADED, "route.degraded"),
        (RouteState.DEGRADED, RouteState.WITHDRAWN, "route.withdrawn"),
    ]
    assert second.since[route] == 1.0


def test_an_unknown_verdict_holds_a_degraded_route_or_degrades_what_can_no_longer_be_plain() -> None:
    """Not known yet: a degraded route stays degraded; a plain route whose main condition is false
    but whose degraded condition is unknown becomes degraded, not withdrawn."""
    rules = parse_rules("10.0.0.1 = all(b:a) degraded any(b:b) med 200\n")
    route = rules.routes[0]
    a, b = Proxy(B, "a"), Proxy(B, "b")
    degraded = initial({route: Attributes(med=200)}, set(), 0.0)
    assert degraded.decisions[route].state is RouteState.DEGRADED
    held = decide(degraded, rules, {}, NO_INTENTS, 1.0)
    assert held.decisions[route].held
    assert held.decisions[route].state is RouteState.DEGRADED
    assert held.files()[V4][route.prefix].med == 200
    plain = decide(initial({route}, set(), 0.0), rules, states({a: False, b: None}), NO_INTENTS, 1.0)
    assert plain.decisions[route].state is RouteState.DEGRADED
    assert plain.decisions[route].held
