"""The incremental plan: one change among many re-decides only what it touches, and the result is
the plan a full decide gives, field for field (decisions, transitions, since, wake_at, lines,
policies' states, files), whatever the rules, health, intents and time; and the full decide is
the one before the memo (an oracle that calls each policy whole)."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from rhid import damping, guard, plan, shutdown
from rhid.drain import Drain
from rhid.health import Health, ProxyState, TermState
from rhid.model import PLAIN, Channel, LogLine, Proxy, ProxyKind, Route, ServerTerm, Threshold, route_order
from rhid.plan import Decision, Decisions, Intents, Plan, RouteState, Step
from rhid.rules import Facts, Fate, Outcome, Rule, RuleSet, evaluate, parse_rules

BACKENDS = [Proxy(ProxyKind.BACKEND, f"b{i}") for i in range(5)]
PREFIXES = [f"192.0.2.{i}" for i in range(8)] + ["2001:db8::1", "vol2%192.0.2.1"]
TERMS = [ServerTerm(BACKENDS[0], Threshold(2)), ServerTerm(BACKENDS[1], Threshold(50, percent=True))]
STATUSES = {Health.UP: ("UP", "UP 1/2"), Health.DOWN: ("DOWN", "DOWN 0/2"), Health.UNKNOWN: ("no check",)}


def b(i: int) -> str:
    return f"b:b{i}"


conditions = st.one_of(
    st.lists(st.integers(0, 4), min_size=1, max_size=3).map(lambda xs: f"all({','.join(map(b, xs))})"),
    st.lists(st.integers(0, 4), min_size=1, max_size=3).map(lambda xs: f"any({','.join(map(b, xs))})"),
    st.integers(0, 4).map(lambda x: f"not({b(x)})"),
    st.lists(st.integers(0, 4), min_size=2, max_size=3).map(lambda xs: f"atleast(2,{','.join(map(b, xs))})"),
    st.sampled_from(["all(b:b0>=2)", "any(b:b1>=50%,b:b2)", "never", "always"]),
)
clauses = st.tuples(conditions, st.one_of(st.none(), st.integers(0, 4))).map(
    lambda t: t[0] + ("" if t[1] is None else f" degraded any({b(t[1])}) med 200")
)


def rule_text(clauses: list[str], owners: list[int]) -> RuleSet:
    """Each prefix in the rule `owners` names (a prefix in one rule only; -1: none), in file order."""
    lines = []
    for index, clause in enumerate(clauses):
        mine = [prefix for prefix, owner in zip(PREFIXES, owners, strict=True) if owner == index]
        if mine:
            lines.append(f"{','.join(mine)} = {clause}")
    return parse_rules("\n".join(lines) or f"{PREFIXES[0]} = {clauses[0]}")


rule_files = st.builds(
    rule_text,
    st.lists(clauses, min_size=1, max_size=5),
    st.lists(st.integers(-1, 4), min_size=len(PREFIXES), max_size=len(PREFIXES)),
)


def proxy_state(health: Health, status: int) -> ProxyState:
    words = STATUSES[health]
    return ProxyState(health, last_status=words[status % len(words)], seen=health is not Health.UNKNOWN)


health_moves = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(list(Health)), st.integers(0, 1), st.booleans()),
    max_size=3,
)
term_moves = st.lists(st.tuples(st.integers(0, 1), st.sampled_from(list(Health))), max_size=2)
intent_moves = st.one_of(
    st.none(),
    st.sampled_from(["stop", "immediately", "release", "answers", "silent", "drain", "undrain"]),
)
events = st.tuples(
    health_moves, term_moves, intent_moves, st.sampled_from([0.0, 0.5, 3.0, 6.0, 11.0, 40.0, 130.0])
)


def opaque(
    decisions: Decisions,
    state: object,
    intents: Intents,
    now: float,
    *,
    before: Decisions,
    facts: Facts,
) -> Step:
    """A policy that is not incremental (a plain function): it marks one route's note by the clock."""
    del state, intents, before, facts
    first = next(iter(decisions), None)
    if first is None or int(now) % 2:
        return Step(decisions)
    out = dict(decisions)
    out[first] = replace(out[first], note=f"opaque at {now:g}")
    return Step(out)


def chains() -> st.SearchStrategy[tuple[plan.Policy, ...]]:
    marks = shutdown.Marks(local_pref=0)
    links: dict[str, plan.Policy] = {
        "draining": plan.draining,
        "stopping": plan.stopping,
        "guard": guard.policy(guard.Config(share=40, minimum=1, hold=20.0, window=10.0, marks=marks)),
        "damping": damping.policy(damping.Config(half_life=10.0, suppress=1.5, reuse=1.0, max_suppress=60.0)),
        "shutdown": shutdown.policy(shutdown.Config(5.0, marks)),
        "opaque": opaque,
    }
    order = ["draining", "stopping", "guard", "damping", "opaque", "shutdown"]
    return st.sets(st.sampled_from(order)).map(lambda kept: tuple(links[n] for n in order if n in kept))


