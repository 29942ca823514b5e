"""Event wake-up: with a log ring, rhid reacts to HAProxy's own state changes at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

RULES = "10.90.0.1 = all(b:be_app)\n10.90.0.2 = all(b:be_b)\n"
BACKENDS = {"be_app": ["web1"], "be_b": ["web2"]}
BOTH = {"10.90.0.1/32", "10.90.0.2/32"}
SLOW = 5.0  # the polling interval: any reaction much faster than this came from the event stream


@pytest.fixture
def ringed(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [], master=True, ring=True)
        yield instance


def streaming(instance: Lab, name: str = "rhid") -> bool:
    return any(e["event"] == "haproxy.events_streaming" for e in instance.events(name))


def test_event_wakes_a_poll_long_before_the_interval(ringed: Lab) -> None:
    """With --interval 5 and fall 1, a disabled server is withdrawn well inside a second."""
    ringed.start_rhid(RULES, "--interval", str(SLOW), "--fall", "1")
    ringed.wait_peer_routes(BOTH)
    wait_for("the event stream", lambda: streaming(ringed), 5)
    ringed.haproxy("disable server be_b/s1")
    assert ringed.wait_peer_routes({"10.90.0.1/32"}, timeout=SLOW) < 1.0
    ringed.haproxy("enable server be_b/s1")
    assert ringed.wait_peer_routes(BOTH, timeout=SLOW) < 1.0
    stream = next(e for e in ringed.events() if e["event"] == "haproxy.events_streaming")
    assert stream["ring"] == "rhid", "detected without --haproxy-events"


def test_fall_three_takes_fast_polls_after_an_event(ringed: Lab) -> None:
    """With fall 3, the event starts the count and 0.1 s polls finish it: far below 3 intervals."""
    ringed.start_rhid(RULES, "--interval", str(SLOW), "--fall", "3")
    ringed.wait_peer_routes(BOTH)
    wait_for("the event stream", lambda: streaming(ringed), 5)
    ringed.stop("web2")  # a real check failure (inter 100ms fall 1)
    assert ringed.wait_peer_routes({"10.90.0.1/32"}, timeout=3 * SLOW) < 1.5


def test_stream_follows_an_haproxy_reload(ringed: Lab) -> None:
    """After an HAProxy reload the stream is reopened on the new worker and still wakes rhid."""
    ringed.start_rhid(RULES, "--interval", str(SLOW), "--fall", "1")
    ringed.wait_peer_routes(BOTH)
    wait_for("the event stream", lambda: streaming(ringed), 5)
    ringed.reload_haproxy(BACKENDS, [], ring=True)
    wait_for(
        "rhid to see the reload", lambda: any(e["event"] == "haproxy.reloaded" for e in ringed.events()), 10
    )
    wait_for("the new worker's checks", lambda: ringed.peer_routes() == BOTH, 5)
    ringed.haproxy("disable server be_app/s1")
    assert ringed.wait_peer_routes({"10.90.0.2/32"}, timeout=SLOW) < 1.0


def test_user_level_socket_falls_back_to_polling(ringed: Lab) -> None:
    """At level user HAProxy refuses the stream: rhid says so once and keeps polling."""
    ringed.start_rhid(RULES, "--user-level", "--interval", "0.2", "--fall", "1")
    ringed.wait_peer_routes(BOTH)
    wait_for(
        "the refusal", lambda: any(e["event"] == "haproxy.events_unavailable" for e in ringed.events()), 5
    )
    refusal = next(e for e in ringed.events() if e["event"] == "haproxy.events_unavailable")
    assert "Permission denied" in refusal["reason"]
    ringed.haproxy("disable server be_b/s1")
    ringed.wait_peer_routes({"10.90.0.1/32"})
