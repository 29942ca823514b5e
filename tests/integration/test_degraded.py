"""Degraded routes at the BGP peer: a 4-server backend behind `>=50%` with a degraded clause, with
the export filter `rhid bird-config` prints; nested and `not` rules move the right routes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

RULES = """\
192.0.2.10 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666
192.0.2.11 = any(all(b:be_a,b:be_b), not(f:fe_maint))
192.0.2.12 = atleast(2, b:be_a, b:be_b, b:be_app)
"""
BACKENDS = {"be_app": ["web1", "web2", "web3", "web4"], "be_a": ["web1"], "be_b": ["web2"]}


@pytest.fixture
def degraded(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, ["fe_maint"])
        instance.start_rhid(RULES, "--interval", "0.2", "--fall", "1", "--rise", "1")
        yield instance


def seen(instance: Lab, prefix: str) -> str | None:
    """How the peer holds `prefix`: "plain", "med 200 (65000,666)"-like, or None when withdrawn."""
    # BIRD 2 prints `BGP.med: 200`, BIRD 3 `bgp_med: 200` (newer-stacks notes, section 4)
    output = (instance.birdc("peer", f"show route {prefix} all") or "").replace("BGP.", "bgp_")
    if not re.search(rf"^{re.escape(prefix)}\s", output, flags=re.MULTILINE):
        return None
    med = re.search(r"bgp_med: (\d+)", output)
    community = re.search(r"bgp_community: (.*)", output)
    parts = [f"med {med.group(1)}" if med else "", community.group(1).strip() if community else ""]
    return " ".join(part for part in parts if part) or "plain"


def shows(instance: Lab, prefix: str, expected: str | None) -> Callable[[], bool]:
    """A condition for wait_for: the peer holds `prefix` as `expected`."""
    return lambda: seen(instance, prefix) == expected


def test_a_backend_losing_servers_goes_plain_degraded_withdrawn_and_back(degraded: Lab) -> None:
    """Servers disabled one by one: the peer has the route plain, then with MED 200 and 65000:666, then
    not at all; enabled again, the same in reverse."""
    prefix = "192.0.2.10/32"
    walk = [("s1", "plain"), ("s2", "plain"), ("s3", "med 200 (65000,666)"), ("s4", None)]
    wait_for("the plain route", lambda: seen(degraded, prefix) == "plain", 15)
    for server, expected in walk:
        degraded.haproxy(f"disable server be_app/{server}")
        wait_for(f"{prefix} {expected} without {server}", shows(degraded, prefix, expected), 10)
    back = [("s4", "med 200 (65000,666)"), ("s3", "plain"), ("s2", "plain"), ("s1", "plain")]
    for server, expected in back:
        degraded.haproxy(f"enable server be_app/{server}")
        wait_for(f"{prefix} {expected} with {server}", shows(degraded, prefix, expected), 10)


def test_nested_and_not_rules_move_the_right_routes(degraded: Lab) -> None:
    """any(all(a,b), not(f:fe_maint)) is withdrawn only while both sides are false; atleast(2, ...)
    follows the count of its true operands."""
    every = {"192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"}
    wait_for("every route", lambda: degraded.peer_routes() == every, 15)
    degraded.haproxy("disable server be_a/s1")  # all(a,b) false; not(fe_maint) false (it runs)...
    wait_for(".11 withdrawn", lambda: "192.0.2.11/32" not in degraded.peer_routes(), 10)
    assert "192.0.2.12/32" in degraded.peer_routes(), "atleast(2): be_b and be_app still up"
    degraded.haproxy("disable frontend fe_maint")  # ... until fe_maint is paused: not(...) true
    wait_for(".11 back", lambda: "192.0.2.11/32" in degraded.peer_routes(), 10)
    degraded.haproxy("disable server be_b/s1")
    wait_for(".12 withdrawn", lambda: "192.0.2.12/32" not in degraded.peer_routes(), 10)