class World:
    """One lineage of plans: health, terms and intents as the daemon keeps them."""

    def __init__(self, rules: RuleSet) -> None:
        self.states: dict[Proxy, ProxyState] = {}
        self.terms: dict[ServerTerm, TermState] = {}
        self.intents = Intents(haproxy_answers=True)
        self.rules = rules

    def apply(self, event: tuple[object, ...]) -> None:
        moves, term_changes, intent, _ = event
        assert isinstance(moves, list)
        assert isinstance(term_changes, list)
        states = dict(self.states)  # unchanged proxies keep their object, as health.observe does
        for index, health, status, forget in moves:
            if forget:
                states.pop(BACKENDS[index], None)
            else:
                states[BACKENDS[index]] = proxy_state(health, status)
        if moves:
            self.states = states
        if term_changes:
            terms = dict(self.terms)
            for index, health in term_changes:
                terms[TERMS[index]] = TermState(proxy_state(health, 0))
            self.terms = terms
        first = self.rules.routes[0]
        changes: dict[object, Intents] = {
            "stop": replace(self.intents, stopping="rhid stopping"),
            "immediately": replace(self.intents, immediately=True),
            "release": replace(self.intents, guard_releases=self.intents.guard_releases + 1),
            "answers": replace(self.intents, haproxy_answers=True),
            "silent": replace(self.intents, haproxy_answers=False),
            "drain": replace(self.intents, drains={first: Drain("maintenance", "2026-12-01T10:00:00")}),
            "undrain": replace(self.intents, drains={}),
        }
        self.intents = changes.get(intent, self.intents)


def reference(previous: Plan, world: World, now: float, *, chain: tuple[plan.Policy, ...]) -> Plan:
    """The plan as decide made it before it was incremental (ba25559's algorithm, each policy
    called whole): an oracle independent of the memo and of `plan.Local`'s shortcuts."""
    rules, states, intents, terms = world.rules, world.states, world.intents, world.terms
    facts = Facts(states, terms)
    before = previous.decisions
    decisions: dict[Route, Decision] = {}
    for rule in rules.rules:
        outcome = evaluate(rule, facts)
        for route in rule.routes:
            decisions[route] = held(rule, outcome, before.get(route))
    for route, decision in before.items():
        if route not in decisions and decision.announced:
            decisions[route] = Decision(RouteState.WITHDRAWN, None, planned=True)
    chained: Decisions = decisions
    policies: dict[str, object] = {}
    lines: list[LogLine] = []
    wake_at = math.inf
    for link in chain:
        whole = getattr(link, "step", link)  # a Local's own function; the guard's link, called whole
        step = whole(chained, previous.policies.get(link.__name__), intents, now, before=before, facts=facts)
        chained, policies[link.__name__] = step.decisions, step.state
        lines.extend(step.lines)
        wake_at = min(wake_at, step.wake_at)
    transitions: list[plan.Transition] = []
    since: dict[Route, float] = {}
    for route, decision in chained.items():
        kept = before.get(route)
        was = kept.state if kept is not None else RouteState.WITHDRAWN
        if was is not decision.state:
            transitions.append(plan.Transition(route, was, decision.state))
            since[route] = now
        else:
            since[route] = previous.since.get(route, now) if kept is not None else now
    transitions.sort(key=lambda t: route_order(t.route))
    channels = frozenset(rules.channels) | previous.channels
    return Plan(chained, channels, states, since, terms, tuple(transitions), policies, wake_at, tuple(lines))


def held(rule: Rule, outcome: Outcome, kept: Decision | None) -> Decision:
    """A route's decision from its rule's outcome, held as it was while not known yet."""
    states = {
        Fate.ANNOUNCED: RouteState.ANNOUNCED,
        Fate.DEGRADED: RouteState.DEGRADED,
        Fate.WITHDRAWN: RouteState.WITHDRAWN,
    }
    fates = {state: fate for fate, state in states.items()}
    if outcome.fate is not None:
        state = states[outcome.fate]
        return Decision(state, rule, attributes=outcome.attributes if state is RouteState.DEGRADED else PLAIN)
    was = kept.state if kept is not None else RouteState.WITHDRAWN
    if fates[was] not in outcome.possible and Fate.DEGRADED in outcome.possible:
        return Decision(RouteState.DEGRADED, rule, held=True, attributes=outcome.attributes)
    attributes = kept.attributes if kept is not None and was is not RouteState.WITHDRAWN else PLAIN
    return Decision(was, rule, held=True, attributes=attributes)


def full(previous: Plan) -> Plan:
    """`previous` without what an incremental decide reuses: the next decide starts from scratch."""
    return replace(previous, memo=None)


