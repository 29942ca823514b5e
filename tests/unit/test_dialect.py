"""BIRD dialects: route lines rendered from attributes and parsed back by the same value; each
channel's protocol; what BIRD's replies to show route and configure mean."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhid import birdwire
from rhid.dialect import BIRD2, BIRD3, BIRD16, of_greeting, of_version
from rhid.model import PLAIN, Attributes, Channel

N = ipaddress.ip_network
A = ipaddress.ip_address


@given(
    st.one_of(
        st.ip_addresses(v=4).map(lambda a: (N(f"{a}/32"), st.ip_addresses(v=4))),
        st.ip_addresses(v=6).map(lambda a: (N(f"{a}/128"), st.ip_addresses(v=6))),
    ).flatmap(lambda pair: st.tuples(st.just(pair[0]), st.none() | pair[1]))
)
def test_a_route_line_parses_back_to_its_prefix_and_attributes(case: tuple[object, object]) -> None:
    """render -> parse is the identity for every prefix, blackhole or via a next hop of its family."""
    prefix, via = case
    assert isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network)
    attributes = Attributes(via) if isinstance(via, ipaddress.IPv4Address | ipaddress.IPv6Address) else PLAIN
    line = BIRD2.route_line(prefix, attributes)
    assert BIRD2.parse_route_line(line, prefix.version) == (prefix, attributes)


def test_route_lines_read_like_bird_2() -> None:
    """The vendor's blackhole line, and a next hop spelt `via`."""
    assert BIRD2.route_line(N("192.0.2.10/32")) == "route 192.0.2.10/32 blackhole;"
    assert (
        BIRD2.route_line(N("2001:db8::/64"), Attributes(A("2001:db8::1")))
        == "route 2001:db8::/64 via 2001:db8::1;"
    )
    with pytest.raises(AssertionError, match="another family"):
        BIRD2.route_line(N("192.0.2.10/32"), Attributes(A("2001:db8::1")))


@pytest.mark.parametrize(
    "line",
    [
        "route 192.0.2.10/32 unreachable;",
        "route 192.0.2.10/33 blackhole;",
        "route 192.0.2.10/32 via 2001:db8::1;",
        "route 2001:db8::1/128 blackhole;",  # another family than the file's
        "route 192.0.2.10/32 via 192.0.2.300;",
        "protocol static x { }",
    ],
)
def test_lines_rhid_did_not_write_are_not_routes(line: str) -> None:
    """Anything but rhid's own line, in the file's family, is not read as a route."""
    assert BIRD2.parse_route_line(line, 4) is None


def test_protocols_and_commands_of_bird_2() -> None:
    """`<table>` and `<table>_v6`; show route of a channel, or of one network in it."""
    assert BIRD2.protocol(Channel("vol1", 4)) == "vol1"
    assert BIRD2.protocol(Channel("vol1", 6)) == "vol1_v6"
    assert BIRD2.show_route(Channel("vol1", 6)) == "show route protocol vol1_v6"
    assert BIRD2.show_route(Channel("vol1", 4), N("10.0.0.1/32")) == "show route 10.0.0.1/32 protocol vol1"


def test_replies_mean_what_bird_says() -> None:
    """8001 for one network is none; 0003/0004/0005 are accepted; an undeclared protocol is told apart."""
    listing = birdwire.Reply(0, ((1007, "Table master4:"), (1007, "10.0.0.1/32 blackhole [vol1]"), (0, "")))
    assert BIRD2.routes_listed(listing) == {N("10.0.0.1/32")}
    assert (
        BIRD2.routes_listed(birdwire.Reply(8001, ((8001, "Network not found"),)), N("10.0.0.1/32")) == set()
    )
    assert all(BIRD2.accepted(code) for code in (3, 4, 5))
    assert not BIRD2.accepted(8002)
    assert BIRD2.unknown_protocol(birdwire.Reply(9001, ((9001, "syntax error, CF_SYM_UNDEFINED"),)))


def test_the_greeting_names_the_dialect() -> None:
    """BIRD 3's greeting gives BIRD 3's dialect; anything else BIRD 2's."""
    assert of_greeting("BIRD 3.1.8 ready.") is BIRD3
    assert of_greeting("BIRD 2.0.12 ready.") is BIRD2
    assert of_greeting("") is BIRD2


def test_bgp_attributes_ride_in_the_route_line_and_parse_back() -> None:
    """MED, local-pref, communities and large communities are the route's statements, in a fixed order."""
    attributes = Attributes(
        med=200, local_pref=300, communities=((65000, 666), (65535, 0)), large_communities=((65000, 1, 2),)
    )
    line = BIRD2.route_line(N("192.0.2.10/32"), attributes)
    assert line == (
        "route 192.0.2.10/32 blackhole { bgp_med = 200; bgp_local_pref = 300; "
        "bgp_community.add((65000,666)); bgp_community.add((65535,0)); "
        "bgp_large_community.add((65000,1,2)); };"
    )
    assert BIRD2.parse_route_line(line, 4) == (N("192.0.2.10/32"), attributes)
    assert not attributes.plain
    assert PLAIN.plain
    assert BIRD2.parse_route_line("route 192.0.2.10/32 blackhole { bgp_path.prepend(1); };", 4) is None


