"""Properties of the rule language's new forms over generated trees: compile -> render -> compile is
a fixed point, verdicts and fates match an independent three-valued oracle, and the vendor's
grammar keeps its meaning and its canonical text."""

from __future__ import annotations

import contextlib
import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from rhid.errors import RuleError
from rhid.health import INITIAL, Health, ProxyState, TermState
from rhid.model import Attributes, Proxy, ProxyKind, Route, ServerTerm, Threshold
from rhid.rules import (
    Aggregate,
    AtLeast,
    Condition,
    Degraded,
    Expression,
    Facts,
    Fate,
    Not,
    Rule,
    RuleSet,
    Servers,
    Target,
    evaluate,
    parse_rules,
    render,
)

names = st.text(alphabet="abcxyz019._:-", min_size=1, max_size=8)
proxies = st.builds(Proxy, st.sampled_from(list(ProxyKind)), names)
backends = st.builds(Proxy, st.just(ProxyKind.BACKEND), names)
thresholds = st.one_of(
    st.builds(Threshold, st.integers(1, 1_000_000), st.just(False)),
    st.builds(Threshold, st.integers(1, 100), st.just(True)),
)
leaves = st.one_of(
    st.builds(Target, proxies), st.builds(Servers, st.builds(ServerTerm, backends, thresholds))
)


def nodes(children: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
    """One level of operators over `children`: all/any, not, atleast."""
    lists = st.lists(children, min_size=1, max_size=4)
    return st.one_of(
        st.builds(Condition, st.sampled_from([Aggregate.ALL, Aggregate.ANY]), lists),
        st.builds(Not, children),
        lists.flatmap(lambda terms: st.builds(AtLeast, st.integers(1, len(terms)), st.just(tuple(terms)))),
    )


expressions = st.recursive(leaves, nodes, max_leaves=12)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    """A rule's whole condition: an aggregate of expressions, or a bare not/atleast under all."""
    aggregate = draw(st.sampled_from(list(Aggregate)))
    minimum = 1 if aggregate in {Aggregate.ALL, Aggregate.ANY} else 0
    return Condition(aggregate, draw(st.lists(expressions, min_size=minimum, max_size=4)))


communities = st.lists(st.tuples(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1)), max_size=3)
large = st.lists(st.tuples(*(st.integers(0, 2**32 - 1),) * 3), max_size=3)
attributes = st.builds(  # as compile makes them: each community once, sorted
    Attributes,
    med=st.none() | st.integers(0, 2**32 - 1),
    local_pref=st.none() | st.integers(0, 2**32 - 1),
    communities=communities.map(lambda found: tuple(sorted(set(found)))),
    large_communities=large.map(lambda found: tuple(sorted(set(found)))),
).filter(lambda value: not value.plain)  # a clause sets at least one attribute
clauses = st.none() | st.builds(Degraded, conditions(), attributes)


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    count = draw(st.integers(1, 5))
    rules = []
    for line in range(1, count + 1):
        route = Route("vol1", ipaddress.IPv4Network((0x0A000000 + line, 32)))
        rules.append(Rule(line, (route,), draw(conditions()), draw(clauses)))
    return RuleSet.of("<rules>", rules)


def meaning(rules: RuleSet) -> list[tuple[object, ...]]:
    return [(rule.routes, rule.condition, rule.degraded) for rule in rules.rules]


@given(rule_sets())
def test_compile_render_compile_of_the_new_forms_is_a_fixed_point(rules: RuleSet) -> None:
    """Rendering generated trees (nesting, not, atleast, thresholds, degraded clauses) and compiling
    the text gives the same rules, and rendering those gives the identical text."""
    text = render(rules)
    again = parse_rules(text)
    assert meaning(again) == meaning(rules)
    assert render(again) == text


def oracle(  # noqa: PLR0911 -- one exit per kind of node and aggregate
    node: Expression, up: dict[Proxy, bool | None], terms: dict[ServerTerm, bool | None]
) -> bool | None:
    """Kleene's three-valued logic over the tree, written apart from the nodes' own verdicts."""
    if isinstance(node, Target):
        return up.get(node.proxy)
    if isinstance(node, Servers):
        return terms.get(node.term)
    if isinstance(node, Not):
        value = oracle(node.term, up, terms)
        return None if value is None else not value
    values = [oracle(term, up, terms) for term in node.children()]
    if isinstance(node, AtLeast):
        if values.count(True) >= node.count:
            return True
        return False if values.count(True) + values.count(None) < node.count else None
    assert isinstance(node, Condition)
    if node.aggregate is Aggregate.NEVER:
        return False
    if node.aggregate is Aggregate.ALWAYS:
        return True
    if node.aggregate is Aggregate.ALL:
        return False if False in values else None if None in values else True
    return True if True in values else None if None in values else False