def same(incremental: Plan, whole: Plan) -> None:
    assert incremental.decisions == whole.decisions
    assert incremental.transitions == whole.transitions
    assert incremental.since == whole.since
    assert incremental.wake_at == whole.wake_at
    assert incremental.lines == whole.lines
    assert incremental.policies == whole.policies
    assert incremental.channels == whole.channels
    assert incremental.files() == whole.files()
    assert incremental.prefixes() == whole.prefixes()
    assert incremental.announced == whole.announced
    assert list(incremental.decisions) == list(whole.decisions)  # and in the same order
    assert incremental == whole


@settings(max_examples=300, deadline=None)
@given(
    rule_files,
    st.lists(st.sampled_from(PREFIXES[:4]), max_size=3),
    chains(),
    st.lists(events, min_size=1, max_size=12),
    st.tuples(st.one_of(st.none(), st.integers(1, 11)), rule_files),
)
def test_incremental_equals_full(
    rules: RuleSet,
    on_disk: list[str],
    chain: tuple[plan.Policy, ...],
    steps: list[tuple[object, ...]],
    reload: tuple[int | None, RuleSet],
) -> None:
    """For any rules, chain, health, terms, intents, clock and a reload, each incremental plan
    equals the plan a from-scratch decide makes from the same inputs, field for field."""
    reload_at, reloaded = reload
    world = World(rules)
    start = plan.initial(
        {Route("vol1", parse_rules(f"{p} = always").routes[0].prefix) for p in on_disk}, (), 0.0
    )
    incremental = plan.decide(start, rules, {}, world.intents, 0.0, chain=chain)
    whole = plan.decide(start, rules, {}, world.intents, 0.0, chain=chain)
    now = 0.0
    for at, event in enumerate(steps):
        if at == reload_at:
            world.rules = reloaded
        world.apply(event)
        dt = event[3]
        assert isinstance(dt, float)
        now += dt
        incremental = plan.decide(
            incremental, world.rules, world.states, world.intents, now, terms=world.terms, chain=chain
        )
        oracle = reference(whole, world, now, chain=chain)
        whole = plan.decide(
            full(whole), world.rules, world.states, world.intents, now, terms=world.terms, chain=chain
        )
        same(incremental, whole)
        assert whole == oracle
        assert list(whole.decisions) == list(oracle.decisions)


def backends(count: int) -> tuple[RuleSet, dict[Proxy, ProxyState]]:
    rules = parse_rules("".join(f"10.0.{i // 256}.{i % 256} = all(b:be{i})\n" for i in range(count)))
    return rules, dict.fromkeys(rules.proxies, ProxyState(Health.UP, last_status="UP", seen=True))


class Counting:
    """A local policy that counts the routes it is handed (and changes nothing)."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.__name__ = "counting"

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
        del state, intents, now, before, facts
        self.seen.append(len(decisions))
        return Step(decisions)


def test_one_change_runs_the_chain_on_the_routes_it_touches() -> None:
    """Among 1,000 rules, a change of one backend hands a local policy that one route, not 1,000."""
    rules, states = backends(1000)
    counting = Counting()
    chain = (plan.draining, plan.Local(counting))
    intents = Intents(haproxy_answers=True)
    made = plan.decide(plan.EMPTY, rules, states, intents, 1.0, chain=chain)
    made = plan.decide(made, rules, states, intents, 1.0, chain=chain)  # every route moved: seen again
    assert counting.seen == [1000, 1000]
    down = {**states, Proxy(ProxyKind.BACKEND, "be7"): ProxyState(Health.DOWN, last_status="DOWN", seen=True)}
    made = plan.decide(made, rules, down, intents, 2.0, chain=chain)
    assert counting.seen[2:] == [1]
    assert [str(t.route.prefix) for t in made.transitions] == ["10.0.0.7/32"]
    made = plan.decide(made, rules, down, intents, 3.0, chain=chain)  # its move, seen once more as `before`
    made = plan.decide(made, rules, down, intents, 4.0, chain=chain)  # then nothing
    assert counting.seen[3:] == [1, 0]
    assert made.files_moved(made) is None  # only the plan it was made from is its base


def test_a_plain_function_policy_makes_the_rest_of_the_chain_run_whole() -> None:
    """A policy that is not incremental (a plain function) is handed everything, and so is each
    link after it: correct, if not cheap."""
    rules, states = backends(50)
    counting = Counting()
    chain = (plan.draining, opaque, plan.Local(counting))
    intents = Intents(haproxy_answers=True)
    made = plan.decide(plan.EMPTY, rules, states, intents, 1.0, chain=chain)
    made = plan.decide(made, rules, states, intents, 3.0, chain=chain)
    made = plan.decide(made, rules, states, intents, 5.0, chain=chain)
    assert counting.seen == [50, 50, 50]


def test_files_moved_names_only_the_changed_line() -> None:
    """A plan decided from another says which lines of which file changed: one route withdrawn is
    one prefix of one channel, and a decision that changes no line (a note) changes no file."""
    rules, states = backends(100)
    intents = Intents(haproxy_answers=True)
    first = plan.decide(plan.EMPTY, rules, states, intents, 1.0)
    assert first.files_moved(plan.EMPTY) is None  # not decided incrementally: compare whole
    first = plan.decide(first, rules, states, intents, 1.0)
    be3 = Proxy(ProxyKind.BACKEND, "be3")
    second = plan.decide(
        first, rules, {**states, be3: ProxyState(Health.DOWN, last_status="DOWN")}, intents, 2.0
    )
    channel = Channel("vol1", 4)
    assert second.files_moved(first) == {channel: {rules.routes[3].prefix}}
    assert rules.routes[3].prefix not in second.files()[channel]
    assert second.announced == 99
    third = plan.decide(
        second, rules, {**states, be3: ProxyState(Health.DOWN, last_status="MAINT")}, intents, 3.0
    )
    assert third.files_moved(second) == {}
    assert third.decisions[rules.routes[3]] is second.decisions[rules.routes[3]]


def test_files_are_a_copy() -> None:
    """Changing what `Plan.files()` returned changes neither the plan nor the next one's files."""
    rules, states = backends(3)
    made = plan.decide(plan.EMPTY, rules, states, Intents(), 1.0)
    files = made.files()
    files[Channel("vol1", 4)].clear()
    assert len(made.files()[Channel("vol1", 4)]) == 3
    assert made.decisions[rules.routes[0]] == Decision(RouteState.ANNOUNCED, rules.rules[0], attributes=PLAIN)


