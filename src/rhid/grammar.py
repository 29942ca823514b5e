"""The syntax of hapee-rhi.cfg: text in, syntax trees out, nothing checked beyond shape.

Grammar, per line (blank lines and ``#`` comments, whole-line or trailing, are dropped first)::

    rule      ::= networks "=" condition
    networks  ::= network { "," network }
    network   ::= [ table "%" ] address [ "/" length ]
    condition ::= aggregate [ "(" [ operand { "," operand } ] ")" ]
    aggregate ::= "all" | "any" | "never" | "always"
    operand   ::= target                      -- the extension point: nested conditions, "not"
    target    ::= kind ":" name
    kind      ::= "b" | "f"

Tokens are deliberately wider than what is valid (a table, address, length or name is any run of
characters that cannot end it), so that `rhid.rules.compile_rules` can point at the exact character
that is wrong and say why, instead of a vague "expected ...". Nothing here touches a socket, a
clock or a logger.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import pyparsing as pp

from rhid.errors import Diagnostic

AGGREGATES = ("all", "any", "never", "always")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NetworkSyntax:
    """``[table%]address[/length]`` as written; columns are 1-based."""

    col: int
    table: str | None
    address: str
    address_col: int
    length: str | None
    length_col: int


@dataclass(frozen=True, slots=True)
class TargetSyntax:
    """``kind:name`` as written."""

    col: int
    kind: str
    name: str
    name_col: int


@dataclass(frozen=True, slots=True)
class ConditionSyntax:
    """``aggregate(operands)``; `operands` is None when the parentheses were left out."""

    col: int
    aggregate: str
    operands: tuple[TargetSyntax, ...] | None


@dataclass(frozen=True, slots=True)
class RuleSyntax:
    """One rule line. `source` is the whole physical line, for error messages."""

    line: int
    source: str
    networks: tuple[NetworkSyntax, ...]
    condition: ConditionSyntax


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: the rules whose syntax was right, and a diagnostic for every line that was not."""

    path: str
    rules: tuple[RuleSyntax, ...]
    errors: tuple[Diagnostic, ...]


_NETWORK = re.compile(r"(?:(?P<table>[^\s,=()%/]*)%)?(?P<address>[^\s,=()%/]+)(?:/(?P<length>[^\s,=()%/]*))?")
_TARGET = re.compile(r"(?P<kind>[A-Za-z][A-Za-z0-9_]*):(?P<name>[^\s,()=]*)")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


def _list_of(item: re.Pattern[str]) -> re.Pattern[str]:
    """A comma-separated run of `item`, matched as one token (its groups unnamed)."""
    bare = re.sub(r"\?P<\w+>", "?:", item.pattern)
    return re.compile(rf"{item.pattern}(?:{_SEPARATOR.pattern}{bare})*")


def _split(s: str, loc: int, length: int, item: re.Pattern[str]) -> list[re.Match[str]]:
    """The matches of `item` in a token built by `_list_of` that starts at `loc`."""
    end = loc + length
    matches: list[re.Match[str]] = []
    position = loc
    while True:
        # The token matched `_list_of(item)`, so every item in it matches: no None to handle.
        match = cast(re.Match[str], item.match(s, position, end))
        matches.append(match)
        separator = _SEPARATOR.match(s, match.end(), end)
        if separator is None:
            return matches
        position = separator.end()


def _network(match: re.Match[str]) -> NetworkSyntax:
    length = match["length"]
    return NetworkSyntax(
        col=match.start() + 1,
        table=match["table"],
        address=match["address"],
        address_col=match.start("address") + 1,
        length=length,
        length_col=match.start("length") + 1 if length is not None else 0,
    )


def _target(match: re.Match[str]) -> TargetSyntax:
    return TargetSyntax(
        col=match.start() + 1, kind=match["kind"], name=match["name"], name_col=match.start("name") + 1
    )


def _list_action(
    item: re.Pattern[str], build: Callable[[re.Match[str]], T]
) -> Callable[..., list[tuple[T, ...]]]:
    """The parse action of a `_list_of(item)` token: each item's match, built into its syntax."""

    def action(s: str, loc: int, toks: pp.ParseResults) -> list[tuple[T, ...]]:
        return [tuple(build(match) for match in _split(s, loc, len(toks[0]), item))]

    return action


def _condition(s: str, loc: int, toks: pp.ParseResults) -> ConditionSyntax:
    # tokens: the aggregate, then "(" and the tuple of operands when parentheses were written
    operands: tuple[TargetSyntax, ...] | None = None
    if len(toks) > 1:
        operands = toks[2] if len(toks) > 2 else ()
    return ConditionSyntax(col=loc + 1, aggregate=toks[0], operands=operands)


