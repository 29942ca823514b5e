"""What the rules mean: compile syntax into validated rules; each condition a tree of nodes.

    text ──grammar.parse──> Document ──compile_rules──> RuleSet ──evaluate(rule, facts)──> Outcome

A rule's condition is a tree. Each kind of node is one class here and owns everything about
itself: its three-valued `verdict` (True, False, or None: not known yet), its `explain`ation in
operator words, its `render`ing back to rule text, its `data` form for ``rhid check --json``, its
`compile` step (the checks of its arguments) and the proxies and threshold terms it reads::

    Condition   all(...) any(...) never always   the vendor's aggregates (the root of every rule)
    Not         not(x)
    AtLeast     atleast(K, ...)
    Target      b:<backend> f:<frontend>         a proxy's own health
    Servers     b:<backend>>=N  b:<backend>>=N%  a threshold on a backend's servers

A new operator is one more class and its word in `rhid.grammar.OPERATORS`. The leaves read
`Facts`: every proxy's and every threshold term's health after fall and rise (`rhid.health`).
A rule may add a degraded clause (`Degraded`), and `evaluate` then gives the route's fate:
announced, degraded (announced with BGP attributes), withdrawn, or not known yet.

Everything here is pure: no sockets, clock or logging (`rhid.rulefile` reads the file, with the one
validation `rhid check`, daemon start-up and reload share).
"""

from __future__ import annotations

import abc
import difflib
import enum
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rhid import grammar, names
from rhid.errors import Diagnostic, RuleError, RuleFileError
from rhid.grammar import (
    AttributeSyntax,
    ConditionSyntax,
    CountSyntax,
    DegradedSyntax,
    Document,
    NetworkSyntax,
    RuleSyntax,
    TargetSyntax,
    parse,
)
from rhid.health import INITIAL, INITIAL_TERM, NOT_COUNTED, Health, ProxyState, TermState, is_up
from rhid.model import (
    IPV6_SUFFIX,
    PLAIN,
    Attributes,
    Channel,
    Network,
    Proxy,
    ProxyKind,
    Route,
    ServerTerm,
    Threshold,
)
from rhid.stats import in_words

DEFAULT_TABLE = "vol1"
MAX_RULES_FILE_BYTES = 64 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"
MAX_SERVERS = 1_000_000  # a server threshold's largest count
MAX_U16, MAX_U32 = 2**16 - 1, 2**32 - 1  # a community's numbers; MED, local-pref, a large community's


class Aggregate(enum.Enum):
    """How the vendor's condition combines its operands."""

    ALL = grammar.ALL
    ANY = grammar.ANY
    NEVER = grammar.NEVER
    ALWAYS = grammar.ALWAYS


# ---------------------------------------------------------------------------------------------
# facts: what the leaves read


@dataclass(frozen=True, slots=True)
class Facts:
    """What verdicts and explanations read: every proxy's health and every threshold term's, after
    fall and rise (`rhid.health.observe`, `rhid.health.observe_terms`). A proxy or term missing
    from its mapping is not known yet, never down."""

    proxies: Mapping[Proxy, ProxyState] = field(default_factory=dict)
    terms: Mapping[ServerTerm, TermState] = field(default_factory=dict)

    def proxy(self, proxy: Proxy) -> ProxyState:
        """The proxy's health state (INITIAL, unknown, when rhid has none)."""
        return self.proxies.get(proxy, INITIAL)

    def term(self, term: ServerTerm) -> TermState:
        """The threshold term's state (INITIAL_TERM, unknown, when rhid has none)."""
        return self.terms.get(term, INITIAL_TERM)


_AS_STATE = {True: ProxyState(Health.UP), False: ProxyState(Health.DOWN), None: INITIAL}


class _Truths(Mapping[Proxy, ProxyState]):
    """A map of proxies to True/False/None read as health states, without copying it: what
    `plan.decide` hands `Condition.verdict` until it hands over `Facts`."""

    __slots__ = ("_up",)

    def __init__(self, up: Mapping[Proxy, bool | None]) -> None:
        self._up = up

    def __getitem__(self, proxy: Proxy) -> ProxyState:
        return _AS_STATE[self._up[proxy]]

    def __iter__(self) -> Iterator[Proxy]:
        return iter(self._up)

    def __len__(self) -> int:
        return len(self._up)


