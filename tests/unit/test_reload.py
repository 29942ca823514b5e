"""C3: a valid reload moves only the routes of added, removed or changed rules."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from rhid import plan
from rhid.daemon import Daemon
from rhid.health import Health, ProxyState
from rhid.model import Channel, Proxy, ProxyKind
from rhid.reconcile import BirdSide
from rhid.rules import parse_rules
from rhid.settings import Settings

A = Proxy(ProxyKind.BACKEND, "a")
B = Proxy(ProxyKind.BACKEND, "b")
N = ipaddress.ip_network


def daemon_on(tmp_path: Path, rules: str) -> tuple[Daemon, Path]:
    """A daemon started on `rules` (written to a file it reloads from), with no peers."""
    rules_path = tmp_path / "r.cfg"
    rules_path.write_text(rules)
    (tmp_path / "rhid").mkdir()
    settings = Settings(str(rules_path), "/none", "/none", tmp_path / "rhid")
    return Daemon(settings, parse_rules(rules)), rules_path


def side_of(daemon: Daemon) -> BirdSide:
    """The daemon's BIRD side (a real one: these daemons are not dry runs)."""
    assert isinstance(daemon.bird, BirdSide)
    return daemon.bird


def write_plan(daemon: Daemon) -> None:
    """Plan from the daemon's rules and health, and write the files, as a cycle does."""
    decided = plan.decide(
        plan.initial(side_of(daemon).announced(), side_of(daemon).owned, 0.0),
        daemon.rules,
        daemon.states,
        plan.NO_INTENTS,
        0.0,
    )
    side_of(daemon).write(decided, 0.0)


def test_reload_keeps_state_and_moves_only_changed_routes(tmp_path: Path) -> None:
    """Kept rules keep FSM state, counters and routes; removed ones go; new ones wait for health."""
    daemon, rules_path = daemon_on(tmp_path, "10.0.0.1 = all(b:a)\n10.0.0.2 = all(b:b)\n")
    daemon.states = {
        A: ProxyState(Health.UP, up_count=7, since=1.0, last_status="UP", seen=True),
        B: ProxyState(Health.UP, up_count=3, since=2.0, last_status="UP", seen=True),
    }
    write_plan(daemon)
    assert set(side_of(daemon).written[Channel("vol1", 4)]) == {N("10.0.0.1/32"), N("10.0.0.2/32")}

    rules_path.write_text("10.0.0.1 = all(b:a)\n10.0.0.3 = all(b:c)\n10.0.0.4 = any(b:a)\n")
    daemon.reload(0.0)
    assert daemon.states == {A: ProxyState(Health.UP, up_count=7, since=1.0, last_status="UP", seen=True)}
    write_plan(daemon)
    assert set(side_of(daemon).written[Channel("vol1", 4)]) == {N("10.0.0.1/32"), N("10.0.0.4/32")}, (
        "kept .1, dropped .2 (rule removed), .3 waits for b:c, .4 follows a's known health"
    )


def test_a_route_a_reload_adds_is_named_since_the_reload(tmp_path: Path) -> None:
    """`rhid status` dates a route the reload added from the reload, and a kept route from the start."""
    daemon, rules_path = daemon_on(tmp_path, "10.0.0.1 = all(b:a)\n")
    started = daemon.started
    rules_path.write_text("10.0.0.1 = all(b:a)\n10.0.0.3 = all(b:c)\n")
    daemon.reload(started + 100.0)
    since = {str(route.prefix): moment for route, moment in daemon.plan.since.items()}
    assert since == {"10.0.0.1/32": started, "10.0.0.3/32": started + 100.0}


def test_failed_reload_changes_nothing(tmp_path: Path) -> None:
    """C2: a bad file at reload keeps the old rules and proxy states; the reload result says so."""
    daemon, rules_path = daemon_on(tmp_path, "10.0.0.1 = all(b:a)\n")
    daemon.states = {A: ProxyState(Health.UP, up_count=2)}
    before = daemon.rules
    rules_path.write_text("10.0.0.1 = all(b:a;b)\n")
    daemon.reload(0.0)
    assert daemon.rules is before
    assert daemon.states[A].up_count == 2
    assert str(daemon.reload_result).startswith("failed at ")
    assert "reload failed" in daemon.summary()
