"""Targeted polls: the proxies an event names, asked by id, read from a partial reply; and the
full poll's period while the event stream is live (rhid.sweep)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhid import health, stats
from rhid.errors import HAProxyProtocolError
from rhid.model import Proxy, ProxyKind
from rhid.names import is_proxy_name
from rhid.stats import (
    ABSENT,
    MAX_TARGETS,
    Observation,
    ProxyIndex,
    ProxyStatus,
    changed_proxies,
    has_state_change,
    parse_poll,
    parse_targeted,
    queries_for,
    targeted_command,
)
from rhid.sweep import Sweep

B = ProxyKind.BACKEND
F = ProxyKind.FRONTEND
# HAProxy 2.6.12's reply to "show info; show stat 3 7 -1; show stat 99 2 -1; show stat 2 1 -1;
# show stat 4 6 -1" with `frontend www` (iid 2), `backend www` (3, one server) and `backend be2` (4).
TARGETED = (Path(__file__).parent / "data" / "haproxy_targeted_reply.txt").read_bytes()
HEADER = "# pxname,svname,status,type,check_status,iid,"


def test_a_real_targeted_reply_reads_each_proxy_asked_for_from_its_own_block() -> None:
    """Each query's block (one empty: an unknown id) gives its proxy; a frontend and a backend of
    one name are told apart by their rows' type."""
    asked = [Proxy(B, "www"), Proxy(F, "www"), Proxy(B, "be2")]
    snapshot = parse_targeted(TARGETED, ProxyIndex.of(asked))
    assert snapshot.pid.isdigit()
    assert {proxy: status.status for proxy, status in snapshot.proxies.items()} == {
        Proxy(B, "www"): "UP",
        Proxy(F, "www"): "OPEN",
        Proxy(B, "be2"): "UP",
    }
    assert snapshot.ids == {Proxy(B, "www"): "3", Proxy(F, "www"): "2", Proxy(B, "be2"): "4"}


def test_a_proxy_asked_for_and_missing_is_absent_and_one_not_asked_for_is_not_in_the_reply() -> None:
    """Only the proxies asked for are read; one of them HAProxy printed nothing for is absent."""
    snapshot = parse_targeted(TARGETED, ProxyIndex.of([Proxy(B, "be2"), Proxy(B, "gone")]))
    assert set(snapshot.proxies) == {Proxy(B, "be2")}
    assert snapshot.status_of(Proxy(B, "gone")) is ABSENT


def test_counted_servers_are_counted_in_a_targeted_reply() -> None:
    """A threshold's backend asked with server rows gets its counts, as in a full poll."""
    be2 = Proxy(B, "be2")
    snapshot = parse_targeted(TARGETED, ProxyIndex.of([be2], [be2]), servers=True)
    counts = snapshot.proxies[be2].servers
    assert counts is not None
    assert (counts.up, counts.total) == (2, 2)


def test_a_full_poll_records_each_named_proxys_id_only_when_it_is_digits() -> None:
    """Ids come from the iid column of the rules' proxies; a row without a proxy id's digits has none."""
    data = (
        f"Pid: 7\n\n{HEADER}\nbe_a,BACKEND,UP,1,,12,\nfe_a,FRONTEND,OPEN,0,,3,\nbe_b,BACKEND,UP,1,,x1,\n"
        "be_c,BACKEND,UP,1,,0,\nother,BACKEND,UP,1,,5,\n\n"
    ).encode()
    wanted = [Proxy(B, "be_a"), Proxy(F, "fe_a"), Proxy(B, "be_b"), Proxy(B, "be_c")]
    assert parse_poll(data, wanted).ids == {Proxy(B, "be_a"): "12", Proxy(F, "fe_a"): "3"}


def test_a_reply_without_an_iid_column_gives_no_ids() -> None:
    """An HAProxy (or fake) whose header lacks iid leaves every proxy to the full poll."""
    data = b"Pid: 7\n\n# pxname,svname,status,type,check_status,\nbe_a,BACKEND,UP,1,,\n\n"
    assert parse_poll(data, [Proxy(B, "be_a")]).ids == {}


def test_a_garbled_block_in_a_targeted_reply_is_a_protocol_error() -> None:
    """A block that is not CSV (a refusal between two blocks) makes the reply unreadable."""
    with pytest.raises(HAProxyProtocolError):
        parse_targeted(f"Pid: 7\n\n{HEADER}\n\nNo such proxy.\n\n".encode(), ProxyIndex.of([Proxy(B, "a")]))


