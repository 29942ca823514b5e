"""Compiling rules: meaning, validation errors and their hints, rendering."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from rhid import rules as rules_module
from rhid.errors import RuleError, RuleFileError
from rhid.model import Channel, Proxy, ProxyKind, Route
from rhid.rulefile import load_rules
from rhid.rules import Aggregate, parse_rules, render

B = ProxyKind.BACKEND
F = ProxyKind.FRONTEND


def errors(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RuleError) as caught:
        parse_rules(text, "t.cfg")
    return [(d.line, d.col, d.message) for d in caught.value.diagnostics]


def only_error(text: str) -> tuple[int, int, str, str | None]:
    with pytest.raises(RuleError) as caught:
        parse_rules(text, "t.cfg")
    (diagnostic,) = caught.value.diagnostics
    return diagnostic.line, diagnostic.col, diagnostic.message, diagnostic.hint


def test_vendor_examples_compile() -> None:
    """Every example from the vendor's page compiles to the routes and condition it describes."""
    rules = parse_rules(
        "10.200.200.200/32 = all(b:be_static,b:be_app)\n"
        "192.168.1.10/32 = any(b:be_app,b:be_app2)\n"
        "vol2%192.168.1.11/32 = any(b:k8s_servers)\n"
    )
    first, second, third = rules.rules
    assert first.routes == (Route("vol1", ipaddress.ip_network("10.200.200.200/32")),)
    assert first.condition.aggregate is Aggregate.ALL
    assert first.condition.operands == (Proxy(B, "be_static"), Proxy(B, "be_app"))
    assert second.condition.aggregate is Aggregate.ANY
    assert third.routes[0].table == "vol2"
    assert rules.channels == {Channel("vol1", 4), Channel("vol2", 4)}


def test_no_length_means_host_route() -> None:
    """An address without /length is a /32 or /128 host route."""
    rules = parse_rules("10.0.0.1, 2001:db8::1 = always")
    assert [str(route.prefix) for route in rules.routes] == ["10.0.0.1/32", "2001:db8::1/128"]


def test_ipv6_goes_to_the_v6_protocol() -> None:
    """IPv6 routes of table T belong to the BIRD protocol T_v6; IPv4 routes to T."""
    rules = parse_rules("vol2%2001:db8::/64, vol2%10.0.0.0/8 = always")
    assert sorted(c.protocol for c in rules.channels) == ["vol2", "vol2_v6"]


def test_mixed_families_in_one_line() -> None:
    """One line may list IPv4 and IPv6 networks; both follow the same condition."""
    rules = parse_rules("10.0.0.0/24, 2001:db8::/48 = any(f:fe_www)")
    assert {route.prefix.version for route in rules.routes} == {4, 6}


def test_same_prefix_in_other_table_is_fine() -> None:
    """A prefix may appear once per table."""
    assert len(parse_rules("1.1.1.1 = always\nvol2%1.1.1.1 = always").routes) == 2


def test_duplicate_prefix_names_both_lines() -> None:
    """The same prefix in the same table on two lines is an error naming both lines."""
    line, col, message, hint = only_error("1.1.1.1 = always\n\nvol1%1.1.1.1/32 = never")
    assert (line, col) == (3, 1)
    assert "already used by line 1" in message
    assert hint is not None
    assert "lines 1 and 3" in hint


def test_duplicate_prefix_within_one_line() -> None:
    """Listing a prefix twice on one line is an error too."""
    assert errors("1.1.1.1, 1.1.1.1/32 = always") == [
        (1, 10, "1.1.1.1/32 in table vol1 is already used on this line")
    ]


