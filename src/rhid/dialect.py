"""What differs between the BIRDs rhid speaks to, as one value per BIRD: a dialect. Pure.

A dialect owns the route line of rhid's include files (rendered from a route's attributes and
parsed back, by the same value), the name of each channel's static protocol, the ``show route``
commands and what their replies mean, and which ``configure`` codes mean "accepted". rhid's files,
the reconciler and `rhid bird-config` ask the dialect instead of spelling BIRD 2 themselves, so
that BIRD 1.6 (one daemon per family, no ``_v6`` suffix) is one more value here, not a branch in
each of them.

    BIRD2     BIRD 2.0 to 2.17: one daemon, ``<table>`` and ``<table>_v6`` static protocols
    BIRD3     BIRD 3.x: BIRD 2's language and replies (measured: newer-stacks notes §4)
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


@dataclass(frozen=True, slots=True)
class Dialect:
    """One BIRD's spelling of what rhid needs."""

    name: str
    v6_suffix: str = IPV6_SUFFIX  # the IPv6 protocol's name is the table plus this

    def protocol(self, channel: Channel) -> str:
        """The static protocol of `channel`."""
        return channel.table if channel.family == 4 else channel.table + self.v6_suffix

    def route_line(self, prefix: Network, attributes: Attributes = PLAIN) -> str:
        """One include-file line: ``route P blackhole;`` or ``route P via A;``, with a block of BGP
        attribute statements when the route carries any (``route P blackhole { bgp_med = 200; };``)."""
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


def of_greeting(greeting: str) -> Dialect:
    """The dialect of the BIRD whose control socket greeted rhid with `greeting` (``BIRD 2.0.12
    ready.``); BIRD 2's for anything else, the language rhid has always spoken."""
    return BIRD3 if greeting.startswith("BIRD 3.") else BIRD2
