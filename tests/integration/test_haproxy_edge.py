"""The HAProxy edge against a real HAProxy 2.6: what its replies, its socket and its reloads may do
without moving a route they do not concern. BIRD speaker and peer are real too; the peer's table is
what the network sees."""

from __future__ import annotations

import grp
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rhid.haproxy import fetch
from tests.integration.lab import HAPROXY, Lab, free_port, lab, wait_for

pytestmark = pytest.mark.integration

RULES = "10.60.0.1 = all(b:be_app)\n10.60.0.2 = all(b:be_b)\n"
BACKENDS = {"be_app": ["web1"], "be_b": ["web2"]}
BOTH = {"10.60.0.1/32", "10.60.0.2/32"}
NOBODY = 65534

# A web server whose every answer is `503 Dienst nicht verfügbar`, the reason phrase in UTF-8.
GERMAN_503 = """
import socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
while True:
    conn, _ = listener.accept()
    try:
        conn.settimeout(2)
        conn.recv(4096)
        conn.sendall("HTTP/1.0 503 Dienst nicht verfügbar\\r\\nContent-Length: 0\\r\\n\\r\\n".encode())
    except OSError:
        pass
    conn.close()
"""


def start_haproxy(instance: Lab, *, global_lines: list[str], sections: list[str]) -> None:
    """The lab's HAProxy config for BACKENDS, with lines added to `global` and sections appended."""
    config = instance.write_haproxy_config(BACKENDS, [])
    added = "".join(f"    {line}\n" for line in global_lines)
    text = config.read_text().replace("global\n", "global\n" + added, 1)
    config.write_text(text + "".join(section + "\n" for section in sections))
    instance.spawn("haproxy", [HAPROXY, "-f", str(config), "-db"])
    wait_for("HAProxy's stats socket", instance.haproxy_answers, 10)


def start_bird(instance: Lab) -> None:
    from rhid.rules import parse_rules  # noqa: PLC0415

    instance.write_speaker_config(parse_rules(RULES))
    instance.start_speaker()
    instance.start_peer()
    instance.wait_established()


def show_stat(instance: Lab) -> bytes:
    return fetch(str(instance.haproxy_socket), b"show stat -1 7 -1\n", 5.0)


@pytest.fixture
def edge_lab(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        instance.start_web("web1")
        instance.start_web("web2")
        yield instance


@pytest.mark.parametrize("where", ["show-info", "unnamed-backend-check"])
def test_non_ascii_text_in_a_reply_moves_no_route(edge_lab: Lab, where: str) -> None:
    """A UTF-8 `description` in HAProxy's global section, or a backend no rule names whose HTTP check
    fails with `503 Dienst nicht verfügbar`, leaves every named route announced at the peer well
    beyond --unreadable-down-after: only the fields rhid reads must be ASCII."""
    global_lines = ["node knot-1"]
    sections: list[str] = []
    if where == "show-info":
        global_lines.append("description Prüfknoten für die Straße")
    else:
        port = free_port()
        script = edge_lab.root / "german_503.py"
        script.write_text(GERMAN_503)
        edge_lab.spawn("german", [sys.executable, str(script), str(port)])
        sections.append(
            f"backend be_other\n    option httpchk GET /\n    server s1 127.0.0.1:{port} check inter 100ms"
        )
    start_haproxy(edge_lab, global_lines=global_lines, sections=sections)
    if where == "unnamed-backend-check":  # the reason is in the server rows before rhid's first poll
        wait_for("the failed check's reason", lambda: "verfügbar".encode() in show_stat(edge_lab), 10)
    start_bird(edge_lab)
    edge_lab.start_rhid(
        RULES, "--interval", "0.2", "--fall", "1", "--unreadable-down-after", "1", "--haproxy-events", "none"
    )
    edge_lab.wait_peer_routes(BOTH)
    time.sleep(2.5)  # beyond --unreadable-down-after (1 s) plus --fall polls
    assert edge_lab.peer_routes() == BOTH
    events = [e["event"] for e in edge_lab.events()]
    assert "haproxy.garbled" not in events
    assert "route.withdrawn" not in events


def rhid_status(instance: Lab) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "rhid", "status", "--json", "--bird-dir", str(instance.bird_dir)],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    document: dict[str, object] = json.loads(result.stdout)
    return document


# rhid as uid 0 without the capabilities that bypass file modes: a socket another uid owns, at a
# mode that leaves out rhid's groups, refuses it with EACCES, and everything root owns stays usable.
WITHOUT_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
               "--inh-caps", "-dac_override,-dac_read_search"]  # fmt: skip


