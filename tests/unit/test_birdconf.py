"""The BIRD snippet `rhid bird-config` prints: one static protocol per table and family."""

from __future__ import annotations

import pytest

from rhid.birdconf import bird_snippet, export_filter, include_directory
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


def test_a_degraded_rule_gets_the_export_filter_that_carries_its_med() -> None:
    """With a degraded clause the snippet's BGP export is the filter that sets bgp_med (BIRD drops a
    static route's MED on eBGP otherwise); `bird -p` accepts it (tests/integration/test_degraded)."""
    rules = parse_rules("10.0.0.1 = all(b:a) degraded any(b:b) med 200\n")
    snippet = bird_snippet(rules, "/run/rhid")
    assert export_filter(["vol1"]) in snippet
    assert "if defined(bgp_med) then bgp_med = bgp_med; accept;" in snippet
    assert "export where proto" not in snippet
    assert export_filter([]).startswith("export filter { if false then")
