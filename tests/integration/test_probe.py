"""`rhid probe` against real HAProxy and BIRD: it answers what the network sees (the BGP peer's
table), from the daemon, and with --standalone from one HAProxy poll without a daemon or BIRD."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

RULES = """\
192.0.2.10 = all(b:be_app)
192.0.2.11 = any(b:be_app,f:fe_www)
2001:db8::12 = all(f:fe_www)
192.0.2.13, vol2%192.0.2.13 = always
"""
BACKENDS = {"be_app": ["web1"]}
ALL = {"192.0.2.10/32", "192.0.2.11/32", "2001:db8::12/128", "192.0.2.13/32"}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, ["fe_www"])
        yield instance


def probe(instance: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """`rhid probe` as keepalived's vrrp_script runs it, against this lab's daemon."""
    return instance.rhid("probe", "--bird-dir", str(instance.bird_dir), *args)


def standalone(instance: Lab, *args: str, rules: str = RULES) -> subprocess.CompletedProcess[str]:
    """`rhid probe --standalone` against this lab's HAProxy, with its own rule file."""
    path = instance.root / "standalone.cfg"
    path.write_text(rules)
    return instance.rhid(
        "probe", "--standalone", "-c", str(path), "--haproxy-socket", str(instance.haproxy_socket), *args
    )


def test_probe_follows_the_route_the_peer_sees(node: Lab) -> None:
    """Exit 0 while the peer has the route, 1 once it is withdrawn there, 0 again on its return."""
    node.start_rhid(RULES, "--interval", "0.2", "--fall", "2")
    node.wait_peer_routes(ALL)
    done = probe(node, "192.0.2.10")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "vol1%192.0.2.10/32: announced: all: b:be_app is up (HAProxy last said 'UP')\n"

    node.haproxy("disable server be_app/s1")
    node.wait_peer_routes(ALL - {"192.0.2.10/32"})
    done = probe(node, "vol1%192.0.2.10/32")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("vol1%192.0.2.10/32: withdrawn: all: b:be_app is down"), done.stdout
    assert probe(node, "192.0.2.11").returncode == 0, "any(): the frontend still carries it"
    assert probe(node, "vol2%192.0.2.13").returncode == 0, "always, in its own table"

    node.haproxy("enable server be_app/s1")
    node.wait_peer_routes(ALL)
    assert probe(node, "vol1%192.0.2.10").returncode == 0, "the plan is ahead of the peer, never behind"


