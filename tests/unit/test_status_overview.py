"""`rhid status` at any number of routes: the overview (bounded, counts by state, the routes not
plainly announced) and the listing's pieces (made one at a time, exactly the document joined)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from rhid import drain, guard, health, plan, shutdown, status
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, Proxy, ProxyKind, Route, StreamState
from rhid.reconcile import BirdReport
from rhid.rulefile import ReloadResult
from rhid.rules import RuleSet, parse_rules
from rhid.stats import ABSENT, Observation, ProxyStatus

THRESHOLDS = health.Thresholds(fall=1, rise=1)
HAPROXY = HAProxyReport(
    "/h.sock", HAProxyState.REACHABLE, None, None, (), StreamReport(StreamState.OFF, None, 0, 0)
)
BIRD = BirdReport("/b.ctl", BirdState.REACHABLE, "BIRD 2.0.12 ready.", True, (), None, None, ())
UP = ProxyStatus(Observation.UP, "UP")
DOWN = ProxyStatus(Observation.DOWN, "DOWN")


def rules_of(count: int) -> RuleSet:
    """`count` rules, one backend each, 10.0.<i // 256>.<i % 256>, written in reverse order."""
    text = "".join(f"10.0.{i // 256}.{i % 256} = all(b:be{i})\n" for i in reversed(range(count)))
    return parse_rules(text, "/etc/x.cfg", allow_empty=True)


def backend(index: int) -> Proxy:
    return Proxy(ProxyKind.BACKEND, f"be{index}")


def route(index: int) -> Route:
    return Route("vol1", ipaddress.ip_network(f"10.0.{index // 256}.{index % 256}/32"))


def facts_of(
    rules: RuleSet,
    down: frozenset[int] = frozenset(),
    *,
    made: plan.Plan | None = None,
    drained: frozenset[Route] = frozenset(),
    states: Mapping[Proxy, health.ProxyState] | None = None,
) -> status.Facts:
    """The facts of a daemon whose backends are up but those in `down` (by index)."""
    if states is None:
        seen = {proxy: DOWN if int(proxy.name[2:]) in down else UP for proxy in rules.proxies}
        states = {proxy: health.step(health.INITIAL, one, 1.0, THRESHOLDS)[0] for proxy, one in seen.items()}
    intents = plan.Intents(drains={r: drain.Drain("maintenance", "t") for r in drained})
    if made is None:
        made = plan.decide(plan.initial(set(), set(), 1.0), rules, states, intents, 1.0)
    return status.Facts(
        version="0", pid=7, started=0.0, summary="s", rules=rules, rules_loaded=0.0,
        reload_result=ReloadResult("t"), plan=made, states=states, since={}, thresholds=THRESHOLDS,
        haproxy=HAPROXY, bird=BIRD, now=10.0, wall_now=1_000_000.0, drained=drained,
    )  # fmt: skip


