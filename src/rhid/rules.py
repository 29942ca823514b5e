"""What the rules mean: compile syntax into validated rules; each condition's three-valued verdict.

    text ──grammar.parse──> Document ──compile_rules──> RuleSet ──plan.decide(health)──> the plan

Everything here is pure: no sockets, clock or logging. `load_rules` is the one function that reads
a file, and it is exactly what `rhid check`, daemon start-up and reload run.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rhid import names
from rhid.errors import Diagnostic, RuleError, RuleFileError
from rhid.grammar import ConditionSyntax, Document, NetworkSyntax, RuleSyntax, TargetSyntax, parse
from rhid.model import IPV6_SUFFIX, Channel, Network, Proxy, ProxyKind, Route

DEFAULT_TABLE = "vol1"
MAX_RULES_FILE_BYTES = 64 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


class Aggregate(enum.Enum):
    """How a condition combines its operands."""

    ALL = "all"
    ANY = "any"
    NEVER = "never"
    ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class Condition:
    """``aggregate(operands)``. Operands are proxies today; nested conditions will join them."""

    aggregate: Aggregate
    operands: tuple[Proxy, ...]

    def verdict(self, up: Mapping[Proxy, bool | None]) -> bool | None:
        """May the route be announced? `up` maps proxies to True/False, or None while unknown.

        A proxy missing from `up` is unknown, never down: rhid knows nothing about it yet. The logic
        is three-valued (Kleene): `all` is False as soon as one operand is down, `any` is True as
        soon as one is up; otherwise an unknown operand makes the verdict None, and the caller keeps
        the route as it is.
        """
        if self.aggregate is Aggregate.NEVER:
            return False
        if self.aggregate is Aggregate.ALWAYS:
            return True
        states = [up.get(proxy) for proxy in self.operands]
        decisive = self.aggregate is Aggregate.ANY  # any: one True decides; all: one False decides
        if decisive in states:
            return decisive
        if None in states:
            return None
        return not decisive


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule line, validated."""

    line: int
    routes: tuple[Route, ...]
    condition: Condition


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole validated rule file. Immutable: a reload builds a new one."""

    path: str
    rules: tuple[Rule, ...]
    proxies: tuple[Proxy, ...] = field(compare=False)  # each once, in the order the file names them
    channels: frozenset[Channel] = field(compare=False)
    by_route: Mapping[Route, Rule] = field(compare=False, repr=False)

    @classmethod
    def of(cls, path: str, rules: Iterable[Rule]) -> RuleSet:
        """Build a rule set and its indexes from rules already checked by `compile_rules`."""
        rules = tuple(rules)
        by_route = {route: rule for rule in rules for route in rule.routes}
        return cls(
            path=path,
            rules=rules,
            proxies=tuple(dict.fromkeys(proxy for rule in rules for proxy in rule.condition.operands)),
            channels=frozenset(route.channel for route in by_route),
            by_route=by_route,
        )

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route the file mentions, in file order."""
        return tuple(self.by_route)


# ---------------------------------------------------------------------------------------------
# compile: syntax -> validated rules, every problem reported at its column

_DIGITS = re.compile(r"[0-9]+\Z")