HEALTH = {True: Health.UP, False: Health.DOWN, None: Health.UNKNOWN}
truths = st.sampled_from([True, False, None])


def facts_of(up: dict[Proxy, bool | None], terms: dict[ServerTerm, bool | None]) -> Facts:
    return Facts(
        {proxy: ProxyState(HEALTH[value]) for proxy, value in up.items()},
        {term: TermState(ProxyState(HEALTH[value])) for term, value in terms.items()},
    )


@given(rule_sets(), st.data())
def test_verdicts_and_fates_match_the_three_valued_oracle(rules: RuleSet, data: st.DataObject) -> None:
    """Each rule's verdict is the oracle's, and its fate follows the truth table: announced while
    the condition holds, degraded while only the clause's does, withdrawn while neither; unknown
    (with exactly the fates still possible) otherwise."""
    up = {proxy: data.draw(truths) for proxy in rules.proxies}
    terms = {term: data.draw(truths) for term in rules.terms}
    facts = facts_of(up, terms)
    for rule in rules.rules:
        main = oracle(rule.condition, up, terms)
        assert rule.condition.verdict(facts) == main
        clause = None if rule.degraded is None else oracle(rule.degraded.condition, up, terms)
        mains = [main] if main is not None else [True, False]  # each way an unknown verdict may turn
        clauses = [clause] if clause is not None or rule.degraded is None else [True, False]
        worlds = [(m, d) for m in mains for d in clauses]
        expected = {Fate.ANNOUNCED if m else Fate.DEGRADED if d else Fate.WITHDRAWN for m, d in worlds}
        outcome = evaluate(rule, facts)
        assert outcome.possible == expected
        assert outcome.fate == (next(iter(expected)) if len(expected) == 1 else None)


@st.composite
def vendor_lines(draw: st.DrawFn) -> tuple[str, Aggregate, list[Proxy]]:
    """A rule in the vendor's grammar, with free spaces, and what it says."""
    aggregate = draw(st.sampled_from(list(Aggregate)))
    minimum = 1 if aggregate in {Aggregate.ALL, Aggregate.ANY} else 0
    targets = draw(st.lists(proxies, min_size=minimum, max_size=4))
    space = draw(st.sampled_from(["", " ", "\t", "  "]))
    listed = f"{space},{space}".join(str(proxy) for proxy in targets)
    parentheses: bool = bool(targets) or draw(st.booleans())
    opening: str = draw(st.sampled_from(["(", f"{space}("]))
    tail = f"{opening}{listed}{space})" if parentheses else ""
    return f"192.0.2.1{space}={space}{aggregate.value}{tail}", aggregate, targets


@given(vendor_lines(), st.dictionaries(proxies, truths))
def test_a_vendor_line_keeps_its_meaning_and_its_canonical_text(
    line: tuple[str, Aggregate, list[Proxy]], up: dict[Proxy, bool | None]
) -> None:
    """Any vendor line compiles to its aggregate over plain targets, renders as the vendor's
    canonical text did (`vol1%P = agg(t1,t2)`), and decides as the vendor's flat rule did."""
    text, aggregate, targets = line
    (rule,) = parse_rules(text).rules
    assert rule.condition == Condition(aggregate, targets)
    assert rule.condition.operands == tuple(targets)
    assert rule.degraded is None
    assert (
        render(parse_rules(text)) == f"vol1%192.0.2.1/32 = {aggregate.value}({','.join(map(str, targets))})\n"
    )
    states = [up.get(proxy) for proxy in targets]
    flat = {  # the vendor's decision, as rhid made it before the tree
        Aggregate.NEVER: False,
        Aggregate.ALWAYS: True,
        Aggregate.ALL: False if False in states else None if None in states else True,
        Aggregate.ANY: True if True in states else None if None in states else False,
    }[aggregate]
    assert rule.condition.verdict(up) == flat
    assert (
        rule.condition.verdict(
            Facts({p: ProxyState(HEALTH[v]) if v is not None else INITIAL for p, v in up.items()})
        )
        == flat
    )


STRUCTURE = [*"=,()%/:#; \t>%<", "", "x", "0", "degraded", "med", "not", "atleast", "all"]


@given(rule_sets(), st.data())
def test_mutated_new_forms_compile_or_raise_rule_error(rules: RuleSet, data: st.DataObject) -> None:
    """Text of the new forms with one piece replaced, inserted or deleted compiles or raises RuleError."""
    text = render(rules)
    index = data.draw(st.integers(0, len(text)))
    piece = data.draw(st.sampled_from(STRUCTURE))
    skip = data.draw(st.integers(0, 2))
    with contextlib.suppress(RuleError):
        parse_rules(text[:index] + piece + text[index + skip :], "fuzz.cfg")
