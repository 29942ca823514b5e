"""The rule language's tree: nested conditions, not, atleast, server thresholds and the degraded
clause; each node's verdict, explanation, rendering and data; the route's three states."""

from __future__ import annotations

import itertools
import json

import pytest

from rhid import grammar
from rhid import rules as rules_module
from rhid.health import INITIAL_TERM, NOT_COUNTED, Health, ProxyState, TermState
from rhid.model import PLAIN, Attributes, Proxy, ProxyKind, ServerTerm, Threshold
from rhid.rules import (
    Aggregate,
    AtLeast,
    Condition,
    Degraded,
    Facts,
    Fate,
    Not,
    Outcome,
    Rule,
    Servers,
    Target,
    _Truths,
    compare,
    describe_condition,
    evaluate,
    parse_rules,
    render,
    render_rule,
)
from rhid.stats import Counts

B = ProxyKind.BACKEND
F = ProxyKind.FRONTEND
A, BB, C, D = (Proxy(B, name) for name in "abcd")
MAINT = Proxy(F, "fe_maint")
APP = Proxy(B, "be_app")
HALF = ServerTerm(APP, Threshold(50, percent=True))
THREE = ServerTerm(APP, Threshold(3))
STATE = {True: ProxyState(Health.UP, last_status="UP"), False: ProxyState(Health.DOWN, last_status="DOWN")}


def only(text: str) -> Rule:
    """The one rule of `text`."""
    (rule,) = parse_rules(text).rules
    return rule


def facts(
    proxies: dict[Proxy, bool | None] | None = None, terms: dict[ServerTerm, TermState] | None = None
) -> Facts:
    """Facts saying what `proxies` says (True up, False down, None or missing: not known yet)."""
    return Facts(
        {proxy: STATE[value] for proxy, value in (proxies or {}).items() if value is not None}, terms or {}
    )


def term_state(up: int, total: int, health: Health) -> TermState:
    """A threshold term that last counted `up` of `total` and whose health is `health`."""
    return TermState(ProxyState(health, last_status=f"{up} of {total} servers up"), Counts(up, total, 7))


# ---- the tree a rule compiles to ------------------------------------------------------------


def test_nested_conditions_compile_into_the_tree_they_spell() -> None:
    """`any(all(b:a,b:b), all(b:c,b:d))` is an any of two alls of targets, in the order written."""
    rule = only("192.0.2.1 = any(all(b:a,b:b), all(b:c,b:d))")
    assert rule.condition == Condition(
        Aggregate.ANY, (Condition(Aggregate.ALL, (A, BB)), Condition(Aggregate.ALL, (C, D)))
    )
    assert rule.condition.operands == ()  # no plain target directly under the any


def test_atleast_not_and_thresholds_compile_to_their_nodes() -> None:
    """atleast(K, ...), not(x) and b:x>=N / >=N% each compile to their own node."""
    assert only("1.1.1.1 = atleast(2, b:a, b:b, b:c)").condition == Condition(
        Aggregate.ALL, (AtLeast(2, (Target(A), Target(BB), Target(C))),)
    )
    assert only("1.1.1.1 = not(f:fe_maint)").condition == Condition(Aggregate.ALL, (Not(Target(MAINT)),))
    assert only("1.1.1.1 = all(b:be_app>=50%, b:be_app>=3, b:a)").condition == Condition(
        Aggregate.ALL, (Servers(HALF), Servers(THREE), A)
    )


def test_a_bare_not_or_atleast_is_all_of_it_and_shows_as_written() -> None:
    """`not(...)` alone after "=" equals `all(not(...))`, and both render as `not(...)`."""
    bare, wrapped = only("1.1.1.1 = not(f:fe_maint)"), only("1.1.1.1 = all(not(f:fe_maint))")
    assert bare.condition == wrapped.condition
    assert render_rule(bare) == render_rule(wrapped) == "vol1%1.1.1.1/32 = not(f:fe_maint)"
    assert render_rule(only("1.1.1.1 = all(all(b:a))")) == "vol1%1.1.1.1/32 = all(all(b:a))"
    assert render_rule(only("1.1.1.1 = all(b:a>=3)")) == "vol1%1.1.1.1/32 = all(b:a>=3)"


def test_the_degraded_clause_compiles_its_condition_and_attributes() -> None:
    """The issue's example: all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666."""
    rule = only("192.0.2.10 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666")
    assert rule.condition == Condition(Aggregate.ALL, (Servers(HALF),))
    assert rule.degraded == Degraded(
        Condition(Aggregate.ANY, (APP,)), Attributes(med=200, communities=((65000, 666),))
    )