class _Checker:
    """Collects diagnostics for one document while building its rules."""

    def __init__(self, document: Document) -> None:
        self.path = document.path
        self.diagnostics: list[Diagnostic] = list(document.errors)
        self.first_seen: dict[Route, int] = {}
        self.protocols: dict[str, Channel] = {}
        self.symbol_problems: dict[tuple[str, str], names.NameProblem | None] = {}

    def error(self, rule: RuleSyntax, col: int, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(self.path, rule.line, col, message, rule.source, hint))

    def symbol_problem(self, name: str, what: str) -> names.NameProblem | None:
        """`names.bird_symbol_problem`, remembered: a file names few tables many times."""
        key = (name, what)
        if key not in self.symbol_problems:
            self.symbol_problems[key] = names.bird_symbol_problem(name, what)
        return self.symbol_problems[key]

    def table(self, rule: RuleSyntax, network: NetworkSyntax) -> str | None:
        if network.table is None:
            return DEFAULT_TABLE
        problem = self.symbol_problem(network.table, "table name")
        if problem is not None:
            self.error(rule, network.col + problem.offset, problem.message, problem.hint)
            return None
        return network.table

    def prefix(self, rule: RuleSyntax, network: NetworkSyntax) -> Network | None:
        try:
            address = ipaddress.ip_address(network.address)
        except ValueError:
            self.error(
                rule,
                network.address_col,
                f"{network.address!r} is not an IPv4 or IPv6 address",
                _address_hint(network.address),
            )
            return None
        maximum = address.max_prefixlen
        if network.length is None:
            return _network(address, maximum)
        if not _DIGITS.match(network.length):
            what = (
                "missing prefix length after '/'" if not network.length else "prefix length must be a number"
            )
            hint = f"e.g. {address}/{maximum} for a host route"
            netmask = _netmask_length(network.length) if address.version == 4 else None
            if netmask is not None:
                what, hint = (
                    "a netmask is not a prefix length",
                    f"/{network.length} is /{netmask}: write {address}/{netmask}",
                )
            self.error(rule, network.length_col, what, hint)
            return None
        length = int(network.length)
        if length > maximum:
            self.error(
                rule,
                network.length_col,
                f"prefix length /{length} is out of range for IPv{address.version} (0-{maximum})",
            )
            return None
        try:
            return _network(address, length)
        except ValueError:
            network_address = _network(address, length, strict=False).network_address
            self.error(
                rule,
                network.address_col,
                f"{address}/{length} has host bits set",
                f"did you mean {network_address}/{length}? (or {address}/{maximum} for a host route)",
            )
            return None

    def route(self, rule: RuleSyntax, network: NetworkSyntax) -> Route | None:
        table = self.table(rule, network)
        prefix = self.prefix(rule, network)
        if table is None or prefix is None:
            return None
        route = Route(table, prefix)
        channel = route.channel
        problem = self.symbol_problem(channel.protocol, "BIRD protocol name")
        if problem is not None:
            self.error(
                rule,
                network.col,
                f"table name {table!r} cannot carry IPv6 routes: {problem.message}",
                f"IPv6 routes go to the BIRD protocol {table}{IPV6_SUFFIX}; use a shorter table name",
            )
            return None
        owner = self.protocols.setdefault(channel.protocol, channel)
        if owner != channel:
            self.error(
                rule,
                network.col,
                f"BIRD protocol {channel.protocol!r} would carry both table {owner.table} "
                f"(IPv{owner.family}) and table {channel.table} (IPv{channel.family})",
                f"IPv6 routes of table T go to protocol T{IPV6_SUFFIX}; rename one of the tables",
            )
            return None
        first = self.first_seen.get(route)
        if first is not None:
            where = "on this line" if first == rule.line else f"by line {first}"
            hint = "list it once" if first == rule.line else f"merge lines {first} and {rule.line}"
            self.error(
                rule,
                network.col,
                f"{prefix} in table {table} is already used {where}",
                f"a prefix may appear in one rule only; {hint}",
            )
            return None
        self.first_seen[route] = rule.line
        return route

    def target(self, rule: RuleSyntax, target: TargetSyntax) -> Proxy | None:
        try:
            kind = ProxyKind(target.kind)
        except ValueError:
            hint = "use b:<backend> or f:<frontend>"
            if target.kind.lower() in {"b", "f"}:
                hint = f"target kinds are lowercase: {target.kind.lower()}:{target.name}"
            self.error(rule, target.col, f"unknown target kind {target.kind!r}", hint)
            return None
        problem = names.proxy_name_problem(target.name, kind.word)
        if problem is not None:
            self.error(rule, target.name_col + problem.offset, problem.message, problem.hint)
            return None
        return Proxy(kind, target.name)

    def condition(self, rule: RuleSyntax, condition: ConditionSyntax) -> Condition | None:
        aggregate = Aggregate(condition.aggregate)
        operands = condition.operands or ()
        if aggregate in {Aggregate.ALL, Aggregate.ANY} and not operands:
            self.error(
                rule,
                condition.col,
                f"'{aggregate.value}' needs at least one target",
                f"e.g. {aggregate.value}(b:be_app) or {aggregate.value}(b:be_app,f:fe_www)",
            )
            return None
        proxies = [self.target(rule, operand) for operand in operands]
        if any(proxy is None for proxy in proxies):
            return None
        return Condition(aggregate, tuple(proxy for proxy in proxies if proxy is not None))

    def rule(self, rule: RuleSyntax) -> Rule | None:
        routes = [self.route(rule, network) for network in rule.networks]
        condition = self.condition(rule, rule.condition)
        if condition is None or any(route is None for route in routes):
            return None
        return Rule(rule.line, tuple(route for route in routes if route is not None), condition)


