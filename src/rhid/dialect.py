"""What differs between the BIRDs rhid speaks to, as one value per BIRD: a dialect. Pure.

A dialect owns the route line of rhid's include files (rendered from a route's attributes and
parsed back, by the same value), the name of each channel's static protocol, the ``show route``
commands and what their replies mean, and which ``configure`` codes mean "accepted". rhid's files,
the reconciler and `rhid bird-config` ask the dialect instead of spelling BIRD 2 themselves, so
that BIRD 1.6 (one daemon per family, no ``_v6`` suffix) is one more value here, not a branch in
each of them.

    BIRD2     BIRD 2.0 to 2.17: one daemon, ``<table>`` and ``<table>_v6`` static protocols
    BIRD3     BIRD 3.x: BIRD 2's language and replies (measured: newer-stacks notes §4)
    BIRD16    BIRD 1.6: one daemon per family (bird and bird6), each with a ``<table>`` static
              protocol of its own (no ``_v6``: the vendor's ``export where proto = "vol1";`` works
              in both), no channel statement; an undeclared protocol is ``9001 X is not a
              protocol``; the static protocol's reconfiguration grows with the square of its
              routes (bench/bird16_configure.py)

What a BIRD cannot carry is the dialect's to say (`uncarried`), never silently dropped: per-route
BGP attributes in static routes came with BIRD 1.6.0 and large communities with 1.6.3 (BIRD's
changelog), so an older BIRD's dialect carries less; 1.6.3 and later (the vendor's 1.6.3,
Debian's 1.6.8) carry every attribute rhid writes (measured on 1.6.8, at a BIRD 2 peer).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from rhid import birdwire
from rhid.model import IPV6_SUFFIX, PLAIN, Attributes, Channel, Network

_ROUTE = re.compile(
    r"route (?P<prefix>[0-9A-Fa-f.:]+/\d{1,3}) (?:blackhole|via (?P<via>[0-9A-Fa-f.:]+))"
    r"(?: \{ (?P<statements>[^{}]*)\})?;\Z"
)
_STATEMENT = re.compile(
    r"bgp_med = (?P<med>\d+)|bgp_local_pref = (?P<local_pref>\d+)"
    r"|bgp_community\.add\(\((?P<community>\d+,\d+)\)\)"
    r"|bgp_large_community\.add\(\((?P<large>\d+,\d+,\d+)\)\)"
)


def _statements(attributes: Attributes) -> list[str]:
    """The BGP attribute statements of a static route, in a fixed order (a stable file)."""
    found = []
    if attributes.med is not None:
        found.append(f"bgp_med = {attributes.med};")
    if attributes.local_pref is not None:
        found.append(f"bgp_local_pref = {attributes.local_pref};")
    found += [f"bgp_community.add(({a},{b}));" for a, b in attributes.communities]
    found += [f"bgp_large_community.add(({a},{b},{c}));" for a, b, c in attributes.large_communities]
    return found


def _parse_statements(text: str) -> Attributes | None:
    """The attributes of a statement block `_statements` wrote; None for anything else."""
    med = local_pref = None
    communities: list[tuple[int, int]] = []
    large: list[tuple[int, int, int]] = []
    for statement in filter(None, (part.strip() for part in text.split(";"))):
        match = _STATEMENT.fullmatch(statement)
        if match is None:
            return None
        if match["med"] is not None:
            med = int(match["med"])
        elif match["local_pref"] is not None:
            local_pref = int(match["local_pref"])
        elif match["community"] is not None:
            a, b = map(int, match["community"].split(","))
            communities.append((a, b))
        else:
            a, b, c = map(int, match["large"].split(","))
            large.append((a, b, c))
    return Attributes(None, med, local_pref, tuple(communities), tuple(large))


# The BGP attributes of `Attributes` (its fields but `via`), and their names in operator words.
BGP_ATTRIBUTES = {
    "med": "MED",
    "local_pref": "local preference",
    "communities": "communities",
    "large_communities": "large communities",
}
EVERY_ATTRIBUTE = frozenset(BGP_ATTRIBUTES)
QUADRATIC_WARNING = 10_000  # routes in one BIRD 1.6 static protocol: each configure then costs 0.1-0.4 s


@dataclass(frozen=True, slots=True)
class Dialect:
    """One BIRD's spelling of what rhid needs."""

    name: str
    v6_suffix: str = IPV6_SUFFIX  # the IPv6 protocol's name is the table plus this
    per_family: bool = False  # one daemon per address family (BIRD 1.6's bird and bird6)
    channel_statement: bool = True  # a static protocol names its channel (``ipv4;``): BIRD 2 and 3
    carries: frozenset[str] = EVERY_ATTRIBUTE  # the BGP attributes its static routes can set
    quadratic_above: int | None = None  # a static protocol of more routes makes configure slow

    def protocol(self, channel: Channel) -> str:
        """The static protocol of `channel`."""
        return channel.table if channel.family == 4 else channel.table + self.v6_suffix

    def uncarried(self, attributes: Attributes) -> tuple[str, ...]:
        """The BGP attributes of `attributes` that this BIRD cannot set on a static route, in
        operator words (none: it carries them all)."""
        return tuple(
            words
            for name, words in BGP_ATTRIBUTES.items()
            if name not in self.carries and getattr(attributes, name) not in (None, ())
        )

    def carried(self, attributes: Attributes) -> Attributes:
        """`attributes` without what this BIRD cannot set (the caller says so: see `uncarried`)."""
        carries = self.carries
        return Attributes(
            attributes.via,
            attributes.med if "med" in carries else None,
            attributes.local_pref if "local_pref" in carries else None,
            attributes.communities if "communities" in carries else (),
            attributes.large_communities if "large_communities" in carries else (),
        )

    def size_problem(self, count: int) -> str | None:
        """Why `count` routes in one static protocol make every configure slow here, or None."""
        if self.quadratic_above is None or count <= self.quadratic_above:
            return None
        return (
            f"{count} routes in one static protocol: {self.name}'s configure grows with the square of "
            "a protocol's routes (measured on 1.6.8: 0.1-0.4 s at 10,000, 4 s at 30,000, 7-40 s at "
            "100,000, with BIRD blocked meanwhile); spread them over several tables (vol1%, vol2%, "
            "...: one protocol each) or move to BIRD 2"
        )

    def route_line(self, prefix: Network, attributes: Attributes = PLAIN) -> str:
        """One include-file line: ``route P blackhole;`` or ``route P via A;``, with a block of BGP
        attribute statements when the route carries any (``route P blackhole { bgp_med = 200; };``).
        An attribute this BIRD cannot carry is a bug of the caller's (BIRD would refuse the whole
        configuration): the BIRD side passes `carried` attributes, and says what it left out."""
        if self.uncarried(attributes):
            raise AssertionError(f"{self.name} cannot carry {', '.join(self.uncarried(attributes))}")
        if attributes.via is None:
            head = f"route {prefix.with_prefixlen} blackhole"
        elif attributes.via.version != prefix.version:
            raise AssertionError(f"next hop {attributes.via} of another family than {prefix}")
        else:
            head = f"route {prefix.with_prefixlen} via {attributes.via}"
        statements = _statements(attributes)
        return f"{head} {{ {' '.join(statements)} }};" if statements else f"{head};"

    def parse_route_line(self, line: str, family: int) -> tuple[Network, Attributes] | None:
        """A line `route_line` wrote, read back; None for anything else (a line rhid did not write)."""
        match = _ROUTE.match(line.strip())
        if match is None:
            return None
        try:
            prefix = ipaddress.ip_network(match["prefix"])
            via = ipaddress.ip_address(match["via"]) if match["via"] else None
        except ValueError:
            return None
        if prefix.version != family or (via is not None and via.version != family):
            return None
        attributes = _parse_statements(match["statements"] or "")
        if attributes is None:
            return None
        return prefix, replace(attributes, via=via)

    def show_route(self, channel: Channel, prefix: Network | None = None) -> str:
        """``show route protocol P``, or ``show route N protocol P`` for one network."""
        if prefix is None:
            return birdwire.show_route_command(self.protocol(channel))
        return birdwire.show_prefix_command(self.protocol(channel), prefix)

    def routes_listed(self, reply: birdwire.Reply, prefix: Network | None = None) -> frozenset[Network]:
        """The prefixes a `show_route` reply lists (one network: it, or none)."""
        if prefix is None:
            return birdwire.parse_route_listing(reply)
        return birdwire.parse_prefix_listing(reply)

    def unknown_protocol(self, reply: birdwire.Reply) -> bool:
        """True when BIRD answered that the protocol asked for is not declared."""
        return birdwire.is_unknown_protocol(reply)

    def accepted(self, code: int) -> bool:
        """True for a ``configure`` reply that means BIRD took the files (done or under way)."""
        return code in birdwire.CONFIGURE_DONE