def _build_grammar() -> pp.ParserElement:
    # Lists of networks and of targets are single regex tokens: they never nest, and one token is
    # several times cheaper in pyparsing than a DelimitedList (10,000 rules must check in < 1 s).
    # Nesting and "not" will replace `operands` with DelimitedList(target | condition | ...).
    networks = pp.Regex(_list_of(_NETWORK)).set_name("network ([table%]address[/length])")
    networks.set_parse_action(_list_action(_NETWORK, _network))
    operands = pp.Regex(_list_of(_TARGET)).set_name("target (b:<backend> or f:<frontend>)")
    operands.set_parse_action(_list_action(_TARGET, _target))
    aggregate = pp.Regex(r"(?:all|any|never|always)\b").set_name("all, any, never or always")
    close = pp.Suppress(pp.Literal(")").set_name("',' or ')'"))
    condition = (aggregate + pp.Opt(pp.Literal("(") - pp.Opt(operands) - close)).set_name("condition")
    condition.set_parse_action(_condition)
    equals = pp.Suppress(pp.Literal("=").set_name("'=' or ','"))
    # Ending in StringEnd is what parse_all=True does (pyparsing's docs say so), but parse_all builds
    # that element anew on every call: a quarter of the time per line. Tabs are kept for columns.
    rule = networks + equals - condition + pp.StringEnd().set_name("end of rule")
    return rule.set_name("rule").streamline().parse_with_tabs()


_RULE = _build_grammar()


def strip_comment(line: str) -> str:
    """Drop a ``#`` comment; no valid token contains ``#``, so the first one starts it."""
    cut = line.find("#")
    return line if cut < 0 else line[:cut]


def _expected(exc: pp.ParseBaseException, text: str) -> tuple[int, str, str | None]:
    """Turn pyparsing's exception into (0-based index, message, hint) in the words of the file."""
    loc = exc.loc
    message = exc.msg[0].lower() + exc.msg[1:] if exc.msg else "syntax error"
    rest = text[loc:].strip()
    if message == "expected ',' or ')'":
        before = text[:loc].rstrip()
        if rest.startswith(","):
            loc = text.index(",", loc) + 1
            while loc < len(text) and text[loc] in " \t":
                loc += 1
            rest = text[loc:].strip()
            message = "expected a target (b:<backend> or f:<frontend>) after ','"
        elif before.endswith("("):
            message = "expected a target (b:<backend> or f:<frontend>) or ')'"
        elif before[-1:] != text[loc - 1 : loc] and rest[:1] not in {"", ")"}:
            name = before.rsplit("(", 1)[-1].rsplit(",", 1)[-1].strip()
            return (
                loc,
                f"a space cannot be part of a name: {name!r} is followed by {rest[:20]!r}",
                "names use only A-Z a-z 0-9 . _ : -, and targets are separated by ','",
            )
    found = repr(rest[:20]) if rest else "end of line"
    hint: str | None = None
    word = rest.split("(", 1)[0].strip().lower()
    if "all, any" in message and word in AGGREGATES:
        hint = f"aggregates are lowercase: {word}"
    elif "all, any" in message and (close := difflib.get_close_matches(word, AGGREGATES, n=1)):
        hint = f"did you mean {close[0]}?"
    elif "'='" in message or message == "expected end of rule":
        hint = "a rule is <network>[,<network>...] = all|any|never|always(b:<backend>|f:<frontend>,...)"
    return loc, f"{message}, found {found}", hint


def parse_line(line_no: int, source: str, path: str) -> RuleSyntax | Diagnostic | None:
    """Parse one physical line: a rule, a diagnostic, or None for a blank or comment line."""
    text = strip_comment(source)
    if not text.strip():
        return None
    try:
        parsed = _RULE.parse_string(text)
    except pp.ParseBaseException as exc:
        index, message, hint = _expected(exc, text)
        return Diagnostic(path, line_no, index + 1, message, source, hint)
    return RuleSyntax(
        line=line_no,
        source=source,
        networks=tuple(parsed[0]),
        condition=parsed[1],
    )


def split_lines(text: str) -> list[str]:
    """Split on ``\\n`` only (dropping a ``\\r`` before it), so line numbers match what editors show."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse(text: str, path: str = "<rules>") -> Document:
    """Parse a whole rule file. Never raises for bad input: errors are collected per line."""
    rules: list[RuleSyntax] = []
    errors: list[Diagnostic] = []
    for line_no, source in enumerate(split_lines(text), start=1):
        result = parse_line(line_no, source, path)
        if isinstance(result, RuleSyntax):
            rules.append(result)
        elif isinstance(result, Diagnostic):
            errors.append(result)
    return Document(path=path, rules=tuple(rules), errors=tuple(errors))