@pytest.mark.parametrize(
    ("text", "col", "message", "hint"),
    [
        ("10.0.0.1/24 = always", 1, "10.0.0.1/24 has host bits set", "did you mean 10.0.0.0/24?"),
        ("2001:db8::1/64 = always", 1, "2001:db8::1/64 has host bits set", "did you mean 2001:db8::/64?"),
        ("10.0.0.0/33 = always", 10, "prefix length /33 is out of range for IPv4 (0-32)", None),
        ("::/129 = always", 4, "prefix length /129 is out of range for IPv6 (0-128)", None),
        ("10.0.0.0/ = always", 10, "missing prefix length after '/'", "e.g. 10.0.0.0/32"),
        ("10.0.0.0/2x = always", 10, "prefix length must be a number", None),
        ("10.0.0.0/\uff13 = always", 10, "prefix length must be a number", None),
        ("1.1.1.300 = always", 1, "'1.1.1.300' is not an IPv4 or IPv6 address", None),
        ("1.1.1 = always", 1, "'1.1.1' is not an IPv4 or IPv6 address", "four dotted numbers"),
        ("01.1.1.1 = always", 1, "'01.1.1.1' is not an IPv4 or IPv6 address", "leading zeros"),
        ("fe80::1:::2 = always", 1, "'fe80::1:::2' is not an IPv4 or IPv6 address", None),
    ],
)
def test_bad_networks(text: str, col: int, message: str, hint: str | None) -> None:
    """Malformed addresses, out-of-range lengths and host bits are errors at the right column."""
    line, got_col, got_message, got_hint = only_error(text)
    assert (line, got_col, got_message) == (1, col, message)
    if hint is None:
        assert got_hint is None or "e.g." in got_hint
    else:
        assert got_hint is not None
        assert hint in got_hint


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("%1.1.1.1 = always", 1, "empty table name"),
        ("down%1.1.1.1 = always", 1, "table name 'down' is a BIRD keyword"),
        ("static%1.1.1.1 = always", 1, "table name 'static' is a BIRD keyword"),
        ("9vol%1.1.1.1 = always", 1, "table name must start with a letter or '_'"),
        ("vol-1%1.1.1.1 = always", 4, "invalid character '-' in table name"),
        ("v\u00f6l%1.1.1.1 = always", 2, "invalid character U+00F6 in table name"),
        ("a" * 65 + "%1.1.1.1 = always", 65, "is longer than 64 characters"),
        ("ab" * 16 + "%1.1.1.1 = always", 1, "reads as a hex byte string in BIRD"),
    ],
)
def test_bad_table_names(text: str, col: int, message: str) -> None:
    """Table names must be BIRD symbols BIRD accepts: charset, length, keywords, byte strings."""
    line, got_col, got_message, _ = only_error(text)
    assert (line, got_col) == (1, col)
    assert message in got_message


def test_table_of_64_characters_is_fine_for_ipv4_only() -> None:
    """A 64-character table fits BIRD for IPv4, but its IPv6 protocol name (+_v6) would not."""
    table = "t" * 64
    assert parse_rules(f"{table}%1.1.1.1 = always").rules
    _, _, message, _ = only_error(f"{table}%2001:db8::1 = always")
    assert "cannot carry IPv6 routes" in message


def test_v6_protocol_name_clash_is_refused() -> None:
    """Table `x_v6` (IPv4) and table `x` (IPv6) would both be BIRD protocol x_v6."""
    _, _, message, _ = only_error("x%2001:db8::1 = always\nx_v6%1.1.1.1 = always")
    assert "BIRD protocol 'x_v6' would carry both" in message


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("1.1.1.1 = all(b:be;x)", 19, "invalid character ';' in backend name"),
        ('1.1.1.1 = all(b:"be")', 17, "invalid character '\"' in backend name"),
        ("1.1.1.1 = all(f:fe*)", 19, "invalid character '*' in frontend name"),
        ("1.1.1.1 = all(b:be\x00x)", 19, "invalid character U+0000 in backend name"),
        ("1.1.1.1 = all(b:b\u0435)", 18, "invalid character U+0435 in backend name"),
        ("1.1.1.1 = all(b:be\u202ex)", 19, "invalid character U+202E in backend name"),
        ("1.1.1.1 = all(b:%s)" % ("x" * 256), 272, "backend name longer than 255 characters"),
        ("1.1.1.1 = all(b:)", 17, "empty backend name"),
        ("1.1.1.1 = all(x:be)", 15, "unknown target kind 'x'"),
        ("1.1.1.1 = all(backend:be)", 15, "unknown target kind 'backend'"),
    ],
)
def test_hostile_or_bad_proxy_names(text: str, col: int, message: str) -> None:
    """Proxy names outside HAProxy's [A-Za-z0-9._:-] are refused at the offending character."""
    line, got_col, got_message, _ = only_error(text)
    assert (line, got_col, got_message) == (1, col, message)


def test_colon_and_dots_are_valid_in_names() -> None:
    """`b:a:b.c-d_e` names the backend `a:b.c-d_e`."""
    (rule,) = parse_rules("1.1.1.1 = all(b:a:b.c-d_e)").rules
    assert rule.condition.operands == (Proxy(B, "a:b.c-d_e"),)


def test_uppercase_kind_gets_a_hint() -> None:
    """`B:be` is refused with a hint to write `b:be`."""
    assert only_error("1.1.1.1 = all(B:be)")[3] == "target kinds are lowercase: b:be"


@pytest.mark.parametrize("aggregate", ["all", "any"])
@pytest.mark.parametrize("tail", ["", "()"])
def test_all_and_any_need_targets(aggregate: str, tail: str) -> None:
    """`all`/`any` without targets would be vacuous, so they are errors."""
    assert only_error(f"1.1.1.1 = {aggregate}{tail}")[2] == f"'{aggregate}' needs at least one target"


def test_every_error_in_the_file_is_reported() -> None:
    """Syntax and meaning errors on several lines all come back, in file order."""
    got = errors("1.1.1.1/33 = all(b:x)\ngarbage\n2.2.2.2 = all(b:y;z)\n3.3.3.3 = always\n")
    assert [(line, col) for line, col, _ in got] == [(1, 9), (2, 8), (3, 18)]


