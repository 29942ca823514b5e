"""`rhid run` against real HAProxy and BIRD, proven at a BGP peer's table."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

INTERVAL = 0.2
FALL = 3
# A withdrawal must come within fall x interval plus one interval (the poll phase). Scheduling on a
# 2-core machine running HAProxy, two BIRDs, rhid and pytest adds some slack; BGP itself is ~1 ms.
SLACK = 0.6

RULES = """\
# the story's rules
10.10.0.1 = all(b:be_app)
10.10.0.2 = all(b:be_app,b:be_static)
10.10.0.3 = any(b:be_app,b:be_kill)
10.10.0.4 = all(b:be_kill)
10.10.0.5, 2001:db8:10::5 = all(f:fe_www)
vol2%10.10.0.6 = always
"""
BACKENDS = {"be_app": ["web1", "web2"], "be_static": ["web1"], "be_kill": ["web3"]}
ALL_ROUTES = {
    "10.10.0.1/32", "10.10.0.2/32", "10.10.0.3/32", "10.10.0.4/32", "10.10.0.5/32", "2001:db8:10::5/128",
    "10.10.0.6/32",
}  # fmt: skip


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, ["fe_www"])
        yield instance


def start(instance: Lab, *extra: str, name: str = "rhid") -> None:
    instance.start_rhid(
        RULES, "--interval", str(INTERVAL), "--fall", str(FALL), "--rise", "1", *extra, name=name
    )


def timed_withdrawal(instance: Lab, expected: set[str]) -> float:
    seconds = instance.wait_peer_routes(expected, timeout=10)
    assert seconds <= (FALL + 1) * INTERVAL + SLACK, f"withdrawal took {seconds:.3f} s"
    return seconds


def test_routes_follow_haproxy_health_at_the_peer(story: Lab) -> None:
    """Routes appear, withdraw on disable/check failure/frontend pause, return on enable, reach the peer."""
    start(story)
    story.wait_peer_routes(ALL_ROUTES)

    # every server of be_app disabled by the operator: exactly the rules that need be_app go
    for server in ("s1", "s2"):
        story.haproxy(f"disable server be_app/{server}")
    seconds = timed_withdrawal(story, ALL_ROUTES - {"10.10.0.1/32", "10.10.0.2/32"})
    # fall=3 means three down polls: it cannot be quicker than two intervals after the change
    assert seconds >= (FALL - 1) * INTERVAL - 0.05, f"withdrawn after {seconds:.3f} s: fall not honoured"

    for server in ("s1", "s2"):
        story.haproxy(f"enable server be_app/{server}")
    story.wait_peer_routes(ALL_ROUTES)

    # a real health-check failure: the only server of be_kill dies
    story.stop("web3")
    timed_withdrawal(story, ALL_ROUTES - {"10.10.0.4/32"})  # any(be_app, be_kill) keeps .3

    # a paused frontend withdraws its f: rule, IPv4 and IPv6 alike
    story.haproxy("disable frontend fe_www")
    timed_withdrawal(story, ALL_ROUTES - {"10.10.0.4/32", "10.10.0.5/32", "2001:db8:10::5/128"})
    story.haproxy("enable frontend fe_www")
    story.wait_peer_routes(ALL_ROUTES - {"10.10.0.4/32"})

    events = story.events()
    withdrawn = [e for e in events if e["event"] == "route.withdrawn"]
    assert {e["prefix"] for e in withdrawn} == {
        "10.10.0.1/32", "10.10.0.2/32", "10.10.0.4/32", "10.10.0.5/32", "2001:db8:10::5/128",
    }  # fmt: skip
    by_prefix = {e["prefix"]: e for e in withdrawn}
    assert by_prefix["10.10.0.1/32"]["rule_line"] == 2
    assert "b:be_app is down (HAProxy last said 'DOWN')" in by_prefix["10.10.0.1/32"]["reason"]
    assert "f:fe_www is down (HAProxy last said 'PAUSED')" in by_prefix["10.10.0.5/32"]["reason"]
    assert not [e for e in events if e["level"] == "error"], events

    # SIGTERM withdraws everything (default --on-stop withdraw) and exits 0
    assert story.stop("rhid") == 0
    story.wait_peer_routes(set())
    assert all(path.read_text().count("route ") == 0 for path in story.bird_dir.glob("*.conf")), (
        "include files still list routes"
    )


def test_bird_restarted_under_rhid_gets_the_right_routes(story: Lab) -> None:
    """BIRD stopped, health changes meanwhile, BIRD back: the peer sees the current truth."""
    start(story)
    story.wait_peer_routes(ALL_ROUTES)
    story.stop("speaker")
    story.haproxy("disable server be_static/s1")
    wait_for(
        "rhid to rewrite the files while BIRD is down",
        lambda: "10.10.0.2/32" not in (story.bird_dir / "vol1.ipv4.conf").read_text(),
        5,
    )
    story.start_speaker()
    story.wait_established()
    story.wait_peer_routes(ALL_ROUTES - {"10.10.0.2/32"})
    # rhid reconnects within a poll of BIRD's return and checks what BIRD has

    def reachable_again() -> bool:
        events = [e["event"] for e in story.events()]
        return "bird.reachable" in events[events.index("bird.unreachable") :]

    wait_for("rhid to see BIRD again", reachable_again, 5)


def test_restarting_rhid_does_not_withdraw_healthy_routes(story: Lab) -> None:
    """rhid killed and started again: the peer never loses a healthy route, and a dead one goes."""
    start(story)
    story.wait_peer_routes(ALL_ROUTES)
    story.stop("rhid", signal.SIGKILL)
    story.haproxy("disable server be_kill/s1")
    start(story, name="rhid2")
    # watch the peer through the new process's first polls: nothing healthy may blink
    deadline = time.monotonic() + (FALL + 2) * INTERVAL
    while time.monotonic() < deadline:
        assert ALL_ROUTES - {"10.10.0.4/32"} <= story.peer_routes()
    story.wait_peer_routes(ALL_ROUTES - {"10.10.0.4/32"})
    announced = [e for e in story.events("rhid2") if e["event"] == "route.announced"]
    assert announced == [], "routes held from the files must not be re-announced"


def test_on_stop_hold_leaves_routes(story: Lab) -> None:
    """With --on-stop hold, SIGTERM exits 0 and BIRD keeps announcing."""
    start(story, "--on-stop", "hold")
    story.wait_peer_routes(ALL_ROUTES)
    assert story.stop("rhid") == 0
    time.sleep(3 * INTERVAL)
    assert story.peer_routes() == ALL_ROUTES


def test_haproxy_death_withdraws_after_fall_polls(story: Lab) -> None:
    """HAProxy killed: every poll fails, counts as down, and every health-bound route goes."""
    start(story)
    story.wait_peer_routes(ALL_ROUTES)
    story.stop("haproxy", signal.SIGKILL)
    timed_withdrawal(story, {"10.10.0.6/32"})  # only `always` stays
    unreachable = [e for e in story.events() if e["event"] == "haproxy.unreachable"]
    assert len(unreachable) == 1, "one event per transition, not one per failed poll"
    assert "connection refused" in unreachable[0]["reason"]


def test_invalid_rules_exit_before_touching_bird(tmp_path: Path) -> None:
    """A bad rule file makes `rhid run` exit 1 with the position, and writes no include file."""
    with lab(tmp_path) as instance:
        proc = instance.start_rhid("10.0.0.1/24 = all(b:x)\n")
        assert proc.wait(10) == 1
        assert "hapee-rhi.cfg:1:1: 10.0.0.1/24 has host bits set" in instance.log("rhid")
        assert not instance.bird_dir.exists()


def test_master_cli_socket_is_detected(tmp_path: Path) -> None:
    """Given HAProxy's master CLI socket, rhid prefixes @1 and routes still follow health."""
    rules = "10.20.0.1 = all(b:be_app)\n"
    with lab(tmp_path) as instance:
        standard_lab(instance, rules, {"be_app": ["web1"]}, [], master=True)
        instance.start_rhid(rules, "--master", "--interval", "0.2", "--fall", "1")
        instance.wait_peer_routes({"10.20.0.1/32"})
        instance.haproxy("disable server be_app/s1")
        instance.wait_peer_routes(set())


