"""The `rhid status` request line and the rendering of its document."""

from __future__ import annotations

import ipaddress

from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules
from rhid.status import Release, matches, parse_request, target_problems


def test_request_lines() -> None:
    """`status` asks for everything, `status P` for one prefix; anything else is an error text."""
    assert parse_request(b"status\n") is None
    assert parse_request(b"status 10.0.0.1\n") == ipaddress.ip_network("10.0.0.1/32")
    assert parse_request(b"status 2001:db8::/48\n") == ipaddress.ip_network("2001:db8::/48")
    assert isinstance(parse_request(b"status 10.0.0.300\n"), str)
    assert isinstance(parse_request(b"show stat; disable frontend x\n"), str)
    assert isinstance(parse_request(b"status \xff\n"), str)


def test_guard_release_is_a_request_of_its_own() -> None:
    """`guard release` asks the daemon to release its guard's hold; nothing else near it does."""
    assert parse_request(b"guard release\n") == Release()
    assert isinstance(parse_request(b"guard releases\n"), str)
    assert isinstance(parse_request(b"guard\n"), str)


def test_address_matches_containing_route() -> None:
    """An address explains the routes that contain it; a prefix only the equal route."""
    route = ipaddress.ip_network("10.0.0.0/24")
    assert matches(route, ipaddress.ip_network("10.0.0.7/32"))
    assert matches(route, ipaddress.ip_network("10.0.0.0/24"))
    assert not matches(route, ipaddress.ip_network("10.0.0.0/25"))
    assert not matches(route, ipaddress.ip_network("::/0"))


def test_a_proxy_haproxy_lacks_gets_the_closest_name_it_has() -> None:
    """The PROBLEM line of a proxy never seen, or vanished, ends with the HAProxy side's advice."""
    rules = parse_rules("10.0.0.1 = all(b:be_sttic)\n10.0.0.2 = all(b:gone,b:be_sttic)\n")
    never = ProxyState(Health.DOWN, down_count=3, last_status="absent")
    gone = ProxyState(Health.UP, last_status="UP", seen=True, vanished=True, vanished_since=1.0)
    states = {Proxy(ProxyKind.BACKEND, "be_sttic"): never, Proxy(ProxyKind.BACKEND, "gone"): gone}
    advice = {"b:be_sttic": "did you mean be_static?", "b:gone": "did you mean gone2?"}
    assert target_problems(rules, states, advice) == [
        "b:be_sttic (lines 1, 2): HAProxy has no such proxy; it counts as down; did you mean be_static?",
        "b:gone (line 2) vanished from HAProxy (renamed or removed by a reload?); it keeps its last health "
        "only for a while: fix the rule or HAProxy's config; did you mean gone2?",
    ]
    assert target_problems(rules, states)[0].endswith("it counts as down")
