"""`rhid run` against BIRD 1.6's two daemons (Debian 12's bird 1.6.8: bird for IPv4, bird6 for
IPv6), each with a BGP session to a BIRD 2 peer, proven at the peer's table: the core scenarios of
test_run.py (start, backend down and up, frontend down, IPv6, a BIRD restarted, SIGTERM)."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, bird16_lab, bird16_programs, lab, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bird16_programs() is None, reason="BIRD 1.6 is missing: bash scripts/bird16.sh"),
]

INTERVAL = 0.2
FALL = 2
SLACK = 0.8
RULES = """\
10.16.0.1 = all(b:be_app)
10.16.0.2, 2001:db8:16::2 = all(f:fe_www)
2001:db8:16::3 = all(b:be_app)
vol2%10.16.0.4, vol2%2001:db8:16::4 = always
"""
BACKENDS = {"be_app": ["web1", "web2"]}
V4 = {"10.16.0.1/32", "10.16.0.2/32", "10.16.0.4/32"}
V6 = {"2001:db8:16::2/128", "2001:db8:16::3/128", "2001:db8:16::4/128"}
ALL = V4 | V6


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        bird16_lab(instance, RULES, BACKENDS, ["fe_www"])
        yield instance


def start(instance: Lab, *extra: str, name: str = "rhid") -> None:
    instance.start_rhid(
        RULES, "--interval", str(INTERVAL), "--fall", str(FALL), "--rise", "1", *extra, name=name
    )


def test_routes_follow_health_on_bird_and_bird6(story: Lab) -> None:
    """On BIRD 1.6 rhid finds both daemons from the greeting, writes each family's files, follows a
    frontend and a backend down and up in both families, shows each daemon in rhid status, and a
    stop marks both families' routes with 65535:0 (graceful shutdown: BIRD 1.6 carries per-route
    communities) before it withdraws them from both: all seen at the peer."""
    start(story)
    story.wait_peer_routes(ALL)
    dialect = [e for e in story.events() if e["event"] == "bird.dialect"]
    assert dialect, story.events()
    assert dialect[0]["bird"] == "BIRD 1.6", dialect
    assert "BIRD 1.6.8" in dialect[0]["why"]
    files = {path.name for path in story.bird_dir.glob("*.conf")}
    assert files == {"vol1.ipv4.conf", "vol1.ipv6.conf", "vol2.ipv4.conf", "vol2.ipv6.conf"}

    # a frontend paused: its rule's routes go from both daemons, and come back
    story.haproxy("disable frontend fe_www")
    story.wait_peer_routes(ALL - {"10.16.0.2/32", "2001:db8:16::2/128"})
    story.haproxy("enable frontend fe_www")
    story.wait_peer_routes(ALL)
    # every server of a backend disabled: withdrawn within fall polls, IPv4 and IPv6 alike
    for server in ("s1", "s2"):
        story.haproxy(f"disable server be_app/{server}")
    seconds = story.wait_peer_routes(ALL - {"10.16.0.1/32", "2001:db8:16::3/128"})
    assert seconds <= (FALL + 1) * INTERVAL + SLACK, f"withdrawal took {seconds:.3f} s"
    for server in ("s1", "s2"):
        story.haproxy(f"enable server be_app/{server}")
    story.wait_peer_routes(ALL)

    status = story.rhid("status", "--routes", "--json", "--bird-dir", str(story.bird_dir))
    document = json.loads(status.stdout)
    names = [daemon["name"] for daemon in document["bird"]["daemons"]]
    assert names == ["bird", "bird6"]
    assert all(daemon["state"] == "reachable" and daemon["in_sync"] for daemon in document["bird"]["daemons"])
    protocols = {route["prefix"]: route["protocol"] for route in document["routes"]}
    assert protocols["2001:db8:16::3/128"] == "vol1", "no _v6 on BIRD 1.6"
    assert status.returncode == 0, status.stdout
    text = story.rhid("status", "--bird-dir", str(story.bird_dir)).stdout
    assert "bird:    reachable, in sync" in text, text
    assert "bird6:   reachable, in sync" in text, text

    assert not [e for e in story.events() if e["level"] in {"error", "critical"}], story.events()
    # a stop: first the graceful shutdown (65535:0, RFC 8326) in both families, then the withdrawal
    story.procs["rhid"].send_signal(signal.SIGTERM)

    def marked() -> bool:
        output = story.birdc("peer", "show route all") or ""
        routes = re.split(r"\n(?=\S)", output)
        return all(
            any(block.startswith(prefix) and "(65535,0)" in block for block in routes)
            for prefix in ("10.16.0.4/32", "2001:db8:16::4/128")
        )

    wait_for("65535:0 on both families' routes at the peer", marked, 5)
    assert story.stop("rhid", timeout=20) == 0
    story.wait_peer_routes(set())
    assert all("route " not in path.read_text() for path in story.bird_dir.glob("*.conf"))
    confirmed = [
        e for e in story.events() if e["event"] == "daemon.stopping" and e.get("bird") == "confirmed"
    ]
    assert {e["socket"] for e in confirmed} == {str(story.ctl("speaker")), str(story.ctl("speaker6"))}


def test_only_the_daemon_whose_routes_moved_is_reconfigured(story: Lab) -> None:
    """A change of IPv4 routes alone sends configure to bird only; bird6's last reconfiguration
    stays as it was."""
    rules = "10.16.1.1 = all(b:be_app)\n2001:db8:16::9 = always\n"
    story.start_rhid(rules, "--interval", str(INTERVAL), "--fall", "1")
    story.wait_peer_routes({"10.16.1.1/32", "2001:db8:16::9/128"})
    time.sleep(1.1)
    bird6 = story.reconfigurations("speaker6")
    bird = story.reconfigurations("speaker")
    for server in ("s1", "s2"):
        story.haproxy(f"disable server be_app/{server}")
    story.wait_peer_routes({"2001:db8:16::9/128"})
    time.sleep(1.1)
    assert story.reconfigurations("speaker") > bird
    assert story.reconfigurations("speaker6") == bird6


def test_bird6_and_bird_restarted_under_rhid(story: Lab) -> None:
    """bird6 stopped: rhid says which daemon is unreachable, IPv4 changes still reach the peer;
    bird6 back: its routes are the current truth. The same for bird."""
    start(story)
    story.wait_peer_routes(ALL)
    story.stop("speaker6")
    story.haproxy("disable frontend fe_www")
    # bird still takes its change while bird6 is away; the peer drops bird6's session's routes
    story.wait_peer_routes(V4 - {"10.16.0.2/32"}, timeout=20)

    def problem() -> str | None:
        document = json.loads(story.rhid("status", "--json", "--bird-dir", str(story.bird_dir)).stdout)
        found = [p for p in document["problems"] if p.startswith("bird6 (")]
        return found[0] if found and "unreachable" in found[0] else None

    assert str(story.ctl("speaker6")) in wait_for("a PROBLEM naming bird6", problem, 10)
    summary = json.loads(story.rhid("status", "--json", "--bird-dir", str(story.bird_dir)).stdout)["status"]
    assert "bird reachable, bird6 unreachable" in summary, summary
    story.start_speaker16("speaker6")
    story.wait_established()
    story.wait_peer_routes(ALL - {"10.16.0.2/32", "2001:db8:16::2/128"})

    story.stop("speaker")
    story.haproxy("enable frontend fe_www")
    story.wait_peer_routes(V6, timeout=20)
    story.start_speaker16("speaker")
    story.wait_established()
    story.wait_peer_routes(ALL)


def test_sigterm_during_bird6_outage_withdraws_from_bird_and_says_what_bird6_missed(story: Lab) -> None:
    """A stop while bird6 is down: bird confirms its withdrawal, the files are all emptied (bird6
    reads them when it starts), and rhid exits 5 (not confirmed) within the stop's bound."""
    start(story)
    story.wait_peer_routes(ALL)
    story.stop("speaker6")
    started = time.monotonic()
    assert story.stop("rhid", signal.SIGTERM, timeout=20) == 5
    assert time.monotonic() - started < 12
    story.wait_peer_routes(set(), timeout=20)
    assert all("route " not in path.read_text() for path in story.bird_dir.glob("*.conf"))
    story.start_speaker16("speaker6")
    story.wait_established()
    time.sleep(1)
    assert story.peer_routes() == set(), "bird6 starts from the emptied files"


def test_rhid_withdraw_empties_both_daemons(story: Lab) -> None:
    """The unit's safety net on BIRD 1.6: after rhid is killed, `rhid withdraw` finds both daemons
    from the greeting, empties every file and has bird and bird6 confirm."""
    start(story)
    story.wait_peer_routes(ALL)
    story.stop("rhid", signal.SIGKILL)
    result = story.rhid(
        "withdraw", "--bird-dir", str(story.bird_dir),
        "--bird-socket", str(story.ctl("speaker")), "--bird6-socket", str(story.ctl("speaker6")),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6 route(s) withdrawn; BIRD reconfigured and confirmed" in result.stdout
    story.wait_peer_routes(set())