def _truth(value: bool | None) -> str:
    """A verdict in words: true, false, not known yet."""
    return "not known yet" if value is None else str(value).lower()


# ---------------------------------------------------------------------------------------------
# the nodes


class Expression(abc.ABC):
    """One node of a condition's tree (see the module's docstring)."""

    __slots__ = ()
    standalone: ClassVar[bool] = False  # may follow "=" alone, standing for all(<it>)

    @abc.abstractmethod
    def verdict(self, facts: Facts) -> bool | None:
        """True, False, or None while not known yet (three-valued, Kleene's logic)."""

    @abc.abstractmethod
    def explain(self, facts: Facts) -> str:
        """Why the node is what it is, in operator words."""

    @abc.abstractmethod
    def render(self) -> str:
        """The canonical rule text: compiling it gives an equal node."""

    @abc.abstractmethod
    def data(self) -> dict[str, Any]:
        """The node as plain data (``rhid check --json``)."""

    def children(self) -> tuple[Expression, ...]:
        """The nodes under this one (none for a leaf)."""
        return ()

    def proxies(self) -> Iterator[Proxy]:
        """Every proxy this node reads, depth first, repeats included."""
        for child in self.children():
            yield from child.proxies()

    def server_terms(self) -> Iterator[ServerTerm]:
        """Every threshold term this node reads, depth first, repeats included."""
        for child in self.children():
            yield from child.server_terms()


Operand = Proxy | Expression


def _node(operand: Operand) -> Expression:
    """A bare proxy, as the vendor's conditions list it, is a `Target`."""
    return Target(operand) if isinstance(operand, Proxy) else operand


@dataclass(frozen=True, slots=True)
class Target(Expression):
    """``b:<backend>`` or ``f:<frontend>``: true while the proxy is up (after fall and rise)."""

    proxy: Proxy

    def verdict(self, facts: Facts) -> bool | None:
        return is_up(facts.proxy(self.proxy))

    def explain(self, facts: Facts) -> str:
        state = facts.proxy(self.proxy)
        gone = "vanished from HAProxy; " if state.vanished else ""
        return f"{self.proxy} is {state.health.value} ({gone}{in_words(state.last_status)})"

    def render(self) -> str:
        return str(self.proxy)

    def data(self) -> dict[str, Any]:
        return {"kind": self.proxy.kind.word, "name": self.proxy.name}

    def proxies(self) -> Iterator[Proxy]:
        yield self.proxy


@dataclass(frozen=True, slots=True)
class Servers(Expression):
    """``b:<backend>>=N`` or ``>=N%``: true while enough of the backend's servers are up. The term
    has a health of its own, with fall and rise like a proxy's (`rhid.health.observe_terms`)."""

    term: ServerTerm

    def verdict(self, facts: Facts) -> bool | None:
        return is_up(facts.term(self.term).state)

    def explain(self, facts: Facts) -> str:
        held = facts.term(self.term)
        counts, status = held.servers, held.state.last_status
        if counts is not None:
            share = f" ({counts.up * 100 // counts.total} %)" if counts.total else ""
            seen = f"{counts.up} of {counts.total} up{share}"
        else:
            seen = status if status == NOT_COUNTED else in_words(status)
        gone = "vanished from HAProxy; " if held.state.vanished else ""
        return f"{self.term}: {gone}{seen} -> {_truth(is_up(held.state))}"

    def render(self) -> str:
        return str(self.term)

    def data(self) -> dict[str, Any]:
        threshold = self.term.threshold
        return {
            "kind": self.term.proxy.kind.word,
            "name": self.term.proxy.name,
            "threshold": {"at_least": threshold.minimum, "percent": threshold.percent},
        }

    def proxies(self) -> Iterator[Proxy]:
        yield self.term.proxy

    def server_terms(self) -> Iterator[ServerTerm]:
        yield self.term


