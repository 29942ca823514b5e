"""The include files in proportion to the change: the rules' proxy->routes index, a file's text kept
between writes (`routefiles.FileText`), and `BirdSide.write` rewriting only the files whose lines a
plan moved, rendering only those lines, with the same files, events and reports as a whole write."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rhid import gateway, plan, routefiles
from rhid.bird import BirdClient
from rhid.dialect import BIRD2, Dialect, of_greeting
from rhid.health import Health, ProxyState
from rhid.model import PLAIN, Attributes, Channel, Network, Proxy, ProxyKind, Route, ServerTerm, Threshold
from rhid.reconcile import BirdSide
from rhid.reconciler import Reconciler
from rhid.rules import parse_rules

N = ipaddress.ip_network
A = Proxy(ProxyKind.BACKEND, "a")
B = Proxy(ProxyKind.BACKEND, "b")
F = Proxy(ProxyKind.FRONTEND, "f")


def test_the_index_names_the_routes_each_proxy_and_term_feeds() -> None:
    """Each proxy and threshold term maps to the routes whose deciding rule reads it (its condition
    or degraded clause), in file order; a proxy no rule reads feeds nothing."""
    rules = parse_rules(
        "192.0.2.1, 192.0.2.2 = all(b:a, f:f)\n"
        "192.0.2.3 = any(b:b>=2) degraded any(b:a) med 10\n"
        "192.0.2.4 = not(b:b)\n"
    )
    one, two, three, four = rules.routes
    assert rules.fed_by_proxy[A] == (one, two, three)
    assert rules.fed_by_proxy[F] == (one, two)
    assert rules.fed_by_proxy[B] == (three, four)  # b:b>=2 reads b's servers: b feeds it too
    assert rules.fed_by_term == {ServerTerm(B, Threshold(2)): (three,)}
    assert rules.fed_by([F]) == {one, two}
    assert rules.fed_by((), [ServerTerm(B, Threshold(2))]) == {three}
    assert rules.fed_by([Proxy(ProxyKind.BACKEND, "nobody")], [ServerTerm(A, Threshold(1))]) == set()


prefixes = st.sampled_from(
    [N(f"192.0.2.{i}/32") for i in range(12)] + [N("192.0.2.0/24"), N("10.0.0.0/8"), N("192.0.2.0/31")]
)
attributes = st.sampled_from([PLAIN, Attributes(med=200), Attributes(communities=((65000, 1),))])
route_maps = st.dictionaries(prefixes, attributes, max_size=10)


@given(route_maps, st.lists(route_maps, max_size=6))
def test_file_text_is_render_routes_after_any_updates(
    first: dict[Network, Attributes], then: list[dict[Network, Attributes]]
) -> None:
    """A FileText updated with the prefixes that changed holds `render_routes`'s text, byte for byte."""
    text = routefiles.FileText(first)
    assert text.text() == routefiles.render_routes(first)
    held = first
    for routes in then:
        changed = {p for p in held.keys() | routes.keys() if held.get(p) != routes.get(p)}
        text.update(routes, changed | {next(iter(routes))} if routes else changed)  # an unchanged one too
        assert text.text() == routefiles.render_routes(routes)
        held = routes


RULES = parse_rules(
    "".join(
        f"192.0.2.{i} = all(b:be{i}) degraded any(b:spare) med 200 large-community 65000:1:{i}\n"
        for i in range(6)
    )
    + "".join(f"vol2%198.18.0.{i}, 2001:db8::{i} = any(b:be{i})\n" for i in range(4))
)
BACKENDS = [Proxy(ProxyKind.BACKEND, f"be{i}") for i in range(6)] + [Proxy(ProxyKind.BACKEND, "spare")]
UP = ProxyState(Health.UP, last_status="UP", seen=True)
DOWN = ProxyState(Health.DOWN, last_status="DOWN", seen=True)


