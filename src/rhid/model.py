"""The shared vocabulary: proxies the rules name, routes, and the BIRD channels that carry them.

Plain frozen values that every other module speaks; this module imports nothing of rhid's, so
that the protocol parsers, the planner and the edges can use these words without loading the
rule compiler.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPV6_SUFFIX = "_v6"


class ProxyKind(enum.Enum):
    """Which side of HAProxy a target names."""

    BACKEND = "b"
    FRONTEND = "f"

    @property
    def word(self) -> str:
        """ "backend" or "frontend"."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Proxy:
    """A frontend or backend that a rule depends on."""

    kind: ProxyKind
    name: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Proxies key every per-poll dict; Enum's hash is Python code, so compute it once.
        object.__setattr__(self, "_hash", hash((self.kind.value, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


@dataclass(frozen=True, slots=True, order=True)
class Channel:
    """One BIRD static protocol: a table in one address family (ordered by table, then family)."""

    table: str
    family: int

    @property
    def protocol(self) -> str:
        """The BIRD protocol name: the table for IPv4, ``<table>_v6`` for IPv6."""
        return self.table if self.family == 4 else self.table + IPV6_SUFFIX


@dataclass(frozen=True, slots=True)
class Route:
    """A prefix in a table."""

    table: str
    prefix: Network

    @property
    def channel(self) -> Channel:
        """The static protocol this route belongs to."""
        return Channel(self.table, self.prefix.version)

    def __str__(self) -> str:
        return f"{self.table}%{self.prefix}"


def route_order(route: Route) -> tuple[str, int, int, int]:
    """Sort key: table, family, address, length (networks of two families do not compare)."""
    return (route.table, route.prefix.version, int(route.prefix.network_address), route.prefix.prefixlen)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line a pure module asks its caller to write: its event name (a literal of
    `rhid.catalogue`), its level, and its fields."""

    name: str
    level: str
    fields: dict[str, object] = field(default_factory=dict)


class HAProxyState(enum.StrEnum):
    """What the HAProxy side knows of HAProxy's socket (a string, as `rhid status` shows it)."""

    NOT_POLLED = "not polled"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"  # every proxy counts as down
    GARBLED = "garbled"  # nothing is known, until --unreadable-down-after
    FORBIDDEN = "forbidden"  # EACCES: a process listens; nothing is known, as for garbled


class BirdState(enum.StrEnum):
    """Whether BIRD's control socket answers."""

    NOT_CONTACTED = "not contacted"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


class StreamState(enum.StrEnum):
    """HAProxy's event stream, the wake-up signal."""

    OFF = "off"  # --haproxy-events none
    NOT_STARTED = "not started"
    STREAMING = "streaming"
    UNAVAILABLE = "unavailable"  # polling only, for the reason logged


# ---- the richer rules' values: server thresholds and the attributes of a degraded route ---------


@dataclass(frozen=True, slots=True)
class Threshold:
    """``>=N`` (`minimum` servers up) or ``>=N%`` (`percent`: at least N % of them up).

    What counts is `met`: of a backend's active servers (backups left out), how many are up, of
    how many configured. A backend without any active server meets no threshold.
    """

    minimum: int
    percent: bool = False

    def met(self, up: int, total: int) -> bool:
        """True when `up` of `total` servers reach the threshold (integers only: no rounding)."""
        if self.percent:
            return total > 0 and up * 100 >= self.minimum * total
        return up >= self.minimum

    def __str__(self) -> str:
        return f">={self.minimum}{'%' if self.percent else ''}"


@dataclass(frozen=True, slots=True)
class ServerTerm:
    """A threshold on one backend's servers, ``b:be_app>=50%``: it has a health of its own, with
    the same fall and rise as a proxy's (`rhid.health.observe_terms`)."""

    proxy: Proxy
    threshold: Threshold

    def __str__(self) -> str:
        return f"{self.proxy}{self.threshold}"


_STATEMENTS = (  # what `Attributes.bird` writes, statement by statement
    ("med", re.compile(r"bgp_med = ([0-9]{1,10})")),
    ("local_pref", re.compile(r"bgp_local_pref = ([0-9]{1,10})")),
    ("community", re.compile(r"bgp_community\.add\(\(([0-9]{1,5}),([0-9]{1,5})\)\)")),
    ("large", re.compile(r"bgp_large_community\.add\(\(([0-9]{1,10}),([0-9]{1,10}),([0-9]{1,10})\)\)")),
)
MAX_U32 = 2**32 - 1
MAX_U16 = 2**16 - 1
Community = tuple[int, int]
LargeCommunity = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Attributes:
    """The BGP attributes a degraded route is announced with. Communities are sets (sorted, each
    once), so that two spellings of the same attributes are equal and render the same text."""

    med: int | None = None
    local_pref: int | None = None
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.med, self.local_pref):
            if value is not None and not 0 <= value <= MAX_U32:
                raise ValueError(f"{value} is not a 32-bit unsigned number")
        if any(not 0 <= part <= MAX_U16 for pair in self.communities for part in pair):
            raise ValueError(f"a community part is outside 0-{MAX_U16}: {self.communities}")
        if any(not 0 <= part <= MAX_U32 for triple in self.large_communities for part in triple):
            raise ValueError(f"a large community part is outside 0-{MAX_U32}: {self.large_communities}")
        object.__setattr__(self, "communities", tuple(sorted(set(self.communities))))
        object.__setattr__(self, "large_communities", tuple(sorted(set(self.large_communities))))

    def bird(self) -> str:
        """The statements of a BIRD 2/3 static route's attribute block, in a fixed order:
        ``bgp_med = 200; bgp_local_pref = 300; bgp_community.add((65000,666)); ...``. Every
        value is an integer checked against its range, so nothing else can reach BIRD's config."""
        statements = [] if self.med is None else [f"bgp_med = {self.med};"]
        if self.local_pref is not None:
            statements.append(f"bgp_local_pref = {self.local_pref};")
        statements += [f"bgp_community.add(({a},{b}));" for a, b in self.communities]
        statements += [f"bgp_large_community.add(({a},{b},{c}));" for a, b, c in self.large_communities]
        return " ".join(statements)

    @classmethod
    def from_bird(cls, text: str) -> Attributes | None:
        """Statements `bird` wrote, read back (rhid's own files, at start-up); None for any other
        text: a statement rhid does not write, a value out of range, another order or spacing."""
        *statements, tail = text.strip().split(";")
        if tail:
            return None
        found: dict[str, list[tuple[int, ...]]] = {name: [] for name, _ in _STATEMENTS}
        for statement in statements:
            matches = ((name, pattern.fullmatch(statement.strip())) for name, pattern in _STATEMENTS)
            name, match = next(((name, m) for name, m in matches if m is not None), ("", None))
            if match is None:
                return None
            found[name].append(tuple(int(part) for part in match.groups()))
        if len(found["med"]) > 1 or len(found["local_pref"]) > 1:
            return None
        try:
            made = cls(
                med=found["med"][0][0] if found["med"] else None,
                local_pref=found["local_pref"][0][0] if found["local_pref"] else None,
                communities=tuple((a, b) for a, b in found["community"]),
                large_communities=tuple((a, b, c) for a, b, c in found["large"]),
            )
        except ValueError:
            return None
        return made if made.bird() == text.strip() else None

    def __str__(self) -> str:
        """The rule file's words: ``med 200 local-pref 300 community 65000:666 large-community 1:2:3``."""
        words = [] if self.med is None else [f"med {self.med}"]
        if self.local_pref is not None:
            words.append(f"local-pref {self.local_pref}")
        words += [f"community {a}:{b}" for a, b in self.communities]
        words += [f"large-community {a}:{b}:{c}" for a, b, c in self.large_communities]
        return " ".join(words)
