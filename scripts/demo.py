"""Live demo: real HAProxy, a BIRD speaker, a BIRD peer router on loopback, and rhid between them.

Backends and a frontend fail and recover while the peer router's table is watched. The same steps
run twice: with the vendor's timing (poll every 1 s, fall after 3 down polls, no event ring), and
with rhid's event wake-up (HAProxy logs state changes to a ring rhid streams); a table at the end
puts the time each step took at the router side by side.

Everything lives in a temp directory: its own rule file, sockets and configs. Nothing on the
system (its HAProxy, its BIRD, /etc) is touched. Every process is started here and stopped by PID
at the end, whatever happens. Run it with `bash scripts/demo.sh` (which installs everything first).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, lab, standard_lab, wait_for

RULES = """\
# Announce the shop's address while both of its backends are up.
192.0.2.10/32 = all(b:be_static,b:be_app)
# The API, IPv4 and IPv6, while the public frontend is enabled.
192.0.2.20, 2001:db8::20 = all(f:fe_www)
"""
BACKENDS = {"be_app": ["web1", "web2"], "be_static": ["web3"]}
EVERYTHING = {"192.0.2.10/32", "192.0.2.20/32", "2001:db8::20/128"}
MODES = {
    "vendor timing": ["--haproxy-events", "none", "--interval", "1", "--fall", "3", "--rise", "1"],
    "event wake-up": ["--haproxy-events", "rhid", "--interval", "1", "--fall", "3", "--rise", "1"],
}

# What the event wake-up's timing comes from (measured: see the README, "Fast polls").
FOOTNOTE = """\
    event wake-up: each ring read that holds a state change wakes a poll at once (polls woken so
    are at least 10 ms apart), and while a proxy's fall count runs rhid polls every 0.1 s. Fall 3
    counts three down polls, and a count advances at most once per fast poll (0.09 s), so a
    withdrawal takes about 0.2 s however many reads one action reaches rhid in (disabling be_app's
    two servers logs a line per server, then 'backend be_app has no server available!'). A server
    whose health check fails is seen by HAProxy first, after its own `inter 100ms fall 1` check."""


def show(instance: Lab, title: str) -> None:
    routes = sorted(instance.peer_routes())
    print(f"    {title}: the upstream router has {', '.join(routes) or '(no routes)'}")


def show_status(instance: Lab) -> None:
    """Run `rhid status` as an operator would, once, while a route is withdrawn."""
    shown = instance.rhid("status", "--routes", "--bird-dir", str(instance.bird_dir))
    print(
        "\n    What the operator sees (in production just `rhid status --routes`): every route, since when"
        " and why."
    )
    print(f"    $ rhid status --routes --bird-dir {instance.bird_dir}")
    print("    " + (shown.stdout + shown.stderr).rstrip().replace("\n", "\n    "))
    verdict = "nothing needs attention" if shown.returncode == 0 else "see the PROBLEM lines"
    print(f"    (exit status {shown.returncode}: {verdict})\n")


def steps(instance: Lab) -> list[tuple[str, Callable[[], object], set[str]]]:
    """(what happens, how the demo makes it happen, what the router should then have)."""

    def both(command: str) -> Callable[[], object]:
        return lambda: [instance.haproxy(f"{command} server be_app/{server}") for server in ("s1", "s2")]

    return [
        ("every server of be_app disabled", both("disable"), EVERYTHING - {"192.0.2.10/32"}),
        ("be_app enabled again", both("enable"), EVERYTHING),
        ("be_static's only server dies", lambda: instance.stop("web3"), EVERYTHING - {"192.0.2.10/32"}),
        ("that server comes back", lambda: instance.start_web("web3"), EVERYTHING),
        ("frontend fe_www paused", lambda: instance.haproxy("disable frontend fe_www"), {"192.0.2.10/32"}),
        ("fe_www resumed", lambda: instance.haproxy("enable frontend fe_www"), EVERYTHING),
    ]


def run_mode(instance: Lab, mode: str) -> list[float]:
    """Start rhid in `mode`, run every step, stop rhid; the seconds each step took at the router."""
    print(f"\n=== rhid with {mode}: rhid run {' '.join(MODES[mode])}")
    instance.start_rhid(RULES, *MODES[mode], name=f"rhid {mode}")
    instance.wait_peer_routes(EVERYTHING, timeout=30)
    show(instance, "rhid started")
    if mode == "event wake-up":
        wait_for(
            "rhid to stream the ring",
            lambda: any(e["event"] == "haproxy.events_streaming" for e in instance.events(f"rhid {mode}")),
            10,
        )
    took = []
    for index, (title, action, expected) in enumerate(steps(instance)):
        action()
        seconds = instance.wait_peer_routes(expected, timeout=30)
        took.append(seconds)
        show(instance, f"{title}, {seconds:.2f} s later")
        if mode == next(iter(MODES)) and index == 0:
            show_status(instance)
    instance.stop(f"rhid {mode}", signal.SIGTERM)
    instance.wait_peer_routes(set(), timeout=30)
    show(instance, "rhid stopped (SIGTERM: --on-stop withdraw)")
    return took


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rhid-demo-") as tmp, lab(Path(tmp)) as instance:
        print("Starting, on loopback in a temp directory: HAProxy (fe_www; be_app with two servers;")
        print("be_static with one) logging state changes to a ring named rhid, a BIRD speaker configured")
        print(
            "with `rhid bird-config`'s snippet, and a BIRD peer router that the speaker peers with over BGP."
        )
        standard_lab(instance, RULES, BACKENDS, ["fe_www"], ring=True)
        rules = instance.root / "hapee-rhi.cfg"
        rules.write_text(RULES)
        print(f"\nThe rules ({rules}, a temp copy; in production /etc/hapee-extras/hapee-rhi.cfg):\n")
        print("    " + RULES.rstrip().replace("\n", "\n    "))
        checked = subprocess.run(
            [sys.executable, "-m", "rhid", "check", "-c", str(rules)],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"\n$ rhid check -c {rules.name}\n{checked.stdout.strip()}")
        results = {mode: run_mode(instance, mode) for mode in MODES}

        print("\nTime from each change in HAProxy to the router's table (seconds):\n")
        print(f"    {'step':<36} {'vendor timing':>14} {'event wake-up':>14}")
        for index, (title, _, _) in enumerate(steps(instance)):
            vendor, woken = (results[mode][index] for mode in MODES)
            print(f"    {title:<36} {vendor:>14.2f} {woken:>14.2f}")
        print("\n    vendor timing: poll every 1 s, down after 3 down polls (hapee-extras-rhi's defaults)")
        print(FOOTNOTE)

        print("\nWhat rhid logged with the event wake-up (one event per transition):")
        for event in instance.events("rhid event wake-up"):
            if event["event"].startswith(("route.", "proxy.")):
                subject = event.get("prefix") or event.get("proxy")
                why = event.get("reason") or event.get("status", "")
                print(f"  {event['timestamp'][11:23]}  {event['event']:<16} {subject:<18} {why}")
    print("\nDemo done: every process it started has been stopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
