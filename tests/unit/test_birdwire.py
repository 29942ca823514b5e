"""BIRD's control-socket framing, route listings and status, fed whole and byte by byte."""

from __future__ import annotations

import ipaddress

import pytest

from rhid.birdwire import (
    Reply,
    ReplyReader,
    encode,
    is_unknown_protocol,
    parse_route_listing,
    parse_status,
    show_route_command,
)
from rhid.errors import BirdProtocolError

# Captured from bird2 2.0.12 (docs/notes/bird-control-socket.md and this project's lab).
TRANSCRIPT = (
    b"0001 BIRD 2.0.12 ready.\n"
    b"1007-Table master4:\n 10.9.9.9/32          blackhole [vol1 07:01:45.925] * (200)\n0000 \n"
    b"+Reconfiguring\n"
    b"0002-Reading configuration from spk.conf\n0003 Reconfigured\n"
    b"1000-BIRD 2.0.12\n1011-Router ID is 127.0.0.1\n Hostname is vm\n"
    b" Current server time is 2026-11-21 07:02:45.426\n"
    b" Last reboot on 2026-11-21 07:01:45.925\n Last reconfiguration on 2026-11-21 07:01:55.072\n"
    b"0013 Daemon is up and running\n"
    b"0002-Reading configuration from spk.conf\n"
    b"8002 /tmp/lab/rhid/vol1.ipv4.conf:1:16 Invalid prefix length 33\n"
)


def test_transcript_whole() -> None:
    """A whole transcript splits into its replies with their final codes; + lines are dropped."""
    replies = ReplyReader().feed(TRANSCRIPT)
    assert [r.code for r in replies] == [1, 0, 3, 13, 8002]
    assert replies[4].text == "/tmp/lab/rhid/vol1.ipv4.conf:1:16 Invalid prefix length 33"
    assert not replies[4].ok


def test_transcript_byte_by_byte() -> None:
    """Fed one byte at a time, the reader yields exactly the same replies."""
    reader = ReplyReader()
    replies: list[Reply] = []
    for index in range(len(TRANSCRIPT)):
        replies += reader.feed(TRANSCRIPT[index : index + 1])
    assert replies == ReplyReader().feed(TRANSCRIPT)
    assert not reader.pending


def test_route_listing_bird2_and_bird16() -> None:
    """Prefixes come from BIRD 2's continuation lines and BIRD 1.6's 1007 lines alike."""
    (bird2,) = ReplyReader().feed(
        b"1007-Table master6:\n 2001:db8::9/128      blackhole [vol1_v6 07:01] * (200)\n0000 \n"
    )
    assert parse_route_listing(bird2) == {ipaddress.ip_network("2001:db8::9/128")}
    (bird16,) = ReplyReader().feed(b"1007-10.9.9.9/32 blackhole [vol1 18:54:15] * (200)\n0000 \n")
    assert parse_route_listing(bird16) == {ipaddress.ip_network("10.9.9.9/32")}
    (empty,) = ReplyReader().feed(b"0000 \n")
    assert parse_route_listing(empty) == frozenset()


def test_multipath_next_hops_are_not_prefixes() -> None:
    """Indented next-hop lines of a multipath route are skipped."""
    (reply,) = ReplyReader().feed(
        b"1007-Table master4:\n 10.0.0.0/24 unicast [s 1] * (200)\n \tvia 1.1.1.1 on e0\n0000 \n"
    )
    assert parse_route_listing(reply) == {ipaddress.ip_network("10.0.0.0/24")}


def test_status_fields() -> None:
    """show status yields the last reboot and reconfiguration times."""
    status = parse_status(ReplyReader().feed(TRANSCRIPT)[3])
    assert (status.reboot, status.reconfiguration) == ("2026-11-21 07:01:45.925", "2026-11-21 07:01:55.072")


def test_status_says_whether_a_reconfiguration_is_under_way() -> None:
    """0013 'Daemon is up and running' is running; 'Reconfiguration in progress' (and 'Shutdown in
    progress') is not, and the running flag alone is no change of status."""
    (done,) = ReplyReader().feed(done_bytes())
    up = parse_status(done)
    assert up.running
    for busy in (b"Reconfiguration in progress", b"Shutdown in progress"):
        (reply,) = ReplyReader().feed(done_bytes().replace(b"0013 Daemon is up and running", b"0013 " + busy))
        status = parse_status(reply)
        assert not status.running
        assert status == up, "the same reboot and reconfiguration times: nobody else acted"


def done_bytes() -> bytes:
    """The show status reply of TRANSCRIPT, as bytes."""
    start = TRANSCRIPT.index(b"1000-")
    end = TRANSCRIPT.index(b"0013 Daemon is up and running\n") + len(b"0013 Daemon is up and running\n")
    return TRANSCRIPT[start:end]


def test_unknown_protocol_replies() -> None:
    """BIRD 2's 9001 CF_SYM_UNDEFINED and BIRD 1.6's 9001 and 9002 "is not a protocol" (show route
    protocol and show protocols, as 1.6.8 answers them) all mean: no such protocol."""
    (bird2,) = ReplyReader().feed(b"9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN\n")
    (bird16,) = ReplyReader().feed(b"9002 vol1 is not a protocol\n")
    (bird16_route,) = ReplyReader().feed(b"9001 vol1_v6 is not a protocol\n")
    (other,) = ReplyReader().feed(b"9001 syntax error, unexpected END\n")
    (bird16_other,) = ReplyReader().feed(b"9001 syntax error\n")
    assert is_unknown_protocol(bird2)
    assert is_unknown_protocol(bird16)
    assert is_unknown_protocol(bird16_route)
    assert not is_unknown_protocol(other)
    assert not is_unknown_protocol(bird16_other)


@pytest.mark.parametrize(
    "data", [b"hello\n", b"12345 x\n", b" orphan continuation\n", b"00a1 x\n", b"\xff\xfe\n", b"x" * 70000]
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    """Lines outside the framing, undecodable bytes and endless lines raise BirdProtocolError."""
    with pytest.raises(BirdProtocolError):
        ReplyReader().feed(data)


def test_reply_size_cap() -> None:
    """A reply past the cap raises BirdProtocolError instead of growing without bound."""
    reader = ReplyReader(max_reply_bytes=1000)
    with pytest.raises(BirdProtocolError):
        reader.feed(b"1007-x\n" * 200)


def test_commands_refuse_separators() -> None:
    """Commands are built only from checked names; a newline or `;` can never reach BIRD."""
    assert show_route_command("vol1_v6") == "show route protocol vol1_v6"
    assert encode("configure") == b"configure\n"
    for bad in ["configure\ndown", "show status; down", "", "x\x00"]:
        with pytest.raises(AssertionError):
            encode(bad)
    with pytest.raises(AssertionError):
        show_route_command("vol1\ndown")


def test_error_replies_to_listings_and_status_are_protocol_errors() -> None:
    """A `show route` that failed, or a `show status` answered with another code, is the peer's fault."""
    with pytest.raises(BirdProtocolError, match="show route failed: 8001"):
        parse_route_listing(Reply(8001, ((8001, "Network not found"),)))
    with pytest.raises(BirdProtocolError, match="show status answered 9001"):
        parse_status(Reply(9001, ((9001, "syntax error"),)))
