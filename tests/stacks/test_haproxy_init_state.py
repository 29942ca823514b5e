"""rhid across a master-worker reload of an HAProxy whose servers start `init-state down` (3.1+).

Right after a start or reload such a backend reports DOWN while each of its checked servers is
still in its first check (INI): not known yet, not down. With --fall 1 a route must not move.
Runs on an HAProxy that takes `init-state`; scripts/stacks.sh runs it on HAProxy 3.2.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rhid.haproxy import fetch
from rhid.rules import parse_rules
from tests.integration.lab import HAPROXY, Lab, free_port, lab, wait_for

pytestmark = pytest.mark.integration

RULES = "10.90.0.1 = all(b:be_app)\n10.90.0.2 = all(b:be_b)\n"
BACKENDS = {"be_app": ["slow", "slow"], "be_b": ["slow"]}
BOTH = {"10.90.0.1/32", "10.90.0.2/32"}
CHECKS = dict.fromkeys(BACKENDS, "check inter 2s fall 1 rise 1 init-state down")
# Every health check takes a second to answer, so each server's first check after a reload lasts
# that long: without it the first server's check passes at once and the window of a backend DOWN
# with every server in INI is too short for a test to see.
HTTP_CHECK = "    option httpchk GET /\n    timeout check 3s\n"
SLOW_WEB = """
import socket, sys, threading, time
def answer(conn):
    try:
        conn.settimeout(5)
        conn.recv(4096)
        time.sleep(1.0)
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
    except OSError:
        pass
    conn.close()
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(64)
while True:
    threading.Thread(target=answer, args=(listener.accept()[0],), daemon=True).start()
"""


def write_config(instance: Lab) -> Path:
    """The lab's HAProxy config for BACKENDS with HTTP checks on every backend."""
    config = instance.write_haproxy_config(BACKENDS, [], CHECKS)
    config.write_text(config.read_text().replace("defaults\n", "defaults\n" + HTTP_CHECK, 1))
    return config


def haproxy_takes_init_state(tmp_path: Path) -> bool:
    """`haproxy -c`'s exit status (never its text: 3.x prints nothing on success)."""
    tmp_path.mkdir(exist_ok=True)
    config = write_config(Lab(tmp_path))
    return (
        subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, check=False).returncode == 0
    )


def first_check_rows(instance: Lab) -> set[tuple[str, str, str]]:
    """(proxy, status, check status) of be_app's servers and backend as HAProxy reports them now."""
    try:
        reply = fetch(str(instance.haproxy_socket), b"show stat\n", 1.0).decode()
    except Exception:  # the socket between the old worker and the new one
        return set()
    rows = set()
    for line in reply.splitlines():
        fields = line.split(",")
        if len(fields) > 36 and fields[0] == "be_app":
            rows.add((fields[1], fields[17], fields[36].lstrip("* ")))  # "* " while a check runs
    return rows


def test_a_reload_with_init_state_down_withdraws_nothing(tmp_path: Path) -> None:
    """A master-worker reload with `init-state down`: HAProxy reports be_app DOWN while its servers
    are in their first check (INI), and rhid with --fall 1 withdraws nothing at the peer."""
    if not haproxy_takes_init_state(tmp_path / "probe"):
        pytest.skip("this HAProxy has no `init-state` (3.1+)")
    with lab(tmp_path) as instance:
        script = tmp_path / "slow_web.py"
        script.write_text(SLOW_WEB)
        instance.spawn(
            "slow", [sys.executable, str(script), str(instance.ports.setdefault("slow", free_port()))]
        )
        config = write_config(instance)
        instance.spawn(
            "haproxy", [HAPROXY, "-W", "-S", str(tmp_path / "master.sock"), "-f", str(config), "-db"]
        )
        wait_for("HAProxy's stats socket", instance.haproxy_answers, 10)
        rules = parse_rules(RULES)
        instance.write_speaker_config(rules)
        instance.start_speaker()
        instance.start_peer()
        instance.wait_established()
        instance.start_rhid(RULES, "--interval", "0.1", "--fall", "1", "--rise", "1",
                            "--haproxy-events", "none")  # fmt: skip
        instance.wait_peer_routes(BOTH, timeout=20)
        time.sleep(1.0)
        assert not [e for e in instance.events() if e["event"] == "route.withdrawn"]

        write_config(instance)
        instance.procs["haproxy"].send_signal(signal.SIGUSR2)  # the master we started reloads
        seen_pending = False
        peer_views = []
        end = time.monotonic() + 5.0  # beyond `inter`: every first check has run
        while time.monotonic() < end:
            rows = first_check_rows(instance)
            backend = {status for name, status, _ in rows if name == "BACKEND"}
            servers = {check for name, _, check in rows if name != "BACKEND"}
            seen_pending |= backend == {"DOWN"} and servers == {"INI"}
            peer_views.append(instance.peer_routes())
            time.sleep(0.02)
        assert seen_pending, "HAProxy never showed be_app DOWN with every server in its first check"
        assert all(view == BOTH for view in peer_views), [v for v in peer_views if v != BOTH][:3]
        withdrawn = [e for e in instance.events() if e["event"] == "route.withdrawn"]
        assert withdrawn == [], withdrawn