def _network(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int, *, strict: bool = True
) -> Network:
    """Build a network from an address object (from its integer: the string form is slow to reparse)."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(address), length), strict=strict)
    return ipaddress.IPv6Network((int(address), length), strict=strict)


def _address_hint(text: str) -> str | None:
    if text.startswith("[") and text.endswith("]"):
        return f"write IPv6 addresses without brackets: {text[1:-1]}"
    if re.fullmatch(r"[0-9.]+", text) and text.count(".") != 3:
        return "an IPv4 address has four dotted numbers, e.g. 192.168.1.10"
    if re.fullmatch(r"[0-9.]+", text) and any(
        part.startswith("0") and part != "0" for part in text.split(".")
    ):
        return "leading zeros are not allowed in IPv4 addresses"
    return None


def _netmask_length(text: str) -> int | None:
    """The prefix length of a dotted IPv4 netmask (255.255.255.0 -> 24), or None if it is not one."""
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{text}").prefixlen
    except ValueError:
        return None


def compile_rules(document: Document, *, allow_empty: bool = False) -> RuleSet:
    """Validate a parsed document. Raises RuleError carrying every problem in the file, in order."""
    checker = _Checker(document)
    rules = [checker.rule(syntax) for syntax in document.rules]
    if not document.rules and not checker.diagnostics and not allow_empty:
        checker.diagnostics.append(
            Diagnostic(
                document.path,
                1,
                1,
                "the rule file has no rules: every route would be withdrawn",
                "",
                "if that is what you want, pass --allow-empty",
            )
        )
    if checker.diagnostics:
        raise RuleError(tuple(sorted(checker.diagnostics, key=lambda d: (d.line, d.col))))
    return RuleSet.of(document.path, (rule for rule in rules if rule is not None))


def decode_rules_file(data: bytes, shown: str) -> str:
    """A rule file's bytes as text (at most MAX_RULES_FILE_BYTES + 1 of them read). Raises
    RuleFileError for a file too large to be a rule file."""
    if len(data) > MAX_RULES_FILE_BYTES:
        raise RuleFileError(
            shown, f"larger than {MAX_RULES_FILE_BYTES // (1024 * 1024)} MiB; not a rule file"
        )
    # A UTF-8 byte-order mark (some Windows editors write one) is not part of the first rule.
    # Undecodable bytes become lone surrogates: harmless in comments, refused in any name.
    return data.removeprefix(UTF8_BOM).decode("utf-8", errors="surrogateescape")


def parse_rules(text: str, path: str = "<rules>", *, allow_empty: bool = False) -> RuleSet:
    """Parse and compile rule text."""
    return compile_rules(parse(text, path), allow_empty=allow_empty)


@dataclass(frozen=True, slots=True)
class Changes:
    """What a reload changed: routes added, removed, and routes whose condition changed."""

    added: int
    removed: int
    changed: int


def compare(old: RuleSet, new: RuleSet) -> Changes:
    """Count what `new` changes against `old`, route by route (a moved line changes nothing)."""
    before, after = old.by_route, new.by_route
    kept = before.keys() & after.keys()
    return Changes(
        added=len(after.keys() - kept),
        removed=len(before.keys() - kept),
        changed=sum(1 for route in kept if before[route].condition != after[route].condition),
    )


# ---------------------------------------------------------------------------------------------
# render: rules -> canonical text


def render_rule(rule: Rule) -> str:
    """One canonical line: explicit table and length, no spaces inside tokens."""
    networks = ",".join(f"{route.table}%{route.prefix}" for route in rule.routes)
    operands = ",".join(str(proxy) for proxy in rule.condition.operands)
    return f"{networks} = {rule.condition.aggregate.value}({operands})"


def render(rules: RuleSet) -> str:
    """The whole rule set as canonical text; `parse_rules(render(r))` gives the same rules."""
    return "".join(render_rule(rule) + "\n" for rule in rules.rules)