def test_queries_ask_by_id_with_the_rows_each_kind_needs() -> None:
    """A frontend asks FRONTEND rows, a backend BACKEND rows (and servers when counted or while the
    INI guard needs them); a listen's frontend and backend share one query."""
    ids = {Proxy(F, "li"): "4", Proxy(B, "li"): "4", Proxy(B, "be"): "12", Proxy(B, "cnt"): "9"}
    assert queries_for([Proxy(F, "li"), Proxy(B, "li"), Proxy(B, "be")], ids, servers=False) == [
        ("4", 3),
        ("12", 2),
    ]
    assert queries_for([Proxy(B, "be")], ids, servers=True) == [("12", 6)]
    assert queries_for([Proxy(B, "cnt")], ids, servers=False, counted=[Proxy(B, "cnt")]) == [("9", 6)]
    assert queries_for([Proxy(B, "be"), Proxy(B, "unknown")], ids, servers=False) is None


def test_the_targeted_command_sends_checked_ids_only() -> None:
    """show info, then one show stat per query, @1 on the master CLI; anything but an id is refused."""
    command = targeted_command(False, [("3", 7), ("12", 2)])
    assert command == b"show info; show stat 3 7 -1; show stat 12 2 -1\n"
    assert targeted_command(True, [("3", 1)]) == b"@1 show info; @1 show stat 3 1 -1\n"
    for bad in (("3;", 2), ("0", 2), ("-1", 2), ("www", 2), ("3", 8), ("3", 0)):
        with pytest.raises(AssertionError):
            targeted_command(False, [bad])
    with pytest.raises(AssertionError):
        targeted_command(False, [])
    with pytest.raises(AssertionError):
        targeted_command(False, [(str(n), 2) for n in range(1, MAX_TARGETS + 2)])


STATE_CHANGES = [
    ("<1>2026-11-21T07:23:52+00:00 Server be_slow/s1 is DOWN, reason: Layer4 connection problem", "be_slow"),
    ("<0>2026-11-21T07:23:52+00:00 backend be_slow has no server available!", "be_slow"),
    ("<5>2026-11-21T07:23:52+00:00 Server be_drain/s1 enters drain state.", "be_drain"),
    ("<5>2026-11-21T07:23:52+00:00 Server be_app/s1 was DOWN and now enters maintenance.", "be_app"),
    ("<4>2026-11-21T07:23:52+00:00 Paused frontend fe_www.", "fe_www"),
    ("<4>2026-11-21T07:23:52+00:00 Proxy fe_shut stopped (cumulated conns: FE: 0, BE: 0).", "fe_shut"),
]


@pytest.mark.parametrize(("line", "name"), STATE_CHANGES)
def test_each_state_change_names_its_proxy_when_the_rules_watch_it(line: str, name: str) -> None:
    """A state-change line yields its proxy's name if watched, nothing otherwise."""
    assert changed_proxies(line.encode() + b"\n", frozenset({name, "other"})) == {name}
    assert changed_proxies(line.encode() + b"\n", frozenset({"other"})) == frozenset()


def test_a_block_names_every_watched_proxy_of_its_lines_and_no_traffic() -> None:
    """Many lines: each watched proxy once, unwatched ones and traffic lines never."""
    traffic = b'<6>2026-11-21T07:23:52+00:00 127.0.0.1:4242 fe be_app/s1 0/0/1/1 200 "GET /Server x/y"\n'
    block = traffic * 20 + b"\n".join(line.encode() for line, _ in STATE_CHANGES) + b"\n" + traffic
    watched = frozenset({"be_slow", "fe_www", "be_static", "be_app"})
    assert changed_proxies(block, watched) == {"be_slow", "fe_www", "be_app"}
    assert changed_proxies(traffic * 100, watched) == frozenset()
    assert changed_proxies(b'<6>x 127.0.0.1:4242 fe be_app/s1 200 "GET /"\n' * 100, watched) == frozenset()


@given(st.binary(max_size=300))
def test_only_watched_names_of_haproxys_characters_come_out_of_any_bytes(noise: bytes) -> None:
    """Whatever the ring carries, a name comes out only if watched and of HAProxy's characters."""
    watched = frozenset({"be_a", "fe:b", "x.y-z"})
    block = noise + b"\nServer be_a/s1 is DOWN\n" + noise
    found = changed_proxies(block, watched)
    assert found <= watched
    assert "be_a" in found


