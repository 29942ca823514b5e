"""`rhid probe`: its question, how it reads the daemon's answer, and what it loads to ask it."""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from rhid import cli, plan, probe, rules, settings, status
from rhid.health import Health, ProxyState
from rhid.model import Proxy, ProxyKind
from rhid.probe import (
    EXIT_ANNOUNCED,
    EXIT_CANNOT_TELL,
    EXIT_NO_RULE,
    EXIT_WITHDRAWN,
    decode,
    outcome,
    parse_target,
    request_line,
)

N = ipaddress.ip_network
APP = Proxy(ProxyKind.BACKEND, "be_app")


def test_a_target_is_written_as_the_rules_write_it() -> None:
    """An address is its host route, a table is optional, host bits and odd tables are usage errors."""
    assert parse_target("192.0.2.10") == (None, N("192.0.2.10/32"))
    assert parse_target("vol2%192.0.2.0/24") == ("vol2", N("192.0.2.0/24"))
    assert parse_target("2001:db8::1") == (None, N("2001:db8::1/128"))
    assert parse_target("t_1%2001:db8::/64") == ("t_1", N("2001:db8::/64"))
    for wrong in ["192.0.2.1/24", "192.0.2.300", "", "%192.0.2.1", "1x%192.0.2.1", "a b%192.0.2.1",
                  "vol1%vol2%192.0.2.1", "x" * 65 + "%192.0.2.1", "192.0.2.1; configure"]:  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError):
            parse_target(wrong)


def test_the_request_is_one_canonical_route_line() -> None:
    """The probe sends `route [TABLE%]PREFIX`, which the daemon's parser reads back as the same query."""
    assert request_line(parse_target("192.0.2.10")) == b"route 192.0.2.10/32\n"
    assert request_line(parse_target("vol2%10.0.0.0/8")) == b"route vol2%10.0.0.0/8\n"
    assert status.parse_request(b"route vol2%10.0.0.0/8\n") == status.RouteQuery(N("10.0.0.0/8"), "vol2")
    assert status.parse_request(b"route 192.0.2.10\n") == status.RouteQuery(N("192.0.2.10/32"))


def test_the_daemon_refuses_route_queries_it_cannot_read() -> None:
    """A route query with host bits, an odd or BIRD-keyword table, or no prefix is an error text."""
    for line in [b"route 192.0.2.1/24\n", b"route bgp%192.0.2.1\n", b"route a;b%192.0.2.1\n", b"route\n",
                 b"route 192.0.2.1 x\n"]:  # fmt: skip
        assert isinstance(status.parse_request(line), str), line


def answer(*routes: Mapping[str, object]) -> dict[str, object]:
    return {"prefix": "192.0.2.10/32", "table": None, "routes": list(routes)}


TARGET = (None, N("192.0.2.10/32"))


@pytest.mark.parametrize(
    ("announced", "code"), [(True, EXIT_ANNOUNCED), (False, EXIT_WITHDRAWN), (None, EXIT_CANNOT_TELL)]
)
def test_one_route_answers_with_its_decision(announced: bool | None, code: int) -> None:
    """Announced is 0, withdrawn 1, not planned yet 3; the line names the route, its state and why."""
    route = {"route": "vol1%192.0.2.10/32", "state": "x", "announced": announced, "reason": "why"}
    assert outcome(answer(route), TARGET) == (code, "vol1%192.0.2.10/32: x: why")


def test_no_route_or_several_is_exit_4() -> None:
    """No rule for the prefix (in the table asked) or a prefix in several tables: exit 4, saying which."""
    assert outcome(answer(), TARGET) == (
        EXIT_NO_RULE,
        "no rule names 192.0.2.10/32 (rhid check --json lists the routes)",
    )
    code, line = outcome(answer(), ("vol2", N("192.0.2.10/32")))
    assert (code, line.split(" (")[0]) == (EXIT_NO_RULE, "no rule names 192.0.2.10/32 in table vol2")
    two = answer({"route": "vol1%192.0.2.10/32"}, {"route": "vol2%192.0.2.10/32"})
    assert outcome(two, TARGET) == (
        EXIT_NO_RULE,
        "192.0.2.10/32 is in several tables (vol1%192.0.2.10/32, vol2%192.0.2.10/32): ask for one "
        "(rhid probe vol1%192.0.2.10/32)",
    )


@pytest.mark.parametrize(
    "reply",
    [None, [], "routes", {"error": "unknown request"}, {"routes": "x"}, {"routes": [1]}, {"problems": []}],
)
def test_anything_but_a_route_answer_is_cannot_tell(reply: object) -> None:
    """An error reply (an older rhid), a foreign document or nothing: exit 3, never 0 or 1."""
    code, line = outcome(reply, TARGET)
    assert code == EXIT_CANNOT_TELL
    assert line.startswith("the daemon")


def test_replies_are_decoded_or_none() -> None:
    """JSON in, the value out; empty or garbage is None."""
    assert decode(b'{"routes": []}\n') == {"routes": []}
    assert decode(b"") is None
    assert decode(b'{"routes": [') is None
    assert decode(b"\xff\xfe") is None