def start_rhid_without_dac(instance: Lab, *extra: str) -> None:
    rules = instance.root / "hapee-rhi.cfg"
    rules.write_text(RULES)
    argv = [*WITHOUT_DAC, sys.executable, "-m", "rhid", "run", "-c", str(rules),
            "--haproxy-socket", str(instance.haproxy_socket), "--bird-socket", str(instance.ctl("speaker")),
            "--bird-dir", str(instance.bird_dir), "--log-format", "json", *extra]  # fmt: skip
    instance.spawn("rhid", argv, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_permission_denied_on_haproxys_socket_holds_the_routes(edge_lab: Lab) -> None:
    """A stats socket hardened to mode 0660 for a group rhid is not in (EACCES) is not a dead HAProxy:
    every route stays announced past --fall polls, one critical line and `rhid status` name the path,
    the mode and the group rhid needs; only --unreadable-down-after later does it count as down."""
    edge_lab.start_haproxy(BACKENDS, [])
    start_bird(edge_lab)
    start_rhid_without_dac(edge_lab, "--interval", "0.2", "--fall", "1", "--unreadable-down-after", "5",
                           "--haproxy-events", "none")  # fmt: skip
    edge_lab.wait_peer_routes(BOTH)
    nogroup = grp.getgrgid(NOBODY).gr_name
    os.chown(edge_lab.haproxy_socket, NOBODY, NOBODY)  # what a reload with `mode 660 uid ... gid ...` does
    edge_lab.haproxy_socket.chmod(0o660)
    hardened = time.monotonic()
    time.sleep(2.0)  # ten polls: --fall 1 is long past
    assert edge_lab.peer_routes() == BOTH, "EACCES withdrew routes while HAProxy serves"
    [line] = [e for e in edge_lab.events() if e["event"] == "haproxy.forbidden"]
    assert (line["level"], line["mode"], line["group"], line["needs_group"]) == (
        "critical",
        "0660",
        nogroup,
        nogroup,
    )
    assert line["path"] == str(edge_lab.haproxy_socket)
    haproxy = rhid_status(edge_lab)["haproxy"]
    assert isinstance(haproxy, dict)
    assert haproxy["state"] == "forbidden"
    [problem] = haproxy["problems"]
    assert str(edge_lab.haproxy_socket) in problem
    assert f"needs to be in group '{nogroup}'" in problem
    assert "mode 0660" in problem
    edge_lab.wait_peer_routes(set(), timeout=8)  # the unreadable timer (5 s) is the bound
    assert time.monotonic() - hardened >= 5.0
    os.chown(edge_lab.haproxy_socket, 0, 0)
    edge_lab.wait_peer_routes(BOTH)
    assert rhid_status(edge_lab)["haproxy"]["problems"] == []  # type: ignore[index]


def test_a_backend_renamed_by_a_reload_keeps_its_route_only_for_the_bound(edge_lab: Lab) -> None:
    """A master-worker reload that renames be_b: its route stays for --vanished-keep (2 s), a reload's
    gap, and is then withdrawn at the peer as for a backend never seen; the other route never moves."""
    edge_lab.start_haproxy(BACKENDS, [], master=True)
    start_bird(edge_lab)
    edge_lab.start_rhid(RULES, "--interval", "0.2", "--fall", "1", "--vanished-keep", "2",
                        "--haproxy-events", "none")  # fmt: skip
    edge_lab.wait_peer_routes(BOTH)
    reloaded = time.monotonic()
    edge_lab.reload_haproxy({"be_app": ["web1"], "be_c": ["web2"]}, [])
    wait_for(
        "rhid to see be_b vanish", lambda: "proxy.vanished" in [e["event"] for e in edge_lab.events()], 5
    )
    time.sleep(max(0.0, reloaded + 1.0 - time.monotonic()))
    assert edge_lab.peer_routes() == BOTH, "kept through the reload's gap"
    edge_lab.wait_peer_routes({"10.60.0.1/32"}, timeout=6)
    assert time.monotonic() - reloaded >= 2.0, "withdrawn before --vanished-keep"
    events = edge_lab.events()
    [expired] = [e for e in events if e["event"] == "proxy.vanished_too_long"]
    assert expired["counts_as"] == "down"
    assert [e["event"] for e in events].count("proxy.vanished") == 1


def test_auto_streams_a_declared_ring_not_one_it_cannot_tell_from_haproxys_own(edge_lab: Lab) -> None:
    """Two rings, neither named rhid: one with a `description` of its own (which HAProxy's internal
    rings also have) listed first, and `events`, which the global log line feeds. `auto` streams
    `events`, says why, and an event wakes a poll long before the 5 s interval."""
    config = edge_lab.write_haproxy_config(BACKENDS, [], ring=True)
    text = config.read_text().replace("log ring@rhid", "log ring@events")
    text = text.replace(
        "ring rhid\n",
        'ring traffic\n    description "traffic of every frontend"\n    format timed\n    size 65536\n'
        "ring events\n",
    )
    config.write_text(text)
    edge_lab.spawn("haproxy", [HAPROXY, "-f", str(config), "-db"])
    wait_for("HAProxy's stats socket", edge_lab.haproxy_answers, 10)
    start_bird(edge_lab)
    edge_lab.start_rhid(RULES, "--interval", "5", "--fall", "1")
    edge_lab.wait_peer_routes(BOTH)

    def streaming() -> dict[str, object] | None:
        return next((e for e in edge_lab.events() if e["event"] == "haproxy.events_streaming"), None)

    chosen = wait_for("the event stream", streaming, 5)
    assert chosen["ring"] == "events"
    assert chosen["chosen_as"] == "the first ring declared in HAProxy's configuration"
    edge_lab.haproxy("disable server be_b/s1")
    assert edge_lab.wait_peer_routes({"10.60.0.1/32"}, timeout=5) < 1.0
