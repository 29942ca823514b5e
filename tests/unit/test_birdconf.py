"""The BIRD snippet `rhid bird-config` prints: one static protocol per table and family."""

from __future__ import annotations

import pytest

from rhid.birdconf import bird_snippet, bird_snippets, cautions, export_filter, include_directory
from rhid.dialect import BIRD2, BIRD16, of_greeting
from rhid.gateway import parse
from rhid.model import Attributes
from rhid.rules import parse_rules


def test_snippet_declares_each_channel_and_the_exports() -> None:
    """Tables and families become `protocol static` blocks with a wildcard include; exports follow."""
    snippet = bird_snippet(parse_rules("10.0.0.1 = always\nvol2%2001:db8::1 = always\n"), "/run/rhid/")
    assert 'protocol static vol1 {\n  ipv4;\n  include "/run/rhi[d]/vol1.ipv4*.conf";\n}' in snippet
    assert 'protocol static vol2_v6 {\n  ipv6;\n  include "/run/rhi[d]/vol2.ipv6*.conf";\n}' in snippet
    assert '#   ipv4 { import none; export where proto = "vol1"; next hop self; };' in snippet
    assert '#   ipv6 { import none; export where proto = "vol2_v6"; next hop self; };' in snippet
    assert "source != RTS_STATIC" in snippet


def test_one_family_only_exports_that_family() -> None:
    """An IPv4-only rule file gets no IPv6 export line, and the other way round."""
    assert "ipv6 {" not in bird_snippet(parse_rules("10.0.0.1 = always\n"), "/run/rhid")
    assert "ipv4 {" not in bird_snippet(parse_rules("2001:db8::1 = always\n"), "/run/rhid")


def test_an_unchecked_directory_is_never_pasted() -> None:
    """A directory with a quote would break out of BIRD's include string: refused as a bug."""
    with pytest.raises(AssertionError):
        bird_snippet(parse_rules("10.0.0.1 = always\n"), '/run/x"; protocol')


def test_the_include_directory_is_a_pattern_so_a_missing_one_is_no_match() -> None:
    """The last directory component is written as a one-character glob; the root stays literal."""
    assert include_directory("/run/rhid") == "/run/rhi[d]"
    assert include_directory("/run/rhid/") == "/run/rhi[d]"
    assert include_directory("/var/lib/rhid-x.1") == "/var/lib/rhid-x.[1]"
    assert include_directory("/") == ""


def test_bird_1_6_gets_a_snippet_for_each_daemon() -> None:
    """BIRD 1.6: bird.conf's IPv4 protocols and bird6.conf's IPv6 ones, each named as the table (the
    vendor's `proto = "vol1"` in both), no channel statement, the export at the session's level."""
    snippets = bird_snippets(parse_rules("10.0.0.1, 2001:db8::1 = always\n"), "/run/rhid", BIRD16)
    assert list(snippets) == ["bird.conf", "bird6.conf"]
    assert 'protocol static vol1 {\n  include "/run/rhi[d]/vol1.ipv4*.conf";\n}' in snippets["bird.conf"]
    assert 'protocol static vol1 {\n  include "/run/rhi[d]/vol1.ipv6*.conf";\n}' in snippets["bird6.conf"]
    assert "ipv6" not in snippets["bird.conf"].replace("ipv6*", "")
    assert '#   import none; export where proto = "vol1"; next hop self;' in snippets["bird6.conf"]
    assert "in each kernel protocol," in snippets["bird6.conf"]
    assert "bird6.conf (BIRD 1.6's bird6: IPv6)" in bird_snippet(
        parse_rules("10.0.0.1 = always\n"), "/run/rhid", BIRD16
    )


def test_a_family_without_routes_gets_a_note_not_a_protocol() -> None:
    """An IPv4-only file on BIRD 1.6: bird6.conf needs nothing yet, and says so."""
    snippets = bird_snippets(parse_rules("10.0.0.1 = always\n"), "/run/rhid", BIRD16)
    assert "protocol static" not in snippets["bird6.conf"]
    assert "no rule has a route of this family yet" in snippets["bird6.conf"]


