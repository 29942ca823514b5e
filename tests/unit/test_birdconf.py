"""The BIRD snippet `rhid bird-config` prints: one static protocol per table and family."""

from __future__ import annotations

import pytest

from rhid.birdconf import bird_snippet, include_directory
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