def test_bird_1_6_names_a_tables_protocol_the_same_in_both_daemons() -> None:
    """BIRD 1.6: `vol1` in bird.conf and in bird6.conf (no _v6), no channel statement, two daemons;
    its `9001 vol1 is not a protocol` is an undeclared protocol."""
    assert BIRD16.protocol(Channel("vol1", 6)) == "vol1"
    assert BIRD16.show_route(Channel("vol1", 6)) == "show route protocol vol1"
    assert BIRD16.per_family
    assert not BIRD16.channel_statement
    assert not BIRD2.per_family
    assert BIRD16.unknown_protocol(birdwire.Reply(9001, ((9001, "vol1 is not a protocol"),)))
    assert not BIRD16.unknown_protocol(birdwire.Reply(9001, ((9001, "syntax error"),)))
    assert BIRD16.route_line(N("2001:db8::10/128"), Attributes(A("2001:db8::1"))) == (
        "route 2001:db8::10/128 via 2001:db8::1;"
    )


@pytest.mark.parametrize(
    ("greeting", "name", "carries"),
    [
        ("BIRD 1.6.8 ready.", "BIRD 1.6", {"med", "local_pref", "communities", "large_communities"}),
        ("BIRD 1.6.3 ready.", "BIRD 1.6", {"med", "local_pref", "communities", "large_communities"}),
        ("BIRD 1.6.2 ready.", "BIRD 1.6.2", {"med", "local_pref", "communities"}),
        ("BIRD 1.6 ready.", "BIRD 1.6.0", {"med", "local_pref", "communities"}),
        ("BIRD 1.5.0 ready.", "BIRD 1.5.0", set()),
        ("BIRD 2.0.12 ready.", "BIRD 2", {"med", "local_pref", "communities", "large_communities"}),
        ("BIRD 3.1.8 ready.", "BIRD 3", {"med", "local_pref", "communities", "large_communities"}),
        ("BIRD 4.0.0 ready.", "BIRD 3", {"med", "local_pref", "communities", "large_communities"}),
        ("hello", "BIRD 2", {"med", "local_pref", "communities", "large_communities"}),
    ],
)
def test_the_greeting_says_which_bird_and_what_it_carries(
    greeting: str, name: str, carries: set[str]
) -> None:
    """The vendor's 1.6.3 and Debian's 1.6.8 carry every attribute; 1.6.0-1.6.2 no large
    communities; 1.5 and older no per-route attribute at all; 1.x is always the two-daemon BIRD."""
    dialect = of_greeting(greeting)
    assert dialect.name == name
    assert dialect.carries == carries
    assert dialect.per_family is greeting.startswith("BIRD 1.")


def test_what_a_bird_cannot_carry_is_named_and_left_out_never_rendered() -> None:
    """`uncarried` names the attributes in operator words, `carried` keeps the rest, and rendering
    an uncarried attribute is a bug (BIRD would refuse the whole configuration)."""
    old = of_greeting("BIRD 1.5.0 ready.")
    everything = Attributes(A("192.0.2.1"), 200, 50, ((65000, 1),), ((65000, 1, 2),))
    assert old.uncarried(everything) == ("MED", "local preference", "communities", "large communities")
    assert old.carried(everything) == Attributes(A("192.0.2.1"))
    assert of_greeting("BIRD 1.6.2 ready.").carried(everything) == Attributes(
        A("192.0.2.1"), 200, 50, ((65000, 1),)
    )
    assert BIRD16.uncarried(everything) == ()
    assert BIRD16.carried(everything) == everything
    with pytest.raises(AssertionError, match="cannot carry MED"):
        old.route_line(N("10.0.0.1/32"), Attributes(med=1))
    assert old.route_line(N("10.0.0.1/32")) == "route 10.0.0.1/32 blackhole;"


def test_a_large_table_is_slow_on_bird_1_6_only() -> None:
    """Above 10,000 routes in one protocol BIRD 1.6's configure grows with the square: said, with
    the way out; BIRD 2 has no such limit."""
    assert BIRD16.size_problem(10_000) is None
    problem = BIRD16.size_problem(10_001)
    assert problem is not None
    assert "grows with the square" in problem
    assert "several tables" in problem
    assert BIRD2.size_problem(1_000_000) is None


def test_versions_name_dialects() -> None:
    """--bird-version's words."""
    assert of_version("1.6") is BIRD16
    assert of_version("2") is BIRD2
    assert of_version("3") is BIRD3
