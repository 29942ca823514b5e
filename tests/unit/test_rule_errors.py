"""Bad input in the new rule forms: each error at its position, with a hint that fixes it."""

from __future__ import annotations

import pytest

from rhid.errors import RuleError
from rhid.rules import parse_rules


def only_error(text: str) -> tuple[int, str, str | None]:
    """The column, message and hint of the one error `text` has."""
    with pytest.raises(RuleError) as caught:
        parse_rules(text, "t.cfg")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.line == 1
    return diagnostic.col, diagnostic.message, diagnostic.hint


@pytest.mark.parametrize(
    ("text", "col", "message", "hint"),
    [
        # atleast
        (
            "1.1.1.1 = atleast(4, b:a, b:b, b:c)",
            19,
            "atleast(4, ...) can never be true: it has 3 operands",
            "from 1 to the number of operands after it (3)",
        ),
        ("1.1.1.1 = atleast(0, b:a)", 19, "atleast(0, ...) is always true", "from 1 to"),
        ("1.1.1.1 = atleast(b:a, b:b)", 19, "'atleast' needs a count first", "atleast(2, b:a, b:b, b:c)"),
        ("1.1.1.1 = atleast()", 11, "'atleast' needs a count first", "e.g. atleast(2"),
        ("1.1.1.1 = atleast(2x, b:a)", 19, "the count of 'atleast' must be a number, not '2x'", None),
        (
            "1.1.1.1 = atleast(1, b:a, 2)",
            27,
            "a count (2) is only the first argument of atleast",
            "atleast(2,",
        ),
        ("1.1.1.1 = all(2, b:a)", 15, "a count (2) is only the first argument of atleast", "atleast(2,"),
        # not
        ("1.1.1.1 = not(b:a, b:b)", 20, "'not' takes one target or condition, not 2", "not(any(...))"),
        ("1.1.1.1 = not()", 11, "'not' takes one target or condition, not 0", "not(f:fe_maint)"),
        ("1.1.1.1 = not", 11, "'not' takes one target or condition, not 0", "not(f:fe_maint)"),
        ("1.1.1.1 = not(b:a;)", 18, "invalid character ';' in backend name", None),  # and nothing on `not`
        # nesting
        ("1.1.1.1 = any(never(), b:a)", 15, "'never' cannot be nested", "write <network> = never"),
        ("1.1.1.1 = all(b:a, always(b:b))", 20, "'always' cannot be nested", "write <network> = always"),
        ("1.1.1.1 = any(all(), b:a)", 15, "'all' needs at least one target", "e.g. all(b:be_app)"),
        # thresholds
        ("1.1.1.1 = all(b:be_app>=0)", 25, "server threshold >=0 is always true", "b:be_app>=1"),
        ("1.1.1.1 = all(b:be_app>=0%)", 25, "server threshold >=0% is always true", "b:be_app>=1"),
        ("1.1.1.1 = all(b:be_app>=101%)", 25, "server threshold >=101% can never be met", "from 1% to 100%"),
        (
            "1.1.1.1 = all(b:be_app>=1000001)",
            25,
            "server threshold >=1000001 is out of range (1-1000000)",
            "add %",
        ),
        (
            "1.1.1.1 = all(f:fe_www>=2)",
            23,
            "a server threshold needs a backend: f:fe_www is a frontend",
            "write b:<backend>>=N",
        ),
        ("1.1.1.1 = all(b:be_app>3)", 23, "a server threshold is written '>=', not '>'", "b:be_app>=3"),
        ("1.1.1.1 = all(b:be_app<=3)", 23, "a server threshold is written '>=', not '<='", "b:be_app>=50%"),
        (
            "1.1.1.1 = all(b:be_app>=half)",
            25,
            "a server threshold is a number of servers or a percentage, not 'half'",
            "b:be_app>=3",
        ),
        (
            "1.1.1.1 = all(b:be_app>=5%%)",
            25,
            "a server threshold is a number of servers or a percentage",
            None,
        ),
        ("1.1.1.1 = all(b:be_app>=)", 25, "a server threshold needs a number after '>='", "b:be_app>=3"),
        # the degraded clause
        (
            "1.1.1.1 = all(b:a>=50%) degraded any(b:a)",
            25,
            "the degraded clause sets no attribute",
            "degraded any(b:be_app) med 200",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) community 65536:1",
            48,
            "community must be A:B with each number from 0 to 65535, not '65536:1'",
            "need a large community",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) community 65000:1:2",
            48,
            "community must be A:B with each number from 0 to 65535, not '65000:1:2'",
            "large-community 65000:1:2",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) community 65000",
            48,
            "community must be A:B with each number from 0 to 65535, not '65000'",
            "e.g. community 65000:666",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) large-community 1:2:4294967296",
            54,
            "large-community must be A:B:C with each number from 0 to 4294967295, not '1:2:4294967296'",
            "e.g. large-community 65000:1:666",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) med 4294967296",
            42,
            "med must be a number from 0 to 4294967295, not '4294967296'",
            "e.g. med 200",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) local-pref -5",
            49,
            "local-pref must be a number from 0 to 4294967295, not '-5'",
            "e.g. local-pref 50",
        ),
        ("1.1.1.1 = all(b:a) degraded any(b:a) med", 38, "'med' needs a value", "e.g. med 200"),
        ("1.1.1.1 = all(b:a) degraded any(b:a) med 1 med 2", 44, "med is set twice", "keep one"),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) local-pref 1 local-pref 1",
            51,
            "local-pref is set twice",
            "keep one",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) community 1:2 community 01:2",
            52,
            "community 01:2 is listed twice",
            "list it once",
        ),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) metric 200",
            38,
            "unknown attribute 'metric'",
            "attributes: med,",
        ),
        ("1.1.1.1 = all(b:a) degraded any(b:a) MED 200", 38, "unknown attribute 'MED'", "did you mean med?"),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) comunity 1:2",
            38,
            "unknown attribute",
            "did you mean community?",
        ),
        ("1.1.1.1 = all(b:a) degraded any() med 1", 29, "'any' needs at least one target", None),
        ("1.1.1.1 = all(b:a) degraded any(f:x>=2) med 1", 36, "a server threshold needs a backend", None),
    ],
)
def test_each_new_construct_is_refused_at_its_column_with_a_hint(
    text: str, col: int, message: str, hint: str | None
) -> None:
    """K larger than the list, >=0, >=101%, a frontend's threshold, a community out of range, a
    degraded clause without attributes...: each error names its column and how to fix it."""
    got_col, got_message, got_hint = only_error(text)
    assert (got_col, got_message[: len(message)]) == (col, message)
    if hint is not None:
        assert got_hint is not None
        assert hint in got_hint