def side(directory: Path, dialect: Dialect, family: int | None) -> BirdSide:
    return BirdSide(
        directory,
        BirdClient(str(directory.parent / f"{directory.name}.ctl"), 0.1),
        dialect=dialect,
        family=family,
        gateways=(gateway.parse("vol2=198.18.0.99"),),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([(BIRD2, None), (of_greeting("BIRD 1.6.2 ready."), 4)]),
    st.lists(
        st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=3), min_size=1, max_size=8
    ),
    st.sets(st.integers(0, 7), max_size=3),
)
def test_a_write_in_proportion_gives_the_files_a_whole_write_gives(
    tmp_path_factory: pytest.TempPathFactory,
    bird: tuple[Dialect, int | None],
    changes: list[list[tuple[int, bool]]],
    twice: set[int],
) -> None:
    """For any run of health changes (routes withdrawn, degraded with attributes a BIRD 1.6.2 cannot
    carry, via a gateway), a BirdSide handed incremental plans writes the same files, tells the
    reconciler the same changes and reports the same as one that compares every plan whole."""
    root = tmp_path_factory.mktemp("files")
    dialect, family = bird
    quick, whole = side(root / "quick", dialect, family), side(root / "whole", dialect, family)
    states = dict.fromkeys(BACKENDS, UP)
    made = plan.decide(plan.EMPTY, RULES, states, plan.NO_INTENTS, 0.0)
    for at, change in enumerate(changes):
        states = {**states, **{BACKENDS[i]: UP if up else DOWN for i, up in change}}
        made = plan.decide(made, RULES, states, plan.NO_INTENTS, float(at + 1))
        if at in twice:  # two plans between writes: the second is not relative to the one written
            made = plan.decide(made, RULES, {**states, BACKENDS[-1]: DOWN}, plan.NO_INTENTS, at + 1.5)
        assert quick.write(made, float(at)) == whole.write(replace(made, memo=None), float(at))
        for name in sorted(path.name for path in (root / "whole").iterdir()):
            assert (root / "quick" / name).read_text() == (root / "whole" / name).read_text(), name
        assert quick.written == whole.written
        assert quick.uncarried == whole.uncarried
        assert quick.problems() == whole.problems()
        for mine, theirs in ((quick.reconciler, whole.reconciler), (whole.reconciler, quick.reconciler)):
            assert mine.generation == theirs.generation
            assert mine.unconfirmed == theirs.unconfirmed
            assert mine.changed == theirs.changed
            assert {c: frozenset(p) for c, p in mine.files.items()} == {
                c: frozenset(p) for c, p in theirs.files.items()
            }


def test_one_change_rewrites_one_file_and_renders_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Among 1,000 routes in two files, one backend down rewrites its one file (the other keeps its
    inode) and renders one route line, not 1,000; the file is what a whole render gives."""
    rules = parse_rules(
        "".join(f"10.0.{i // 256}.{i % 256} = all(b:be{i})\n" for i in range(500))
        + "".join(f"2001:db8::{i:x} = all(b:v6_{i})\n" for i in range(500))
    )
    states = dict.fromkeys(rules.proxies, UP)
    bird_side = side(tmp_path / "rhid", BIRD2, None)
    made = plan.decide(plan.EMPTY, rules, states, plan.NO_INTENTS, 0.0)
    made = plan.decide(made, rules, states, plan.NO_INTENTS, 0.0)
    bird_side.write(made, 0.0)
    bird_side.reconciler.changed = {}  # as a round with BIRD that verified them leaves it
    v4, v6 = tmp_path / "rhid" / "vol1.ipv4.conf", tmp_path / "rhid" / "vol1.ipv6.conf"
    inodes = (v4.stat().st_ino, v6.stat().st_ino)
    rendered: list[Network] = []
    line = Dialect.route_line

    def counted(self: Dialect, prefix: Network, attributes: Attributes = PLAIN) -> str:
        rendered.append(prefix)
        return line(self, prefix, attributes)

    monkeypatch.setattr(Dialect, "route_line", counted)
    down = {**states, Proxy(ProxyKind.BACKEND, "be7"): DOWN}
    made = plan.decide(made, rules, down, plan.NO_INTENTS, 1.0)
    assert bird_side.write(made, 1.0)
    assert rendered == []  # a withdrawal renders nothing: its line goes
    assert v4.stat().st_ino != inodes[0]
    assert v6.stat().st_ino == inodes[1]
    assert bird_side.reconciler.changed == {Channel("vol1", 4): {N("10.0.0.7/32")}}
    made = plan.decide(made, rules, states, plan.NO_INTENTS, 2.0)
    assert bird_side.write(made, 2.0)
    assert rendered == [N("10.0.0.7/32")]
    monkeypatch.undo()
    assert v4.read_text() == routefiles.render_routes(made.files()[Channel("vol1", 4)])


def test_a_file_not_written_is_written_whole_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (a full /run) leaves the file as it was; the next plan, incremental, writes
    it whole and right."""
    rules = parse_rules("".join(f"10.0.0.{i} = all(b:be{i})\n" for i in range(1, 5)))
    states = dict.fromkeys(rules.proxies, UP)
    bird_side = side(tmp_path / "rhid", BIRD2, None)
    made = plan.decide(plan.EMPTY, rules, states, plan.NO_INTENTS, 0.0)
    bird_side.write(made, 0.0)
    real = routefiles.write_text

    def full(path: Path, text: str) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(routefiles, "write_text", full)
    down = {**states, Proxy(ProxyKind.BACKEND, "be2"): DOWN}
    made = plan.decide(made, rules, down, plan.NO_INTENTS, 1.0)
    assert not bird_side.write(made, 1.0)
    assert "No space left" in bird_side.write_errors[Channel("vol1", 4)]
    monkeypatch.setattr(routefiles, "write_text", real)
    down = {**down, Proxy(ProxyKind.BACKEND, "be3"): DOWN}
    made = plan.decide(made, rules, down, plan.NO_INTENTS, 2.0)
    assert bird_side.write(made, 2.0)
    assert (tmp_path / "rhid" / "vol1.ipv4.conf").read_text() == routefiles.render_routes(
        [N("10.0.0.1/32"), N("10.0.0.4/32")]
    )
    assert not bird_side.write_errors


