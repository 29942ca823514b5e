"""The `rhid status` request line and the rendering of its document."""

from __future__ import annotations

import ipaddress

from rhid.status import matches, parse_request, render


def test_request_lines() -> None:
    """`status` asks for everything, `status P` for one prefix; anything else is an error text."""
    assert parse_request(b"status\n") is None
    assert parse_request(b"status 10.0.0.1\n") == ipaddress.ip_network("10.0.0.1/32")
    assert parse_request(b"status 2001:db8::/48\n") == ipaddress.ip_network("2001:db8::/48")
    assert isinstance(parse_request(b"status 10.0.0.300\n"), str)
    assert isinstance(parse_request(b"show stat; disable frontend x\n"), str)
    assert isinstance(parse_request(b"status \xff\n"), str)


def test_address_matches_containing_route() -> None:
    """An address explains the routes that contain it; a prefix only the equal route."""
    route = ipaddress.ip_network("10.0.0.0/24")
    assert matches(route, ipaddress.ip_network("10.0.0.7/32"))
    assert matches(route, ipaddress.ip_network("10.0.0.0/24"))
    assert not matches(route, ipaddress.ip_network("10.0.0.0/25"))
    assert not matches(route, ipaddress.ip_network("::/0"))


def test_render_in_operator_words() -> None:
    """The text rendering names peers, reload result, routes and each target's counters."""
    document = {
        "version": "0.1.0", "pid": 7, "started": "t0", "status": "",
        "rules": {"path": "/etc/x.cfg", "count": 1, "loaded": "t0",
                  "reload": "failed at t1: x.cfg:1:1: bad"},
        "haproxy": {"socket": "/h.sock", "state": "unreachable", "last_error": "connection refused"},
        "bird": {"socket": "/b.ctl", "state": "reachable", "in_sync": True, "missing_protocols": ["vol1_v6"],
                 "last_error": None},
        "announced": 0, "withdrawn": 1,
        "routes": [{"prefix": "10.0.0.1/32", "table": "vol1", "announced": False, "since": "t2",
                    "rule_line": 3, "held": False,
                    "rule": "vol1%10.0.0.1/32 = all(b:a)",
                    "reason": "all: b:a is down (HAProxy last said 'HAProxy unreachable')",
                    "targets": [{"proxy": "b:a", "health": "down", "haproxy_status": "HAProxy unreachable",
                                 "down_count": 3, "fall": 3, "up_count": 0, "rise": 1}]}],
    }  # fmt: skip
    text = render(document)
    assert "last reload: failed at t1" in text
    assert "haproxy: unreachable (/h.sock)\n         last error: connection refused" in text
    assert "BIRD lacks protocol(s): vol1_v6" in text
    assert "10.0.0.1/32" in text
    assert "withdrawn" in text
    assert "down 3/3, up 0/1" in text
    assert "why: all: b:a is down" in text
    assert render({"error": "bad request"}) == "rhid: bad request"
