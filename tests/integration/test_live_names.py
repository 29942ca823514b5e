"""Rule names against a live HAProxy: `rhid check --haproxy-socket` and `--live` find each backend or
frontend a rule names that HAProxy lacks, with the closest name it has; the daemon warns of each
after a reload, and `rhid status` adds the closest name to its PROBLEM line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rhid.rules import parse_rules
from tests.integration.lab import Lab, lab, wait_for

pytestmark = pytest.mark.integration

BACKENDS = {"be_static": ["web1"], "be_app": ["web1"]}
TYPOS = """\
192.0.2.10 = all(b:be_sttic)
192.0.2.11 = all(b:be_app,f:fe_www)
192.0.2.12 = any(b:fe_www)  # a frontend named as a backend
192.0.2.13 = all(b:zz_nothing_alike)
192.0.2.14 = any(b:be_sttic,b:be_app)
"""
GOOD = "192.0.2.10 = all(b:be_static)\n192.0.2.11 = all(b:be_app,f:fe_www)\n"


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        instance.start_web("web1")
        instance.start_haproxy(BACKENDS, ["fe_www"])
        yield instance


def check(
    instance: Lab, rules: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`rhid check` on `rules`, as an operator runs it."""
    path = instance.root / "hapee-rhi.cfg"
    path.write_text(rules)
    return subprocess.run(
        [sys.executable, "-m", "rhid", "check", "-c", str(path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_check_names_each_proxy_haproxy_lacks_with_the_closest_it_has(haproxy: Lab) -> None:
    """A typo gets the close name, a frontend named as a backend gets f:, an unrelated name nothing;
    exit 1, each as FILE:LINE, and nothing on stdout."""
    done = check(haproxy, TYPOS, "--haproxy-socket", str(haproxy.haproxy_socket))
    path = haproxy.root / "hapee-rhi.cfg"
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{path}:1 (and line 5): b:be_sttic: no such backend; did you mean be_static?",
        f"{path}:3: b:fe_www: no such backend; HAProxy has a frontend fe_www: did you mean f:fe_www?",
        f"{path}:4: b:zz_nothing_alike: no such backend",
        f"{path}: 3 proxies not in HAProxy ({haproxy.haproxy_socket})",
    ]


def test_check_passes_when_haproxy_has_every_proxy(haproxy: Lab) -> None:
    """Every name present: exit 0, the summary and one line saying HAProxy has them all."""
    done = check(haproxy, GOOD, "--haproxy-socket", str(haproxy.haproxy_socket))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("OK: 2 rules, 2 routes (2 IPv4, 0 IPv6) in 1 table (vol1), 3 proxies referenced "
                             "(2 backends, 1 frontend)")  # fmt: skip
    assert lines[1].endswith(f": every proxy the rules name is in HAProxy ({haproxy.haproxy_socket})")


def test_live_uses_the_socket_rhid_run_would_use(haproxy: Lab) -> None:
    """--live finds the socket as `rhid run` does ($HAPEE_LB_SOCKET here), and reports the same."""
    done = check(haproxy, TYPOS, "--live", env={"HAPEE_LB_SOCKET": str(haproxy.haproxy_socket)})
    assert done.returncode == 1
    assert "b:be_sttic: no such backend; did you mean be_static?" in done.stderr


def test_json_carries_the_missing_names(haproxy: Lab) -> None:
    """--json: the compiled rules and, under live, each missing name with its lines and closest name."""
    done = check(haproxy, TYPOS, "--json", "--haproxy-socket", str(haproxy.haproxy_socket))
    assert done.returncode == 1
    live = json.loads(done.stdout)["live"]
    assert live["socket"] == str(haproxy.haproxy_socket)
    assert live["missing"][0] == {
        "kind": "backend",
        "name": "be_sttic",
        "lines": [1, 5],
        "did_you_mean": "be_static",
        "other_kind": False,
        "message": "b:be_sttic: no such backend; did you mean be_static?",
    }
    assert [item["name"] for item in live["missing"]] == ["be_sttic", "fe_www", "zz_nothing_alike"]


def test_a_master_cli_socket_and_a_dead_haproxy(tmp_path: Path) -> None:
    """The master CLI socket is asked through its worker (@1); an HAProxy that is gone is exit 3, one line."""
    with lab(tmp_path) as instance:
        instance.start_web("web1")
        instance.start_haproxy(BACKENDS, ["fe_www"], master=True)
        done = check(instance, TYPOS, "--haproxy-socket", str(tmp_path / "master.sock"))
        assert done.returncode == 1, done.stderr
        assert "b:be_sttic: no such backend; did you mean be_static?" in done.stderr
        instance.stop("haproxy")
        done = check(instance, TYPOS, "--haproxy-socket", str(instance.haproxy_socket))
        assert done.returncode == 3
        assert done.stderr.startswith("rhid: cannot ask HAProxy for its proxies: ")
        assert done.stderr.count("\n") == 1


def test_the_daemon_warns_after_a_reload_and_status_shows_the_closest_name(tmp_path: Path) -> None:
    """rhid run on a typo: `rhid status` exits 4 with a PROBLEM line; after a reload the daemon logs
    rules.no_such_proxy once per name with the closest name, which the PROBLEM line then carries;
    the fixed file reloaded: no warning, exit 0."""
    rules = "192.0.2.10 = all(b:be_sttic)\n192.0.2.11 = all(f:fe_www)\n"
    with lab(tmp_path) as instance:
        instance.start_web("web1")
        instance.start_haproxy(BACKENDS, ["fe_www"])
        instance.write_speaker_config(parse_rules(rules))
        instance.start_speaker()
        proc = instance.start_rhid(rules, "--interval", "0.2")

        def status(wanted: int) -> subprocess.CompletedProcess[str] | None:
            done = instance.rhid("status", "--bird-dir", str(instance.bird_dir))
            return done if done.returncode == wanted else None

        def count(event: str) -> int:
            return sum(1 for e in instance.events() if e["event"] == event)

        problem = "PROBLEM: b:be_sttic (line 1): HAProxy has no such proxy; it counts as down"
        done = wait_for("rhid status to say exit 4", lambda: status(4), 15)
        assert problem in done.stdout
        before = count("rules.no_such_proxy")  # (0: the daemon asks HAProxy's names at a reload)

        proc.send_signal(signal.SIGHUP)
        wait_for("the warning after the reload", lambda: count("rules.no_such_proxy") == before + 1, 10)
        assert count("rules.reloaded") == 1
        warnings = [e for e in instance.events() if e["event"] == "rules.no_such_proxy"][before:]
        assert [{k: v for k, v in e.items() if k != "timestamp"} for e in warnings] == [
            {
                "event": "rules.no_such_proxy",
                "proxy": "b:be_sttic",
                "lines": [1],
                "hint": "did you mean be_static?",
                "message": "b:be_sttic: no such backend; did you mean be_static?",
                "level": "warning",
            }
        ]
        done = wait_for("rhid status to say exit 4", lambda: status(4), 5)
        assert f"{problem}; did you mean be_static?\n" in done.stdout

        (instance.root / "hapee-rhi.cfg").write_text(GOOD.replace("b:be_app,", ""))
        proc.send_signal(signal.SIGHUP)
        done = wait_for("rhid status to say exit 0 (the reload done)", lambda: status(0), 10)
        assert count("rules.reloaded") == 2
        assert "PROBLEM" not in done.stdout
        assert count("rules.no_such_proxy") == before + 1, "HAProxy has every name now: nothing to say"
