"""Soak: thousands of random failures and recoveries, with HAProxy and BIRD restarts, against real daemons.

At checkpoints, and at the end, BIRD's table must equal exactly what the rules say for HAProxy's
state (an oracle written here, independently of rhid's own evaluate), and the peer's table must
equal BIRD's. The size is bounded: RHID_SOAK_OPS operations (default 2,000).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from tests.integration.lab import Lab, lab, standard_lab, wait_for

pytestmark = pytest.mark.integration

BACKENDS = {f"be{i}": [f"web{i}a", f"web{i}b"] for i in range(4)}
SERVERS = [(backend, f"s{n}") for backend in BACKENDS for n in (1, 2)]
# (prefix, aggregate, targets); "fe" is the frontend
RULES = [
    ("10.80.0.1", "all", ["be0"]),
    ("10.80.0.2", "all", ["be0", "be1"]),
    ("10.80.0.3", "any", ["be1", "be2"]),
    ("10.80.0.4", "any", ["be0", "be1", "be2", "be3"]),
    ("10.80.0.5", "all", ["be3", "fe"]),
    ("10.80.0.6", "all", ["fe"]),
    ("2001:db8:80::7", "any", ["be2", "be3"]),
    ("10.80.0.8", "all", ["be0", "be1", "be2", "be3"]),
]


def rule_text() -> str:
    def target(name: str) -> str:
        return "f:fe_www" if name == "fe" else f"b:{name}"

    return "".join(f"{prefix} = {agg}({','.join(map(target, names))})\n" for prefix, agg, names in RULES)


def expected(disabled: set[tuple[str, str]], frontend_up: bool) -> set[str]:
    """The oracle: a backend is up while one of its servers is enabled; rules combine as all/any."""
    up = {b: any((b, s) not in disabled for bb, s in SERVERS if bb == b) for b in BACKENDS} | {
        "fe": frontend_up
    }
    routes = set()
    for prefix, aggregate, names in RULES:
        values = [up[name] for name in names]
        if all(values) if aggregate == "all" else any(values):
            routes.add(prefix + ("/128" if ":" in prefix else "/32"))
    return routes


def speaker_routes(instance: Lab) -> set[str]:
    output = (instance.birdc("speaker", "show route protocol vol1") or "") + (
        instance.birdc("speaker", "show route protocol vol1_v6") or ""
    )
    return set(re.findall(r"^\s*(\S+/\d+)\s", output, flags=re.MULTILINE))


def converged(instance: Lab, want: set[str]) -> bool:
    try:
        wait_for(
            "convergence", lambda: speaker_routes(instance) == want and instance.peer_routes() == want, 15
        )
    except AssertionError:
        return False
    return True


def test_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Random flaps and restarts end with BIRD == rules and peer == BIRD, with zero mismatches."""
    operations = int(os.environ.get("RHID_SOAK_OPS", "2000"))
    rng = random.Random(int(os.environ.get("RHID_SOAK_SEED", "7")))
    counts = {"operations": operations, "flaps": 0, "haproxy_restarts": 0, "bird_restarts": 0,
              "checkpoints": 0, "mismatches": 0}  # fmt: skip
    with lab(tmp_path) as instance:
        standard_lab(instance, rule_text(), BACKENDS, ["fe_www"])
        # the oracle is the rules alone: no damping of its flips, no guard holding its mass failures
        instance.start_rhid(rule_text(), "--interval", "0.05", "--fall", "1", "--rise", "1",
                            "--damping", "off", "--guard", "off")  # fmt: skip
        disabled: set[tuple[str, str]] = set()
        frontend_up = True
        assert converged(instance, expected(disabled, frontend_up))
        for number in range(1, operations + 1):
            if number % 700 == 0:  # a restart of HAProxy: its admin state starts afresh
                instance.stop("haproxy", signal.SIGKILL)
                instance.start_haproxy(BACKENDS, ["fe_www"])
                disabled, frontend_up = set(), True
                counts["haproxy_restarts"] += 1
            elif number % 500 == 0:  # BIRD restarts: it reads rhid's files at boot
                instance.stop("speaker")
                instance.start_speaker()
                instance.wait_established()
                counts["bird_restarts"] += 1
            elif rng.random() < 0.1:
                frontend_up = not frontend_up
                instance.haproxy(f"{'enable' if frontend_up else 'disable'} frontend fe_www")
                counts["flaps"] += 1
            else:
                server = rng.choice(SERVERS)
                if server in disabled:
                    instance.haproxy(f"enable server {server[0]}/{server[1]}")
                    disabled.discard(server)
                else:
                    instance.haproxy(f"disable server {server[0]}/{server[1]}")
                    disabled.add(server)
                counts["flaps"] += 1
            time.sleep(rng.random() * 0.01)
            if number % 250 == 0 or number == operations:
                counts["checkpoints"] += 1
                counts["mismatches"] += not converged(instance, expected(disabled, frontend_up))
        events = instance.events()
        counts["route_transitions"] = sum(1 for e in events if e["event"].startswith("route."))
        counts["proxy_transitions"] = sum(1 for e in events if e["event"] in {"proxy.up", "proxy.down"})
        counts["errors_logged"] = sum(1 for e in events if e["level"] in {"error", "critical"})
        assert instance.procs["rhid"].poll() is None, "rhid died during the soak"
    with capsys.disabled():
        print("\nsoak:", json.dumps(counts))
    assert counts["mismatches"] == 0, counts
