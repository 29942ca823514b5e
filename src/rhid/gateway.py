"""A table's gateway: where its routes lead instead of a blackhole. Pure.

The vendor's ``protocol volatile vol1 { gateway 192.0.2.1 }`` sets the next hop of every route of
table vol1 (IPv4 in hapee-route.cfg, IPv6 in hapee-route6.cfg). rhid's equivalent is the run
option ``--gateway vol1=192.0.2.1`` (repeatable: one per table and family, ``--gateway
vol1=2001:db8::1`` for the same table's IPv6 routes), and the routes of that table and family are
written ``route P via 192.0.2.1;`` instead of ``route P blackhole;``. `routed` is the one place
that applies it, to the files the plan asks for.

BIRD announces such a route only while the gateway is on a network of one of its interfaces (a
gateway elsewhere leaves it ``(dormant)`` in ``show static``: rhid's verification then reports the
route missing); the router sees the gateway as the next hop only if the BGP export leaves it (no
``next hop self``). Addresses that can never be a next hop are refused here, naming the option.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from rhid.model import Address, Channel, Routes
from rhid.names import is_bird_symbol

FLAG = "--gateway"
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True, slots=True)
class Gateway:
    """The next hop of one table's routes of one family."""

    table: str
    address: Address

    @property
    def channel(self) -> Channel:
        """The static protocol whose routes lead to it: the table, in the address's family."""
        return Channel(self.table, self.address.version)

    def __str__(self) -> str:
        return f"{self.table}={self.address}"


def order(gateway: Gateway) -> tuple[str, int, int]:
    """Sort key: table, family, address (addresses of two families do not compare)."""
    return (gateway.table, gateway.address.version, int(gateway.address))


def parse(text: str) -> Gateway:
    """``TABLE=ADDRESS``; ValueError, saying what is wrong and how to write it, for anything else."""
    table, equals, address_text = text.partition("=")
    table, address_text = table.strip(), address_text.strip()
    if not equals or not table or not address_text:
        raise ValueError(f"{text!r} is not TABLE=ADDRESS (e.g. vol1=192.0.2.1)")
    if not is_bird_symbol(table):
        raise ValueError(f"{table!r} is not a table name of the rule file ([A-Za-z_][A-Za-z0-9_]*)")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise ValueError(f"{address_text!r} is not an IPv4 or IPv6 address") from None
    problem = unusable(address)
    if problem is not None:
        raise ValueError(f"{address} {problem}")
    return Gateway(table, address)


def unusable(address: Address) -> str | None:
    """Why `address` can never be a route's next hop, or None. BIRD accepts each of these in a
    static route and then never announces it (measured on 2.0.12: configure says 0003, the route
    stays dormant; 1.6 refuses a loopback one): refused before any route depends on it."""
    v6 = isinstance(address, ipaddress.IPv6Address)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    checks = (
        (
            address.is_loopback,
            "is a loopback address: BIRD refuses it as a next hop (the route would be announced nowhere)",
        ),
        (address.is_unspecified, "is the unspecified address, not a next hop"),
        (address.is_multicast, "is a multicast address, not a next hop"),
        (address == BROADCAST, "is the broadcast address, not a next hop"),
        (mapped is not None, f"is an IPv4-mapped address: write --gateway TABLE={mapped} for IPv4 routes"),
        (
            v6 and address.is_link_local,
            "is link-local: BIRD needs its interface too (fe80::1%eth0), which rhid does not write; "
            "use a global address of the router's network",
        ),
    )
    return next((words for found, words in checks if found), None)


def conflicts(gateways: Iterable[Gateway]) -> str | None:
    """Why these gateways cannot all hold (two for one table and family), or None."""
    seen: dict[Channel, Gateway] = {}
    for gateway in gateways:
        other = seen.setdefault(gateway.channel, gateway)
        if other != gateway:
            return (
                f"two gateways for table {gateway.table}'s IPv{gateway.address.version} routes "
                f"({other.address} and {gateway.address}): give one per table and family"
            )
    return None


def unused(gateways: Iterable[Gateway], channels: Collection[Channel]) -> list[str]:
    """A warning for each gateway no route of the rules leads to (a typo of the table's name, or
    the other family's address)."""
    found = []
    for gateway in sorted(gateways, key=order):
        if gateway.channel in channels:
            continue
        family = f"IPv{gateway.address.version}"
        tables = sorted({c.table for c in channels if c.family == gateway.address.version})
        found.append(
            f"{FLAG} {gateway}: no rule puts an {family} route in table {gateway.table}, so it leads "
            f"nothing (tables with {family} routes: {', '.join(tables) or 'none'})"
        )
    return found


def routed(files: Mapping[Channel, Routes], gateways: Iterable[Gateway]) -> dict[Channel, Routes]:
    """The files with each route of a table that has a gateway of its family leading via it."""
    via = {gateway.channel: gateway.address for gateway in gateways}
    return {
        channel: (
            {prefix: replace(attributes, via=via[channel]) for prefix, attributes in routes.items()}
            if channel in via
            else dict(routes)
        )
        for channel, routes in files.items()
    }