def test_the_guard_link_called_whole_judges_every_route() -> None:
    """The guard's link called as a plain policy (every route handed over) holds a mass withdrawal
    as its incremental run does."""
    link = guard.policy(guard.Config(share=40, minimum=1, hold=20.0, window=10.0))
    rules, states = backends(10)
    made = plan.decide(plan.EMPTY, rules, states, Intents(haproxy_answers=True), 1.0, chain=(link,))
    down = dict.fromkeys(rules.proxies, ProxyState(Health.DOWN, last_status="DOWN", seen=True))
    facts = Facts(down)
    raw = {route: Decision(RouteState.WITHDRAWN, rules.by_route[route]) for route in rules.routes}
    step = link(
        raw, made.policies["guard"], Intents(haproxy_answers=True), 2.0, before=made.decisions, facts=facts
    )
    assert guard.of(step.state).held == frozenset(rules.routes)
    assert all(decision.announced for decision in step.decisions.values())


def test_a_route_no_rule_names_leaves_a_link_that_changes_others() -> None:
    """A route only the files had (no rule names it) is withdrawn, then leaves the plan, while a
    drain keeps its link changing another route: the incremental plan drops it as the full one does."""
    rules = parse_rules("192.0.2.1 = always\n")
    drained = rules.routes[0]
    gone = Route("vol1", parse_rules("192.0.2.9 = always\n").routes[0].prefix)
    intents = Intents(drains={drained: Drain("maintenance", "2026-12-01T10:00:00")})
    start = plan.initial({gone}, {gone.channel}, 0.0)
    made = plan.decide(start, rules, {}, intents, 1.0)
    assert made.decisions[gone].state is RouteState.WITHDRAWN
    again = plan.decide(made, rules, {}, intents, 2.0)
    assert gone not in again.decisions
    assert again == plan.decide(full(made), rules, {}, intents, 2.0)
    assert again.decisions[drained].note is not None


def test_a_leaving_route_of_a_channel_no_rule_names_keeps_its_empty_file_both_ways() -> None:
    """A route the files held in a table no rule names: its channel is the plan's from the start,
    so once a graceful shutdown has withdrawn it, the incremental and the full decide both plan
    that channel's file empty (found by the property above on CI: the full one had dropped it)."""
    rules = parse_rules("2001:db8::1 = all(b:b0)\n")
    chain = (plan.draining, shutdown.policy(shutdown.Config(5.0, shutdown.Marks(local_pref=0))))
    start = plan.initial({Route("vol1", parse_rules("192.0.2.0 = always").routes[0].prefix)}, (), 0.0)
    assert Channel("vol1", 4) in start.channels
    intents = Intents(haproxy_answers=True)
    leaving = plan.decide(start, rules, {}, intents, 0.0, chain=chain)
    incremental = plan.decide(leaving, rules, {}, intents, 6.0, chain=chain)
    whole = plan.decide(full(leaving), rules, {}, intents, 6.0, chain=chain)
    same(incremental, whole)
    assert whole.files()[Channel("vol1", 4)] == {}
