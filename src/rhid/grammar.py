"""The syntax of hapee-rhi.cfg: text in, syntax trees out, nothing checked beyond shape.

Grammar, per line (blank lines and ``#`` comments, whole-line or trailing, are dropped first)::

    rule       ::= networks "=" condition [ degraded ]
    networks   ::= network { "," network }
    network    ::= [ table "%" ] address [ "/" length ]
    condition  ::= operator [ "(" [ argument { "," argument } ] ")" ]
    operator   ::= "all" | "any" | "never" | "always" | "not" | "atleast"
    argument   ::= operator "(" [ argument { "," argument } ] ")"    -- a nested expression
                 | target
                 | count                                           -- atleast's K
    target     ::= kind ":" name [ comparison limit ]              -- b:be_app>=3, b:be_app>=50%
    kind       ::= "b" | "f"
    degraded   ::= "degraded" condition { attribute }
    attribute  ::= word [ value ]             -- med N, local-pref N, community A:B, large-community A:B:C

The vendor's grammar is the first four lines with `operator` one of its four aggregates and every
argument a plain target; every line it accepts means here what it always meant. Such a plain line
(``networks = operator(targets)``, spaces and tabs between) is parsed by one regular expression of
the same tokens (`parse_plain`), without pyparsing; a property test holds it equal to the grammar.

Tokens are deliberately wider than what is valid (a table, address, length, name, comparison,
limit, count, attribute word or value is any run of characters that cannot end it, and arguments
are not sorted by operator), so that `rhid.rules.compile_rules` can point at the exact character
that is wrong and say why, instead of a vague "expected ...": `not` with two arguments, a count
outside `atleast`, a threshold on a frontend, an unknown attribute are all its to report. The
operators' words are spelt here once (`OPERATORS`); `rhid.rules` gives each its meaning. Nothing
here touches a socket, a clock or a logger.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import pyparsing as pp

from rhid.errors import Diagnostic

ALL, ANY, NEVER, ALWAYS, NOT, ATLEAST = "all", "any", "never", "always", "not", "atleast"
AGGREGATES = (ALL, ANY, NEVER, ALWAYS)  # the vendor's words
OPERATORS = (*AGGREGATES, NOT, ATLEAST)
DEGRADED = "degraded"
MED, LOCAL_PREF, COMMUNITY, LARGE_COMMUNITY = "med", "local-pref", "community", "large-community"
ATTRIBUTES = (MED, LOCAL_PREF, COMMUNITY, LARGE_COMMUNITY)  # a degraded clause's words
OPERATOR_WORDS = f"{ALL}, {ANY}, {NEVER} or {ALWAYS} (or {NOT}, {ATLEAST})"  # what may follow "="
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
    """``kind:name``, and ``comparison limit`` (``>=`` ``50%``) when a threshold follows it."""

    col: int
    kind: str
    name: str
    name_col: int
    comparison: str | None = None
    comparison_col: int = 0
    limit: str | None = None
    limit_col: int = 0


@dataclass(frozen=True, slots=True)
class CountSyntax:
    """A bare number among the arguments: `atleast`'s K, as written."""

    col: int
    text: str


@dataclass(frozen=True, slots=True)
class ConditionSyntax:
    """``operator(arguments)``; `arguments` is None when the parentheses were left out.

    `aggregate` is the operator's word (one of `OPERATORS`); `arguments` are the targets, nested
    conditions and counts in the order written."""

    col: int
    aggregate: str
    arguments: tuple[TargetSyntax | ConditionSyntax | CountSyntax, ...] | None

    @property
    def operands(self) -> tuple[TargetSyntax, ...] | None:
        """The targets among the arguments (every argument, in the vendor's grammar); None when
        the parentheses were left out."""
        if self.arguments is None:
            return None
        return tuple(argument for argument in self.arguments if isinstance(argument, TargetSyntax))


@dataclass(frozen=True, slots=True)
class AttributeSyntax:
    """``word value`` of a degraded clause; `value` is None when nothing followed the word."""

    col: int
    word: str
    value: str | None
    value_col: int


@dataclass(frozen=True, slots=True)
class DegradedSyntax:
    """``degraded condition attributes``."""

    col: int
    condition: ConditionSyntax
    attributes: tuple[AttributeSyntax, ...]


