"""Reading HAProxy's `show info; show stat` reply into per-proxy observations."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhid.errors import HAProxyProtocolError
from rhid.model import Proxy, ProxyKind
from rhid.stats import (
    BACKENDS,
    FRONTENDS,
    MAX_REPLY_BYTES,
    SERVERS,
    Observation,
    ProxyStatus,
    backend_observation,
    frontend_observation,
    is_master_cli_refusal,
    parse_poll,
    poll_command,
    typemask_for,
)

B = ProxyKind.BACKEND
F = ProxyKind.FRONTEND
GOLDEN = (Path(__file__).parent / "data" / "haproxy_reply.txt").read_bytes()  # captured from haproxy 2.6.12
HEADER = "# pxname,svname,status,type,check_status,last_chk,"


def reply(*rows: str) -> bytes:
    return (
        "Name: HAProxy\nPid: 42\n\n" + HEADER + "\n" + "".join(row + "\n" for row in rows) + "\n"
    ).encode()


def test_golden_reply_maps_every_state() -> None:
    """A real HAProxy 2.6 reply maps OPEN/PAUSED, UP/DOWN, MAINT, DRAIN, INI, empty and weight 0."""
    names = ["fe_www", "fe_paused", "be_up", "be_maint", "be_drain", "be_ini", "be_down", "be_empty",
             "be_weight0", "li_app"]  # fmt: skip
    wanted = [Proxy(B, n) for n in names] + [Proxy(F, n) for n in names]
    snapshot = parse_poll(GOLDEN, wanted)
    observed = {str(p): snapshot.status_of(p).observation for p in wanted}
    assert snapshot.pid.isdigit()
    assert observed["f:fe_www"] is Observation.UP
    assert observed["f:fe_paused"] is Observation.DOWN
    assert observed["b:be_up"] is Observation.UP
    assert observed["b:be_maint"] is Observation.DOWN
    assert observed["b:be_drain"] is Observation.DOWN
    assert observed["b:be_ini"] is Observation.DOWN
    assert observed["b:be_down"] is Observation.PENDING  # UP, but its only check is still INI
    assert observed["b:be_empty"] is Observation.UP  # HAProxy's own view: no servers is UP
    assert observed["b:be_weight0"] is Observation.DOWN
    assert observed["b:li_app"] is Observation.UP
    assert observed["f:li_app"] is Observation.UP
    assert observed["f:be_up"] is Observation.ABSENT  # a backend is not a frontend
    assert observed["b:fe_www"] is Observation.ABSENT


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("OPEN", Observation.UP),
        ("PAUSED", Observation.DOWN),
        ("STOP", Observation.DOWN),
        ("", Observation.DOWN),
        ("FULL", Observation.DOWN),
    ],
)
def test_frontend_status_mapping(status: str, expected: Observation) -> None:
    """Only OPEN is up for a frontend; anything else, known or not, is down."""
    assert frontend_observation(status) is expected


@pytest.mark.parametrize(
    ("status", "pending", "expected"),
    [
        ("UP", False, Observation.UP),
        ("UP (1/2)", False, Observation.UP),
        ("UP", True, Observation.PENDING),
        ("DOWN", False, Observation.DOWN),
        ("DOWN", True, Observation.PENDING),  # a server's first check may still turn it (init-state down)
        ("UPPER", False, Observation.DOWN),
        ("NOLB", False, Observation.DOWN),
        ("MAINT", False, Observation.DOWN),
        ("", False, Observation.DOWN),
    ],
)
def test_backend_status_mapping(status: str, pending: bool, expected: Observation) -> None:
    """A backend is up when the first word is UP, pending while a check is INI, else down."""
    assert backend_observation(status, pending) is expected


def test_quoted_comma_does_not_shift_columns() -> None:
    """A quoted field with a comma (a 503 reason) does not shift the columns after it."""
    snapshot = parse_poll(
        reply('be,s1,DOWN,2,L7STS,"Busy, retry later",', "be,BACKEND,UP,1,,,"), [Proxy(B, "be")]
    )
    assert snapshot.status_of(Proxy(B, "be")).observation is Observation.UP


def test_ini_with_progress_marker_is_pending() -> None:
    """A check_status of `* INI` (check in progress) also counts as pending."""
    snapshot = parse_poll(reply("be,s1,UP 1/3,2,* INI,,", "be,BACKEND,UP,1,,,"), [Proxy(B, "be")])
    assert snapshot.status_of(Proxy(B, "be")).observation is Observation.PENDING


def test_only_wanted_rows_are_read() -> None:
    """Rows of proxies the rules do not name are skipped, even malformed ones."""
    snapshot = parse_poll(reply("other,BACKEND", "be,BACKEND,UP,1,,,"), [Proxy(B, "be")])
    assert list(snapshot.proxies) == [Proxy(B, "be")]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Unknown command. Please enter one of the following commands only :\n\n",
        b"Name: HAProxy\nPid: 42\n\nnot a header\n\n",
        b"Name: HAProxy\nPid: 42\n\n# pxname,svname\n\n",
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b"\nbe,BACKEND,UP\n\n",
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b"\nbe,BACKEND,UP,1,,,\n",
        b"Name: HAProxy\nPid: x\n\n" + HEADER.encode() + b"\n\n",
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b'\nbe,"x,,,,,,",UP\n\n',  # commas in quotes
        b"<html><body>502</body></html>\n\n",
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b"\nbe,BACKEND,\xff,1,,,\n\n",
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b"\nbe,BACKEND,UP,9,,,\n\n",
        GOLDEN[: len(GOLDEN) // 2],
        b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b'\nbe,BACKEND,"UP,1,,,\n\n',  # found by bench/fuzz
    ],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    """Unknown command, no header, short rows, truncation, binary, HTML: HAProxyProtocolError."""
    with pytest.raises(HAProxyProtocolError):
        parse_poll(data, [Proxy(B, "be")])


@pytest.mark.parametrize("name", ["HAProxy", "hapee-lb", "HAProxy Enterprise", "ALOHA"])
def test_haproxy_is_recognised_by_structure_not_name(name: str) -> None:
    """Any product name is accepted when the reply has show info's numeric Pid and show stat's header."""
    data = reply("be,BACKEND,UP,1,,,").replace(b"Name: HAProxy", f"Name: {name}".encode())
    assert parse_poll(data, [Proxy(B, "be")]).status_of(Proxy(B, "be")).observation is Observation.UP


def test_master_cli_commands_and_refusal() -> None:
    """On the master CLI each command is prefixed with @1; its refusal of a worker command is recognised."""
    assert poll_command(False) == b"show info; show stat -1 7 -1\n"
    assert poll_command(True) == b"@1 show info; @1 show stat -1 7 -1\n"
    assert is_master_cli_refusal(
        b"Unknown command, but maybe ...\n  show proc    : show processes status\n\n"
    )
    assert not is_master_cli_refusal(GOLDEN)


def test_only_the_rows_needed_are_asked_for() -> None:
    """The type mask asks for frontends and/or backends the rules name, and servers only when asked."""
    assert typemask_for([Proxy(F, "fe")], servers=True) == FRONTENDS
    assert typemask_for([Proxy(B, "be")], servers=False) == BACKENDS
    assert typemask_for([Proxy(B, "be"), Proxy(F, "fe")], servers=True) == FRONTENDS | BACKENDS | SERVERS
    assert typemask_for([], servers=False) == BACKENDS


def test_unknown_statuses_are_found_once_per_value() -> None:
    """Statuses HAProxy 2.6 never printed are listed with their proxies; known ones are not."""
    snapshot = parse_poll(
        reply("a,BACKEND,UP,1,,,", "b,BACKEND,SHINY,1,,,", "c,BACKEND,SHINY,1,,,", "fe,FRONTEND,OPEN,0,,,"),
        [Proxy(B, "a"), Proxy(B, "b"), Proxy(B, "c"), Proxy(F, "fe")],
    )
    assert sorted(snapshot.unknown, key=str) == [
        (Proxy(B, "b"), "SHINY"),
        (Proxy(B, "c"), "SHINY"),
    ]
    assert parse_poll(reply("a,BACKEND,UP,1,,,"), [Proxy(B, "a")]).unknown == ()


def test_rows_of_the_other_kind_and_checked_servers_are_skipped() -> None:
    """A frontend row named like a wanted backend is not that backend; a server whose check ran is no
    pending check; a listener row is skipped; an oversized reply is refused before it is read."""
    snapshot = parse_poll(
        reply("x,FRONTEND,OPEN,0,,,", "x,BACKEND,UP,1,,,", "x,s1,UP,2,L4OK,,", "x,sock-1,OPEN,3,,,"),
        [Proxy(B, "x")],
    )
    assert snapshot.status_of(Proxy(B, "x")) == ProxyStatus(Observation.UP, "UP")
    assert not snapshot.pending
    snapshot = parse_poll(reply("x,FRONTEND,OPEN,0,,,", "x,BACKEND,UP,1,,,"), [Proxy(F, "x")])
    assert snapshot.status_of(Proxy(F, "x")).observation is Observation.UP
    with pytest.raises(HAProxyProtocolError, match="larger than"):
        parse_poll(b" " * (MAX_REPLY_BYTES + 1), [Proxy(B, "x")])


UTF8_REASON = "Dienst nicht verfügbar".encode()


def raw_reply(*rows: bytes) -> bytes:
    return b"Name: HAProxy\nPid: 42\n\n" + HEADER.encode() + b"\n" + b"".join(r + b"\n" for r in rows) + b"\n"


def test_non_ascii_text_in_show_info_is_not_read() -> None:
    """A UTF-8 `description` (or any text) in show info leaves the poll readable: only Pid is read."""
    data = raw_reply(b"be,BACKEND,UP,1,,,").replace(
        b"Pid: 42\n", b"Pid: 42\nnode: knot-1\ndescription: Pr\xc3\xbcfknoten f\xc3\xbcr Stra\xc3\x9fe\n"
    )
    assert parse_poll(data, [Proxy(B, "be")]).status_of(Proxy(B, "be")).observation is Observation.UP


def test_non_ascii_bytes_in_columns_and_rows_rhid_does_not_read_are_ignored() -> None:
    """A non-ASCII check reason in a backend no rule names, or in a column rhid does not read of a
    named one (last_chk), changes nothing, whatever the bytes (UTF-8 or not)."""
    data = raw_reply(
        b"other,s1,DOWN,2,L7STS,503 " + UTF8_REASON + b",",
        b"other,s2,DOWN,2,L7STS,\xff\xfe\x85,",
        b"other,BACKEND,DOWN,1,,,",
        b'be,s1,UP,2,L7OK,"ok, ' + UTF8_REASON + b'",',
        b"be,s2,UP,2,L7OK,\xe2\x80\xae" + UTF8_REASON + b",",
        b"be,BACKEND,UP,1,,,",
    )
    snapshot = parse_poll(data, [Proxy(B, "be")])
    assert snapshot.status_of(Proxy(B, "be")) == ProxyStatus(Observation.UP, "UP")
    assert not snapshot.pending


@pytest.mark.parametrize(
    "data",
    [
        raw_reply(b"be,BACKEND,UP,1,,,").replace(b"Pid: 42", b"Pid: \xb2"),  # latin-1's superscript two
        raw_reply(b"be,BACKEND,UP,1,,,").replace(b"Pid: 42", "Pid: \uff14\uff12".encode()),  # fullwidth 42
        raw_reply(b"be,s1,UP 1/3,2,\xc3\x8fNI,,", b"be,BACKEND,UP,1,,,"),
        raw_reply(b"be,BACKEND,U\xc3\x9cP,1,,,"),
        raw_reply(b"fe,FRONTEND,OPEN\x85,0,,,"),
        raw_reply(b"be,BACKEND,UP,\xc2\xb9,,,"),
    ],
    ids=["pid-latin1-digit", "pid-fullwidth", "check-status", "backend-status", "frontend-status", "type"],
)
def test_non_ascii_in_a_field_rhid_reads_is_a_protocol_error(data: bytes) -> None:
    """Pid, and type, status and check_status of a named proxy's rows, must be plain ASCII."""
    with pytest.raises(HAProxyProtocolError):
        parse_poll(data, [Proxy(B, "be"), Proxy(F, "fe")])


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # HAProxy 3.1+ `init-state down` right after a start or reload (newer-stacks.md §3)
        (("be,s1,DOWN,2,INI,,", "be,s2,DOWN,2,* INI,,", "be,BACKEND,DOWN,1,,,"), Observation.PENDING),
        # a server without `check` beside one whose first check is pending: nothing checked yet
        (("be,s1,no check,2,,,", "be,s2,DOWN,2,INI,,", "be,BACKEND,DOWN,1,,,"), Observation.PENDING),
        # one server's first check already failed, the other's is pending: it may still bring the
        # backend up (HAProxy spreads first checks over `inter`), so not known yet
        (("be,s1,DOWN,2,L4CON,,", "be,s2,DOWN,2,INI,,", "be,BACKEND,DOWN,1,,,"), Observation.PENDING),
        # every server disabled: down, whatever check_status a newer HAProxy prints for them
        (("be,s1,MAINT,2,INI,,", "be,s2,MAINT,2,INI,,", "be,BACKEND,DOWN,1,,,"), Observation.DOWN),
        # no checked server at all (weight 0, `no check`): HAProxy's DOWN stands
        (("be,s1,no check,2,,,", "be,BACKEND,DOWN,1,,,"), Observation.DOWN),
        # 2.6's shape: UP 1/3 and INI, the backend UP
        (("be,s1,UP 1/3,2,INI,,", "be,BACKEND,UP,1,,,"), Observation.PENDING),
    ],
    ids=[
        "init-state-down",
        "unchecked-beside-ini",
        "one-checked-down",
        "all-maint",
        "no-check",
        "2.6-up-ini",
    ],
)
def test_a_backend_with_a_first_check_pending_is_pending(
    rows: tuple[str, ...], expected: Observation
) -> None:
    """A backend DOWN while every checked server is still INI (init-state down) is not known yet, not
    down; once a check has finished, or with no checked server, HAProxy's status stands."""
    snapshot = parse_poll(reply(*rows), [Proxy(B, "be")])
    observed = snapshot.status_of(Proxy(B, "be"))
    assert observed.observation is expected
    assert snapshot.pending is ("INI" in "".join(rows) and "MAINT" not in "".join(rows))
    if expected is Observation.PENDING:
        assert observed.status.endswith(" (first check pending)")
    assert snapshot.unknown == ()
