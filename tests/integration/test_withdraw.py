"""`rhid withdraw`: the unit's safety net when rhid has failed for good, proven at a BGP peer's table."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab

pytestmark = pytest.mark.integration

RULES = "10.20.0.1 = all(b:be_app)\n2001:db8:20::1 = all(b:be_app)\n"
ROUTES = {"10.20.0.1/32", "2001:db8:20::1/128"}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Lab]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, {"be_app": ["web1"]}, [])
        yield instance


def withdraw(instance: Lab) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rhid", "withdraw", "--bird-dir", str(instance.bird_dir),
         "--bird-socket", str(instance.ctl("speaker"))],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_withdraw_takes_the_routes_of_a_dead_rhid_off_the_peer(node: Lab) -> None:
    """With rhid dead (its routes held in the files), `rhid withdraw` empties them and the peer loses them."""
    node.start_rhid(RULES, "--interval", "0.2")
    node.wait_peer_routes(ROUTES)
    node.stop("rhid", signal.SIGKILL)  # held: the files still announce, and nothing watches
    done = withdraw(node)
    assert done.returncode == 0, done.stderr
    assert "2 route(s) withdrawn; BIRD reconfigured" in done.stdout
    node.wait_peer_routes(set())


def test_withdraw_refuses_while_rhid_runs(node: Lab) -> None:
    """A running rhid owns its files: `rhid withdraw` exits 1 and the peer keeps the routes."""
    node.start_rhid(RULES, "--interval", "0.2")
    node.wait_peer_routes(ROUTES)
    done = withdraw(node)
    assert done.returncode == 1
    assert "another rhid" in done.stderr
    assert node.peer_routes() == ROUTES