@dataclass(frozen=True, slots=True, init=False)
class Condition(Expression):
    """``aggregate(operands)``: the vendor's all/any/never/always, the root of every rule, and
    all/any nested. Its operands are targets (given as proxies, as the vendor lists them) and
    nested nodes, in the order written (`terms`)."""

    aggregate: Aggregate
    terms: tuple[Expression, ...]

    def __init__(self, aggregate: Aggregate, operands: Iterable[Operand] = ()) -> None:
        object.__setattr__(self, "aggregate", aggregate)
        object.__setattr__(self, "terms", tuple(_node(operand) for operand in operands))

    @property
    def operands(self) -> tuple[Proxy, ...]:
        """The proxies listed directly as plain targets (every operand, in a vendor rule)."""
        return tuple(term.proxy for term in self.terms if isinstance(term, Target))

    def verdict(self, facts: Facts | Mapping[Proxy, bool | None]) -> bool | None:
        """`all` is False as soon as one operand is, `any` True as soon as one is; otherwise an
        unknown operand makes the verdict None, and the caller keeps the route as it is.
        `facts` may also be a map of proxies to True/False/None (`plan.decide` today)."""
        if self.aggregate is Aggregate.NEVER:
            return False
        if self.aggregate is Aggregate.ALWAYS:
            return True
        if not isinstance(facts, Facts):
            facts = Facts(_Truths(facts))
        decisive = self.aggregate is Aggregate.ANY  # any: one True decides; all: one False decides
        unknown = False
        for term in self.terms:
            value = term.verdict(facts)
            if value is decisive:
                return decisive
            unknown = unknown or value is None
        return None if unknown else not decisive

    def explain(self, facts: Facts) -> str:
        parts = ", ".join(term.explain(facts) for term in self.terms)
        return f"{self.aggregate.value}({parts}) -> {_truth(self.verdict(facts))}"

    def headline(self, facts: Facts) -> str:
        """The explanation of a rule's whole condition: ``all: b:a is up (...), ...``."""
        bare = self.bare()
        if bare is not None:
            return bare.explain(facts)
        if not self.terms:
            return f"{self.aggregate.value}()"
        return f"{self.aggregate.value}: " + ", ".join(term.explain(facts) for term in self.terms)

    def bare(self) -> Expression | None:
        """The one operand a rule's condition stands for when it was written alone after "="
        (``not(f:x)`` is ``all(not(f:x))``), shown as written; None for any other condition."""
        if self.aggregate is Aggregate.ALL and len(self.terms) == 1 and self.terms[0].standalone:
            return self.terms[0]
        return None

    def render(self) -> str:
        return f"{self.aggregate.value}({','.join(term.render() for term in self.terms)})"

    def data(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate.value, "operands": [term.data() for term in self.terms]}

    def children(self) -> tuple[Expression, ...]:
        return self.terms

    @classmethod
    def compile(cls, checker: _Checker, rule: RuleSyntax, syntax: ConditionSyntax) -> Expression | None:
        """all/any need an operand; never/always stand alone at the top of a rule only."""
        aggregate = Aggregate(syntax.aggregate)
        if aggregate in {Aggregate.NEVER, Aggregate.ALWAYS} and checker.depth > 1:
            checker.error(
                rule,
                syntax.col,
                f"'{aggregate.value}' cannot be nested",
                f"never and always decide a whole rule (for debugging): write <network> = {aggregate.value}",
            )
            return None
        operands = checker.operands(rule, syntax)
        if operands is None:
            return None
        if aggregate in {Aggregate.ALL, Aggregate.ANY} and not operands:
            checker.error(
                rule,
                syntax.col,
                f"'{aggregate.value}' needs at least one target",
                f"e.g. {aggregate.value}(b:be_app) or {aggregate.value}(b:be_app,f:fe_www)",
            )
            return None
        return cls(aggregate, operands)


@dataclass(frozen=True, slots=True)
class Not(Expression):
    """``not(x)``: true while x is false (unknown while x is)."""

    term: Expression
    standalone: ClassVar[bool] = True

    def verdict(self, facts: Facts) -> bool | None:
        value = self.term.verdict(facts)
        return None if value is None else not value

    def explain(self, facts: Facts) -> str:
        return f"{grammar.NOT}({self.term.explain(facts)}) -> {_truth(self.verdict(facts))}"

    def render(self) -> str:
        return f"{grammar.NOT}({self.term.render()})"

    def data(self) -> dict[str, Any]:
        return {"aggregate": grammar.NOT, "operands": [self.term.data()]}

    def children(self) -> tuple[Expression, ...]:
        return (self.term,)

    @classmethod
    def compile(cls, checker: _Checker, rule: RuleSyntax, syntax: ConditionSyntax) -> Expression | None:
        """Exactly one operand."""
        operands = checker.operands(rule, syntax)
        if operands is None:
            return None
        if len(operands) != 1:
            arguments = syntax.arguments or ()
            col = arguments[1].col if len(arguments) > 1 else syntax.col
            checker.error(
                rule,
                col,
                f"'not' takes one target or condition, not {len(operands)}",
                "e.g. not(f:fe_maint); for several: not(any(...)) (none is up), not(all(...)) (not all are)",
            )
            return None
        return cls(operands[0])