def joined(facts: status.Facts, wanted: ipaddress.IPv4Network | None, per_chunk: int) -> bytes:
    return b"".join(status.chunks(facts, wanted, per_chunk))


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(0, 40),
    down=st.frozensets(st.integers(0, 39)),
    per_chunk=st.integers(1, 50),
    wanted=st.none() | st.integers(0, 45),
)
def test_the_pieces_joined_are_exactly_the_document(
    count: int, down: frozenset[int], per_chunk: int, wanted: int | None
) -> None:
    """Whatever the routes, their health, the piece size and the prefix asked, the pieces joined are
    the JSON of `document` and a newline, byte for byte, in ceil(routes / per_chunk) + 2 pieces."""
    facts = facts_of(rules_of(count), down)
    network = route(wanted).prefix if wanted is not None else None
    pieces = list(status.chunks(facts, network, per_chunk))
    document = status.document(facts, network)
    assert b"".join(pieces) == json.dumps(document).encode() + b"\n"
    assert json.loads(b"".join(pieces)) == document
    listed = len(document["routes"])
    assert len(pieces) == -(-listed // per_chunk) + 2
    assert listed == (count if wanted is None else int(wanted < count))


def test_a_piece_is_made_only_when_asked_for() -> None:
    """The generator builds a piece's routes when it is pulled: the facts it reads are those of the
    moment it was made (a snapshot), and the first piece holds no route."""
    facts = facts_of(rules_of(120))
    pieces = status.chunks(facts, None, 50)
    head = next(pieces)
    assert b'"prefix"' not in head
    assert head.endswith(b'"routes": [')
    first = next(pieces)
    assert first.count(b'"prefix"') == 50
    assert first.startswith(b'{"prefix": "10.0.0.0/32"')


def test_the_listing_is_in_route_order_whatever_the_file_order() -> None:
    """`status routes` lists by table, family, address: the file's reverse order comes out sorted."""
    document = status.document(facts_of(rules_of(300)), None)
    prefixes = [entry["prefix"] for entry in document["routes"]]
    assert prefixes[:3] == ["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32"]
    assert prefixes[-1] == "10.0.1.43/32"
    assert list(document)[-1] == "routes", "routes last: the head goes out first"


def test_the_overview_counts_by_state_and_samples_what_is_not_announced() -> None:
    """Of 1,000 routes with 30 down, the overview counts 970 announced and 30 withdrawn and lists
    the first 20 withdrawn in route order, with 10 more; it carries no per-route listing."""
    down = frozenset(range(500, 530))
    made = status.overview(facts_of(rules_of(1000), down))
    assert "routes" not in made
    assert made["counts"] == {
        "announced": 970, "degraded": 0, "withdrawn": 30, "not_planned_yet": 0, "held": 0,
        "drained": 0, "leaving": 0, "guarded": 0,
    }  # fmt: skip
    attention = made["attention"]
    assert attention["count"] == 30
    assert attention["more"] == 10
    assert [entry["prefix"] for entry in attention["routes"]] == [
        str(route(i).prefix) for i in range(500, 520)
    ]
    assert all(entry["state"] == "withdrawn" and entry["targets"] for entry in attention["routes"])
    assert (made["announced"], made["withdrawn"]) == (970, 30)


def test_the_overview_is_one_piece() -> None:
    """The overview goes out as one piece: exactly its JSON and a newline."""
    facts = facts_of(rules_of(30), frozenset({3}))
    pieces = status.overview_chunks(facts)
    assert list(pieces) == [json.dumps(status.overview(facts)).encode() + b"\n"]


def test_the_overview_of_a_healthy_node_lists_no_route() -> None:
    """Every route plainly announced: nothing to list, and the text says only the counts."""
    made = status.overview(facts_of(rules_of(50)))
    assert made["attention"] == {"count": 0, "routes": [], "more": 0}
    text = status.render(made)
    assert "by state: 50 announced" in text
    assert "not plainly announced" not in text
    assert "10.0.0.1/32" not in text
    assert status.problems(made) == []


def test_the_overview_size_is_bounded_whatever_the_number_of_routes() -> None:
    """Everything down at 2,000 routes or at 200: the overview's JSON is the same size within the
    digits of its counts (20 routes listed, the rest counted), while the listing grows tenfold."""
    small = json.dumps(status.overview(facts_of(rules_of(200), frozenset(range(200)))))
    large = json.dumps(status.overview(facts_of(rules_of(2000), frozenset(range(2000)))))
    assert abs(len(large) - len(small)) < 100
    listing_small = len(joined(facts_of(rules_of(200)), None, 50))
    listing_large = len(joined(facts_of(rules_of(2000)), None, 50))
    assert listing_large > 9 * listing_small


def test_drained_held_and_leaving_routes_are_not_plainly_announced() -> None:
    """A drained route, a route whose verdict is not known yet (held) and one leaving after its rule
    went (graceful shutdown) are each counted and listed; a plainly announced one is not."""
    rules = rules_of(4)
    unknown = {backend(i): health.step(health.INITIAL, UP, 1.0, THRESHOLDS)[0] for i in (0, 1, 3)}
    unknown[backend(2)] = health.INITIAL  # never polled: its verdict is not known yet
    before = plan.initial({route(2)}, set(), 1.0)  # rhid's files announced it: held as it was
    chain = (plan.draining, plan.stopping, shutdown.policy(shutdown.Config(5.0)))
    intents = plan.Intents(drains={route(1): drain.Drain("maintenance", "t")})
    made = plan.decide(before, rules, unknown, intents, 1.0, chain=chain)
    fewer = parse_rules("".join(f"10.0.0.{i} = all(b:be{i})\n" for i in range(3)), "/etc/x.cfg")
    after = plan.decide(made, fewer, unknown, intents, 2.0, chain=chain)  # 10.0.0.3 leaves
    overview = status.overview(facts_of(fewer, made=after, drained=frozenset({route(1)}), states=unknown))
    counts = overview["counts"]
    assert (counts["drained"], counts["held"], counts["leaving"]) == (1, 1, 1)
    listed = [entry["prefix"] for entry in overview["attention"]["routes"]]
    assert listed == ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]
    assert "drained since" in overview["attention"]["routes"][0]["reason"]


