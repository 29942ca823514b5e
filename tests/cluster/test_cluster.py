"""The cluster lab, short: one failure and one recovery, seen in the router's ECMP route and in requests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.lab import Cluster, cluster, ip, namespace_pids, process_start, remove_namespace
from tests.integration.lab import Lab, wait_for

pytestmark = pytest.mark.integration

BOTH = {"node1", "node2"}
RATE = 50.0  # requests a second: enough to see both nodes, light on a shared CI machine
TIMEOUT = 2.0  # per request: long enough that a loaded machine does not fail a healthy request
SETTLE = 0.3  # seconds after a route change before requests must follow it (in flight, hashing)
WINDOW = 2.0  # seconds of requests looked at after each change


def requests_after(running: Cluster, change: float) -> Counter[str]:
    """The outcomes of the requests started in the window after `change`, once all have ended."""
    assert running.traffic is not None
    start = change + SETTLE
    time.sleep(max(0.0, start + WINDOW + TIMEOUT + 0.2 - time.monotonic()))
    return Counter(r.outcome for r in running.traffic.between(start, start + WINDOW))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Cluster]:
    with cluster(tmp_path) as instance:
        for node in instance.nodes:
            node.start_rhid()  # defaults (interval 1, fall 3) and the event wake-up from the ring
        instance.wait_nexthops(BOTH)
        yield instance


def test_a_node_whose_backends_fail_leaves_the_ecmp_route_and_comes_back(running: Cluster) -> None:
    """node1's backends fail: the router drops node1's path and node2 serves; they return: both serve."""
    traffic = running.start_traffic(RATE, TIMEOUT)
    node1 = running.node("node1")
    wait_for("requests through both nodes", lambda: {r.outcome for r in traffic.read()} >= BOTH, 10)
    assert any(e["event"] == "haproxy.events_streaming" for e in node1.events()), "no event wake-up"

    node1.kill_backends()
    withdrawn = running.wait_nexthops({"node2"}, timeout=10)
    after_failure = requests_after(running, withdrawn)
    assert after_failure["node2"] >= 10, f"too few requests: {after_failure}"
    assert set(after_failure) == {"node2"}, f"requests failed or reached node1: {after_failure}"

    node1.start_backends()
    returned = running.wait_nexthops(BOTH, timeout=10)
    after_recovery = requests_after(running, returned)
    assert set(after_recovery) == BOTH, f"not both nodes carry traffic again: {after_recovery}"


CRASHING_LAB = """
import sys, time
from pathlib import Path
from tests.cluster.lab import Cluster
from tests.integration.lab import Lab
instance = Cluster(Lab(Path(sys.argv[1])))
instance.build()
instance.start_router()
print(" ".join(instance.namespaces.values()), flush=True)
time.sleep(60)
"""


def test_a_crashed_labs_namespaces_and_daemons_are_removed_by_the_next_lab(tmp_path: Path) -> None:
    """A lab SIGKILLed mid-run leaves namespaces and a BIRD; the next lab removes both, not its own."""
    (tmp_path / "crashed").mkdir()
    (tmp_path / "next").mkdir()
    crashed = subprocess.Popen(
        [sys.executable, "-c", CRASHING_LAB, str(tmp_path / "crashed")],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    assert crashed.stdout is not None
    left = crashed.stdout.readline().decode().split()
    crashed.stdout.close()
    try:
        router = next(name for name in left if name.endswith("-router"))
        daemons = namespace_pids(router)
        assert daemons, "the crashed lab's router BIRD is not running"
        crashed.kill()
        crashed.wait()
        assert set(left) <= namespaces(), "the crash took the namespaces with it: nothing to prove"
        following = Cluster(Lab(tmp_path / "next"))
        try:
            following.build()
            present = namespaces()
            assert not set(left) & present, "the crashed lab's namespaces are still there"
            assert set(following.namespaces.values()) <= present
            assert not [pid for pid in daemons if process_start(pid)], "the crashed lab's BIRD runs on"
        finally:
            following.close()
    finally:
        crashed.kill()
        crashed.wait()
        for name in set(left) & namespaces():
            remove_namespace(name)


def namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.split()}
