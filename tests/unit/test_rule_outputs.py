"""What operators see of the new rule forms: `rhid check --json`'s tree and `rhid status`'s terms."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from pathlib import Path

import pytest

from rhid import health, plan, status
from rhid.cli import main
from rhid.model import Proxy, ProxyKind, ServerTerm, Threshold
from rhid.rulefile import ReloadResult
from rhid.rules import parse_rules
from rhid.stats import Counts
from tests.unit.test_status_render import BIRD, HAPROXY

B = ProxyKind.BACKEND
APP = Proxy(B, "be_app")
HALF = ServerTerm(APP, Threshold(50, percent=True))
TEXT = (
    "192.0.2.10 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666 "
    "large-community 1:2:3\n"
    "192.0.2.11 = any(all(b:a,b:b), not(f:fe_maint))\n"
)


def test_check_json_shows_the_expression_tree_and_the_degraded_clause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json gives each rule's canonical text, its tree, its clause's attributes and the
    thresholds the file counts."""
    path = tmp_path / "hapee-rhi.cfg"
    path.write_text(TEXT)
    assert main(["check", "-c", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    first, second = data["rules"]
    assert first["rule"] == (
        "vol1%192.0.2.10/32 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666 "
        "large-community 1:2:3"
    )
    assert first["condition"] == {
        "aggregate": "all",
        "operands": [{"kind": "backend", "name": "be_app", "threshold": {"at_least": 50, "percent": True}}],
    }
    assert first["degraded"] == {
        "condition": {"aggregate": "any", "operands": [{"kind": "backend", "name": "be_app"}]},
        "attributes": {
            "med": 200,
            "local_pref": None,
            "communities": [[65000, 666]],
            "large_communities": [[1, 2, 3]],
        },
    }
    assert second["degraded"] is None
    assert second["condition"]["operands"][1] == {
        "aggregate": "not",
        "operands": [{"kind": "frontend", "name": "fe_maint"}],
    }
    assert data["thresholds"] == ["b:be_app>=50%"]
    assert {"kind": "frontend", "name": "fe_maint"} in data["proxies"]


def test_status_shows_each_threshold_term_its_counts_and_the_degraded_attributes() -> None:
    """`rhid status` lists a rule's nested proxies and its threshold terms (counts, fall and rise),
    names its degraded attributes, and quotes the term in the route's reason."""
    rules = parse_rules(TEXT, "/etc/x.cfg")
    up = health.ProxyState(health.Health.UP, last_status="UP", seen=True)
    states = dict.fromkeys(rules.proxies, up)
    term = health.TermState(
        health.ProxyState(health.Health.DOWN, last_status="2 of 6 servers up", seen=True, down_count=3),
        Counts(2, 6, 40),
    )
    made = plan.decide(plan.initial(set(), set(), 1.0), rules, states, plan.NO_INTENTS, 1.0)
    facts = status.Facts(
        version="0", pid=7, started=0.0, summary="s", rules=rules, rules_loaded=0.0,
        reload_result=ReloadResult("t"), plan=made, states=states, since={}, thresholds=health.Thresholds(),
        haproxy=HAPROXY, bird=BIRD, now=10.0, wall_now=1_000_000.0, terms={HALF: term},
    )  # fmt: skip
    document = status.document(facts, ipaddress.ip_network("192.0.2.10"))
    (route,) = document["routes"]
    assert route["degraded"] == "med 200 community 65000:666 large-community 1:2:3"
    assert [target["proxy"] for target in route["targets"]] == ["b:be_app"]
    (shown,) = route["terms"]
    assert (
        shown["term"],
        shown["health"],
        shown["servers_up"],
        shown["servers_total"],
        shown["sessions"],
    ) == (
        "b:be_app>=50%",
        "down",
        2,
        6,
        40,
    )
    text = status.render(document)
    assert "      b:be_app>=50%            down     2 of 6 servers up (33 %); down 3/3, up 0/1" in text
    nested = status.document(facts, ipaddress.ip_network("192.0.2.11"))["routes"][0]
    assert [target["proxy"] for target in nested["targets"]] == ["b:a", "b:b", "f:fe_maint"]
    assert nested["terms"] == []
    never = status.render(status.document(replace(facts, terms={}), ipaddress.ip_network("192.0.2.10")))
    assert "b:be_app>=50%            unknown  not polled yet; down 0/3, up 0/1" in never
    degraded = plan.decide(made, rules, states, plan.NO_INTENTS, 2.0, terms={HALF: term})
    shown_degraded = status.document(replace(facts, plan=degraded), ipaddress.ip_network("192.0.2.10"))
    (line,) = [row for row in status.render(shown_degraded).splitlines() if "192.0.2.10/32" in row]
    assert "DEGRADED" in line
    assert shown_degraded["routes"][0]["state"] == "degraded"


def test_a_nested_proxy_haproxy_lacks_is_a_problem() -> None:
    """A proxy named only inside a nested condition or a degraded clause is checked like any other."""
    rules = parse_rules(
        "10.0.0.1 = any(all(b:a), not(b:gone))\n10.0.0.2 = all(b:a) degraded any(b:x) med 1\n"
    )
    never = health.ProxyState(last_status="absent")
    found = status.target_problems(rules, {Proxy(B, "gone"): never, Proxy(B, "x"): never})
    assert found == [
        "b:gone (line 1): HAProxy has no such proxy; it counts as down",
        "b:x (line 2): HAProxy has no such proxy; it counts as down",
    ]