@dataclass(frozen=True, slots=True)
class RuleSyntax:
    """One rule line. `source` is the whole physical line, for error messages."""

    line: int
    source: str
    networks: tuple[NetworkSyntax, ...]
    condition: ConditionSyntax
    degraded: DegradedSyntax | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: the rules whose syntax was right, and a diagnostic for every line that was not."""

    path: str
    rules: tuple[RuleSyntax, ...]
    errors: tuple[Diagnostic, ...]


_NETWORK = re.compile(r"(?:(?P<table>[^\s,=()%/]*)%)?(?P<address>[^\s,=()%/]+)(?:/(?P<length>[^\s,=()%/]*))?")
_TARGET = re.compile(
    r"(?P<kind>[A-Za-z][A-Za-z0-9_]*):(?P<name>[^\s,()=<>]*)(?:(?P<comparison>[<>=]++)(?P<limit>[^\s,()]*))?"
)
_COUNT = re.compile(r"[0-9][^\s,()]*")
_ATTRIBUTE = re.compile(r"(?P<word>[A-Za-z][A-Za-z0-9_-]*)(?:[ \t]+(?P<value>[^\s()]+))?")
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
    comparison = match["comparison"]
    if comparison is None:
        return TargetSyntax(
            col=match.start() + 1, kind=match["kind"], name=match["name"], name_col=match.start("name") + 1
        )
    return TargetSyntax(
        col=match.start() + 1,
        kind=match["kind"],
        name=match["name"],
        name_col=match.start("name") + 1,
        comparison=comparison,
        comparison_col=match.start("comparison") + 1,
        limit=match["limit"],
        limit_col=match.start("limit") + 1,
    )


def _list_action(
    item: re.Pattern[str], build: Callable[[re.Match[str]], T]
) -> Callable[..., list[tuple[T, ...]]]:
    """The parse action of a `_list_of(item)` token: each item's match, built into its syntax."""

    def action(s: str, loc: int, toks: pp.ParseResults) -> list[tuple[T, ...]]:
        return [tuple(build(match) for match in _split(s, loc, len(toks[0]), item))]

    return action


def _count(s: str, loc: int, toks: pp.ParseResults) -> CountSyntax:
    return CountSyntax(col=loc + 1, text=toks[0])


def _attribute(s: str, loc: int, toks: pp.ParseResults) -> AttributeSyntax:
    # The token matched _ATTRIBUTE at loc: no None to handle.
    match = cast(re.Match[str], _ATTRIBUTE.match(s, loc))
    value = match["value"]
    value_col = match.start("value") + 1 if value is not None else 0
    return AttributeSyntax(loc + 1, match["word"], value, value_col)


def _condition(s: str, loc: int, toks: pp.ParseResults) -> ConditionSyntax:
    # tokens: the operator, then "(" and the arguments when parentheses were written; a run of
    # targets is one token holding a tuple, a nested condition or a count one token each
    arguments: list[TargetSyntax | ConditionSyntax | CountSyntax] | None = None
    if len(toks) > 1:
        arguments = []
        for token in toks[2:]:
            if isinstance(token, tuple):
                arguments.extend(token)
            else:
                arguments.append(token)
    return ConditionSyntax(
        col=loc + 1, aggregate=toks[0], arguments=None if arguments is None else tuple(arguments)
    )


_WORDS = "|".join(sorted(OPERATORS, key=len, reverse=True))
_FLAT = re.compile(
    rf"(?P<word>{_WORDS})\b[ \t]*\([ \t]*"
    rf"(?P<targets>{_list_of(_TARGET).pattern})?[ \t]*\)"
)


def _flat(s: str, loc: int, toks: pp.ParseResults) -> ConditionSyntax:
    """``operator(targets)`` matched as one token: the same syntax `_condition` builds."""
    return _flat_at(s, loc)


def _flat_at(s: str, loc: int) -> ConditionSyntax:
    """The syntax of the ``operator(targets)`` that `_FLAT` matches at `loc` of `s`."""
    # _FLAT matched at loc (the grammar's token, or _PLAIN's group): no None to handle.
    match = cast(re.Match[str], _FLAT.match(s, loc))
    start, end = match.span("targets")
    arguments = () if start < 0 else tuple(_target(item) for item in _split(s, start, end - start, _TARGET))
    return ConditionSyntax(col=loc + 1, aggregate=match["word"], arguments=arguments)


