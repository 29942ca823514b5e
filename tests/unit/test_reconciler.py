"""The BIRD side's conversation as a table, driven directly: scripted replies in, commands out; no
sockets, no sleeps. Hypothesis drives it against a simulated BIRD: BIRD ends equal to the files
whenever it answers, and a configure is never sent while another is in flight or applied."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rhid import birdwire
from rhid.model import BirdState, Channel, Network
from rhid.reconciler import (
    IDLE,
    MIN_CONFIGURE_GAP,
    PREFIX_CHECKS,
    Answer,
    Failure,
    Phase,
    Reconciler,
    Send,
    Trouble,
    Wait,
)

V4 = Channel("vol1", 4)
N = ipaddress.ip_network


def nets(*texts: str) -> frozenset[Network]:
    return frozenset(N(text) for text in texts)


def status(running: bool = True, reconfigured: str = "1") -> birdwire.Reply:
    last = "Daemon is up and running" if running else "Reconfiguration in progress"
    lines = (
        (1000, "BIRD 2.0.12"),
        (1011, "Last reboot on 0"),
        (1011, f"Last reconfiguration on {reconfigured}"),
    )
    return birdwire.Reply(13, (*lines, (13, last)))


def listing(prefixes: frozenset[Network]) -> birdwire.Reply:
    rows = tuple((1007, f"{p} blackhole [vol1]") for p in sorted(prefixes, key=str))
    return birdwire.Reply(0, (*rows, (0, "")))


def reply(code: int, text: str = "") -> birdwire.Reply:
    return birdwire.Reply(code, ((code, text),))


def made(files: frozenset[Network] = nets("10.0.0.1/32")) -> Reconciler:
    return Reconciler({V4: files}, path="bird.ctl", verify_every=30.0, configure_timeout=30.0)


def sent(r: Reconciler, now: float = 0.0) -> str:
    action = r.next_action(now)
    assert isinstance(action, Send), action
    return action.command


def converge(r: Reconciler, routes: frozenset[Network], now: float = 0.0) -> None:
    """A first round that configures and verifies everything."""
    r.tick(now)
    assert sent(r, now) == "show status"
    r.receive(Answer(status()), now)
    assert sent(r, now) == "configure"
    r.receive(Answer(reply(3, "Reconfigured")), now)
    assert sent(r, now) == "show status"
    r.receive(Answer(status(reconfigured="2")), now)
    assert sent(r, now) == "show route protocol vol1"
    r.receive(Answer(listing(routes)), now)
    assert r.next_action(now) == IDLE


def test_a_first_round_configures_and_lists_every_channel() -> None:
    """show status, configure, show status, the full listing: then idle and in sync."""
    r = made()
    assert not r.in_sync
    converge(r, nets("10.0.0.1/32"))
    assert r.in_sync
    assert r.state is BirdState.REACHABLE
    assert [line.name for line in r.take_lines()] == ["bird.reachable", "bird.configured"]


def test_after_a_change_only_the_changed_prefixes_are_verified() -> None:
    """One route moved: its prefix alone is asked of BIRD after the configure."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.files_written({V4: nets("10.0.0.1/32", "10.0.0.2/32")}, {V4: nets("10.0.0.2/32")})
    assert not r.in_sync
    r.tick(1.0)
    for command, answer in [
        ("show status", status(reconfigured="2")),
        ("configure", reply(3)),
        ("show status", status(reconfigured="3")),
        ("show route 10.0.0.2/32 protocol vol1", listing(nets("10.0.0.2/32"))),
    ]:
        assert sent(r, 1.0) == command
        r.receive(Answer(answer), 1.0)
    assert r.next_action(1.0) == IDLE
    assert r.in_sync


def test_many_changes_in_a_channel_are_verified_with_one_listing() -> None:
    """More than PREFIX_CHECKS changed prefixes: the channel's whole listing, once."""
    r = made(frozenset())
    converge(r, frozenset())
    many = frozenset(N(f"10.1.0.{i}/32") for i in range(PREFIX_CHECKS + 1))
    r.files_written({V4: many}, {V4: many})
    r.tick(1.0)
    for answer in (status(reconfigured="2"), reply(3), status(reconfigured="3")):
        r.next_action(1.0)
        r.receive(Answer(answer), 1.0)
    assert sent(r, 1.0) == "show route protocol vol1"


