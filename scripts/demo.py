"""Live demo: real HAProxy, a BIRD speaker, a BIRD peer router on loopback, and rhid between them.

A backend fails and recovers; the peer router's table is printed before and after each step.
Every process is started here and stopped by PID at the end, whatever happens.
Run it with `bash scripts/demo.sh` (which installs everything first).
"""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, lab, standard_lab

RULES = """\
# Announce the shop's address while both of its backends are up.
192.0.2.10/32 = all(b:be_static,b:be_app)
# The API, IPv4 and IPv6, while the public frontend is enabled.
192.0.2.20, 2001:db8::20 = all(f:fe_www)
"""
BACKENDS = {"be_app": ["web1", "web2"], "be_static": ["web3"]}


def show(instance: Lab, title: str) -> None:
    routes = sorted(instance.peer_routes())
    print(f"\n--- {title}\n    the upstream router (BIRD peer) has: {', '.join(routes) or '(no routes)'}")


def step(instance: Lab, title: str, action: str, expected: set[str]) -> None:
    print(f"\n>>> {title}: {action}")
    seconds = instance.wait_peer_routes(expected, timeout=30)
    show(instance, f"{seconds:.2f} s later")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rhid-demo-") as tmp, lab(Path(tmp)) as instance:
        print("Starting HAProxy (fe_www, be_app with two servers, be_static), a BIRD speaker and a BIRD")
        print("peer router on loopback, peering over BGP ...")
        standard_lab(instance, RULES, BACKENDS, ["fe_www"])
        print("\nRules (/etc/hapee-extras/hapee-rhi.cfg):\n" + RULES)
        show(instance, "before rhid starts")
        instance.start_rhid(RULES, "--interval", "1", "--fall", "3", "--rise", "1")
        everything = {"192.0.2.10/32", "192.0.2.20/32", "2001:db8::20/128"}
        step(instance, "rhid started (vendor defaults: poll every 1 s, fall 3)", "rhid run", everything)

        for server in ("s1", "s2"):
            instance.haproxy(f"disable server be_app/{server}")
        step(instance, "every server of be_app disabled", "disable server be_app/s1, s2",
             everything - {"192.0.2.10/32"})  # fmt: skip

        for server in ("s1", "s2"):
            instance.haproxy(f"enable server be_app/{server}")
        step(instance, "be_app back", "enable server be_app/s1, s2", everything)

        instance.stop("web3")
        step(instance, "the only server of be_static dies (a real health-check failure)",
             "kill the web server behind be_static", everything - {"192.0.2.10/32"})  # fmt: skip
        instance.start_web("web3")
        step(instance, "it comes back", "restart that web server", everything)

        instance.haproxy("disable frontend fe_www")
        step(instance, "the frontend is paused", "disable frontend fe_www", {"192.0.2.10/32"})
        instance.haproxy("enable frontend fe_www")
        step(instance, "and resumed", "enable frontend fe_www", everything)

        instance.stop("rhid", signal.SIGTERM)
        step(instance, "rhid stopped", "SIGTERM (default --on-stop withdraw)", set())

        print("\nWhat rhid logged (one event per transition):")
        for event in instance.events():
            if event["event"].startswith(("route.", "proxy.")):
                subject = event.get("prefix") or event.get("proxy")
                why = event.get("reason") or event.get("status", "")
                print(f"  {event['timestamp'][11:23]}  {event['event']:<16} {subject:<18} {why}")
    print("\nDemo done: every process it started has been stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