def test_the_daemon_answers_a_route_query_from_its_plan() -> None:
    """route_answer reads each matching route's decision in the plan, per table or in all of them."""
    ruleset = rules.parse_rules(
        "192.0.2.10 = all(b:be_app)\nvol2%192.0.2.10 = always\n192.0.2.11 = all(b:be_app)\n"
    )
    states = {APP: ProxyState(Health.DOWN, down_count=3, last_status="DOWN", seen=True)}
    decided = plan.decide(plan.EMPTY, ruleset, states, plan.NO_INTENTS, 0.0)
    one = status.route_answer(ruleset, decided, states, status.RouteQuery(N("192.0.2.10/32"), "vol1"))
    assert one == {
        "prefix": "192.0.2.10/32",
        "table": "vol1",
        "routes": [
            {
                "route": "vol1%192.0.2.10/32",
                "rule_line": 1,
                "state": "withdrawn",
                "announced": False,
                "reason": "all: b:be_app is down (HAProxy last said 'DOWN')",
            }
        ],
    }
    both = status.route_answer(ruleset, decided, states, status.RouteQuery(N("192.0.2.10/32")))
    assert [(r["route"], r["announced"]) for r in both["routes"]] == [
        ("vol1%192.0.2.10/32", False),
        ("vol2%192.0.2.10/32", True),
    ]
    none = status.route_answer(ruleset, decided, states, status.RouteQuery(N("192.0.2.0/24")))
    assert none["routes"] == []
    unplanned = status.route_answer(ruleset, plan.EMPTY, {}, status.RouteQuery(N("192.0.2.11/32")))
    assert unplanned["routes"][0]["announced"] is None
    assert outcome(unplanned, TARGET)[0] == EXIT_CANNOT_TELL


def test_its_defaults_are_rhid_runs() -> None:
    """The defaults the probe writes out (to load nothing else) are the daemon's own."""
    assert probe.DEFAULT_BIRD_DIR == settings.DEFAULT_BIRD_DIR
    assert probe.DEFAULT_RULES_PATH == settings.DEFAULT_RULES_PATH
    assert status.SOCKET_NAME == "rhid.sock"


@pytest.mark.parametrize(
    "argv",
    [
        ["192.0.2.10"],
        ["--bird-dir", "/run/x", "--timeout", "0.5", "vol2%192.0.2.0/24"],
        ["--standalone", "-c", "/etc/x.cfg", "--haproxy-socket", "/run/h.sock", "2001:db8::1"],
    ],
)
def test_the_fast_parser_and_rhid_clis_agree(argv: list[str]) -> None:
    """`rhid probe ...` run alone (rhid.entry) and through rhid.cli's parser read the same arguments."""
    alone = vars(probe.build_parser().parse_args(argv))
    through_cli = vars(cli.build_parser().parse_args(["probe", *argv]))
    assert through_cli == {"command": "probe", **alone}


def test_bad_timeouts_and_stray_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout must be in (0, 60]; -c or --haproxy-socket without --standalone is exit 2."""
    for value in ["0", "-1", "nan", "61", "soon"]:
        with pytest.raises(SystemExit) as exited:
            probe.build_parser().parse_args(["--timeout", value, "192.0.2.1"])
        assert exited.value.code == 2
    assert probe.main(["-c", "/etc/x.cfg", "192.0.2.1"]) == 2
    assert "go with --standalone" in capsys.readouterr().err


@pytest.fixture
def daemon_socket(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A control socket that answers one route query as an announcing daemon would; what it was asked."""
    path = tmp_path / "rhid.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(20)
    asked: list[bytes] = []
    reply = {"routes": [{"route": "vol1%192.0.2.10/32", "state": "announced", "announced": True}]}

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            asked.append(conn.recv(256))
            conn.sendall(json.dumps(reply).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path, asked
    finally:
        listener.close()
        thread.join(5)


def test_asking_the_daemon_loads_no_rule_compiler_daemon_or_logging(
    daemon_socket: tuple[Path, list[bytes]],
) -> None:
    """`rhid probe` (rhid.entry) gets its answer without importing pyparsing, the rules, the daemon,
    the CLI, the HAProxy or BIRD clients, structlog, or the error words of a failed connection."""
    code = (
        "import sys, json\n"
        "from rhid.entry import main\n"
        f"status = main(['probe', '--bird-dir', {str(daemon_socket[0].parent)!r}, '192.0.2.10'])\n"
        "print(json.dumps([status, sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    status_code, modules = json.loads(done.stdout.splitlines()[-1])
    assert status_code == 0
    assert done.stdout.startswith("vol1%192.0.2.10/32: announced")
    heavy = {"pyparsing", "structlog", "rhid.rules", "rhid.grammar", "rhid.daemon", "rhid.cli", "rhid.plan",
             "rhid.health", "rhid.haproxy", "rhid.bird", "rhid.status", "rhid.log", "rhid.stats",
             "rhid.sockets", "rhid.errors"}  # fmt: skip
    # (rhid.sockets and rhid.errors are loaded only to say why a connection failed)
    assert not heavy & set(modules), sorted(heavy & set(modules))
    assert "rhid.probe" in modules
    assert daemon_socket[1] == [b"route 192.0.2.10/32\n"]