@dataclass(frozen=True, slots=True)
class AtLeast(Expression):
    """``atleast(K, ...)``: true while at least `count` operands are, false once too few can be."""

    count: int
    terms: tuple[Expression, ...]
    standalone: ClassVar[bool] = True

    def _tally(self, facts: Facts) -> tuple[int, int]:
        values = [term.verdict(facts) for term in self.terms]
        return values.count(True), values.count(None)

    def verdict(self, facts: Facts) -> bool | None:
        true, unknown = self._tally(facts)
        if true >= self.count:
            return True
        if true + unknown < self.count:
            return False
        return None

    def explain(self, facts: Facts) -> str:
        parts = ", ".join(term.explain(facts) for term in self.terms)
        true, _ = self._tally(facts)
        return (
            f"{grammar.ATLEAST}({self.count}, {parts}): {true} of {len(self.terms)} true "
            f"-> {_truth(self.verdict(facts))}"
        )

    def render(self) -> str:
        return f"{grammar.ATLEAST}({self.count},{','.join(term.render() for term in self.terms)})"

    def data(self) -> dict[str, Any]:
        return {
            "aggregate": grammar.ATLEAST,
            "count": self.count,
            "operands": [term.data() for term in self.terms],
        }

    def children(self) -> tuple[Expression, ...]:
        return self.terms

    @classmethod
    def compile(cls, checker: _Checker, rule: RuleSyntax, syntax: ConditionSyntax) -> Expression | None:
        """A count K first, from 1 to the number of operands that follow it."""
        arguments = syntax.arguments or ()
        if not arguments or not isinstance(arguments[0], CountSyntax):
            checker.error(
                rule,
                arguments[0].col if arguments else syntax.col,
                "'atleast' needs a count first",
                "e.g. atleast(2, b:a, b:b, b:c): true while at least 2 of the 3 are",
            )
            return None
        first = arguments[0]
        operands = checker.operands(rule, syntax, skip=1)
        if not first.text.isascii() or not first.text.isdigit():
            checker.error(rule, first.col, f"the count of 'atleast' must be a number, not {first.text!r}")
            return None
        if operands is None:
            return None
        count = int(first.text)
        if not 1 <= count <= len(operands):
            what = "is always true" if count == 0 else f"can never be true: it has {len(operands)} operands"
            checker.error(
                rule,
                first.col,
                f"atleast({count}, ...) {what}",
                f"the count is from 1 to the number of operands after it ({len(operands)})",
            )
            return None
        return cls(count, tuple(operands))


_OPERATORS: dict[str, type[Condition] | type[Not] | type[AtLeast]] = {
    **dict.fromkeys(grammar.AGGREGATES, Condition),
    grammar.NOT: Not,
    grammar.ATLEAST: AtLeast,
}


# ---------------------------------------------------------------------------------------------
# rules, and what they decide


