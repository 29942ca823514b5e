"""Nothing from a file or a socket reaches a command to HAProxy or BIRD unless it matched a strict pattern.

rhid sends HAProxy fixed commands whose only variables are a `show stat` type mask (1 to 7) and a
ring name that passed HAProxy's name pattern; it sends BIRD constants and ``show route protocol
<name>`` with names from the rule file; it writes BIRD include files from parsed networks, and a
snippet with a checked directory. Each path is tried here with hostile input.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhid import birdwire, names
from rhid.birdconf import bird_snippet
from rhid.cli import main
from rhid.errors import RuleError
from rhid.model import Proxy, ProxyKind
from rhid.routefiles import render_routes
from rhid.rules import parse_rules
from rhid.stats import POLL_COMMAND, events_command, parse_poll, poll_command
from rhid.status import parse_request

HOSTILE_NAMES = [
    "be\nshow sess",
    "be;disable frontend fe",
    'be"',
    "be'",
    "*",
    '"*"',
    "be\x00",
    "b\u0435",  # Cyrillic e, a homoglyph
    "be\u202e",  # right-to-left override
    "be x",
    "x" * 256,
]
HOSTILE_TABLES = [
    "all",
    "down",
    "vol1;down",
    "vol 1",
    '"vol1"',
    "vol1*",
    "v\u00f6l",
    "t" * 65,
    "v\nconfigure",
]


POLL = re.compile(rb"(@1 )?show info; (@1 )?show stat -1 [1-7] -1\n")


@pytest.mark.parametrize("master", [False, True])
def test_haproxy_polls_vary_only_in_a_checked_type_mask(master: bool) -> None:
    """Every poll command is one fixed line whose only variable is a type mask 1-7; others are refused."""
    for mask in range(1, 8):
        command = poll_command(master, mask)
        assert POLL.fullmatch(command), command
        assert command.startswith(b"@1 ") is master
    assert poll_command(False) == POLL_COMMAND.encode() + b"\n"
    for bad in [0, 8, -1, 255]:
        with pytest.raises(AssertionError):
            poll_command(master, bad)


@given(st.text(max_size=80))
def test_event_ring_names_reach_haproxy_only_when_checked(ring: str) -> None:
    """`show events RING` is built only for a ring of HAProxy's name characters, as one command line."""
    try:
        command = events_command(ring)
    except AssertionError:
        assert not names.is_proxy_name(ring)
        return
    assert re.fullmatch(rb"set timeout cli 86400; show events [A-Za-z0-9._:-]{1,255} -nw\n", command)


@pytest.mark.parametrize("ring", HOSTILE_NAMES)
def test_hostile_ring_names_are_refused(ring: str) -> None:
    """A hostile --haproxy-events value is a usage error, and could never reach HAProxy's socket."""
    with pytest.raises(SystemExit) as exited:
        main(["run", "--haproxy-events", ring])
    assert exited.value.code == 2
    with pytest.raises(AssertionError):
        events_command(ring)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("kind", ["b", "f"])
def test_hostile_proxy_names_are_refused_at_parse(kind: str, name: str) -> None:
    """Proxy names outside [A-Za-z0-9._:-] (or too long) never make it past the rule file."""
    with pytest.raises(RuleError):
        parse_rules(f"10.0.0.1 = all({kind}:{name})\n")


@pytest.mark.parametrize("table", HOSTILE_TABLES)
def test_hostile_table_names_are_refused_at_parse(table: str) -> None:
    """Table names become BIRD protocol names, so only symbols BIRD accepts pass."""
    with pytest.raises(RuleError):
        parse_rules(f"{table}%10.0.0.1 = always\n")


@given(st.text(max_size=80))
def test_bird_command_builder_only_accepts_symbols(name: str) -> None:
    """`show route protocol X` is built only for X matching BIRD's symbol pattern, else AssertionError."""
    try:
        command = birdwire.show_route_command(name)
    except AssertionError:
        assert not names.is_bird_symbol(name)
        return
    assert re.fullmatch(r"show route protocol [A-Za-z_][A-Za-z0-9_]{0,63}", command)
    assert birdwire.encode(command).count(b"\n") == 1


@given(st.text(max_size=40))
def test_encode_never_emits_two_commands(command: str) -> None:
    """Whatever string reaches the BIRD encoder, at most one command line leaves it."""
    try:
        wire = birdwire.encode(command)
    except AssertionError:
        return
    assert wire.count(b"\n") == 1
    assert wire.endswith(b"\n")
    assert b";" not in wire
    assert b"\r" not in wire


@given(st.lists(st.ip_addresses(v=4).map(ipaddress.ip_network), max_size=20))
def test_include_files_hold_only_route_lines(prefixes: list[ipaddress.IPv4Network]) -> None:
    """The include file rhid writes is a header comment and `route P blackhole;` lines, nothing else."""
    lines = render_routes(prefixes).splitlines()
    assert lines[0].startswith("# ")
    assert all(re.fullmatch(r"route [0-9.]+/\d+ blackhole;", line) for line in lines[1:])


def test_hostile_proxy_in_haproxy_output_is_ignored() -> None:
    """A row HAProxy sends for a proxy the rules do not name is skipped; nothing echoes it anywhere."""
    reply = (
        b"Name: HAProxy\nPid: 1\n\n# pxname,svname,status,type,check_status,\n"
        b"evil;configure,BACKEND,UP,1,,\nbe,BACKEND,UP,1,,\n\n"
    )
    snapshot = parse_poll(reply, [Proxy(ProxyKind.BACKEND, "be"), Proxy(ProxyKind.BACKEND, "evil;configure")])
    assert list(snapshot.proxies) == [Proxy(ProxyKind.BACKEND, "be")]


def test_status_requests_are_parsed_not_forwarded() -> None:
    """The status socket accepts only `status [prefix]`; anything else is an error text."""
    for hostile in [b"status; configure\n", b"configure\n", b"status 10.0.0.1\nconfigure\n", b"status \x00"]:
        assert isinstance(parse_request(hostile), str)


def test_bird_dir_with_quotes_is_refused_for_the_snippet(capsys: pytest.CaptureFixture[str]) -> None:
    """`--bird-dir` refuses a path that could break out of BIRD's include string (usage error, exit 2),
    and the snippet builder itself refuses to paste one."""
    hostile = '/run/x";\nprotocol static evil {'
    for command in ["bird-config", "run", "status"]:
        with pytest.raises(SystemExit) as exited:
            main([command, "--bird-dir", hostile])
        assert exited.value.code == 2
        assert "must be an absolute path" in capsys.readouterr().err
    with pytest.raises(AssertionError):
        bird_snippet(parse_rules("10.0.0.1 = always\n"), hostile)
