"""Server thresholds end to end in the pure core: the counts HAProxy's rows give, and the term's
health with fall and rise."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from rhid.errors import HAProxyProtocolError
from rhid.health import (
    INITIAL_TERM,
    NOT_COUNTED,
    Health,
    TermState,
    Thresholds,
    WentDown,
    WentUp,
    keep_terms,
    observe_terms,
    term_observation,
)
from rhid.model import Proxy, ProxyKind, ServerTerm, Threshold
from rhid.stats import Counts, Observation, ProxyIndex, ProxyStatus, parse_poll

B = ProxyKind.BACKEND
APP = Proxy(B, "be")
HALF = ServerTerm(APP, Threshold(50, percent=True))
TWO = ServerTerm(APP, Threshold(2))
GOLDEN = (Path(__file__).parent / "data" / "haproxy_reply.txt").read_bytes()  # captured from haproxy 2.6.12
HEADER = "# pxname,svname,scur,status,weight,act,bck,type,check_status,"


def reply(*rows: str, header: str = HEADER) -> bytes:
    return (
        "Name: HAProxy\nPid: 42\n\n" + header + "\n" + "".join(row + "\n" for row in rows) + "\n"
    ).encode()


SIX = reply(
    "be,s1,0,UP,1,1,0,2,L7OK,",
    "be,s2,0,UP 2/3,1,1,0,2,L7OK,",  # failing but under fall: still up
    "be,s3,0,no check,1,1,0,2,,",  # not checked: HAProxy balances to it
    "be,s4,0,MAINT,1,1,0,2,,",  # in maintenance: in the total, not up
    "be,s5,0,DRAIN,0,1,0,2,L7OK,",  # draining: in the total, not up
    "be,s6,0,UP,0,1,0,2,L7OK,",  # weight 0: no traffic, not up
    "be,s7,0,DOWN,1,1,0,2,L4CON,",
    "be,bk,0,UP,1,0,1,2,L7OK,",  # a backup: not counted at all
    "be,BACKEND,12,UP,3,3,1,1,,",
)


def test_counts_leave_backups_out_and_count_every_other_server_in_the_total() -> None:
    """Up: UP (even UP 2/3) or no check, with weight; total: every non-backup, MAINT and DRAIN included."""
    snapshot = parse_poll(SIX, ProxyIndex.of([APP], [APP]), servers=True)
    status = snapshot.status_of(APP)
    assert status.observation is Observation.UP
    assert status.servers == Counts(up=3, total=7, sessions=12)


def test_the_counts_agree_with_haproxys_own_act_column() -> None:
    """On a real HAProxy 2.6 reply, each backend's up count is what HAProxy's BACKEND row says in `act`."""
    names = ["be_up", "be_maint", "be_drain", "be_ini", "be_down", "be_empty", "be_weight0", "li_app"]
    wanted = [Proxy(B, name) for name in names]
    snapshot = parse_poll(GOLDEN, ProxyIndex.of(wanted, wanted), servers=True)
    text = GOLDEN.decode()
    header = next(line for line in text.split("\n") if line.startswith("# pxname"))[2:].split(",")
    act = {
        row[0]: int(row[header.index("act")])
        for line in text.split("\n")
        if (row := line.split(",")) and len(row) > 30 and row[1] == "BACKEND"
    }
    counts = {proxy.name: snapshot.status_of(proxy).servers for proxy in wanted}
    assert {name: count.up for name, count in counts.items() if count is not None} == {
        name: act[name] for name in names
    }
    assert counts["be_empty"] == Counts(0, 0, 0)
    assert counts["be_maint"] == Counts(0, 1, 0)


def test_servers_are_counted_only_when_asked_for_and_named() -> None:
    """Without `servers=True` (no server rows asked) or outside `counted`, a backend has no counts."""
    assert parse_poll(SIX, ProxyIndex.of([APP], [APP])).status_of(APP).servers is None
    assert parse_poll(SIX, ProxyIndex.of([APP]), servers=True).status_of(APP).servers is None
    other = Proxy(ProxyKind.FRONTEND, "be")  # counted must name a wanted backend itself
    assert ProxyIndex.of([APP], [other]).counted == frozenset()


def test_a_reply_without_the_optional_columns_counts_by_status_alone() -> None:
    """Without bck, weight and scur, every server is active and weighted, and sessions are None."""
    data = reply(
        "be,s1,UP,2,L7OK,",
        "be,s2,MAINT,2,,",
        "be,BACKEND,UP,1,,",
        header="# pxname,svname,status,type,check_status,",
    )
    assert parse_poll(data, ProxyIndex.of([APP], [APP]), servers=True).status_of(APP).servers == Counts(
        1, 2, None
    )


@pytest.mark.parametrize("scur", ["x", "-1", "\u0663"])
def test_a_sessions_count_that_is_not_a_number_is_a_protocol_error(scur: str) -> None:
    """A counted backend's scur must be ASCII digits: anything else is the peer's garbage."""
    with pytest.raises(HAProxyProtocolError, match="scur of 'be' is not a number"):
        parse_poll(reply(f"be,BACKEND,{scur},UP,1,1,0,1,,"), ProxyIndex.of([APP], [APP]), servers=True)


@pytest.mark.parametrize(
    ("up", "total", "half", "two"),
    [(0, 0, False, False), (1, 4, False, False), (2, 4, True, True), (1, 1, True, False), (2, 3, True, True)],
)
def test_thresholds_meet_on_integers(up: int, total: int, half: bool, two: bool) -> None:
    """>=50% is up*100 >= 50*total with at least one server; >=2 is two servers up; none meets none."""
    assert HALF.threshold.met(up, total) is half
    assert TWO.threshold.met(up, total) is two
    assert (str(HALF), str(TWO)) == ("b:be>=50%", "b:be>=2")


def test_a_terms_observation_comes_from_its_backends_counts() -> None:
    """Counts meeting the threshold are up, else down; an uncounted UP says nothing; the rest pass."""
    up = ProxyStatus(Observation.UP, "UP", Counts(1, 4))
    assert term_observation(HALF, up) == ProxyStatus(Observation.DOWN, "1 of 4 servers up", Counts(1, 4))
    assert (
        term_observation(TWO, ProxyStatus(Observation.DOWN, "DOWN", Counts(2, 4))).observation
        is Observation.UP
    )
    assert term_observation(HALF, ProxyStatus(Observation.UP, "UP")) == ProxyStatus(
        Observation.UNKNOWN, NOT_COUNTED
    )
    unreachable = ProxyStatus(Observation.DOWN, "HAProxy unreachable")
    assert term_observation(HALF, unreachable) is unreachable
    for passed in (Observation.PENDING, Observation.ABSENT, Observation.UNKNOWN):
        status = ProxyStatus(passed, "x", Counts(4, 4))
        assert term_observation(HALF, status) is status


def counted(up: int, total: int = 4) -> dict[Proxy, ProxyStatus]:
    return {APP: ProxyStatus(Observation.UP, "UP", Counts(up, total))}


def test_fall_and_rise_apply_to_each_term() -> None:
    """A term turns down after `fall` polls below it and up after `rise` polls at or above it."""
    thresholds = Thresholds(fall=3, rise=2)
    states: Mapping[ServerTerm, TermState] = {}
    history = []
    for now, up in enumerate([4, 4, 1, 1, 1, 4, 4]):
        states, events, moved = observe_terms(states, [HALF, TWO], counted(up), float(now), thresholds)
        history.append(
            (states[HALF].state.health, [type(event) for term, event, _ in events if term == HALF], moved)
        )
    assert [health for health, _, _ in history] == [
        Health.UNKNOWN,
        Health.UP,
        Health.UP,
        Health.UP,
        Health.DOWN,
        Health.DOWN,
        Health.UP,
    ]
    assert history[1][1] == [WentUp]
    assert history[4][1] == [WentDown]
    assert states[HALF].servers == Counts(4, 4)
    assert states[TWO].state.health is Health.UP


def test_a_settled_poll_returns_the_very_same_states() -> None:
    """Nothing new (same counts, settled health) gives back the same mapping: cheap at scale."""
    thresholds = Thresholds(fall=1, rise=1)
    states, _, _ = observe_terms({}, [HALF], counted(4), 0.0, thresholds)
    again, events, moved = observe_terms(states, [HALF], counted(4), 1.0, thresholds)
    assert again is states
    assert (events, moved) == ([], False)
    changed, _, moved = observe_terms(states, [HALF], counted(3), 2.0, thresholds)
    assert changed is not states  # new counts are kept for `rhid status`
    assert changed[HALF].servers == Counts(3, 4)
    assert not moved


def test_a_term_whose_backend_was_not_polled_is_left_alone() -> None:
    """A term of a backend this poll did not observe is not stepped, and keep_terms drops old terms."""
    states, _, _ = observe_terms({}, [HALF], {}, 0.0, Thresholds())
    assert states == {}
    assert observe_terms({}, [HALF], {}, 0.0, Thresholds())[0].get(HALF, INITIAL_TERM) is INITIAL_TERM
    kept = {HALF: INITIAL_TERM, TWO: INITIAL_TERM}
    assert keep_terms(kept, [TWO]) == {TWO: INITIAL_TERM}