class Fate(enum.Enum):
    """What a rule makes of its routes."""

    ANNOUNCED = "announced"
    DEGRADED = "degraded"  # announced, with the degraded clause's attributes
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Degraded:
    """``degraded <condition> <attributes>``: while the rule's condition is false and this one
    true, the routes are announced with these BGP attributes instead of withdrawn."""

    condition: Condition
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's decision for its routes: its fate, or None while it is not known yet; the fates
    still possible then (a route whose fate is among them can be kept as it is); and the
    attributes a degraded route carries (PLAIN, none, for a rule without a degraded clause)."""

    fate: Fate | None
    possible: frozenset[Fate]
    attributes: Attributes = PLAIN

    def describe(self) -> str:
        """The fate in words: ``announced``, ``degraded (med 200 ...)``, ``withdrawn``, ``not known yet``."""
        if self.fate is Fate.DEGRADED:
            return f"degraded ({attribute_words(self.attributes)})"
        if self.fate is not None:
            return str(self.fate.value)
        order = [str(fate.value) for fate in Fate if fate in self.possible]
        return f"not known yet ({' or '.join(order)})"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule line, validated."""

    line: int
    routes: tuple[Route, ...]
    condition: Condition
    degraded: Degraded | None = None

    def proxies(self) -> Iterator[Proxy]:
        """Every proxy the rule reads (its condition's, then its degraded clause's)."""
        yield from self.condition.proxies()
        if self.degraded is not None:
            yield from self.degraded.condition.proxies()

    def server_terms(self) -> Iterator[ServerTerm]:
        """Every threshold term the rule reads."""
        yield from self.condition.server_terms()
        if self.degraded is not None:
            yield from self.degraded.condition.server_terms()

    def explain(self, facts: Facts) -> str:
        """Why the rule decides as it does: each node's verdict, the leaves' health and counts."""
        text = self.condition.headline(facts)
        if self.degraded is not None:
            degraded = self.degraded
            words = attribute_words(degraded.attributes)
            text += f"; degraded ({words}) while {degraded.condition.headline(facts)}"
        return text


def _possible(main: bool | None, clause: bool, degraded: bool | None) -> frozenset[Fate]:
    """The fates three-valued verdicts leave: announced unless the condition is false; degraded,
    with a clause, unless the condition is true or the clause's is false; withdrawn unless the
    condition or the clause's is true."""
    fates = set() if main is False else {Fate.ANNOUNCED}
    if main is not True:
        if clause and degraded is not False:
            fates.add(Fate.DEGRADED)
        if not clause or degraded is not True:
            fates.add(Fate.WITHDRAWN)
    return frozenset(fates)