def test_attributes_take_every_kind_and_repeat_communities() -> None:
    """med, local-pref, communities and large communities, at their range's edges, communities sorted."""
    rule = only(
        "1.1.1.1 = all(b:a) degraded always med 4294967295 local-pref 0 community 65535:0 "
        "community 0:65535 large-community 4294967295:0:4294967295 large-community 1:2:3"
    )
    assert rule.degraded is not None
    assert rule.degraded.attributes == Attributes(
        med=4294967295,
        local_pref=0,
        communities=((0, 65535), (65535, 0)),
        large_communities=((1, 2, 3), (4294967295, 0, 4294967295)),
    )


def test_vendor_rules_have_no_degraded_clause_and_read_their_proxies() -> None:
    """A vendor rule compiles as before: no clause, its proxies in order, no thresholds."""
    rules = parse_rules("1.1.1.1 = all(b:a,f:fe_maint)\n2.2.2.2 = never(b:b)\n")
    assert [rule.degraded for rule in rules.rules] == [None, None]
    assert rules.proxies == (A, MAINT, BB)
    assert rules.terms == ()
    assert rules.counted == ()


def test_a_rule_set_knows_every_proxy_term_and_counted_backend() -> None:
    """Proxies and threshold terms of conditions and degraded clauses, each once, in file order."""
    rules = parse_rules(
        "1.1.1.1 = all(b:be_app>=50%) degraded any(b:be_app, b:a>=3) med 1\n"
        "2.2.2.2 = any(b:be_app>=50%, f:fe_maint)\n"
    )
    assert rules.proxies == (APP, A, MAINT)
    assert rules.terms == (HALF, ServerTerm(A, Threshold(3)))
    assert rules.counted == (APP, A)


def test_a_reload_counts_a_changed_degraded_clause_as_a_change() -> None:
    """compare() sees a new degraded clause, or new attributes, as a changed rule."""
    old = parse_rules("1.1.1.1 = all(b:a)\n2.2.2.2 = all(b:a) degraded any(b:a) med 1\n")
    new = parse_rules(
        "2.2.2.2 = all(b:a) degraded any(b:a) med 2\n1.1.1.1 = all(b:a) degraded always med 1\n"
    )
    assert compare(old, new).changed == 2
    assert compare(old, parse_rules(render(old))).changed == 0


# ---- rendering and data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1.1.1.1 = any( all(b:a, b:b) ,all(b:c,b:d) )", "any(all(b:a,b:b),all(b:c,b:d))"),
        ("1.1.1.1 = atleast( 2 , b:a , b:b , b:c )", "atleast(2,b:a,b:b,b:c)"),
        ("1.1.1.1 = all(b:a>=050%, not( any(f:fe_maint) ))", "all(b:a>=50%,not(any(f:fe_maint)))"),
        (
            "1.1.1.1 = always degraded any(b:a) community 2:1 med 7 community 1:2",
            "always() degraded any(b:a) med 7 community 1:2 community 2:1",
        ),
    ],
)
def test_render_is_canonical_and_compiles_to_the_same_rule(text: str, canonical: str) -> None:
    """Rendering drops spaces and leading zeros and sorts attributes; compiling it gives the same rule."""
    rule = only(text)
    assert render_rule(rule) == f"vol1%1.1.1.1/32 = {canonical}"
    assert only(render_rule(rule)) == rule


def test_data_form_shows_the_expression_tree() -> None:
    """describe_condition gives the tree as plain data, leaves with kind, name and threshold."""
    rule = only("1.1.1.1 = any(atleast(1, b:a>=3, not(f:fe_maint)), b:be_app>=50%)")
    assert describe_condition(rule.condition) == {
        "aggregate": "any",
        "operands": [
            {
                "aggregate": "atleast",
                "count": 1,
                "operands": [
                    {"kind": "backend", "name": "a", "threshold": {"at_least": 3, "percent": False}},
                    {"aggregate": "not", "operands": [{"kind": "frontend", "name": "fe_maint"}]},
                ],
            },
            {"kind": "backend", "name": "be_app", "threshold": {"at_least": 50, "percent": True}},
        ],
    }
    json.dumps(describe_condition(rule.condition))  # plain data all the way down
    assert describe_condition(only("1.1.1.1 = not(b:a)").condition) == {
        "aggregate": "not",
        "operands": [{"kind": "backend", "name": "a"}],
    }


# ---- verdicts ---------------------------------------------------------------------------------