def test_a_file_someone_else_wrote_is_made_whole_by_the_next_plan(tmp_path: Path) -> None:
    """A file with a line rhid did not write (found at start) is rewritten whole from the plan, even
    when the plan that comes moved only another line."""
    directory = tmp_path / "rhid"
    directory.mkdir()
    (directory / "vol1.ipv4.conf").write_text("route 10.0.0.1/32 blackhole;\nprotocol static evil {}\n")
    rules = parse_rules("10.0.0.1 = all(b:be1)\n10.0.0.2 = all(b:be2)\n")
    states = dict.fromkeys(rules.proxies, UP)
    made = plan.decide(plan.EMPTY, rules, states, plan.NO_INTENTS, 0.0)
    bird_side = side(directory, BIRD2, None)
    bird_side.written_plan = made  # as if it had been written: the next plan is relative to it
    made = plan.decide(made, rules, {**states, Proxy(ProxyKind.BACKEND, "be2"): DOWN}, plan.NO_INTENTS, 1.0)
    assert made.files_moved(bird_side.written_plan) == {Channel("vol1", 4): {N("10.0.0.2/32")}}
    assert bird_side.write(made, 1.0)
    assert (directory / "vol1.ipv4.conf").read_text() == routefiles.render_routes([N("10.0.0.1/32")])


def test_the_reconciler_keeps_the_files_it_is_handed() -> None:
    """The reconciler keeps each channel's prefixes as handed (no copy of 10,000 routes per change)
    and verifies one prefix against them."""
    routes = {N("10.0.0.1/32"): PLAIN}
    channel = Channel("vol1", 4)
    reconciler = Reconciler({}, path="bird.ctl", verify_every=30.0, configure_timeout=5.0)
    reconciler.files_written({channel: routes}, {channel: frozenset(routes)})
    assert reconciler.files[channel] is routes


def test_a_hand_made_plan_reads_its_files_from_its_decisions() -> None:
    """A plan not made by decide (no memo) gives its files, one file, prefixes and count from its
    decisions, and says nothing of what moved."""
    route = Route("vol1", N("192.0.2.1/32"))
    other = Route("vol2", N("192.0.2.2/32"))
    made = plan.Plan(
        {
            route: plan.Decision(plan.RouteState.ANNOUNCED, None),
            other: plan.Decision(plan.RouteState.WITHDRAWN, None),
        },
        frozenset({route.channel}),
    )
    assert made.files() == {route.channel: {route.prefix: PLAIN}}
    assert made.file(route.channel) == {route.prefix: PLAIN}
    assert made.prefixes() == {route.channel: frozenset({route.prefix})}
    assert made.announced == 1
    assert made.files_moved(made) is None
    decided = plan.decide(made, parse_rules("192.0.2.1 = always\n"), {}, plan.NO_INTENTS, 0.0)
    assert decided.file(Channel("vol9", 4)) == {}
    assert decided.files_moved(made) is None