def evaluate(rule: Rule, facts: Facts) -> Outcome:
    """The rule's fate for its routes (pure): announced while its condition is true; degraded
    while it is false and the degraded condition is true; withdrawn otherwise; not known yet
    while a verdict it needs is (with the fates still possible)."""
    main = rule.condition.verdict(facts)
    clause = rule.degraded
    degraded = None if clause is None or main is True else clause.condition.verdict(facts)
    possible = _possible(main, clause is not None, degraded)
    fate = next(iter(possible)) if len(possible) == 1 else None
    return Outcome(fate, possible, PLAIN if clause is None else clause.attributes)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A whole validated rule file. Immutable: a reload builds a new one."""

    path: str
    rules: tuple[Rule, ...]
    proxies: tuple[Proxy, ...] = field(compare=False)  # each once, in the order the file names them
    channels: frozenset[Channel] = field(compare=False)
    by_route: Mapping[Route, Rule] = field(compare=False, repr=False)
    terms: tuple[ServerTerm, ...] = field(default=(), compare=False)  # threshold terms, each once
    # Each proxy, with the lines of the rules that name it (for messages about the proxy).
    lines_of: Mapping[Proxy, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)
    # What one change touches: each proxy and each threshold term, with the routes whose deciding
    # rule reads it (`by_route`'s rule: of two rules naming one route, the later decides), in file
    # order. Built once per rule load; `plan.decide` re-decides only these routes.
    fed_by_proxy: Mapping[Proxy, tuple[Route, ...]] = field(default_factory=dict, compare=False, repr=False)
    fed_by_term: Mapping[ServerTerm, tuple[Route, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, path: str, rules: Iterable[Rule]) -> RuleSet:
        """Build a rule set and its indexes from rules already checked by `compile_rules`."""
        rules = tuple(rules)
        by_route = {route: rule for rule in rules for route in rule.routes}
        lines: dict[Proxy, list[int]] = {}
        for rule in rules:
            for proxy in dict.fromkeys(rule.proxies()):
                lines.setdefault(proxy, []).append(rule.line)
        fed_by_proxy: dict[Proxy, list[Route]] = {}
        fed_by_term: dict[ServerTerm, list[Route]] = {}
        readers: dict[int, tuple[tuple[Proxy, ...], tuple[ServerTerm, ...]]] = {}  # per rule, once
        for route, rule in by_route.items():
            read = readers.get(id(rule))
            if read is None:
                read = readers[id(rule)] = (
                    tuple(dict.fromkeys(rule.proxies())),
                    tuple(dict.fromkeys(rule.server_terms())),
                )
            for proxy in read[0]:
                fed_by_proxy.setdefault(proxy, []).append(route)
            for term in read[1]:
                fed_by_term.setdefault(term, []).append(route)
        return cls(
            path=path,
            rules=rules,
            proxies=tuple(lines),
            channels=frozenset(route.channel for route in by_route),
            by_route=by_route,
            terms=tuple(dict.fromkeys(term for rule in rules for term in rule.server_terms())),
            lines_of={proxy: tuple(at) for proxy, at in lines.items()},
            fed_by_proxy={proxy: tuple(routes) for proxy, routes in fed_by_proxy.items()},
            fed_by_term={term: tuple(routes) for term, routes in fed_by_term.items()},
        )

    def fed_by(self, proxies: Iterable[Proxy] = (), terms: Iterable[ServerTerm] = ()) -> set[Route]:
        """The routes whose deciding rule reads any of `proxies` or `terms` (none for a name no
        rule reads): what a change of their health can move."""
        touched: set[Route] = set()
        for proxy in proxies:
            touched.update(self.fed_by_proxy.get(proxy, ()))
        for term in terms:
            touched.update(self.fed_by_term.get(term, ()))
        return touched

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route the file mentions, in file order."""
        return tuple(self.by_route)

    @property
    def counted(self) -> tuple[Proxy, ...]:
        """The backends whose servers the thresholds count (`rhid.stats.ProxyIndex.of(..., counted)`)."""
        return tuple(dict.fromkeys(term.proxy for term in self.terms))


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
        self.depth = 0  # how deep in a condition the checker is (1: the rule's own)

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

    def target(self, rule: RuleSyntax, target: TargetSyntax) -> Expression | None:
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
        proxy = Proxy(kind, target.name)
        if target.comparison is None:
            return Target(proxy)
        threshold = self.threshold(rule, target, proxy)
        return None if threshold is None else Servers(ServerTerm(proxy, threshold))

    def threshold(self, rule: RuleSyntax, target: TargetSyntax, proxy: Proxy) -> Threshold | None:
        """``>=N`` or ``>=N%`` after a backend: a count of servers up, or a share of them."""
        example = "b:be_app>=3 (3 servers up) or b:be_app>=50% (half of them up)"
        if target.comparison != ">=":
            self.error(
                rule,
                target.comparison_col,
                f"a server threshold is written '>=', not {target.comparison!r}",
                f"e.g. {example}",
            )
            return None
        if proxy.kind is not ProxyKind.BACKEND:
            self.error(
                rule,
                target.comparison_col,
                f"a server threshold needs a backend: {proxy} is a frontend",
                "frontends have no servers; write b:<backend>>=N",
            )
            return None
        limit = _LIMIT.match(target.limit or "")
        if limit is None:
            self.error(
                rule,
                target.limit_col,
                f"a server threshold is a number of servers or a percentage, not {target.limit!r}"
                if target.limit
                else f"a server threshold needs a number after {target.comparison!r}",
                f"e.g. {example}",
            )
            return None
        threshold = Threshold(int(limit["number"]), bool(limit["percent"]))
        return threshold if self.threshold_in_range(rule, target, threshold, proxy) else None

    def threshold_in_range(
        self, rule: RuleSyntax, target: TargetSyntax, threshold: Threshold, proxy: Proxy
    ) -> bool:
        """False, and why, for a threshold always true, never met, or beyond any backend."""
        if threshold.minimum == 0:
            message, hint = (
                f"server threshold {threshold} is always true",
                f"write {proxy} for the backend's own health, or {proxy}>=1 for one server up",
            )
        elif threshold.percent and threshold.minimum > 100:
            message, hint = (
                f"server threshold {threshold} can never be met",
                f"a share of the servers is from 1% to 100% (all of them: {proxy}>=100%)",
            )
        elif threshold.minimum > MAX_SERVERS:
            message, hint = (
                f"server threshold {threshold} is out of range (1-{MAX_SERVERS})",
                "a count of servers up; for a share of them, add %",
            )
        else:
            return True
        self.error(rule, target.limit_col, message, hint)
        return False

    def operands(self, rule: RuleSyntax, syntax: ConditionSyntax, skip: int = 0) -> list[Expression] | None:
        """A condition's arguments after the first `skip`, compiled (every error reported);
        None when any was wrong."""
        compiled: list[Expression | None] = []
        for argument in (syntax.arguments or ())[skip:]:
            if isinstance(argument, TargetSyntax):
                compiled.append(self.target(rule, argument))
            elif isinstance(argument, ConditionSyntax):
                compiled.append(self.expression(rule, argument))
            else:
                self.error(
                    rule,
                    argument.col,
                    f"a count ({argument.text}) is only the first argument of atleast",
                    "e.g. atleast(2, b:a, b:b, b:c); elsewhere write targets or conditions",
                )
                compiled.append(None)
        if any(node is None for node in compiled):
            return None
        return [node for node in compiled if node is not None]

    def expression(self, rule: RuleSyntax, syntax: ConditionSyntax) -> Expression | None:
        """One condition, of whichever operator its word names, with everything under it."""
        self.depth += 1
        try:
            node: Expression | None = _OPERATORS[syntax.aggregate].compile(self, rule, syntax)
        finally:
            self.depth -= 1
        return node

    def condition(self, rule: RuleSyntax, syntax: ConditionSyntax) -> Condition | None:
        """A rule's whole condition: a `Condition`, which `not(...)` and `atleast(...)` written alone
        after "=" stand in as its one operand (all of one is that one)."""
        node = self.expression(rule, syntax)
        if node is None or isinstance(node, Condition):
            return node
        return Condition(Aggregate.ALL, (node,))

    def attributes(self, rule: RuleSyntax, clause: DegradedSyntax) -> Attributes | None:
        """The attributes of a degraded clause, each range-checked; at least one."""
        if not clause.attributes:
            self.error(
                rule,
                clause.col,
                "the degraded clause sets no attribute",
                "add what routers should see, e.g. degraded any(b:be_app) med 200 community 65000:666",
            )
            return None
        single: dict[str, int] = {}
        communities: dict[tuple[int, ...], str] = {}
        good = True
        for attribute in clause.attributes:
            value = self.attribute(rule, attribute)
            if value is None:
                good = False
            elif isinstance(value, int):
                if attribute.word in single:
                    self.error(
                        rule,
                        attribute.col,
                        f"{attribute.word} is set twice",
                        f"a route carries one {attribute.word}: keep one of them",
                    )
                    good = False
                single[attribute.word] = value
            elif value in communities:
                self.error(
                    rule, attribute.col, f"{attribute.word} {attribute.value} is listed twice", "list it once"
                )
                good = False
            else:
                communities[value] = attribute.word
        if not good:
            return None
        return Attributes(  # communities are sets: sorted, so that one set has one spelling
            med=single.get(_MED),
            local_pref=single.get(_LOCAL_PREF),
            communities=tuple(sorted((v[0], v[1]) for v, word in communities.items() if word == _COMMUNITY)),
            large_communities=tuple(
                sorted((v[0], v[1], v[2]) for v, word in communities.items() if word == _LARGE_COMMUNITY)
            ),
        )

    def attribute(self, rule: RuleSyntax, attribute: AttributeSyntax) -> int | tuple[int, ...] | None:
        """One attribute's value: a number (med, local-pref), or a community's parts."""
        word = attribute.word
        if word not in _ATTRIBUTES:
            close = difflib.get_close_matches(word.lower(), _ATTRIBUTES, n=1)
            hint = f"did you mean {close[0]}?" if close else f"attributes: {', '.join(_ATTRIBUTES)}"
            self.error(rule, attribute.col, f"unknown attribute {word!r}", hint)
            return None
        value, (pattern, maximum, what, example) = attribute.value, _ATTRIBUTES[word]
        if value is None:
            self.error(rule, attribute.col, f"'{word}' needs a value", f"e.g. {word} {example}")
            return None
        match = pattern.fullmatch(value)
        parts = tuple(int(part) for part in match.groups()) if match is not None else ()
        if not parts or max(parts) > maximum:
            hint = f"e.g. {word} {example}"
            if word == _COMMUNITY and value.count(":") == 2:
                hint = f"three numbers make a large community: large-community {value}"
            elif word == _COMMUNITY and parts:
                hint = "numbers above 65535 (4-byte AS numbers) need a large community: large-community A:B:C"
            self.error(rule, attribute.value_col, f"{word} must be {what}, not {value!r}", hint)
            return None
        return parts[0] if len(parts) == 1 else parts

    def degraded(self, rule: RuleSyntax, clause: DegradedSyntax | None) -> Degraded | bool | None:
        """The degraded clause, None without one, or False when it is wrong."""
        if clause is None:
            return None
        condition = self.condition(rule, clause.condition)
        attributes = self.attributes(rule, clause)
        if condition is None or attributes is None:
            return False
        return Degraded(condition, attributes)

    def rule(self, rule: RuleSyntax) -> Rule | None:
        routes = [self.route(rule, network) for network in rule.networks]
        condition = self.condition(rule, rule.condition)
        degraded = self.degraded(rule, rule.degraded)
        if condition is None or degraded is False or any(route is None for route in routes):
            return None
        kept = tuple(route for route in routes if route is not None)
        return Rule(rule.line, kept, condition, degraded if isinstance(degraded, Degraded) else None)