def test_a_missing_prefix_is_a_mismatch_and_the_change_is_not_converged() -> None:
    """BIRD lacking a prefix after the configure: bird.mismatch, not converged, backed off."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.files_written({V4: nets("10.0.0.1/32", "10.0.0.2/32")}, {V4: nets("10.0.0.2/32")})
    r.take_lines()
    r.tick(1.0)
    for answer in (
        status(reconfigured="2"),
        reply(3),
        status(reconfigured="3"),
        reply(8001, "Network not found"),
    ):
        r.next_action(1.0)
        r.receive(Answer(answer), 1.0)
    assert [line.name for line in r.take_lines()] == [
        "bird.configured",
        "bird.mismatch",
        "bird.not_converged",
    ]
    assert not r.in_sync
    assert r.backoff.retry_at == pytest.approx(1.5)
    assert V4 in r.differing


def test_0004_waits_for_a_later_round_then_lists_everything() -> None:
    """0004: no verify now; while show status says reconfiguring nothing is sent; then a full check."""
    r = made()
    r.tick(0.0)
    for answer in (status(), reply(4, "Reconfiguration in progress"), status(running=False)):
        r.next_action(0.0)
        r.receive(Answer(answer), 0.0)
    assert r.next_action(0.0) == IDLE
    assert r.in_sync
    r.tick(1.0)
    assert sent(r, 1.0) == "show status"
    r.receive(Answer(status(running=False)), 1.0)
    assert r.next_action(1.0) == IDLE, "still reconfiguring: nothing more"
    r.tick(2.0)
    r.next_action(2.0)
    r.receive(Answer(status(reconfigured="2")), 2.0)
    assert sent(r, 2.0) == "show route protocol vol1"


def test_files_changed_during_a_configure_get_one_more_configure_at_once() -> None:
    """A change written while BIRD applied the last one: configure again at once, no verify between."""
    r = made()
    r.tick(0.0)
    r.next_action(0.0)
    r.receive(Answer(status()), 0.0)
    assert sent(r, 0.0) == "configure"
    r.files_written({V4: nets("10.0.0.2/32")}, {V4: nets("10.0.0.1/32", "10.0.0.2/32")})
    r.receive(Answer(reply(3)), 12.0)
    assert sent(r, 12.0) == "show status"
    r.receive(Answer(status(reconfigured="2")), 12.0)
    assert r.next_action(12.0) == Wait(12.0 + MIN_CONFIGURE_GAP), "the gap since the last configure"
    assert sent(r, 12.0 + MIN_CONFIGURE_GAP) == "configure"


def test_a_tick_during_a_round_changes_nothing() -> None:
    """One command at a time: a cycle while a command is in flight starts no second round."""
    r = made()
    r.tick(0.0)
    assert sent(r) == "show status"
    r.tick(0.5)
    assert r.next_action(0.5) == IDLE


@pytest.mark.parametrize(
    ("code", "event", "level"),
    [(8002, "bird.refused", "error"), (9001, "bird.bug", "critical")],
)
def test_a_refused_configure_backs_off_and_keeps_the_files(code: int, event: str, level: str) -> None:
    """8002 (BIRD's config rejected) or 9001 (our bug): logged, backed off, not in sync, retried later."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.files_written({V4: nets("10.0.0.2/32")}, {V4: nets("10.0.0.1/32", "10.0.0.2/32")})
    r.take_lines()
    r.tick(1.0)
    r.next_action(1.0)
    r.receive(Answer(status()), 1.0)
    r.next_action(1.0)
    r.receive(Answer(reply(code, "bird.conf:13:60 syntax error")), 1.0)
    assert [(line.name, line.level) for line in r.take_lines()] == [(event, level)]
    assert r.refused == f"{code:04d} bird.conf:13:60 syntax error"
    assert not r.in_sync
    r.tick(1.2)
    assert r.next_action(1.2) == IDLE, "inside the backoff"
    r.tick(1.5)
    assert sent(r, 1.5) == "show status"


def test_access_denied_before_any_configure_is_fatal() -> None:
    """8007 on the first configure: a restricted socket; the reconciler says so and stops."""
    r = made()
    r.tick(0.0)
    r.next_action(0.0)
    r.receive(Answer(status()), 0.0)
    r.next_action(0.0)
    r.receive(Answer(reply(8007, "Access denied")), 0.0)
    assert r.fatal is not None
    assert "restricted" in r.fatal
    r.tick(10.0)
    assert r.next_action(10.0) == IDLE


@pytest.mark.parametrize(("slow", "retry_at"), [(False, 0.0), (True, 1.5)])
def test_an_unreachable_bird_backs_off_only_when_it_cost_time(slow: bool, retry_at: float) -> None:
    """A refused socket is retried next cycle; a timeout backs off; the connection is dropped."""
    r = made()
    r.tick(1.0)
    r.next_action(1.0)
    r.receive(Failure(Trouble.UNAVAILABLE, "connection refused", slow), 1.0)
    assert r.state is BirdState.UNREACHABLE
    assert r.drop
    assert r.backoff.retry_at == retry_at
    assert r.last_error == "bird.ctl: connection refused"


def test_garbage_backs_off_and_drops_the_connection() -> None:
    """A reply rhid cannot parse (show status without its lines) is garbage: logged, dropped, backed off."""
    r = made()
    r.tick(0.0)
    r.next_action(0.0)
    r.receive(Answer(reply(13, "Daemon is up and running")), 0.0)
    assert r.garbled is not None
    assert r.drop
    assert [line.name for line in r.take_lines()] == ["bird.garbled"]
    assert r.phase is Phase.IDLE


def test_a_check_that_differs_reapplies_once_rewriting_the_differing_file() -> None:
    """The periodic check finds BIRD differing: configure with that file rewritten, then list it again."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.tick(31.0)
    r.next_action(31.0)
    r.receive(Answer(status(reconfigured="2")), 31.0)
    assert sent(r, 31.0) == "show route protocol vol1"
    r.receive(Answer(listing(nets("10.0.0.1/32", "10.9.9.9/32"))), 31.0)
    action = r.next_action(31.0)
    assert action == Send("configure", 30.0, frozenset({V4}))
    r.receive(Answer(reply(3)), 31.0)
    r.next_action(31.0)
    r.receive(Answer(status(reconfigured="3")), 31.0)
    assert sent(r, 31.0) == "show route protocol vol1", "what differed, in full"


def test_a_missing_protocol_is_reported_once() -> None:
    """BIRD without rhid's protocol: named once in the log and kept in missing_protocols."""
    r = made()
    r.tick(0.0)
    for answer in (
        status(),
        reply(3),
        status(reconfigured="2"),
        reply(9001, "syntax error, CF_SYM_UNDEFINED"),
    ):
        r.next_action(0.0)
        r.receive(Answer(answer), 0.0)
    assert r.missing_protocols == {"vol1"}
    assert "bird.protocol_missing" in [line.name for line in r.take_lines()]


def test_a_reply_with_nothing_in_flight_is_our_bug() -> None:
    """The executor feeding a reply while idle breaks the table: loud, not ignored."""
    with pytest.raises(AssertionError, match="no command in flight"):
        made().receive(Answer(status()), 0.0)


# ---- Hypothesis: the table against a simulated BIRD --------------------------------------------------

OUTCOMES = ["ok", "ok", "ok", "0004", "8002", "9001", "timeout", "refused", "garbage", "disconnect"]
PREFIXES = [N(f"10.0.0.{i}/32") for i in range(1, 6)]


@dataclass
class SimBird:
    """A BIRD that adopts the files at each accepted configure and reconfigures for a while after 0004."""

    routes: frozenset[Network] = frozenset()
    busy: int = 0  # show status answers left saying "reconfiguring"
    reconfigurations: int = 0
    queued: int = 0  # configures received while reconfiguring: what rhid must never cause
    outcomes: list[str] = field(default_factory=list)

    def answer(self, command: str, files: frozenset[Network]) -> Answer | Failure:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome in {"timeout", "refused", "disconnect", "garbage"}:
            trouble = Trouble.GARBLED if outcome == "garbage" else Trouble.UNAVAILABLE
            return Failure(trouble, outcome, slow=outcome == "timeout")
        if command == "show status":
            running = self.busy == 0
            self.busy = max(0, self.busy - 1)
            return Answer(status(running, str(self.reconfigurations)))
        if command == "configure":
            return Answer(self.configure(outcome, files))
        words = command.split()
        shown = self.routes & {N(words[2])} if len(words) == 5 else self.routes
        return Answer(reply(8001, "Network not found") if len(words) == 5 and not shown else listing(shown))

    def configure(self, outcome: str, files: frozenset[Network]) -> birdwire.Reply:
        if self.busy:
            self.queued += 1
        if outcome in {"8002", "9001"}:
            return reply(int(outcome), "refused")
        self.routes, self.reconfigurations = files, self.reconfigurations + 1
        if outcome == "0004":
            self.busy = 2
            return reply(4, "Reconfiguration in progress")
        return reply(3, "Reconfigured")


def drive(r: Reconciler, bird: SimBird, files: frozenset[Network], now: float) -> float:
    """One cycle: tick, then every action until the reconciler waits for the next one."""
    r.tick(now)
    for _ in range(50):
        action = r.next_action(now)
        if isinstance(action, Wait):
            if math.isinf(action.until):
                return now
            now = action.until
            continue
        r.receive(bird.answer(action.command, files), now)
        r.drop = False
    raise AssertionError("a cycle that never waits")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.frozensets(st.sampled_from(PREFIXES)), st.lists(st.sampled_from(OUTCOMES), max_size=6)),
        min_size=1,
        max_size=25,
    )
)
def test_bird_ends_equal_to_the_files_and_never_gets_a_queued_configure(
    steps: list[tuple[frozenset[Network], list[str]]],
) -> None:
    """Any sequence of file changes and BIRD replies (success, 0004, 8002, 9001, timeouts,
    disconnects, garbage): no configure reaches a reconfiguring BIRD, and once BIRD answers again
    it ends with exactly the files' routes and the reconciler in sync."""
    files: frozenset[Network] = frozenset()
    r = Reconciler({V4: files}, path="bird.ctl", verify_every=30.0, configure_timeout=30.0)
    bird = SimBird()
    now = 0.0
    for wanted, outcomes in steps:
        if wanted != files:
            r.files_written({V4: wanted}, {V4: wanted ^ files})
            files = wanted
        bird.outcomes = list(outcomes)
        now = drive(r, bird, files, now) + 1.0
        assert r.fatal is None
    bird.outcomes = []
    for _ in range(8):  # BIRD answers from now on; the backoff is at most 30 s
        now = drive(r, bird, files, now) + 31.0
    assert bird.queued == 0
    assert bird.routes == files
    assert r.in_sync
    assert not r.differing


