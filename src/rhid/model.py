"""The shared vocabulary: proxies the rules name, routes, and the BIRD channels that carry them.

Plain frozen values that every other module speaks; this module imports nothing of rhid's, so
that the protocol parsers, the planner and the edges can use these words without loading the
rule compiler.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
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
    """A prefix in a table. Its hash is computed once: routes key every map of the plan, and
    `ipaddress` networks hash in Python, which made hashing most of a 10,000-route decide."""

    table: str
    prefix: Network
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.table, self.prefix)))

    def __hash__(self) -> int:
        return self._hash

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


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a route carries besides its prefix: where it leads (`via` a next hop; None: a
    blackhole, the vendor's default) and the BGP attributes BIRD's static protocol sets on it."""

    via: Address | None = None
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[tuple[int, int], ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()

    @property
    def plain(self) -> bool:
        """True when the route carries no BGP attribute."""
        return (
            self.med is None
            and self.local_pref is None
            and not self.communities
            and not self.large_communities
        )


PLAIN = Attributes()
Routes = dict[Network, Attributes]  # an include file's content: each announced prefix and its attributes


# ---- the richer rules' values: a threshold on a backend's servers -------------------------------


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