@given(st.text(alphabet="abc;/ \t'\"\x00\u00e9", min_size=1, max_size=12))
def test_a_watched_name_outside_haproxys_characters_never_comes_out(name: str) -> None:
    """Even a watched set holding a name HAProxy cannot have yields it only if it is of HAProxy's
    characters (defence in depth: the rules' names are checked too)."""
    line = f"<0>x backend {name} has no server available!\n".encode("utf-8", "replace")
    found = changed_proxies(line, frozenset({name}))
    assert found <= {name}
    assert not found or is_proxy_name(name)


# ---- partial observations: what was not asked is not observed --------------------------------

UP = ProxyStatus(Observation.UP, "UP")
DOWN = ProxyStatus(Observation.DOWN, "DOWN")
statuses = st.sampled_from([UP, DOWN, ABSENT, ProxyStatus(Observation.PENDING, "UP (first check pending)")])
PROXIES = [Proxy(B, f"be{n}") for n in range(6)]


@given(
    st.dictionaries(st.sampled_from(PROXIES), statuses, min_size=len(PROXIES)),
    st.sets(st.sampled_from(PROXIES)),
    statuses,
    st.integers(1, 3),
)
def test_a_partial_observation_steps_only_the_proxies_it_holds(
    first: dict[Proxy, ProxyStatus], asked: set[Proxy], status: ProxyStatus, fall: int
) -> None:
    """After a full poll, a targeted one leaves every proxy it did not ask for exactly as it was
    (never vanished, never counted), and steps the others as a full poll would."""
    thresholds = health.Thresholds(fall=fall)
    states, _, _ = health.observe({}, first, 0.0, thresholds)
    partial = dict.fromkeys(asked, status)
    after, _, _ = health.observe(states, partial, 1.0, thresholds)
    full, _, _ = health.observe(states, {**first, **partial}, 1.0, thresholds)
    for proxy in PROXIES:
        if proxy in asked:
            assert after[proxy] == full[proxy]
        else:
            assert after[proxy] is states[proxy]


# ---- the full poll's period while the stream is live --------------------------------------------


def test_the_period_is_the_cost_over_the_budget_within_interval_and_most() -> None:
    """150 ms of CPU at a 1 % budget wants 15 s: 10 s at most; 2 ms: the interval (1 s)."""
    assert Sweep(0.15).period(1.0, 1.0, 10.0) == 10.0
    assert Sweep(0.05).period(1.0, 1.0, 10.0) == pytest.approx(5.0)
    assert Sweep(0.002).period(1.0, 1.0, 10.0) == 1.0
    assert Sweep().period(1.0, 1.0, 10.0) == 1.0
    assert Sweep(0.15).period(1.0, 2.0, 1.0) == 2.0  # --sweep-max below --interval: the interval


def test_the_cost_follows_a_rise_at_once_and_a_fall_by_halves() -> None:
    """A costly poll lengthens the period at once; a cheap one shortens it by half the gap; a
    reading that is no cost (negative, not finite) changes nothing."""
    sweep = Sweep().measured(0.1)
    assert sweep.cost == 0.1
    assert sweep.measured(0.3).cost == 0.3
    assert sweep.measured(0.02).cost == pytest.approx(0.06)
    assert sweep.measured(-1.0) is sweep
    assert sweep.measured(float("nan")) is sweep


@given(
    st.lists(st.floats(0, 10), min_size=1, max_size=20),
    st.floats(0.01, 100),
    st.floats(0.01, 100),
    st.floats(0.01, 100),
)
def test_the_period_always_stays_between_the_interval_and_the_maximum(
    costs: list[float], budget: float, interval: float, most: float
) -> None:
    """Whatever the costs measured, the period is at least --interval and at most
    max(--interval, --sweep-max), and never spends more than the budget unless the maximum says so."""
    sweep = Sweep()
    for cost in costs:
        sweep = sweep.measured(cost)
    period = sweep.period(budget, interval, most)
    assert interval <= period <= max(interval, most)
    assert sweep.cost is not None
    if period < max(interval, most):
        assert sweep.cost / period <= budget / 100 + 1e-9 or period == interval


