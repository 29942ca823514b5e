"""The cluster lab, short: one failure and one recovery, seen in the router's ECMP route and in requests."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.lab import Cluster, cluster
from tests.integration.lab import wait_for

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