def _degraded(s: str, loc: int, toks: pp.ParseResults) -> DegradedSyntax:
    return DegradedSyntax(col=loc + 1, condition=toks[1], attributes=tuple(toks[2:]))


def _build_grammar() -> pp.ParserElement:
    # A run of networks, and of targets, is a single regex token: one token is several times
    # cheaper in pyparsing than a DelimitedList (10,000 rules must check in < 1 s), and a vendor
    # rule's whole list of targets is one run. Nested conditions and counts are one token each.
    networks = pp.Regex(_list_of(_NETWORK)).set_name("network ([table%]address[/length])")
    networks.set_parse_action(_list_action(_NETWORK, _network))
    targets = pp.Regex(_list_of(_TARGET)).set_name("target (b:<backend> or f:<frontend>)")
    targets.set_parse_action(_list_action(_TARGET, _target))
    count = pp.Regex(_COUNT).set_name("count").set_parse_action(_count)
    operator = pp.Regex(rf"(?:{_WORDS})\b").set_name(OPERATOR_WORDS)
    open_ = pp.Literal("(")
    close = pp.Suppress(pp.Literal(")").set_name("',' or ')'"))
    comma = pp.Suppress(pp.Literal(","))
    nested = pp.Forward()
    nested.set_name("condition")
    argument = nested | targets | count
    arguments = argument + pp.ZeroOrMore(comma + argument)
    # "all(" starts a nested condition; "all:x" is a target (of an unknown kind) instead.
    nested <<= (operator + open_ - pp.Opt(arguments) - close).set_parse_action(_condition)
    general = (operator + pp.Opt(open_ - pp.Opt(arguments) - close)).set_parse_action(_condition)
    # The vendor's shape, operator(targets), is one token: most rules are, and a file of 10,000 of
    # them checks in half the time. Anything else (and every error) is the general element's.
    flat = pp.Regex(re.sub(r"\?P<\w+>", "?:", _FLAT.pattern)).set_parse_action(_flat)
    condition = (flat | general).set_name(OPERATOR_WORDS)
    attribute = pp.Regex(_ATTRIBUTE).set_name("attribute").set_parse_action(_attribute)
    degraded = pp.Keyword(DEGRADED) - condition.copy() - pp.ZeroOrMore(attribute)
    degraded.set_parse_action(_degraded)
    equals = pp.Suppress(pp.Literal("=").set_name("'=' or ','"))
    # Ending in StringEnd is what parse_all=True does (pyparsing's docs say so), but parse_all builds
    # that element anew on every call: a quarter of the time per line. Tabs are kept for columns.
    rule = networks + equals - condition + pp.Opt(degraded) + pp.StringEnd().set_name("end of rule")
    return rule.set_name("rule").streamline().parse_with_tabs()


_RULE = _build_grammar()


def _atomic(pattern: re.Pattern[str]) -> str:
    """`pattern` as an atomic group without names: once matched it is never backtracked into, as
    pyparsing never re-matches a token that matched."""
    return "(?>" + re.sub(r"\?P<\w+>", "?:", pattern.pattern) + ")"


# The vendor's whole line, ``networks = operator(targets)``, as one regular expression: the same
# tokens as the grammar's, each atomic (pyparsing does not backtrack into a token), between them
# only spaces and tabs (pyparsing's whitespace, but for a ``\r`` or ``\n`` that no such line holds).
# When it matches, `parse_plain` builds exactly what the grammar builds for that line, without
# pyparsing (most of a 10,000-rule file's cold start); anything else, and every error, is the grammar's.
_PLAIN = re.compile(
    rf"[ \t]*(?P<networks>{_atomic(_list_of(_NETWORK))})[ \t]*=[ \t]*(?P<condition>{_atomic(_FLAT)})[ \t]*"
)


def parse_plain(line_no: int, source: str, text: str) -> RuleSyntax | None:
    """`text` (`source` without its comment) parsed as the vendor's plain line, without pyparsing;
    None when it is not one (`_PLAIN`): then `parse_general` decides."""
    match = _PLAIN.fullmatch(text)
    if match is None:
        return None
    start, end = match.span("networks")
    networks = tuple(_network(item) for item in _split(text, start, end - start, _NETWORK))
    return RuleSyntax(line_no, source, networks, _flat_at(text, match.start("condition")))