VALUES = (True, False, None)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(VALUES, VALUES)))
def test_not_and_nested_aggregates_are_kleene(a: bool | None, b: bool | None) -> None:
    """not flips a known verdict and keeps unknown; nested all/any follow Kleene's and/or."""
    known = facts({A: a, BB: b})
    assert only("1.1.1.1 = not(b:a)").condition.verdict(known) == (None if a is None else not a)
    both = only("1.1.1.1 = any(all(b:a,b:b), not(any(b:a,b:b)))").condition.verdict(known)
    conj = False if False in (a, b) else None if None in (a, b) else True
    disj = True if True in (a, b) else None if None in (a, b) else False
    nor = None if disj is None else not disj
    assert both == (True if True in (conj, nor) else None if None in (conj, nor) else False)


@pytest.mark.parametrize("values", list(itertools.product(VALUES, repeat=3)))
@pytest.mark.parametrize("count", [1, 2, 3])
def test_atleast_is_true_once_k_are_and_false_once_too_few_can_be(
    values: tuple[bool | None, ...], count: int
) -> None:
    """atleast(K, a, b, c): True with K trues, False when trues plus unknowns are fewer than K, else None."""
    verdict = only(f"1.1.1.1 = atleast({count}, b:a, b:b, b:c)").condition.verdict(
        facts(dict(zip((A, BB, C), values, strict=True)))
    )
    true, unknown = values.count(True), values.count(None)
    assert verdict == (True if true >= count else False if true + unknown < count else None)


def test_a_threshold_reads_its_own_health_not_its_backends() -> None:
    """b:x>=N is the term's health after fall and rise; the backend's own health does not decide it."""
    condition = only("1.1.1.1 = all(b:be_app>=50%)").condition
    assert condition.verdict(facts({APP: True})) is None  # the term has not been stepped yet
    assert condition.verdict(facts({APP: True}, {HALF: term_state(2, 6, Health.DOWN)})) is False
    assert condition.verdict(facts({APP: False}, {HALF: term_state(3, 6, Health.UP)})) is True


def test_a_map_of_truths_still_decides_a_vendor_condition() -> None:
    """plan.decide's map of proxies to True/False/None gives the same verdict as Facts, and reads
    as a map of health states without a copy."""
    condition = only("1.1.1.1 = any(b:a,b:b)").condition
    for a, b in itertools.product(VALUES, VALUES):
        assert condition.verdict({A: a, BB: b}) == condition.verdict(facts({A: a, BB: b}))
    truths = _Truths({A: True, BB: None})
    assert (len(truths), list(truths), truths[A].health, truths[BB].health) == (
        2,
        [A, BB],
        Health.UP,
        Health.UNKNOWN,
    )


# ---- the route's fate: the three-state truth table ----------------------------------------------


@pytest.mark.parametrize(
    ("main", "degraded", "possible"),
    [
        (True, True, {Fate.ANNOUNCED}),
        (True, False, {Fate.ANNOUNCED}),
        (True, None, {Fate.ANNOUNCED}),
        (False, True, {Fate.DEGRADED}),
        (False, False, {Fate.WITHDRAWN}),
        (False, None, {Fate.DEGRADED, Fate.WITHDRAWN}),
        (None, True, {Fate.ANNOUNCED, Fate.DEGRADED}),
        (None, False, {Fate.ANNOUNCED, Fate.WITHDRAWN}),
        (None, None, {Fate.ANNOUNCED, Fate.DEGRADED, Fate.WITHDRAWN}),
    ],
)
def test_truth_table_of_the_three_states(
    main: bool | None, degraded: bool | None, possible: set[Fate]
) -> None:
    """Announced while the condition holds; degraded while it does not and the clause's does;
    withdrawn while neither; not known yet (with what is still possible) while a verdict is."""
    rule = only("1.1.1.1 = all(b:a) degraded all(b:b) med 200 community 65000:666")
    outcome = evaluate(rule, facts({A: main, BB: degraded}))
    assert outcome.possible == possible
    assert outcome.fate == (next(iter(possible)) if len(possible) == 1 else None)
    assert outcome.attributes == Attributes(med=200, communities=((65000, 666),))


@pytest.mark.parametrize(("main", "fate"), [(True, Fate.ANNOUNCED), (False, Fate.WITHDRAWN), (None, None)])
def test_without_a_clause_a_route_is_announced_or_withdrawn(main: bool | None, fate: Fate | None) -> None:
    """A rule without a degraded clause is never degraded, and carries no attributes."""
    outcome = evaluate(only("1.1.1.1 = all(b:a)"), facts({A: main}))
    assert outcome.fate is fate
    assert Fate.DEGRADED not in outcome.possible
    assert outcome.attributes == PLAIN