def test_probe_exit_codes_for_questions_without_one_answer(node: Lab) -> None:
    """A prefix no rule names, or named in two tables, is exit 4; no daemon is exit 3; each one line."""
    node.start_rhid(RULES, "--interval", "0.2")
    node.wait_peer_routes(ALL)
    for args, words in [
        (["192.0.2.99"], "no rule names 192.0.2.99/32"),
        (["vol2%192.0.2.11"], "no rule names 192.0.2.11/32 in table vol2"),
        (["192.0.2.13"], "192.0.2.13/32 is in several tables (vol1%192.0.2.13/32, vol2%192.0.2.13/32)"),
    ]:
        done = probe(node, *args)
        assert done.returncode == 4, (args, done.stdout, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith(f"rhid: {words}"), done.stderr
        assert done.stderr.count("\n") == 1
    assert probe(node, "2001:db8::12").returncode == 0, "IPv6, by address"
    node.stop("rhid")
    done = probe(node, "vol1%192.0.2.10")
    assert done.returncode == 3
    assert done.stderr.startswith("rhid: cannot reach the daemon at "), done.stderr
    assert done.stderr.count("\n") == 1


def test_standalone_probe_needs_neither_daemon_nor_bird(node: Lab) -> None:
    """--standalone: one poll of the real HAProxy decides at once (fall 1), with no rhid running."""
    node.stop("speaker")
    node.stop("peer")
    done = standalone(node, "vol1%192.0.2.10")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "vol1%192.0.2.10/32: announced: all: b:be_app is up (HAProxy last said 'UP')\n"
    node.haproxy("disable server be_app/s1")
    done = standalone(node, "vol1%192.0.2.10")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("vol1%192.0.2.10/32: withdrawn: all: b:be_app is down"), done.stdout
    assert standalone(node, "192.0.2.11").returncode == 0
    node.haproxy("disable frontend fe_www")
    assert standalone(node, "192.0.2.11").returncode == 1, "any(): both down"
    assert standalone(node, "2001:db8::12").returncode == 1
    node.haproxy("enable frontend fe_www")
    node.haproxy("enable server be_app/s1")
    wait_for("be_app up again", lambda: standalone(node, "vol1%192.0.2.10").returncode == 0, 5)


def test_standalone_probe_answers_for_a_missing_proxy_a_dead_haproxy_and_a_bad_file(node: Lab) -> None:
    """--standalone: a proxy HAProxy lacks and a stopped HAProxy are down (1); a bad file is 3; no rule 4."""
    done = standalone(node, "192.0.2.20", rules="192.0.2.20 = all(b:be_ap)\n")
    assert done.returncode == 1, done.stderr
    assert "b:be_ap is down (HAProxy has no such proxy)" in done.stdout
    done = standalone(node, "192.0.2.99")
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr == "rhid: no rule names 192.0.2.99/32 (rhid check --json lists the routes)\n"
    done = standalone(node, "192.0.2.20", rules="192.0.2.20 = all(b:be_app\n")
    assert done.returncode == 3
    assert done.stderr.endswith("is invalid (rhid check): the probe cannot tell\n"), done.stderr
    node.stop("haproxy")
    done = standalone(node, "vol1%192.0.2.10")
    assert done.returncode == 1, done.stderr
    assert "b:be_app is down (HAProxy unreachable: HAProxy said nothing of it)" in done.stdout


def test_standalone_probe_reads_a_master_cli_socket(tmp_path: Path) -> None:
    """--standalone on HAProxy's master CLI socket asks the worker (@1), as the daemon does."""
    with lab(tmp_path) as instance:
        instance.start_web("web1")
        instance.start_haproxy(BACKENDS, ["fe_www"], master=True)
        path = tmp_path / "standalone.cfg"
        path.write_text(RULES)
        master = str(tmp_path / "master.sock")
        done = instance.rhid(
            "probe", "--standalone", "-c", str(path), "--haproxy-socket", master, "192.0.2.10"
        )
        assert done.returncode == 0, done.stderr
        assert "b:be_app is up (HAProxy last said 'UP')" in done.stdout


def test_a_degraded_route_is_announced_for_the_probe(tmp_path: Path) -> None:
    """A route announced degraded (its server threshold missed, its degraded condition met) is exit 0
    from the daemon and from --standalone, saying `degraded`; below both conditions, exit 1."""
    rules = "192.0.2.20 = all(b:be_two>=2) degraded any(b:be_two) med 200\n"
    with lab(tmp_path) as instance:
        standard_lab(instance, rules, {"be_two": ["web1", "web2"]}, [])
        instance.start_rhid(rules, "--interval", "0.2", "--fall", "1")
        instance.wait_peer_routes({"192.0.2.20/32"})
        assert probe(instance, "192.0.2.20").stdout.startswith("vol1%192.0.2.20/32: announced: ")
        instance.haproxy("disable server be_two/s1")

        def degraded() -> subprocess.CompletedProcess[str] | None:
            done = probe(instance, "192.0.2.20")
            return done if ": degraded: " in done.stdout else None

        done = wait_for("the daemon to degrade the route", degraded, 10)
        assert done.returncode == 0
        alone = standalone(instance, "192.0.2.20", rules=rules)
        assert alone.returncode == 0, alone.stderr
        assert alone.stdout.startswith("vol1%192.0.2.20/32: degraded: "), alone.stdout
        instance.haproxy("disable server be_two/s2")
        wait_for("the daemon to withdraw it", lambda: probe(instance, "192.0.2.20").returncode == 1, 10)
        assert standalone(instance, "192.0.2.20", rules=rules).returncode == 1