@pytest.mark.parametrize(
    ("text", "col", "message", "hint"),
    [
        (
            "1.1.1.1 = b:be_app>=3",
            11,
            "expected all, any, never or always (or not, atleast), found 'b:be_app>=3'",
            "a target stands inside a condition: all(b:be_app>=3)",
        ),
        ("1.1.1.1 = NOT(b:a)", 11, "expected all, any, never or always (or not, atleast)", "lowercase: not"),
        ("1.1.1.1 = atlest(2, b:a)", 11, "expected all, any, never or always", "did you mean atleast?"),
        (
            "1.1.1.1 = any(never, b:a)",
            15,
            "expected a target (b:<backend> or f:<frontend>) or ')'",
            "a condition inside another has parentheses: never(...)",
        ),
        (
            "1.1.1.1 = any(b:a, all, b:b)",
            20,
            "expected a target (b:<backend> or f:<frontend>) after ','",
            "parentheses: all(...)",
        ),
        ("1.1.1.1 = all(b:a) degrade any(b:b) med 1", 20, "expected end of rule", "did you mean degraded?"),
        ("1.1.1.1 = all(b:a) med 200", 20, "expected end of rule", "attributes follow a degraded clause"),
        (
            "1.1.1.1 = all(b:a) degraded any(b:a) med 1 degraded any(b:b) med 2",
            56,
            "expected end of rule",
            "a rule has one degraded clause",
        ),
        ("1.1.1.1 = all(b:a) degraded", 28, "expected all, any, never or always (or not, atleast)", None),
        (
            "1.1.1.1 = all(b:a) degraded any(b:b) med 1 (",
            44,
            "expected end of rule",
            "optionally followed by",
        ),
        ("1.1.1.1 = all(any(b:a, b:b)", 28, "expected ',' or ')'", None),
    ],
)
def test_syntax_errors_of_the_new_forms_point_at_the_problem(
    text: str, col: int, message: str, hint: str | None
) -> None:
    """A threshold without its condition, an uppercase or misspelt operator, a nested word without
    parentheses, a misspelt `degraded`: each is a syntax error at its column, with a hint."""
    got_col, got_message, got_hint = only_error(text)
    assert (got_col, got_message[: len(message)]) == (col, message)
    if hint is None:
        assert got_hint is None or "a rule is" in got_hint
    else:
        assert got_hint is not None
        assert hint in got_hint


def test_every_error_of_a_rule_is_reported_at_once() -> None:
    """One rule with several wrong parts reports each of them, in column order."""
    with pytest.raises(RuleError) as caught:
        parse_rules("1.1.1.1 = any(f:x>=2, atleast(5, b:a)) degraded all(b:a>=0) med x community 1\n")
    assert [(d.col, d.message.split(":")[0].split(",")[0]) for d in caught.value.diagnostics] == [
        (18, "a server threshold needs a backend"),
        (31, "atleast(5"),
        (58, "server threshold >=0 is always true"),
        (65, "med must be a number from 0 to 4294967295"),
        (77, "community must be A"),
    ]
