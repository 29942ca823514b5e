"""Benchmark: what `rhid probe` costs when keepalived runs it every second, beside `rhid status`.

One lab on loopback (a real HAProxy, a BIRD speaker, `rhid run` on --rules rules) and each command
run --repeat times as a vrrp_script runs it, a fresh process each time, through the installed
`rhid` console script:

    python -c pass           the interpreter alone: the floor of any Python probe
    rhid status PREFIX       the way to ask the daemon before `rhid probe`
    rhid probe PREFIX        asks the daemon (rhid.entry hands it to rhid.probe alone)
    rhid probe --standalone  compiles the rule file and polls HAProxy once (no daemon, no BIRD)

For each: wall time (min, p50, p90), CPU time per run (user + system of the child), the share of one
core at one run a second, and what it imports (`python -X importtime`: modules, and the sum of
their own import times). Prints a table and writes JSON; asserts nothing.

    python bench/probe.py [--repeat 50] [--rules 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, lab, wait_for

from rhid.rules import parse_rules

RESULTS = Path(__file__).parent / "results"
PREFIX = "192.0.2.1"


def rules_text(count: int) -> str:
    """`count` rules of the vendor's shape; the first is the probed one."""
    return "".join(
        f"10.{i // 65536}.{(i // 256) % 256}.{i % 256} = all(b:be_app)\n" for i in range(1, count)
    ) + (f"{PREFIX} = all(b:be_app)\n")


def rhid_command() -> list[str]:
    """The console script next to this interpreter (what a package installs as /usr/bin/rhid)."""
    script = Path(sys.executable).parent / "rhid"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rhid"]


def timed(argv: list[str], repeat: int) -> dict[str, Any]:
    """Run `argv` `repeat` times (each must exit 0: the probed route is announced): wall and CPU time."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = os.times()
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, timeout=30)
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(
            after.children_user - before.children_user + after.children_system - before.children_system
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv} exited {done.returncode}: {done.stderr.decode()}")
    walls.sort()
    return {
        "wall_ms_min": round(walls[0] * 1000, 1),
        "wall_ms_p50": round(statistics.median(walls) * 1000, 1),
        "wall_ms_p90": round(walls[int(len(walls) * 0.9) - 1] * 1000, 1),
        "cpu_ms_mean": round(statistics.fmean(cpus) * 1000, 1),
        "core_share_at_1hz": f"{statistics.fmean(cpus) * 100:.1f} %",
    }


def imports(python_args: list[str]) -> dict[str, Any]:
    """What one run imports (`python -X importtime PYTHON_ARGS`): how many modules, the sum of their
    own import times, and which of rhid's."""
    command = [sys.executable, "-X", "importtime", *python_args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    own = [(int(row[0].split(":")[1]), row[2].strip()) for row in rows[1:]]  # the first row is the header
    return {
        "modules": len(own),
        "import_ms": round(sum(us for us, _ in own) / 1000, 1),
        "rhid_modules": sorted(name for _, name in own if name.startswith("rhid")),
        "loads_pyparsing": any(name == "pyparsing" for _, name in own),
        "loads_structlog": any(name == "structlog" for _, name in own),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=RESULTS / "probe.json")
    args = parser.parse_args()
    rhid = rhid_command()
    with tempfile.TemporaryDirectory(prefix="rhid-bench-probe-") as temp, lab(Path(temp)) as instance:
        text = rules_text(args.rules)
        start_node(instance, text)
        rules_path = instance.root / "hapee-rhi.cfg"
        bird_dir = str(instance.bird_dir)
        socket = str(instance.haproxy_socket)
        standalone = ["probe", "--standalone", "-c", str(rules_path), "--haproxy-socket", socket, PREFIX]
        cases = {  # name: (the command as keepalived runs it, the same through `python -m`)
            "python -c pass": ([sys.executable, "-c", "pass"], ["-c", "pass"]),
            "rhid status PREFIX": (["status", "--bird-dir", bird_dir, PREFIX], None),
            "rhid probe PREFIX": (["probe", "--bird-dir", bird_dir, PREFIX], None),
            "rhid probe --standalone": (standalone, None),
        }
        results: dict[str, Any] = {"rules": args.rules, "repeat": args.repeat, "cases": {}}
        for name, (args_of, python_args) in cases.items():
            argv = args_of if python_args is not None else [*rhid, *args_of]
            timed(argv, 3)  # warm the page cache
            measured = timed(argv, args.repeat)
            results["cases"][name] = {**measured, **imports(python_args or ["-m", "rhid", *args_of])}
            print(json.dumps({"case": name, **results["cases"][name]}), flush=True)
    print_table(results)
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.json}")


def start_node(instance: Lab, text: str) -> None:
    """A web server, HAProxy, a BIRD speaker with rhid's snippet, and rhid with every route up."""
    instance.start_web("web1")
    instance.start_haproxy({"be_app": ["web1"]}, [])
    instance.write_speaker_config(parse_rules(text))
    instance.start_speaker()
    instance.start_rhid(text, "--interval", "1")
    route = instance.bird_dir / "vol1.ipv4.conf"
    wait_for("rhid to announce", lambda: route.exists() and f"{PREFIX}/32" in route.read_text(), 30)


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['repeat']} runs each, {results['rules']} rules")
    print("| command | wall p50 / p90 (min) | CPU per run | one a second | modules imported (import time) |")
    print("|---|---|---|---|---|")
    for name, case in results["cases"].items():
        print(
            f"| `{name}` | {case['wall_ms_p50']} / {case['wall_ms_p90']} ms ({case['wall_ms_min']}) "
            f"| {case['cpu_ms_mean']} ms | {case['core_share_at_1hz']} "
            f"| {case['modules']} ({case['import_ms']} ms) |"
        )


if __name__ == "__main__":
    main()