_LIMIT = re.compile(r"(?P<number>[0-9]{1,12})(?P<percent>%?)\Z")
_MED, _LOCAL_PREF, _COMMUNITY, _LARGE_COMMUNITY = grammar.ATTRIBUTES
_NUMBER = re.compile(r"([0-9]{1,12})")
# word: (what its value matches, each number's maximum, the value in words, an example)
_ATTRIBUTES = {
    _MED: (_NUMBER, MAX_U32, f"a number from 0 to {MAX_U32}", "200"),
    _LOCAL_PREF: (_NUMBER, MAX_U32, f"a number from 0 to {MAX_U32}", "50"),
    _COMMUNITY: (
        re.compile(r"([0-9]{1,12}):([0-9]{1,12})"),
        MAX_U16,
        f"A:B with each number from 0 to {MAX_U16}",
        "65000:666",
    ),
    _LARGE_COMMUNITY: (
        re.compile(r"([0-9]{1,12}):([0-9]{1,12}):([0-9]{1,12})"),
        MAX_U32,
        f"A:B:C with each number from 0 to {MAX_U32}",
        "65000:1:666",
    ),
}


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


def _meaning(rule: Rule) -> tuple[Condition, Degraded | None]:
    """What decides a rule's routes (its line number does not)."""
    return rule.condition, rule.degraded