ALL_KINDS_NAMED = [
    *STATE_CHANGES,
    ("<5>2026-11-21T07:23:52+00:00 Resumed frontend fe_www.", "fe_www"),
    (
        "<1>2026-11-21T07:23:52+00:00 Server be_maint/s1 is going DOWN for maintenance. 0 active left.",
        "be_maint",
    ),
]
ALL_KINDS = [line for line, _ in ALL_KINDS_NAMED]
HTTP = (
    b'<6>2026-11-21T07:23:52+00:00 127.0.0.1:4242 [21/Nov/2026:07:23:52.000] fe be/s1 200 "GET / HTTP/1.1"\n'
)


@pytest.mark.parametrize(("line", "name"), ALL_KINDS_NAMED)
def test_the_pre_scan_lets_every_kind_of_state_change_through_among_traffic(line: str, name: str) -> None:
    """Whatever the byte-first pre-scan skips, no state-change line is among it."""
    block = HTTP * 50 + line.encode() + b"\n" + HTTP * 50
    assert has_state_change(block)
    assert changed_proxies(block, frozenset({name})) == {name}


def test_the_pre_scan_skips_plain_traffic_and_a_paused_frontend_only_when_no_frontend_is_watched() -> None:
    """Traffic alone passes nothing; a paused frontend's line passes unless the rules name no frontend."""
    assert not has_state_change(HTTP * 100)
    paused = HTTP * 10 + b"<4>2026-11-21T07:23:52+00:00 Paused frontend fe_www.\n"
    assert has_state_change(paused)
    assert changed_proxies(paused, frozenset({"fe_www"})) == {"fe_www"}
    assert changed_proxies(paused, frozenset({"fe_www"}), frontends=False) == frozenset()
    resumed = HTTP * 10 + b"<5>2026-11-21T07:23:52+00:00 Resumed frontend fe_www.\n"
    assert changed_proxies(resumed, frozenset({"fe_www"})) == {"fe_www"}
    assert changed_proxies(resumed, frozenset({"fe_www"}), frontends=False) == frozenset()


# Lines a ring may carry: every kind of state change (some split or glued to their neighbours by
# the draw), real HAProxy traffic logs (their S and R let the pre-scan through), and any bytes.
REAL_TRAFFIC = (
    b"<6>2026-12-01T19:00:28.278798+00:00 127.0.0.1:43884 [01/Dec/2026:19:00:28.278] fe fe/<NOSRV> "
    b'0/-1/-1/-1/0 200 73 - - LR-- 4/4/0/0/0 0/0 "GET / HTTP/1.1"'
)
RING_LINES = st.one_of(
    st.sampled_from([line.encode() for line in ALL_KINDS] + [HTTP.rstrip(b"\n"), REAL_TRAFFIC]),
    st.binary(max_size=40),
    st.sampled_from([b"Server ", b"backend ", b"Proxy ", b"Resumed frontend ", b"Paused frontend ", b"!"]),
)
NAMES = ["be_slow", "be_drain", "be_app", "fe_www", "fe_shut", "be_maint", "be", "fe", "x"]


@given(
    st.lists(RING_LINES, max_size=30),
    st.sampled_from([b"\n", b"", b" "]),
    st.frozensets(st.sampled_from(NAMES)),
)
def test_matching_only_the_lines_that_hold_a_word_finds_what_the_whole_block_scan_finds(
    lines: list[bytes], glue: bytes, watched: frozenset[str]
) -> None:
    """The line-by-line match (the cheap path of a busy ring) names exactly the proxies, and sees
    exactly the changes, that matching the whole block at once does; without a frontend in the
    rules, at least every change but a frontend's."""
    block = glue.join(lines) + b"\n"
    # the oracle: the whole block matched at once, as before the line-by-line path
    matches = list(stats._STATE_CHANGE.finditer(block))

    def named(match: re.Match[bytes]) -> str:
        return next(g for g in match.groups() if g is not None).decode("ascii", "replace")

    names = {named(m) for m in matches}
    kept = {n for n in names if n in watched and is_proxy_name(n)}
    assert changed_proxies(block, watched) == kept
    assert has_state_change(block) == bool(matches)
    assert has_state_change(block, watched) == any(n in watched for n in names)
    but_frontends = {named(m) for m in matches if m["frontend"] is None}
    assert (
        {n for n in but_frontends if n in watched and is_proxy_name(n)}
        <= changed_proxies(block, watched, frontends=False)
        <= kept
    )