BIRD2 = Dialect("BIRD 2")
BIRD3 = Dialect("BIRD 3")
BIRD16 = Dialect(
    "BIRD 1.6", v6_suffix="", per_family=True, channel_statement=False, quadratic_above=QUADRATIC_WARNING
)
VERSIONS = {"1.6": BIRD16, "2": BIRD2, "3": BIRD3}  # what --bird-version names
_GREETING = re.compile(r"BIRD (\d+)\.(\d+)(?:\.(\d+))?\b")


def of_greeting(greeting: str) -> Dialect:
    """The dialect of the BIRD whose control socket greeted rhid with `greeting` (``BIRD 2.0.12
    ready.``, ``BIRD 1.6.8 ready.``, the vendor's ``BIRD 1.6.3 ready.``); BIRD 2's for anything
    else, the language rhid has always spoken. A BIRD 1 older than 1.6.3 carries fewer attributes."""
    match = _GREETING.match(greeting)
    if match is None:
        return BIRD2
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    if major >= 3:
        return BIRD3
    if major == 2:
        return BIRD2
    version = f"BIRD {major}.{minor}.{patch}"
    if (minor, patch) >= (6, 3):
        return BIRD16
    if minor == 6:  # 1.6.0-1.6.2: large communities came with 1.6.3
        return replace(BIRD16, name=version, carries=EVERY_ATTRIBUTE - {"large_communities"})
    return replace(BIRD16, name=version, carries=frozenset())  # per-route attributes came with 1.6.0


def of_version(word: str) -> Dialect:
    """The dialect --bird-version names (one of `VERSIONS`)."""
    return VERSIONS[word]