def test_the_issues_example_walks_plain_degraded_withdrawn() -> None:
    """>=50% of 4 servers with any(b:be_app): 4, 3, 2 up plain; 1 up degraded; 0 up withdrawn."""
    rule = only("192.0.2.10 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666")
    fates = []
    for up in (4, 3, 2, 1, 0):
        met = HALF.threshold.met(up, 4)
        known = facts({APP: up > 0}, {HALF: term_state(up, 4, Health.UP if met else Health.DOWN)})
        fates.append(evaluate(rule, known).fate)
    assert fates == [Fate.ANNOUNCED] * 3 + [Fate.DEGRADED, Fate.WITHDRAWN]


def test_an_outcome_describes_itself() -> None:
    """Each fate in words; degraded names its attributes; unknown names what is still possible."""
    attributes = Attributes(med=200)
    assert Outcome(Fate.ANNOUNCED, frozenset({Fate.ANNOUNCED})).describe() == "announced"
    assert Outcome(Fate.DEGRADED, frozenset({Fate.DEGRADED}), attributes).describe() == "degraded (med 200)"
    unknown = Outcome(None, frozenset({Fate.WITHDRAWN, Fate.ANNOUNCED}))
    assert unknown.describe() == "not known yet (announced or withdrawn)"


# ---- explanations ---------------------------------------------------------------------------


def test_a_threshold_explains_its_counts_and_verdict() -> None:
    """`b:be_app>=50%: 2 of 6 up (33 %) -> false`, the words `rhid status` shows."""
    rule = only("1.1.1.1 = all(b:be_app>=50%)")
    assert rule.explain(facts({}, {HALF: term_state(2, 6, Health.DOWN)})) == (
        "all: b:be_app>=50%: 2 of 6 up (33 %) -> false"
    )
    assert (
        rule.explain(facts({}, {HALF: term_state(0, 0, Health.DOWN)}))
        == "all: b:be_app>=50%: 0 of 0 up -> false"
    )
    assert rule.explain(Facts()) == "all: b:be_app>=50%: not polled yet -> not known yet"
    unreachable = TermState(ProxyState(Health.DOWN, last_status="HAProxy unreachable"))
    assert rule.explain(facts({}, {HALF: unreachable})) == (
        "all: b:be_app>=50%: HAProxy unreachable: HAProxy said nothing of it -> false"
    )
    uncounted = TermState(ProxyState(last_status=NOT_COUNTED))
    assert (
        rule.explain(facts({}, {HALF: uncounted}))
        == "all: b:be_app>=50%: servers not counted -> not known yet"
    )
    gone = TermState(ProxyState(Health.UP, last_status="UP", seen=True, vanished=True))
    assert rule.explain(facts({}, {HALF: gone})) == (
        "all: b:be_app>=50%: vanished from HAProxy; HAProxy last said 'UP' -> true"
    )


def test_nested_nodes_explain_each_term_and_their_own_verdict() -> None:
    """Nested all/any, not and atleast say what each operand is and what they conclude."""
    known = facts({A: True, BB: False, C: None, MAINT: False})
    assert only("1.1.1.1 = any(all(b:a,b:b), not(f:fe_maint))").explain(known) == (
        "any: all(b:a is up (HAProxy last said 'UP'), b:b is down (HAProxy last said 'DOWN')) -> false, "
        "not(f:fe_maint is down (HAProxy last said 'DOWN')) -> true"
    )
    assert only("1.1.1.1 = atleast(2, b:a, b:b, b:c)").explain(known) == (
        "atleast(2, b:a is up (HAProxy last said 'UP'), b:b is down (HAProxy last said 'DOWN'), "
        "b:c is unknown (not polled yet)): 1 of 3 true -> not known yet"
    )


def test_a_degraded_rule_explains_both_conditions_and_its_attributes() -> None:
    """The explanation names the degraded clause's attributes and explains its condition too."""
    rule = only("1.1.1.1 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666")
    known = facts({APP: True}, {HALF: term_state(1, 4, Health.DOWN)})
    assert rule.explain(known) == (
        "all: b:be_app>=50%: 1 of 4 up (25 %) -> false; degraded (med 200 community 65000:666) "
        "while any: b:be_app is up (HAProxy last said 'UP')"
    )


def test_an_unstepped_term_is_not_known_yet() -> None:
    """Facts without a term's state give the initial state: unknown, not polled."""
    assert Facts().term(HALF) is INITIAL_TERM
    assert Facts().proxy(A).health is Health.UNKNOWN


def test_every_word_the_grammar_spells_has_its_node_class() -> None:
    """Each operator word the grammar accepts is compiled by a node class, and no class lacks a word."""
    assert set(rules_module._OPERATORS) == set(grammar.OPERATORS)
    assert {aggregate.value for aggregate in Aggregate} == set(grammar.AGGREGATES)
