"""The policies that keep rhid from making an outage worse, proven at a BGP peer's table: graceful
shutdown (65535:0 first, then the withdrawal), flap damping (a flapping backend flaps the prefix a
few times, then not, then the route comes back), the blast-radius guard (a shared backend down
holds every route for the hold; a backend only two routes use withdraws them at once)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from tests.integration.lab import Lab, NotifyListener, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

GSHUT = "(65535,0)"


def peer_communities(instance: Lab) -> dict[str, set[str]]:
    """Each prefix the peer has, with the BGP communities it carries (`show route all`)."""
    found: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (instance.birdc("peer", "show route all") or "").splitlines():
        head = re.match(r"^(\S+/\d+)\s", line)
        if head:
            current = found.setdefault(head.group(1), set())
        elif current is not None and "BGP.community:" in line:
            current.update(re.findall(r"\(\d+,\d+\)", line))
    return found


def peer_changes(instance: Lab) -> tuple[int, int]:
    """How many announcements and withdrawals the peer has received on its session so far."""
    text = instance.birdc("peer", "show protocols all downlink") or ""
    updates = re.search(r"Import updates:\s+(\d+)", text)
    withdraws = re.search(r"Import withdraws:\s+(\d+)", text)
    assert updates, text
    assert withdraws, text
    return int(updates.group(1)), int(withdraws.group(1))


def streaming(instance: Lab, name: str = "rhid") -> bool:
    return any(e["event"] == "haproxy.events_streaming" for e in instance.events(name))


# ---- graceful shutdown ----------------------------------------------------------------------------

GS_RULES = "10.40.0.1 = all(b:be_app)\n10.40.0.2 = all(b:be_b)\n"
GS_BOTH = {"10.40.0.1/32", "10.40.0.2/32"}
GS_SECONDS = 3.0


def test_a_stop_shows_the_peer_65535_0_first_then_withdraws_after_the_delay(tmp_path: Path) -> None:
    """SIGTERM: the peer sees both routes marked at once, one that turns unhealthy leaves at once,
    the other after --graceful-shutdown; systemd is asked to wait for it; exit 0."""
    with lab(tmp_path) as instance:
        standard_lab(instance, GS_RULES, {"be_app": ["web1"], "be_b": ["web2"]}, [])
        notify = NotifyListener(tmp_path / "notify.sock")
        try:
            instance.start_rhid(
                GS_RULES, "--interval", "0.2", "--fall", "1", "--graceful-shutdown", str(GS_SECONDS),
                env={"NOTIFY_SOCKET": str(notify.path)},
            )  # fmt: skip
            instance.wait_peer_routes(GS_BOTH)
            assert peer_communities(instance) == {prefix: set() for prefix in GS_BOTH}, "plain until the stop"
            stopped = time.monotonic()
            instance.procs["rhid"].send_signal(signal.SIGTERM)
            wait_for(
                "65535:0 on both routes at the peer",
                lambda: peer_communities(instance) == {prefix: {GSHUT} for prefix in GS_BOTH},
                2.0,
            )
            marked = time.monotonic() - stopped
            instance.haproxy("disable server be_b/s1")  # unhealthy during the graceful shutdown
            instance.wait_peer_routes({"10.40.0.1/32"}, timeout=1.5)
            assert time.monotonic() - stopped < GS_SECONDS, "an unhealthy route is withdrawn at once"
            assert peer_communities(instance) == {"10.40.0.1/32": {GSHUT}}
            instance.wait_peer_routes(set(), timeout=GS_SECONDS + 5)
            gone = time.monotonic() - stopped
            assert instance.procs["rhid"].wait(10) == 0
            lines = notify.lines()
        finally:
            notify.close()
    assert marked < 1.0, f"marked after {marked:.2f} s"
    assert GS_SECONDS - 0.1 <= gone <= GS_SECONDS + 1.5, f"withdrawn {gone:.2f} s after SIGTERM"
    assert "STOPPING=1" in lines
    assert f"EXTEND_TIMEOUT_USEC={int((GS_SECONDS + 15) * 1e6)}" in lines, lines
    events = instance.events()
    assert sorted(e["prefix"] for e in events if e["event"] == "route.graceful_shutdown") == sorted(GS_BOTH)
    withdrawn = {e["prefix"]: e["reason"] for e in events if e["event"] == "route.withdrawn"}
    assert withdrawn["10.40.0.2/32"].startswith("all: b:be_b is down")
    assert withdrawn["10.40.0.1/32"] == "rhid stopping (--on-stop withdraw)"


def test_a_second_sigterm_cuts_the_graceful_shutdown_short(tmp_path: Path) -> None:
    """Two stop signals: the routes leave the peer at once, not after the delay."""
    with lab(tmp_path) as instance:
        standard_lab(instance, GS_RULES, {"be_app": ["web1"], "be_b": ["web2"]}, [])
        instance.start_rhid(GS_RULES, "--interval", "0.2", "--graceful-shutdown", "30")
        instance.wait_peer_routes(GS_BOTH)
        instance.procs["rhid"].send_signal(signal.SIGTERM)
        wait_for("65535:0 at the peer", lambda: GSHUT in str(peer_communities(instance)), 2.0)
        instance.procs["rhid"].send_signal(signal.SIGTERM)
        assert instance.wait_peer_routes(set(), timeout=5) < 2.0
        assert instance.procs["rhid"].wait(10) == 0


# ---- flap damping ---------------------------------------------------------------------------------

FLAP_RULES = "10.41.0.1 = all(b:be_flap)\n10.41.0.2 = all(b:be_calm)\n"
FLAP_BOTH = {"10.41.0.1/32", "10.41.0.2/32"}
HALF_LIFE = 5.0
MAX_SUPPRESS = 15.0


def flap(instance: Lab, seconds: float, every: float = 0.3) -> float:
    """Disable and enable be_flap's server every `every` seconds for `seconds`, ending enabled:
    the time of the last change."""
    end = time.monotonic() + seconds
    enabled = True
    while time.monotonic() < end:
        enabled = not enabled
        instance.haproxy(f"{'enable' if enabled else 'disable'} server be_flap/s1")
        time.sleep(every)
    if not enabled:
        instance.haproxy("enable server be_flap/s1")
    return time.monotonic()


def test_a_backend_flapping_every_0_3_s_is_damped_then_reused_at_the_peer(tmp_path: Path) -> None:
    """Without damping the peer sees every flap; with it, three withdrawals and two returns at most
    in 20 s, then the route stays out while its backend is up, then comes back within
    --damping-max-suppress."""
    with lab(tmp_path) as instance:
        standard_lab(instance, FLAP_RULES, {"be_flap": ["web1"], "be_calm": ["web2"]}, [], ring=True)
        fast = ("--interval", "0.2", "--fall", "1", "--rise", "1", "--graceful-shutdown", "0")
        # the baseline: the same flapping, undamped, reaches the peer flap by flap
        instance.start_rhid(FLAP_RULES, *fast, "--damping", "off", name="undamped")
        instance.wait_peer_routes(FLAP_BOTH)
        wait_for("the event stream", lambda: streaming(instance, "undamped"), 5)
        before = peer_changes(instance)
        flap(instance, 4.0)
        instance.wait_peer_routes(FLAP_BOTH)
        undamped = [after - was for after, was in zip(peer_changes(instance), before, strict=True)]
        assert instance.stop("undamped") == 0
        instance.wait_peer_routes(set())

        instance.start_rhid(
            FLAP_RULES, *fast, "--damping-half-life", str(HALF_LIFE),
            "--damping-max-suppress", str(MAX_SUPPRESS),
        )  # fmt: skip
        instance.wait_peer_routes(FLAP_BOTH)
        wait_for("the event stream", lambda: streaming(instance), 5)
        before = peer_changes(instance)
        ended = flap(instance, 20.0)
        time.sleep(1.0)  # be_flap is up again: only damping keeps the route out now
        updates, withdraws = (after - was for after, was in zip(peer_changes(instance), before, strict=True))
        assert instance.peer_routes() == {"10.41.0.2/32"}, "suppressed while its backend is up"
        status = instance.rhid("status", "10.41.0.1", "--bird-dir", str(instance.bird_dir))
        assert "flap damping: withdrawn" in status.stdout
        instance.wait_peer_routes(FLAP_BOTH, timeout=MAX_SUPPRESS + 5)
        reused = time.monotonic() - ended
    assert undamped[1] >= 5, f"the undamped baseline flapped only {undamped} times at the peer"
    assert withdraws == 3, f"{withdraws} withdrawals at the peer"  # suppressed at the third
    assert updates == 2, f"{updates} announcements at the peer"
    assert MAX_SUPPRESS - 4.0 <= reused <= MAX_SUPPRESS + 2.0, f"reused {reused:.1f} s after the flapping"
    events = instance.events()
    assert [e["prefix"] for e in events if e["event"] == "route.damped"] == ["10.41.0.1/32"]
    assert [e["prefix"] for e in events if e["event"] == "route.reused"] == ["10.41.0.1/32"]
    assert not [e for e in events if e.get("prefix") == "10.41.0.2/32" and e["event"] == "route.withdrawn"]


# ---- the blast-radius guard -------------------------------------------------------------------------

GUARD_RULES = "".join(f"10.42.0.{i} = all(b:be_shared)\n" for i in range(1, 19)) + "".join(
    f"10.42.0.{i} = all(b:be_shared,b:be_two)\n" for i in (19, 20)
)
TWENTY = {f"10.42.0.{i}/32" for i in range(1, 21)}
HOLD = 4.0


def test_the_guard_holds_a_shared_backends_routes_but_not_two_routes_of_their_own(tmp_path: Path) -> None:
    """be_two down withdraws its 2 routes at once; be_shared down keeps all 20 at the peer, marked,
    for --guard-hold (a PROBLEM in rhid status), then withdraws them; `rhid guard release` at once."""
    with lab(tmp_path) as instance:
        standard_lab(instance, GUARD_RULES, {"be_shared": ["web1"], "be_two": ["web2"]}, [])
        instance.start_rhid(
            GUARD_RULES, "--interval", "0.2", "--fall", "1", "--guard-hold", str(HOLD),
            "--damping", "off", "--graceful-shutdown", "0",
        )  # fmt: skip
        instance.wait_peer_routes(TWENTY)
        instance.haproxy("disable server be_two/s1")
        two = instance.wait_peer_routes(TWENTY - {"10.42.0.19/32", "10.42.0.20/32"}, timeout=5)
        instance.haproxy("enable server be_two/s1")
        instance.wait_peer_routes(TWENTY)

        instance.haproxy("disable server be_shared/s1")
        disabled = time.monotonic()
        wait_for(
            "the held routes marked at the peer",
            lambda: peer_communities(instance) == {prefix: {GSHUT} for prefix in TWENTY},
            2.0,
        )
        status = instance.rhid("status", "--bird-dir", str(instance.bird_dir))
        assert time.monotonic() - disabled < HOLD - 1, "the status was asked during the hold"
        instance.wait_peer_routes(set(), timeout=HOLD + 5)
        held = time.monotonic() - disabled

        instance.haproxy("enable server be_shared/s1")
        instance.wait_peer_routes(TWENTY)
        assert peer_communities(instance) == {prefix: set() for prefix in TWENTY}, "plain again"
        instance.haproxy("disable server be_shared/s1")
        wait_for("the hold", lambda: "guard.holding" in [e["event"] for e in instance.events()][-40:], 2.0)
        released = instance.rhid("guard", "release", "--bird-dir", str(instance.bird_dir))
        asked = time.monotonic()
        instance.wait_peer_routes(set(), timeout=HOLD)
        after_release = time.monotonic() - asked
        nothing = instance.rhid("guard", "release", "--bird-dir", str(instance.bird_dir))
    assert two < 1.5, f"the two routes of be_two took {two:.2f} s"
    assert status.returncode == 4, status.stdout
    assert (
        "PROBLEM: the blast-radius guard holds 20 route(s) announced that health would withdraw"
        in status.stdout
    )
    assert HOLD - 0.2 <= held <= HOLD + 1.5, f"withdrawn {held:.2f} s after the backend went down"
    assert released.returncode == 0, released.stderr
    assert released.stdout.startswith("rhid: the guard released 20 routes (vol1%10.42.0.1/32,")
    assert after_release < 1.5, f"withdrawn {after_release:.2f} s after rhid guard release"
    assert (nothing.returncode, nothing.stdout) == (0, "rhid: the guard holds nothing\n")
    events = instance.events()
    holding = [e for e in events if e["event"] == "guard.holding"]
    assert [(e["level"], e["count"]) for e in holding] == [("critical", 20), ("critical", 20)]
    assert holding[0]["reasons"][0].startswith("18 routes: all: b:be_shared is down")
    why = [e["why"] for e in events if e["event"] == "guard.released"]
    assert why == [
        f"held for --guard-hold {HOLD:g} s: the condition outlasted the hold",
        "rhid guard release",
    ]