def test_a_dry_run_beside_the_live_rhid_logs_what_it_would_do_and_touches_nothing(story: Lab) -> None:
    """--dry-run next to the running rhid: through a backend failure it logs the withdrawal it would
    make, while the files, BIRD's configures and the peer stay the live rhid's."""
    start(story)
    story.wait_peer_routes(ALL_ROUTES)
    files = {path.name: path.read_text() for path in story.bird_dir.glob("*.conf")}
    start(story, "--dry-run", name="dry")
    wait_for(
        "the dry run's first plan", lambda: "daemon.ready" in [e["event"] for e in story.events("dry")], 10
    )
    story.stop("rhid", signal.SIGKILL)  # the live rhid goes: nothing writes the files now but a dry run could
    reconfigured = story.reconfigurations("speaker")  # BIRD's log: show status's time moves by a ms
    story.haproxy("disable server be_kill/s1")

    def would_withdraw() -> list[str]:
        return [str(e["prefix"]) for e in story.events("dry") if e["event"] == "route.would_withdraw"]

    wait_for("the withdrawal it would make", lambda: would_withdraw() == ["10.10.0.4/32"], 10)
    assert {path.name: path.read_text() for path in story.bird_dir.glob("*.conf")} == files
    assert story.peer_routes() == ALL_ROUTES, "nothing reached BIRD"
    assert not [e for e in story.events("dry") if str(e["event"]).startswith(("bird.", "files."))]
    assert (story.bird_dir / "dry-run" / "rhid.sock").exists(), "its own rhid status socket"
    assert reconfigured, "the live rhid's configures are in BIRD's log"
    assert story.reconfigurations("speaker") == reconfigured, "no configure was sent"
