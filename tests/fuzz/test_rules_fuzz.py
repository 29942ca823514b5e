"""Properties of the rule language over generated input: total, and stable under render."""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rhid.errors import RuleError
from rhid.health import INITIAL, Health, ProxyState
from rhid.model import Proxy, ProxyKind, Route
from rhid.plan import NO_INTENTS, decide, initial
from rhid.rulefile import load_rules
from rhid.rules import Aggregate, Condition, Rule, RuleSet, parse_rules, render

STRUCTURE = "=,()%/:#; \t\r\n\x00\"'*"
TOKENS = [
    "vol1",
    "vol2",
    "down",
    "b",
    "f",
    "all",
    "any",
    "never",
    "always",
    "10.0.0.1",
    "2001:db8::1",
    "/32",
    "/24",
    "/129",
    "be_app",
    "%",
    "=",
    "(",
    ")",
    ",",
    ":",
    " ",
    "\n",
    "#",
]


def compiles_or_rule_error(text: str) -> RuleSet | None:
    try:
        return parse_rules(text, "fuzz.cfg", allow_empty=True)
    except RuleError as exc:
        error = exc
    for diagnostic in error.diagnostics:
        assert diagnostic.line >= 1
        assert diagnostic.col >= 1
        diagnostic.render().encode("utf-8")  # printable: hostile input is escaped
    return None


@given(st.text())
def test_any_text_compiles_or_raises_rule_error(text: str) -> None:
    """Arbitrary Unicode text either compiles or raises RuleError, never anything else."""
    compiles_or_rule_error(text)


@given(st.text(alphabet=st.sampled_from("abfl01:.%/=,()# \t\n;\x00" + "0123456789")))
def test_structured_alphabet_compiles_or_raises_rule_error(text: str) -> None:
    """Text made of the grammar's own characters either compiles or raises RuleError."""
    compiles_or_rule_error(text)


@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_token_soup_compiles_or_raises_rule_error(text: str) -> None:
    """Sequences of real tokens in random order either compile or raise RuleError."""
    compiles_or_rule_error(text)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_any_bytes_in_a_file_load_or_raise_rule_error(tmp_path: Path, data: bytes) -> None:
    """Any bytes in a rule file either load or raise RuleError (undecodable bytes included)."""
    path = tmp_path / "fuzz.cfg"
    path.write_bytes(data)
    with contextlib.suppress(RuleError):
        load_rules(path, allow_empty=True)


# ---- valid rule sets, generated from the model side ----------------------------------------

tables = st.sampled_from(["vol1", "vol2", "_x", "edge_01"])
proxy_names = st.text(alphabet="abcxyz019._:-", min_size=1, max_size=12)
proxies = st.builds(Proxy, st.sampled_from(list(ProxyKind)), proxy_names)


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if draw(st.booleans()):
        length4 = draw(st.integers(0, 32))
        address4 = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
        return ipaddress.IPv4Network((int(address4), length4), strict=False)
    length6 = draw(st.integers(0, 128))
    address6 = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    return ipaddress.IPv6Network((int(address6), length6), strict=False)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    aggregate = draw(st.sampled_from(list(Aggregate)))
    minimum = 1 if aggregate in {Aggregate.ALL, Aggregate.ANY} else 0
    return Condition(aggregate, tuple(draw(st.lists(proxies, min_size=minimum, max_size=4))))


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    routes = draw(st.lists(st.builds(Route, tables, networks()), min_size=1, max_size=25, unique=True))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=len(routes)))
    rules: list[Rule] = []
    start = 0
    for size in sizes:
        chunk = tuple(routes[start : start + size])
        if not chunk:
            break
        rules.append(Rule(len(rules) + 1, chunk, draw(conditions())))
        start += size
    return RuleSet.of("<rules>", rules)


def meaning(rules: RuleSet) -> list[tuple[tuple[Route, ...], Condition]]:
    return [(rule.routes, rule.condition) for rule in rules.rules]


@given(rule_sets())
def test_render_then_compile_round_trips(rules: RuleSet) -> None:
    """compile(render(rules)) has the same routes and conditions, rule by rule."""
    assert meaning(parse_rules(render(rules))) == meaning(rules)


@given(rule_sets())
def test_compile_render_compile_is_stable(rules: RuleSet) -> None:
    """compile → render → compile → render gives the identical text (a fixed point)."""
    once = render(parse_rules(render(rules)))
    assert render(parse_rules(once)) == once


@given(rule_sets(), st.data())
def test_mutated_valid_text_compiles_or_raises_rule_error(rules: RuleSet, data: st.DataObject) -> None:
    """Valid text with one character replaced, inserted or deleted compiles or raises RuleError."""
    text = render(rules)
    index = data.draw(st.integers(0, len(text)))
    replacement = data.draw(st.sampled_from([*STRUCTURE, "", "x", "0", "\u202e", "\ufeff"]))
    skip = data.draw(st.integers(0, 1))
    compiles_or_rule_error(text[:index] + replacement + text[index + skip :])


def oracle(aggregate: Aggregate, values: list[bool | None]) -> bool | None:
    """Kleene's three-valued and/or, written independently of rhid's Condition.verdict."""
    if aggregate is Aggregate.NEVER:
        return False
    if aggregate is Aggregate.ALWAYS:
        return True
    if aggregate is Aggregate.ALL:
        return False if False in values else None if None in values else True
    return True if True in values else None if None in values else False


HEALTH = {True: ProxyState(Health.UP), False: ProxyState(Health.DOWN), None: INITIAL}


@given(rule_sets(), st.dictionaries(proxies, st.sampled_from([True, False, None])), st.data())
def test_plan_announces_what_the_rules_say_and_holds_the_unknown(
    rules: RuleSet, up: dict[Proxy, bool | None], data: st.DataObject
) -> None:
    """A route is announced iff its rule holds, or its verdict is unknown (a proxy never read) and
    the route was announced (held); every channel the rules use has a file."""
    announced = set(data.draw(st.lists(st.sampled_from(rules.routes), unique=True)))
    decided = decide(
        initial(announced, set(), 0.0),
        rules,
        {proxy: HEALTH[value] for proxy, value in up.items()},
        NO_INTENTS,
        0.0,
    )
    files = decided.files()
    assert set(files) == set(rules.channels)
    got = {Route(channel.table, prefix) for channel, prefixes in files.items() for prefix in prefixes}
    expected = set()
    for rule in rules.rules:
        verdict = oracle(rule.condition.aggregate, [up.get(proxy) for proxy in rule.condition.operands])
        expected |= {r for r in rule.routes if verdict or (verdict is None and r in announced)}
        assert all(decided.decisions[r].held is (verdict is None) for r in rule.routes)
    assert got == expected