def test_empty_file_needs_allow_empty() -> None:
    """A file without rules would withdraw everything, so it is refused unless allowed."""
    assert "has no rules" in only_error("# nothing\n\n")[2]
    assert parse_rules("# nothing\n", allow_empty=True).rules == ()


def test_render_is_canonical() -> None:
    """render() writes explicit tables and lengths, one rule per line."""
    rules = parse_rules("10.0.0.1, vol2%2001:DB8::1 = any( b:x , f:y )  # c\n3.3.3.3 = never")
    assert (
        render(rules) == "vol1%10.0.0.1/32,vol2%2001:db8::1/128 = any(b:x,f:y)\nvol1%3.3.3.3/32 = never()\n"
    )


def test_load_reads_the_example_file() -> None:
    """The shipped etc/hapee-rhi.cfg is valid."""
    rules = load_rules(Path(__file__).parents[2] / "etc" / "hapee-rhi.cfg")
    assert len(rules.rules) >= 3


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    """A missing file raises RuleFileError naming it, not RuleError."""
    with pytest.raises(RuleFileError, match="no such file"):
        load_rules(tmp_path / "absent.cfg")


def test_directory_is_a_file_error(tmp_path: Path) -> None:
    """A directory in place of the file raises RuleFileError."""
    with pytest.raises(RuleFileError, match="is a directory"):
        load_rules(tmp_path)


def test_unreadable_and_oversized_files_are_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path through a file, a file too large to be rules, and a denied read each say so."""
    (tmp_path / "file").write_text("")
    with pytest.raises(RuleFileError, match="Not a directory"):
        load_rules(tmp_path / "file" / "r.cfg")
    big = tmp_path / "big.cfg"
    big.write_text("# x\n" * 10)
    monkeypatch.setattr(rules_module, "MAX_RULES_FILE_BYTES", 8)
    with pytest.raises(RuleFileError, match="not a rule file"):
        load_rules(big)

    def denied(*_: object, **__: object) -> None:
        raise PermissionError

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(RuleFileError, match="permission denied \\(running as uid"):
        load_rules(big)


def test_undecodable_bytes_in_a_comment_are_harmless(tmp_path: Path) -> None:
    """Latin-1 bytes in a comment do not break the file; in a name they are refused."""
    path = tmp_path / "r.cfg"
    path.write_bytes(b"# caf\xe9\n1.1.1.1 = all(b:x)\n")
    assert len(load_rules(path).rules) == 1
    path.write_bytes(b"1.1.1.1 = all(b:caf\xe9)\n")
    with pytest.raises(RuleError, match="invalid character byte 0xE9 \\(not UTF-8\\) in backend name"):
        load_rules(path)


@pytest.mark.parametrize(
    ("text", "col", "message", "hint"),
    [
        ("10.0.0.1 = alll(b:be)", 12, "expected all, any", "did you mean all?"),
        ("10.0.0.1 = Any(b:be)", 12, "expected all, any", "aggregates are lowercase: any"),
        ("10.0.0.1 = all(b:be app)", 21, "a space cannot be part of a name", "separated by ','"),
        ("[2001:db8::10] = all(b:x)", 1, "is not an IPv4 or IPv6 address", "without brackets: 2001:db8::10"),
        ("10.0.0.0/255.255.255.0 = all(b:x)", 10, "a netmask is not a prefix length", "write 10.0.0.0/24"),
        ("10.0.0.1 = all(b:x\udcff)", 19, "invalid character byte 0xFF (not UTF-8)", "HAProxy names"),
    ],
)
def test_common_mistakes_get_a_hint_that_fixes_them(text: str, col: int, message: str, hint: str) -> None:
    """A misspelt aggregate, a space in a name, bracketed IPv6, a netmask, a stray byte: each is named."""
    line, got_col, got_message, got_hint = only_error(text + "\n")
    assert (line, got_col) == (1, col)
    assert message in got_message
    assert got_hint is not None
    assert hint in got_hint


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_rule(tmp_path: Path) -> None:
    """A file saved with a UTF-8 BOM reads as the same rules without it."""
    path = tmp_path / "bom.cfg"
    path.write_bytes(b"\xef\xbb\xbf10.0.0.1 = all(b:x)\n")
    assert render(load_rules(path)) == "vol1%10.0.0.1/32 = all(b:x)\n"


def test_an_undecodable_byte_is_echoed_as_that_byte() -> None:
    """The echoed line shows a 0xFF byte as \\xff, not as the surrogate Python keeps it in."""
    with pytest.raises(RuleError) as caught:
        parse_rules("10.0.0.1 = all(b:x\udcff)\n")
    assert "all(b:x\\xff)" in caught.value.render()
