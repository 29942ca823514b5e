"""The `rhid status` request line and the rendering of its document."""

from __future__ import annotations

import ipaddress

from rhid.status import Release, matches, parse_request


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
