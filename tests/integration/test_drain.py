"""`rhid drain` / `rhid undrain` against real HAProxy and BIRD, proven at the BGP peer: a drain
takes a route out whatever its health, lasts across a restart and a reload, and `--wait` follows
the sessions still open on the route's proxies."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

RULES = "10.20.0.1 = all(b:be_app)\n10.20.0.2 = all(f:fe_www)\n"
ALL = {"10.20.0.1/32", "10.20.0.2/32"}


@pytest.fixture
def drained(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, {"be_app": ["web1"]}, ["fe_www"])
        instance.start_rhid(RULES, "--interval", "0.2", "--fall", "1")
        instance.wait_peer_routes(ALL)
        yield instance


def rhid(instance: Lab, *args: str) -> tuple[int, str]:
    done = instance.rhid(*args, "--bird-dir", str(instance.bird_dir))
    return done.returncode, done.stdout + done.stderr


def test_a_drain_lasts_across_a_restart_and_a_reload_until_undrained(drained: Lab) -> None:
    """Drained: gone from the peer although healthy, and still gone after a rhid restart and a
    reload; `rhid status` says why; undrained: back. A prefix no rule names is an error."""
    code, said = rhid(drained, "drain", "10.20.0.1", "--reason", "kernel upgrade")
    assert code == 0, said
    drained.wait_peer_routes(ALL - {"10.20.0.1/32"})
    document = json.loads(rhid(drained, "status", "10.20.0.1", "--json")[1])
    assert "drained since" in document["routes"][0]["reason"]
    assert "kernel upgrade" in document["routes"][0]["reason"]
    drained.stop("rhid")  # a stop withdraws everything; the new rhid must keep the drain
    drained.start_rhid(RULES, "--interval", "0.2", "--fall", "1", name="rhid2")
    drained.wait_peer_routes(ALL - {"10.20.0.1/32"})
    drained.procs["rhid2"].send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: any(e["event"] == "rules.reloaded" for e in drained.events("rhid2")), 10)
    assert drained.peer_routes() == ALL - {"10.20.0.1/32"}
    code, said = rhid(drained, "drain", "10.99.0.1")
    assert code == 1
    assert "no rule names vol1%10.99.0.1/32" in said
    code, said = rhid(drained, "undrain", "10.20.0.1")
    assert code == 0, said
    drained.wait_peer_routes(ALL)


def test_drain_wait_follows_the_open_sessions(drained: Lab) -> None:
    """--wait returns 0 once the held-open client connection closes, and 1 while it stays open."""
    client = socket.create_connection(("127.0.0.1", drained.ports["fe0"]))
    try:
        wait_for(
            "the session", lambda: "1 session" in rhid(drained, "drain", "10.20.0.2", "--wait", "0")[1], 5
        )
        code, said = rhid(drained, "drain", "10.20.0.2", "--wait", "1")
        assert code == 1, said
        assert "still open after 1 s" in said
    finally:
        client.close()
    code, said = rhid(drained, "drain", "10.20.0.2", "--wait", "10")
    assert code == 0, said
    assert "0 session(s) open on f:fe_www" in said
    drained.wait_peer_routes(ALL - {"10.20.0.2/32"})