def test_a_table_with_a_gateway_is_exported_without_next_hop_self() -> None:
    """The gateway is the next hop the router should see: no `next hop self` for that family, with
    why; BIRD 1.6's bird6 is said to announce itself anyway (measured)."""
    rules = parse_rules("10.0.0.1, 2001:db8::1 = always\nvol2%10.0.0.2 = always\n")
    gateways = (parse("vol1=198.18.0.99"), parse("vol1=2001:db8:20::99"))
    snippet = bird_snippet(rules, "/run/rhid", BIRD2, gateways)
    assert '#   ipv4 { import none; export where proto = "vol1" || proto = "vol2"; };' in snippet
    assert "(no `next hop self`: vol1's routes lead via 198.18.0.99 (--gateway)" in snippet
    assert "bird6 announces itself" not in snippet
    snippets = bird_snippets(rules, "/run/rhid", BIRD16, gateways)
    assert "bird6 announces itself as the next hop of every route" in snippets["bird6.conf"]
    assert "bird6 announces itself" not in snippets["bird.conf"]


def test_a_degraded_rule_gets_the_export_filter_that_carries_its_med() -> None:
    """With a degraded clause the snippet's BGP export is the filter that sets bgp_med (BIRD drops a
    static route's MED on eBGP otherwise); `bird -p` accepts it (tests/integration/test_degraded)."""
    rules = parse_rules("10.0.0.1 = all(b:a) degraded any(b:b) med 200\n")
    snippet = bird_snippet(rules, "/run/rhid")
    assert export_filter(["vol1"]) in snippet
    assert "if defined(bgp_med) then bgp_med = bgp_med; accept;" in snippet
    assert "export where proto" not in snippet
    assert export_filter([]).startswith("export filter { if false then")


def test_cautions_name_what_a_bird_cannot_do_as_the_rules_ask() -> None:
    """A table over 10,000 routes on BIRD 1.6, a degraded clause's large community on BIRD 1.6.2
    (and every attribute on 1.5), a gateway no route leads to: each said with the rule's line; a
    BIRD that can do it all hears nothing."""
    lines = "".join(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256} = always\n" for i in range(10_001))
    degraded = "vol2%192.0.2.10 = all(b:be_app) degraded any(b:be_app) med 200 large-community 65000:1:2\n"
    rules = parse_rules(lines + degraded)
    found = cautions(rules, of_greeting("BIRD 1.6.2 ready."), [parse("vol9=192.0.2.1")])
    assert found[0].startswith("protocol vol1 (IPv4): 10001 routes in one static protocol")
    assert found[1] == (
        "line 10002: BIRD 1.6.2 cannot set large communities on a static route: the degraded routes "
        "are announced without them (BIRD 1.6.3 and later, 2 and 3 can)"
    )
    assert found[2].startswith("--gateway vol9=192.0.2.1: no rule puts an IPv4 route in table vol9")
    assert len(found) == 3
    assert "cannot set MED and large communities" in cautions(rules, of_greeting("BIRD 1.5.0 ready."))[1]
    assert cautions(rules, BIRD2) == []
    assert cautions(parse_rules(degraded), BIRD16) == []


def test_a_bird_without_communities_is_told_its_graceful_shutdown_goes_unmarked() -> None:
    """BIRD 1.5 cannot set 65535:0 on a static route: a graceful shutdown there is a caution with the
    way out; BIRD 1.6 carries it."""
    leaving = Attributes(communities=((65535, 0),), local_pref=0)
    rules = parse_rules("192.0.2.10 = always\n")
    (caution,) = cautions(rules, of_greeting("BIRD 1.5.0 ready."), shutdown=leaving)
    assert caution.startswith("BIRD 1.5.0 cannot set local preference and communities on a static route")
    assert "--graceful-shutdown 0" in caution
    assert cautions(rules, BIRD16, shutdown=leaving) == []
