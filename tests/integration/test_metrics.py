"""`rhid run --metrics-listen` against real HAProxy and BIRD: the series move as the peer's table
does, through a backend failure and recovery, BIRD going away and coming back, and a scraper flood."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.lab import Lab, free_port, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
INTERVAL = 0.2
SLACK = 0.6  # as tests/integration/test_run.py: scheduling on a busy 2-core machine
RULES = """\
10.30.0.1, 2001:db8:30::1 = all(b:be_app)
10.30.0.2 = any(b:be_app,b:be_other)
vol2%10.30.0.3 = always
"""
BACKENDS = {"be_app": ["web1", "web2"], "be_other": ["web3"]}
ALL = {"10.30.0.1/32", "2001:db8:30::1/128", "10.30.0.2/32", "10.30.0.3/32"}
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def story(tmp_path: Path) -> Iterator[tuple[Lab, int]]:
    with lab(tmp_path) as instance:
        standard_lab(instance, RULES, BACKENDS, [], dead=frozenset({"web3"}))
        port = free_port()
        instance.start_rhid(
            RULES, "--interval", str(INTERVAL), "--fall", "1", "--metrics-listen", f"127.0.0.1:{port}"
        )
        yield instance, port


def scrape(port: int) -> Series | None:
    """Every sample rhid serves, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)  # type: ignore[no-untyped-call,unused-ignore]
        for sample in family.samples
    }


def announced(series: Series) -> set[str]:
    """The prefixes whose rhid_route_announced is 1."""
    return {
        dict(labels)["prefix"]
        for (name, labels), value in series.items()
        if name == "rhid_route_announced" and value
    }


def value(series: Series, metric: str, **labels: str) -> float:
    return series[metric, frozenset(labels.items())]


def settled(port: int, what: str, check: Callable[[Series], bool]) -> Series:
    """The first scrape for which `check(series)` holds (pages are reused for about a second)."""

    def look() -> Series | None:
        series = scrape(port)
        return series if series is not None and check(series) else None

    return wait_for(what, look, 10, every=0.1)


def bird_routes(instance: Lab, protocol: str) -> int:
    """How many routes BIRD's static protocol holds: bird_exporter's bird_protocol_prefix_import_count."""
    shown = instance.birdc("speaker", f"show route protocol {protocol}") or ""
    return len(re.findall(r"^\S+/\d+\s", shown, flags=re.MULTILINE))


def test_the_series_move_as_the_peer_table_does(story: tuple[Lab, int]) -> None:
    """Ready after the first cycle; every announced route is 1 exactly while the peer has it; a
    backend's failure and recovery move its routes' state, transitions and last change, its health
    and HAProxy status; the per-protocol counts equal BIRD's own; BIRD's absence reads as such."""
    instance, port = story
    instance.wait_peer_routes(ALL)
    series = settled(
        port,
        "every route announced, BIRD in sync",
        lambda s: announced(s) == ALL and value(s, "rhid_bird_in_sync") == 1.0,
    )
    assert value(series, "rhid_ready") == 1.0
    assert value(series, "rhid_haproxy_up") == 1.0
    assert value(series, "rhid_bird_in_sync") == 1.0
    assert value(series, "rhid_proxy_health", kind="backend", proxy="be_app", health="up") == 1.0
    assert value(series, "rhid_proxy_health", kind="backend", proxy="be_other", health="down") == 1.0
    for name, table in (("vol1", "vol1"), ("vol1_v6", "vol1"), ("vol2", "vol2")):
        assert value(series, "rhid_protocol_announced_routes", name=name, table=table) == bird_routes(
            instance, name
        )
    one = {"table": "vol1", "prefix": "10.30.0.1/32"}
    assert value(series, "rhid_route_transitions_total", **one) == 1.0  # announced at start
    assert value(series, "rhid_route_transitions_total", table="vol1", prefix="10.30.0.2/32") == 1.0
    first_change = value(series, "rhid_route_last_change_timestamp_seconds", **one)

    for server in ("s1", "s2"):
        instance.haproxy(f"disable server be_app/{server}")
    instance.wait_peer_routes({"10.30.0.3/32"})
    series = settled(port, "be_app's routes withdrawn", lambda s: announced(s) == instance.peer_routes())
    assert announced(series) == {"10.30.0.3/32"}
    assert value(series, "rhid_route_state", **one, state="withdrawn") == 1.0
    assert value(series, "rhid_route_transitions_total", **one) == 2.0
    assert value(series, "rhid_route_last_change_timestamp_seconds", **one) > first_change
    assert value(series, "rhid_proxy_health", kind="backend", proxy="be_app", health="down") == 1.0
    assert value(series, "rhid_proxy_haproxy_status", kind="backend", proxy="be_app", status="DOWN") == 1.0
    assert value(series, "rhid_protocol_announced_routes", name="vol1", table="vol1") == bird_routes(
        instance, "vol1"
    )
    assert bird_routes(instance, "vol1") == 0

    for server in ("s1", "s2"):
        instance.haproxy(f"enable server be_app/{server}")
    instance.wait_peer_routes(ALL)
    series = settled(port, "be_app's routes back", lambda s: announced(s) == instance.peer_routes())
    assert value(series, "rhid_route_transitions_total", **one) == 3.0
    assert (
        value(series, "rhid_proxy_transitions_total", kind="backend", proxy="be_app") == 3.0
    )  # up, down, up
    assert value(series, "rhid_protocol_announced_routes", name="vol1", table="vol1") == 2.0

    instance.stop("speaker")
    series = settled(port, "BIRD gone", lambda s: value(s, "rhid_bird_up") == 0.0)
    assert value(series, "rhid_bird_in_sync") == 0.0
    assert value(series, "rhid_bird_state", state="unreachable") == 1.0
    assert value(series, "rhid_problems", edge="bird") >= 1.0
    instance.start_speaker()
    instance.wait_established()
    instance.wait_peer_routes(ALL)
    series = settled(port, "BIRD back and in sync", lambda s: value(s, "rhid_bird_in_sync") == 1.0)
    assert value(series, "rhid_bird_up") == 1.0
    assert value(series, "rhid_cycles_total") > 10
    assert value(series, "rhid_cycle_duration_seconds_count") == value(series, "rhid_cycles_total")
    assert instance.stop("rhid") == 0
    instance.wait_peer_routes(set())
    assert scrape(port) is None, "the listener closes with rhid"


def test_a_scraper_flood_does_not_slow_a_withdrawal(story: tuple[Lab, int]) -> None:
    """While 16 fast and 40 slow scrapers hammer the metrics port, a failure still leaves the peer
    within one poll (fall 1 x interval + one interval + slack), `rhid status` answers, and the
    series follow."""
    instance, port = story
    instance.wait_peer_routes(ALL)
    settled(port, "ready", lambda s: value(s, "rhid_ready") == 1.0)
    seconds = 6.0
    flood = subprocess.Popen(
        [sys.executable, "-m", "tests.fault.scrapers", str(port), str(seconds), "16", "40"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)
        for server in ("s1", "s2"):
            instance.haproxy(f"disable server be_app/{server}")
        took = instance.wait_peer_routes({"10.30.0.3/32"}, timeout=10)
        assert took <= 2 * INTERVAL + SLACK, f"withdrawal took {took:.3f} s under the flood"
        assert instance.rhid("status", "--bird-dir", str(instance.bird_dir)).returncode == 0
        out, _ = flood.communicate(timeout=30)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    assert json.loads(out).get("ok", 0) > 0
    settled(port, "the withdrawal in the series", lambda s: announced(s) == {"10.30.0.3/32"})
