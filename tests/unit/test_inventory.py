"""What HAProxy has against what the rules name: `show stat`'s proxy rows read, and each name a rule
uses that HAProxy lacks found, with the closest one it has."""

from __future__ import annotations

import pytest

from rhid import inventory
from rhid.errors import HAProxyProtocolError
from rhid.inventory import Inventory, Missing, missing, parse_proxies
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules

HEADER = b"# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,status,\n"


def b(name: str) -> Proxy:
    return Proxy(ProxyKind.BACKEND, name)


def f(name: str) -> Proxy:
    return Proxy(ProxyKind.FRONTEND, name)


def test_show_stat_rows_become_frontend_and_backend_names() -> None:
    """FRONTEND and BACKEND rows by name (a listen section is both); other rows and names outside
    HAProxy's characters are left out."""
    reply = HEADER + (
        b"fe_www,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,\n"
        b"be_app,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,\n"
        b"both,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,\n"
        b"both,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,\n"
        b"be_app,s1,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,\n"
        b"evil;configure,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,\n"
        b"\xff\xfe,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,\n"
        b"\n"
    )
    assert parse_proxies(reply) == Inventory(frozenset({"fe_www", "both"}), frozenset({"be_app", "both"}))
    assert parse_proxies(HEADER + b"\n") == Inventory(frozenset(), frozenset())


@pytest.mark.parametrize(
    "reply",
    [b"", b"\n\n", HEADER + b"be,BACKEND,\n", b"Unknown command\n\n", b"<html>\n\n", b"# pxname,status\n\n"],
)
def test_a_reply_that_is_not_show_stat_is_a_protocol_error(reply: bytes) -> None:
    """Truncated, empty or foreign replies are the peer's garbage: HAProxyProtocolError."""
    with pytest.raises(HAProxyProtocolError):
        parse_proxies(reply)


HAS = Inventory(frozenset({"fe_www", "stats"}), frozenset({"be_static", "be_app", "be_api", "stats"}))


def test_each_missing_name_with_the_closest_one_of_its_kind() -> None:
    """A typo gets the closest name of its own kind; present names are not listed; order is the rules'."""
    named = {b("be_sttic"): (1, 5), b("be_app"): (2,), f("fe_wwww"): (3,), f("stats"): (4,)}
    assert missing(named, HAS) == (
        Missing(b("be_sttic"), (1, 5), "be_static", other_kind=False),
        Missing(f("fe_wwww"), (3,), "fe_www", other_kind=False),
    )


def test_a_name_of_the_other_kind_and_a_name_nothing_like() -> None:
    """b:fe_www is a frontend: say so; b:zzzz resembles nothing: no suggestion at all."""
    found = missing({b("fe_www"): (1,), b("zzzz_unrelated"): (2,)}, HAS)
    assert found == (Missing(b("fe_www"), (1,), None, other_kind=True), Missing(b("zzzz_unrelated"), (2,)))
    assert (
        found[0].sentence()
        == "b:fe_www: no such backend; HAProxy has a frontend fe_www: did you mean f:fe_www?"
    )
    assert found[1].sentence() == "b:zzzz_unrelated: no such backend"
    assert found[1].advice is None
    frontend = Missing(f("be_app"), (1,), None, other_kind=True)
    assert frontend.advice == "HAProxy has a backend be_app: did you mean b:be_app?"


def test_the_sentence_rhid_check_prints() -> None:
    """`b:be_sttic: no such backend; did you mean be_static?`, the issue's own words."""
    assert Missing(b("be_sttic"), (1,), "be_static").sentence() == (
        "b:be_sttic: no such backend; did you mean be_static?"
    )
    assert Missing(f("fe_x"), (1,), "fe_www").sentence() == "f:fe_x: no such frontend; did you mean fe_www?"


def test_suggestions_stop_after_the_first_hundred() -> None:
    """A rule file for another HAProxy (every name missing) costs a bounded number of comparisons."""
    named = {b(f"be_{i}"): (i,) for i in range(inventory.SUGGESTED + 1)}
    has = Inventory(frozenset(), frozenset(f"be_{i}x" for i in range(inventory.SUGGESTED + 1)))
    found = missing(named, has)
    assert len(found) == inventory.SUGGESTED + 1
    assert all(item.suggestion is not None for item in found[:-1])
    assert found[-1].suggestion is None


def test_the_rules_say_which_lines_name_each_proxy() -> None:
    """RuleSet.lines_of: each proxy once, in file order, with every line naming it (once per line)."""
    rules = parse_rules("10.0.0.1 = all(b:a,b:a)\n10.0.0.2 = any(f:x,b:a)\n\n10.0.0.3 = always\n")
    assert rules.lines_of == {b("a"): (1, 2), f("x"): (2,)}
    assert rules.proxies == (b("a"), f("x"))
    richer = parse_rules("10.0.0.1 = all(b:a>=2) degraded not(b:c) med 200\n")
    assert richer.lines_of == {b("a"): (1,), b("c"): (1,)}, "thresholds and degraded conditions name them too"
