"""Drains as values: requests and the drains file parsed strictly, rendered stably; the plan
withdraws a drained route whatever its health, for the drain's words."""

from __future__ import annotations

import ipaddress

import pytest

from rhid import drain, inventory
from rhid.errors import DrainFileError, HAProxyProtocolError
from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind, Route
from rhid.plan import NO_INTENTS, Intents, RouteState, decide, initial
from rhid.rules import parse_rules

N = ipaddress.ip_network
R1 = Route("vol1", N("10.0.0.1/32"))


def test_requests_name_routes_or_all_with_a_reason() -> None:
    """drain TARGETS REASON, undrain TARGETS; an address is its host route, vol1 the default table."""
    assert drain.parse_request("drain", "10.0.0.1,vol2%2001:db8::/64 kernel upgrade") == drain.Request(
        True, (R1, Route("vol2", N("2001:db8::/64"))), "kernel upgrade"
    )
    assert drain.parse_request("drain", "all") == drain.Request(True, None, "drained by rhid drain")
    assert drain.parse_request("undrain", "10.0.0.1 ignored") == drain.Request(False, (R1,))


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        ("", "say which routes"),
        ("bad-table%10.0.0.1", "not a table name"),
        ("10.0.0.1/24", "host bits"),
        ("10.0.0.1 " + "x" * 121, "at most 120"),
        ("10.0.0.1 tab\there", "printable ASCII"),
    ],
)
def test_bad_requests_say_what_is_wrong(argument: str, error: str) -> None:
    """Every malformed request is an error text naming the problem."""
    found = drain.parse_request("drain", argument)
    assert isinstance(found, str)
    assert error in found


def test_the_file_round_trips_and_refuses_anything_else() -> None:
    """render -> parse is the identity; a file rhid did not write is a DrainFileError naming it."""
    drains = {R1: drain.Drain("kernel upgrade", "2026-12-01T10:00:00+00:00")}
    assert drain.parse_file(drain.render_file(drains), "/x") == drains
    entry = '{"drains": [{"route": "%s", "reason": %s, "since": ""}]}'
    bad_files = [b"{", b"\xff"] + [
        (entry % (route, reason)).encode()
        for route, reason in (("vol1%10.0.0.1/33", '""'), ("all", '""'), ("vol1%10.0.0.1/32", "1"))
    ]
    for bad in bad_files:
        with pytest.raises(DrainFileError, match="/x"):
            drain.parse_file(bad, "/x")


def test_a_drained_route_is_withdrawn_whatever_its_health_and_says_why() -> None:
    """The plan withdraws a drained healthy route, for the drain's reason and time; undrained, it
    follows its rule again."""
    rules = parse_rules("10.0.0.1 = all(b:a)\n10.0.0.2 = all(b:a)\n")
    up = {Proxy(ProxyKind.BACKEND, "a"): ProxyState(Health.UP, last_status="UP")}
    intents = Intents(drains={R1: drain.Drain("kernel upgrade", "T")})
    made = decide(initial(set(), set(), 0.0), rules, up, intents, 0.0)
    assert made.decisions[R1].state is RouteState.WITHDRAWN
    assert made.reason(R1) == "drained since T: 'kernel upgrade'"
    assert made.decisions[Route("vol1", N("10.0.0.2/32"))].state is RouteState.ANNOUNCED
    back = decide(made, rules, up, NO_INTENTS, 1.0)
    assert back.decisions[R1].state is RouteState.ANNOUNCED
    gone = decide(made, parse_rules("10.0.0.2 = all(b:a)\n"), up, intents, 2.0)
    assert R1 not in gone.decisions or not gone.decisions[R1].announced


def test_sessions_are_read_per_frontend_and_backend() -> None:
    """scur of each FRONTEND and BACKEND row; garbage in the column is the peer's garbage."""
    header = "# pxname,svname,qcur,qmax,scur,smax\n"
    data = (header + "fe,FRONTEND,,,3,9\nbe,BACKEND,0,0,1,2\nbe,s1,0,0,1,1\n\n").encode()
    assert inventory.parse_sessions(data) == {
        Proxy(ProxyKind.FRONTEND, "fe"): 3,
        Proxy(ProxyKind.BACKEND, "be"): 1,
    }
    for bad in ((header + "fe,FRONTEND,,,x,1\n\n").encode(), b"# pxname,svname\n\n", header.encode()):
        with pytest.raises(HAProxyProtocolError):
            inventory.parse_sessions(bad)