def compare(old: RuleSet, new: RuleSet) -> Changes:
    """Count what `new` changes against `old`, route by route (a moved line changes nothing)."""
    before, after = old.by_route, new.by_route
    kept = before.keys() & after.keys()
    return Changes(
        added=len(after.keys() - kept),
        removed=len(before.keys() - kept),
        changed=sum(1 for route in kept if _meaning(before[route]) != _meaning(after[route])),
    )


# ---------------------------------------------------------------------------------------------
# render: rules -> canonical text


def attribute_words(attributes: Attributes) -> str:
    """A degraded route's attributes in the rule file's words, in a fixed order:
    ``med 200 local-pref 300 community 65000:666 large-community 1:2:3``."""
    words = [] if attributes.med is None else [f"{_MED} {attributes.med}"]
    if attributes.local_pref is not None:
        words.append(f"{_LOCAL_PREF} {attributes.local_pref}")
    words += [f"{_COMMUNITY} {a}:{b}" for a, b in attributes.communities]
    words += [f"{_LARGE_COMMUNITY} {a}:{b}:{c}" for a, b, c in attributes.large_communities]
    return " ".join(words)


def render_condition(condition: Condition) -> str:
    """A rule's condition as text: as written alone after "=" when it stands for one operand."""
    bare = condition.bare()
    return (condition if bare is None else bare).render()


def render_rule(rule: Rule) -> str:
    """One canonical line: explicit table and length, no spaces inside tokens, attributes sorted."""
    networks = ",".join(f"{route.table}%{route.prefix}" for route in rule.routes)
    text = f"{networks} = {render_condition(rule.condition)}"
    if rule.degraded is not None:
        clause = rule.degraded
        text += (
            f" {grammar.DEGRADED} {render_condition(clause.condition)} {attribute_words(clause.attributes)}"
        )
    return text


def describe_condition(condition: Condition) -> dict[str, Any]:
    """A rule's condition as plain data (as `render_condition` shows it)."""
    bare = condition.bare()
    return (condition if bare is None else bare).data()


def render(rules: RuleSet) -> str:
    """The whole rule set as canonical text; `parse_rules(render(r))` gives the same rules."""
    return "".join(render_rule(rule) + "\n" for rule in rules.rules)