def strip_comment(line: str) -> str:
    """Drop a ``#`` comment; no valid token contains ``#``, so the first one starts it."""
    cut = line.find("#")
    return line if cut < 0 else line[:cut]


def _expected(exc: pp.ParseBaseException, text: str) -> tuple[int, str, str | None]:
    """Turn pyparsing's exception into (0-based index, message, hint) in the words of the file."""
    loc = exc.loc
    message = exc.msg[0].lower() + exc.msg[1:] if exc.msg else "syntax error"
    rest = text[loc:].strip()
    hint: str | None = None
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
        if (nested := re.split(r"[\s,()]", rest, maxsplit=1)[0]) in OPERATORS:
            hint = f"a condition inside another has parentheses: {nested}(...)"
    found = repr(rest[:20]) if rest else "end of line"
    return loc, f"{message}, found {found}", hint or _hint(message, text[:loc], rest)


_GAP = re.compile(r"[ \t]*(?:,[ \t]*)?")


def _odd_space(text: str, loc: int) -> tuple[int, str, str] | None:
    """A space that is not one where the grammar stopped (at `loc`, or after the spaces and tabs
    there): (index, message, hint), or None. A no-break space pasted from a web page looks like a
    space and breaks a rule anywhere; say what it is rather than what was expected."""
    # pyparsing stops where the gap or a comma's gap begins; _GAP matches anywhere (maybe nothing)
    index = cast(re.Match[str], _GAP.match(text, loc)).end()
    odd = text[index : index + 1]
    if not odd or not odd.isspace() or odd in " \t\r\n":
        return None
    name = unicodedata.name(odd, "")
    return (
        index,
        f"U+{ord(odd):04X}{' ' + name if name else ''} where only a space or a tab may stand",
        "retype it as a plain space: text copied from a web page or a word processor often carries one",
    )


def _hint(message: str, before: str, rest: str) -> str | None:  # noqa: PLR0911 -- one exit per hint
    """A hint for what was expected (`message`) where `rest` starts, after `before`."""
    word = rest.split("(", 1)[0].strip().lower()
    first = rest.split(None, 1)[0].lower() if rest else ""
    if "all, any" in message and word in OPERATORS:
        return f"aggregates are lowercase: {word}"
    if "all, any" in message and (close := difflib.get_close_matches(word, OPERATORS, n=1)):
        return f"did you mean {close[0]}?"
    if "all, any" in message and ":" in word:
        return f"a target stands inside a condition: all({rest.split(None, 1)[0]})"
    if message == "expected end of rule" and len(re.findall(rf"\b{DEGRADED}\b", before)) > 1:
        return f"a rule has one {DEGRADED} clause"
    if message == "expected end of rule" and first in ATTRIBUTES:
        return f"attributes follow a {DEGRADED} clause: <condition> {DEGRADED} <condition> {first} ..."
    if message == "expected end of rule" and difflib.get_close_matches(first, [DEGRADED], n=1):
        return f"did you mean {DEGRADED}? (<condition> {DEGRADED} <condition> {MED} N ...)"
    if "'='" in message or message == "expected end of rule":
        return (
            f"a rule is <network>[,<network>...] = {'|'.join(AGGREGATES)}(b:<backend>|f:<frontend>,...), "
            f"optionally followed by: {DEGRADED} <condition> <attributes>"
        )
    return None


def parse_line(line_no: int, source: str, path: str) -> RuleSyntax | Diagnostic | None:
    """Parse one physical line: a rule, a diagnostic, or None for a blank or comment line."""
    text = strip_comment(source)
    if not text.strip():
        return None
    return parse_plain(line_no, source, text) or parse_general(line_no, source, text, path)


def parse_general(line_no: int, source: str, text: str, path: str) -> RuleSyntax | Diagnostic:
    """`text` (`source` without its comment, not blank) parsed by the whole grammar."""
    try:
        parsed = _RULE.parse_string(text)
    except pp.ParseBaseException as exc:
        index, message, hint = _odd_space(text, exc.loc) or _expected(exc, text)
        return Diagnostic(path, line_no, index + 1, message, source, hint)
    return RuleSyntax(
        line=line_no,
        source=source,
        networks=tuple(parsed[0]),
        condition=parsed[1],
        degraded=parsed[2] if len(parsed) > 2 else None,
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