def test_a_rewrite_without_moves_is_not_a_change() -> None:
    """files_written with nothing moved keeps BIRD in sync: no configure is due."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.files_written({V4: nets("10.0.0.1/32")}, {})
    assert r.in_sync


def test_no_channel_at_all_is_converged_without_a_listing() -> None:
    """A reconciler owning no file configures once and has nothing to list."""
    r = Reconciler({}, path="bird.ctl", verify_every=30.0, configure_timeout=30.0)
    r.tick(0.0)
    for answer in (status(), reply(3), status(reconfigured="2")):
        r.next_action(0.0)
        r.receive(Answer(answer), 0.0)
    assert r.next_action(0.0) == IDLE
    assert r.in_sync


def test_0005_while_already_reconfiguring_keeps_the_first_moment() -> None:
    """A BIRD seen reconfiguring keeps the moment it started, for the 'reconfiguring for N s' problem."""
    r = made()
    r.reconfiguring, r.reconfiguring_since = True, 0.0
    r.tick(5.0)
    for answer in (status(), reply(5, "queued"), status(running=False)):
        r.next_action(5.0)
        r.receive(Answer(answer), 5.0)
    r.last_sync = 15.0
    assert r.reconfiguring_since == 5.0, "show status said running at 5.0: a new reconfiguration began"
    r.tick(16.0)
    r.next_action(16.0)
    r.receive(Answer(status(running=False)), 16.0)
    assert r.long_reconfiguration() == pytest.approx(11.0)


def test_a_missing_protocol_is_logged_once_over_rounds_and_its_return_clears_it() -> None:
    """The same missing protocol on two checks: one bird.protocol_missing; listed again: no longer missing."""
    r = made()
    r.tick(0.0)
    undeclared = reply(9001, "syntax error, CF_SYM_UNDEFINED")
    for answer in (status(), reply(3), status(reconfigured="2"), undeclared):
        r.next_action(0.0)
        r.receive(Answer(answer), 0.0)
    r.tick(31.0)
    for answer in (status(reconfigured="2"), undeclared):
        r.next_action(31.0)
        r.receive(Answer(answer), 31.0)
    assert [line.name for line in r.take_lines()].count("bird.protocol_missing") == 1
    r.tick(62.0)
    for answer in (status(reconfigured="2"), listing(nets("10.0.0.1/32"))):
        r.next_action(62.0)
        r.receive(Answer(answer), 62.0)
    assert r.missing_protocols == set()


def test_a_channel_that_differed_is_listed_in_full_after_the_next_change() -> None:
    """After a mismatch, the next configure verifies that channel whole, not just the changed prefix."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.full_check = False
    r.differing = {V4: "missing 10.0.0.1/32"}
    r.files_written({V4: nets("10.0.0.1/32", "10.0.0.2/32")}, {V4: nets("10.0.0.2/32")})
    r.tick(1.0)
    for answer in (status(reconfigured="2"), reply(3), status(reconfigured="3")):
        r.next_action(1.0)
        r.receive(Answer(answer), 1.0)
    assert sent(r, 1.0) == "show route protocol vol1"


def test_a_stop_signal_abandons_the_round_and_forgets_the_sync() -> None:
    """An interrupted wait: logged, idle, and not in sync (the loop withdraws next)."""
    r = made()
    converge(r, nets("10.0.0.1/32"))
    r.take_lines()
    r.files_written({V4: nets("10.0.0.2/32")}, {V4: nets("10.0.0.1/32", "10.0.0.2/32")})
    r.tick(1.0)
    r.next_action(1.0)
    r.receive(Failure(Trouble.INTERRUPTED, "stop"), 1.0)
    assert [line.name for line in r.take_lines()] == ["bird.interrupted"]
    assert not r.in_sync
    assert r.phase is Phase.IDLE
