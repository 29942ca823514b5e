"""The grammar: shapes of lines, columns, and syntax errors."""

from __future__ import annotations

import pytest

from rhid.errors import Diagnostic
from rhid.grammar import RuleSyntax, parse, parse_line, split_lines, strip_comment


def rule(text: str) -> RuleSyntax:
    result = parse_line(1, text, "t.cfg")
    assert isinstance(result, RuleSyntax), result
    return result


def error(text: str) -> Diagnostic:
    result = parse_line(1, text, "t.cfg")
    assert isinstance(result, Diagnostic), result
    return result


def test_vendor_example_with_table() -> None:
    """The vendor's `vol1%192.168.1.10/32 = all(b:be_static,b:be_app)` parses into its parts."""
    parsed = rule("vol1%192.168.1.10/32 = all(b:be_static,b:be_app)")
    (network,) = parsed.networks
    assert (network.table, network.address, network.length) == ("vol1", "192.168.1.10", "32")
    assert (network.col, network.address_col, network.length_col) == (1, 6, 19)
    assert parsed.condition.aggregate == "all"
    assert parsed.condition.operands is not None
    assert [(t.kind, t.name, t.col, t.name_col) for t in parsed.condition.operands] == [
        ("b", "be_static", 28, 30),
        ("b", "be_app", 40, 42),
    ]


def test_network_without_table_or_length() -> None:
    """A bare address leaves table and length unset, for compile to default."""
    (network,) = rule("2001:db8::10 = any(f:fe)").networks
    assert (network.table, network.address, network.length) == (None, "2001:db8::10", None)


def test_several_networks_with_free_spaces() -> None:
    """Networks are comma-separated with any spaces or tabs around the commas."""
    parsed = rule("10.0.0.1 ,\t2001:db8::1/128,x%1.1.1.1 = never")
    assert [n.address for n in parsed.networks] == ["10.0.0.1", "2001:db8::1", "1.1.1.1"]
    assert [n.col for n in parsed.networks] == [1, 12, 28]
    assert parsed.networks[2].table == "x"


@pytest.mark.parametrize(
    ("text", "operands"),
    [("1.1.1.1 = never", None), ("1.1.1.1 = never()", 0), ("1.1.1.1 = always( f:a , b:c )", 2)],
)
def test_never_and_always_with_or_without_targets(text: str, operands: int | None) -> None:
    """`never`/`always` may have no parentheses, empty ones, or targets."""
    condition = rule(text).condition
    assert (None if condition.operands is None else len(condition.operands)) == operands


def test_spaces_around_tokens_are_free() -> None:
    """Spaces and tabs around `=`, `(`, `,` and `)` do not change what a line means."""

    def meaning(text: str) -> tuple[object, ...]:
        parsed = rule(text)
        operands = parsed.condition.operands or ()
        return (
            [(n.table, n.address, n.length) for n in parsed.networks],
            parsed.condition.aggregate,
            [(t.kind, t.name) for t in operands],
        )

    assert meaning("1.1.1.1=all(b:x,f:y)") == meaning("\t1.1.1.1  =  all ( b:x ,\tf:y )  ")


def test_trailing_comment_is_dropped() -> None:
    """A `#` comment after a rule is ignored."""
    parsed = rule("1.1.1.1 = all(b:x) # why")
    assert parsed.condition.operands is not None
    assert parsed.condition.operands[0].name == "x"


@pytest.mark.parametrize("text", ["", "   ", "# only a comment", "  \t# indented comment"])
def test_blank_and_comment_lines_are_nothing(text: str) -> None:
    """Blank and comment-only lines produce neither a rule nor an error."""
    assert parse_line(1, text, "t.cfg") is None


def test_tabs_keep_their_column() -> None:
    """A tab counts as one column, as editors report it (pyparsing would expand it to 8)."""
    diagnostic = error("\t1.1.1.1 = all(b:x")
    assert diagnostic.col == 19  # one past the end; 26 if the tab were expanded


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("1.2.3.4 all(b:x)", 9, "expected '=' or ','"),
        ("1.2.3.4 = ALL(b:x)", 11, "expected all, any, never or always"),
        ("1.2.3.4 = allx(b:x)", 11, "expected all, any, never or always"),
        ("1.2.3.4 = all(b:x", 18, "expected ',' or ')'"),
        ("1.2.3.4 = all(x)", 15, "expected a target (b:<backend> or f:<frontend>) or ')'"),
        ("1.2.3.4 = all(b:x,)", 19, "expected a target (b:<backend> or f:<frontend>) after ','"),
        ("1.2.3.4 = all(b:x y)", 19, "a space cannot be part of a name"),
        ("1.2.3.4 = all(b:x) extra", 20, "expected end of rule"),
        (" = all(b:x)", 2, "expected network"),
        ("a%b%c = all(b:x)", 4, "expected '=' or ','"),
        ("1.2.3.4, = all(b:x)", 8, "expected '=' or ','"),
        ("1.2.3.4 =", 10, "expected all, any, never or always"),
    ],
)
def test_syntax_errors_point_at_the_problem(text: str, col: int, message: str) -> None:
    """Each syntax error names what was expected at the column where it went wrong."""
    diagnostic = error(text)
    assert diagnostic.col == col
    assert diagnostic.message.startswith(message), diagnostic.message


def test_uppercase_aggregate_gets_a_hint() -> None:
    """`ALL(...)` is refused with a hint that aggregates are lowercase."""
    assert error("1.2.3.4 = ALL(b:x)").hint == "aggregates are lowercase: all"


def test_parse_collects_every_bad_line() -> None:
    """A document keeps the good rules and one diagnostic per bad line, with line numbers."""
    document = parse("1.1.1.1 = all(b:a)\nbad line\n\n# c\n2.2.2.2 = any(\n3.3.3.3 = never\n", "f.cfg")
    assert [r.line for r in document.rules] == [1, 6]
    assert [(d.path, d.line) for d in document.errors] == [("f.cfg", 2), ("f.cfg", 5)]


def test_lines_split_on_newline_only() -> None:
    """Only `\\n` (with an optional `\\r`) ends a line, so line numbers match editors."""
    assert split_lines("a\r\nb\x0bc\n\nd") == ["a", "b\x0bc", "", "d"]


def test_comment_starts_at_first_hash() -> None:
    """No valid token contains `#`, so the first one starts a comment."""
    assert strip_comment("1.1.1.1 = all(b:x) # a # b") == "1.1.1.1 = all(b:x) "