def test_many_missing_proxies_are_a_bounded_list_of_problems() -> None:
    """300 proxies HAProxy lacks: the overview names the first 20 and one line for the other 280
    (still a problem: exit 4); the listing names each."""
    rules = rules_of(300)
    absent = {proxy: health.step(health.INITIAL, ABSENT, 1.0, THRESHOLDS)[0] for proxy in rules.proxies}
    facts = facts_of(rules, states=absent)
    found = status.problems(status.overview(facts))
    assert len(found) == 21
    assert found[-1].startswith("and 280 more of the proxies the rules name are missing from HAProxy")
    assert len(status.problems(status.document(facts, None))) == 300


def test_the_text_says_how_many_more_and_how_to_list_them() -> None:
    """The overview in operator words: the counts, the sample's route lines, and the rest counted
    with the command that lists every route."""
    text = status.render(status.overview(facts_of(rules_of(100), frozenset(range(100)))))
    assert "by state: 100 withdrawn" in text
    assert "not plainly announced: 100 route(s)" in text
    assert text.count("      why: ") == 20
    assert text.endswith("  ... and 80 more: rhid status --routes lists every route")


def test_status_routes_is_the_listing_request() -> None:
    """``status routes`` asks for every route; ``status`` for the overview; a prefix as before."""
    assert status.parse_request(b"status routes\n") == status.Listing()
    assert status.parse_request(b"status\n") is None
    assert status.parse_request(b"status 10.0.0.1\n") == ipaddress.ip_network("10.0.0.1/32")
    assert isinstance(status.parse_request(b"status routes 10.0.0.1\n"), str)


def test_routes_the_guard_keeps_announced_are_not_plainly_announced() -> None:
    """Twelve routes health would withdraw, kept announced by the blast-radius guard until its end:
    all twelve count as announced and as guarded, and the overview lists them."""
    rules = parse_rules("".join(f"10.0.9.{i} = all(b:a)\n" for i in range(1, 13)), "/etc/x.cfg")
    chain = (plan.stopping, guard.policy(guard.Config(50, 5, 60.0, 10.0)))
    intents = plan.Intents(haproxy_answers=True)
    a = Proxy(ProxyKind.BACKEND, "a")
    up = {a: health.step(health.INITIAL, UP, 1.0, THRESHOLDS)[0]}
    made = plan.decide(plan.initial(set(), set(), 1.0), rules, up, intents, 1.0, chain=chain)
    down = {a: health.step(up[a], DOWN, 2.0, THRESHOLDS)[0]}
    held = plan.decide(made, rules, down, intents, 2.0, chain=chain)
    overview = status.overview(facts_of(rules, made=held, states=down))
    assert overview["counts"]["announced"] == 12
    assert overview["counts"]["guarded"] == 12
    assert overview["attention"]["count"] == 12
    assert all(entry["until"] is not None for entry in overview["attention"]["routes"])
