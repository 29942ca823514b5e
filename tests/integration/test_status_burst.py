"""`rhid status --routes` at scale, against real HAProxy and BIRD: a burst of 16 clients at once
gets every route, whole, while the loop goes on polling and feeding the watchdog."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any

from rhid import status
from rhid.errors import StatusUnavailableError
from rhid.rules import parse_rules
from tests.integration.lab import NotifyListener, lab, wait_for

ROUTES = 3000
CLIENTS = 16
INTERVAL = 0.2


def test_sixteen_listings_at_once_get_every_route_and_the_loop_keeps_cycling(tmp_path: Path) -> None:
    """16 clients at once ask for every route (as `rhid status --routes` does: `status.fetch`, on
    threads of this one process, so that 16 interpreters do not starve the daemon of CPU) at 3,000
    routes: each gets all 3,000 routes (no truncation, no busy answer), WATCHDOG=1 (sent after each
    completed cycle) kept coming in every quarter of the burst, about as often as before it; and
    the command itself prints every route."""
    backends = {f"be{i}": ["web"] for i in range(ROUTES)}
    rules = "".join(f"10.60.{i // 256}.{i % 256} = all(b:be{i})\n" for i in range(ROUTES))
    with lab(tmp_path) as instance:
        notify = NotifyListener(tmp_path / "notify.sock")
        try:
            instance.start_web("web")
            instance.start_haproxy(backends, [], checks=dict.fromkeys(backends, ""))
            instance.write_speaker_config(parse_rules(rules))
            instance.start_speaker()
            env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "30000000"}
            instance.start_rhid(rules, "--interval", str(INTERVAL), "--haproxy-events", "none", env=env)
            notify.wait("READY=1", timeout=60)
            wait_for(
                "BIRD in sync",
                lambda: instance.rhid("status", "--bird-dir", str(instance.bird_dir)).returncode == 0,
                30,
            )
            path = str(instance.bird_dir / "rhid.sock")
            before_start = time.monotonic()
            while time.monotonic() < before_start + 2.0:
                notify.collect()
                time.sleep(0.01)
            got: list[dict[str, Any] | str] = []
            go = threading.Event()

            def client() -> None:
                go.wait()
                try:
                    got.append(status.fetch(path, None, 120.0, routes=True, idle=10.0))
                except StatusUnavailableError as exc:
                    got.append(exc.reason)

            threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            go.set()
            while any(thread.is_alive() for thread in threads):  # read notify often: its queue is short
                notify.collect()
                time.sleep(0.01)
                assert time.monotonic() < started + 120, "the burst never ended"
            ended = time.monotonic()
            notify.collect()
            command = instance.rhid("status", "--routes", "--json", "--bird-dir", str(instance.bird_dir))
        finally:
            notify.close()
    assert [len(one["routes"]) if isinstance(one, dict) else one for one in got] == [ROUTES] * CLIENTS
    assert all(one["routes"][0]["prefix"] == "10.60.0.0/32" for one in got if isinstance(one, dict))
    assert command.returncode == 0, command.stderr
    assert len(json.loads(command.stdout)["routes"]) == ROUTES
    fed = [at for at, text in notify.messages if "WATCHDOG=1" in text.split("\n")]
    steady = [at for at in fed if before_start <= at < started]
    during = [at for at in fed if started <= at <= ended]
    quarter = (ended - started) / 4
    per_quarter = [
        sum(1 for at in during if started + q * quarter <= at < started + (q + 1) * quarter) for q in range(4)
    ]
    assert all(per_quarter), f"WATCHDOG=1 in each quarter of the {ended - started:.1f} s burst: {per_quarter}"
    rate_before = len(steady) / 2.0
    rate_during = len(during) / (ended - started)
    assert rate_during > rate_before / 3, (
        f"cycles per second {rate_during:.1f} during, {rate_before:.1f} before"
    )
    gaps = [b - a for a, b in itertools.pairwise([started, *during, ended])]
    assert max(gaps) < (ended - started) / 4, gaps
