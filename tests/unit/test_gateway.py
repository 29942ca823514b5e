"""The per-table gateway (--gateway TABLE=ADDRESS): what it reads, what it refuses and why, and the
files it leads: a table's routes of the gateway's family `via` it, everything else as it was."""

from __future__ import annotations

import ipaddress

import pytest

from rhid import gateway
from rhid.gateway import Gateway, conflicts, parse, routed, unusable, unused
from rhid.model import Attributes, Channel

A = ipaddress.ip_address
N = ipaddress.ip_network


def test_a_gateway_reads_as_table_and_address() -> None:
    """`vol1=192.0.2.1` and `vol2 = 2001:db8::1`: the table, the address, the channel it leads."""
    assert parse("vol1=192.0.2.1") == Gateway("vol1", A("192.0.2.1"))
    v6 = parse("vol2 = 2001:db8::1")
    assert v6.channel == Channel("vol2", 6)
    assert str(v6) == "vol2=2001:db8::1"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("vol1", "is not TABLE=ADDRESS"),
        ("=192.0.2.1", "is not TABLE=ADDRESS"),
        ("vol1=", "is not TABLE=ADDRESS"),
        ("vol-1=192.0.2.1", "is not a table name"),
        ("vol1=192.0.2.300", "is not an IPv4 or IPv6 address"),
        ("vol1=127.0.0.1", "loopback"),
        ("vol1=::1", "loopback"),
        ("vol1=0.0.0.0", "unspecified"),
        ("vol1=::", "unspecified"),
        ("vol1=224.0.0.1", "multicast"),
        ("vol1=ff02::1", "multicast"),
        ("vol1=255.255.255.255", "broadcast"),
        ("vol1=::ffff:192.0.2.1", "write --gateway TABLE=192.0.2.1"),
        ("vol1=fe80::1", "link-local"),
    ],
)
def test_what_can_never_be_a_next_hop_is_refused_with_the_fix(text: str, words: str) -> None:
    """Each refusal says what is wrong (BIRD would take most of these and announce nothing)."""
    with pytest.raises(ValueError, match=words):
        parse(text)


def test_ordinary_next_hops_are_usable() -> None:
    """A global address of either family, and a private one, are next hops."""
    assert unusable(A("198.18.0.99")) is None
    assert unusable(A("10.0.0.1")) is None
    assert unusable(A("2001:db8::99")) is None


def test_one_gateway_per_table_and_family() -> None:
    """Two for vol1's IPv4 routes conflict; one per family, or the same twice, does not."""
    assert conflicts([parse("vol1=192.0.2.1"), parse("vol1=2001:db8::1"), parse("vol2=192.0.2.1")]) is None
    assert conflicts([parse("vol1=192.0.2.1"), parse("vol1=192.0.2.1")]) is None
    problem = conflicts([parse("vol1=192.0.2.1"), parse("vol1=192.0.2.2")])
    assert problem is not None
    assert "two gateways for table vol1's IPv4 routes (192.0.2.1 and 192.0.2.2)" in problem


def test_a_gateway_no_route_uses_is_a_warning_naming_the_tables_it_could_mean() -> None:
    """A typo of the table, or the other family's address: it leads nothing, and says so."""
    channels = {Channel("vol1", 4), Channel("vol2", 4), Channel("vol1", 6)}
    assert unused([parse("vol1=192.0.2.1"), parse("vol1=2001:db8::1")], channels) == []
    (warning,) = unused([parse("vol3=192.0.2.1")], channels)
    assert warning.startswith(f"{gateway.FLAG} vol3=192.0.2.1: no rule puts an IPv4 route in table vol3")
    assert "(tables with IPv4 routes: vol1, vol2)" in warning
    (warning,) = unused([parse("vol2=2001:db8::1")], channels)
    assert "(tables with IPv6 routes: vol1)" in warning
    (warning,) = unused([parse("vol2=2001:db8::1")], {Channel("vol2", 4)})
    assert "(tables with IPv6 routes: none)" in warning


def test_routed_files_lead_a_tables_routes_of_its_family_via_the_gateway() -> None:
    """vol1's IPv4 routes go via the gateway (their other attributes kept); vol1's IPv6 and
    vol2's routes stay as they were."""
    med = Attributes(med=200)
    files = {
        Channel("vol1", 4): {N("192.0.2.10/32"): med},
        Channel("vol1", 6): {N("2001:db8::10/128"): Attributes()},
        Channel("vol2", 4): {N("192.0.2.11/32"): Attributes()},
    }
    led = routed(files, [parse("vol1=198.18.0.99")])
    assert led[Channel("vol1", 4)] == {N("192.0.2.10/32"): Attributes(A("198.18.0.99"), med=200)}
    assert led[Channel("vol1", 6)] == files[Channel("vol1", 6)]
    assert led[Channel("vol2", 4)] == files[Channel("vol2", 4)]
    assert routed(files, []) == files
