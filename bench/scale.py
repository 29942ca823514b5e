"""Benchmark at scale: 10,000 backends and 10,000 rules, real HAProxy, BIRD speaker and BIRD peer.

    python bench/scale.py [--backends 10000] [--seconds 20] [--changes 50] [--json bench/results/scale.json]

Measures, from one run: rhid's CPU per cycle and HAProxy's extra CPU per cycle (its dump), their
steady-state share of one core at 1 Hz, rhid's RSS, the cold start from launching rhid to all
routes at the peer, and one change among all the routes (poll-driven and event-driven).
Prints a table and writes JSON; it asserts nothing.

Then, with events on (HAProxy's ring streamed), `--changes` changes one after the other, each on a
server of a different backend than the one before, alternately disabling one and enabling one (one
server is taken down before the first, untimed; change 2k disables a fresh backend, change 2k+1
enables the one disabled two changes before, so the peer holds N-2 and N-1 routes in turn).
Between changes a pause spread evenly over 1-2 s (a golden-ratio sequence, the same every run):
each change comes at least one poll interval after the last one was seen, so each is a change on
its own (not one poll for two), and lands at a different point of the 1 s poll. For each change
the latency runs from just before the `disable`/`enable server` command is sent to HAProxy until
the peer BIRD's table has (or no longer has) that backend's prefix, asked every 2 ms on one
connection to the peer's control socket (`show route <prefix>`, no rhid code); its p50, p90, p99
(interpolated) and max are printed.

rhid's CPU per change: the rhid process's user + system CPU (/proc/<pid>/stat, all threads) over
the whole change phase (from just before the first change until 2 s after the peer saw the last
one, so that work a change leaves behind is counted), minus its steady CPU per second with events
on times the phase's duration, divided by the number of changes. The steady rate is the mean of
two windows of `--seconds` on the same process with no change under way, one just before the phase
and one just after (both are printed: their gap is the noise). The 1 Hz polls the phase would have
had anyway are what the subtraction removes; planning, files, `configure`, verification and the
extra polls are the change's cost. An event-woken poll restarts the poll interval, so it replaces
the next timer poll rather than adding one: an isolated change adds about half a poll on average
(the timer poll it brings forward). HAProxy's CPU per change is computed the same way.
`cold_start_rhid_cpu_s` is rhid's CPU from its launch to all routes at the peer: on a loaded
machine it moves less than the wall-clock cold start. These are differences of two CPU totals read
in clock ticks (10 ms): with few changes or a noisy machine they can come out small or negative;
the steady rates are printed beside them.

Before rhid starts, HAProxy's own cost of a targeted poll (``show info; show stat <iid> 2 -1``: one
backend in the middle of the list, asked by id, as rhid asks), of ten such queries in one line,
and of a full poll (``show info; show stat -1 2 -1``) is measured from its threads' schedstat over
many requests (its idle CPU subtracted), with the client's wall time per request beside it (what
rhid's --sweep-budget counts as HAProxy's cost). `events_core_share_pct` is rhid's steady CPU with
events on plus HAProxy's above its idle, as a share of one core: with a live stream the full poll
runs every --sweep-max at most (rhid.sweep), so this is the number the 2 % target is about.

The JSON holds the table's keys plus every change's latency, the rhid package the lab's
`python -m rhid` imported (its path and git commit: run with PYTHONPATH=<worktree>/src to measure
another version with this same bench) and the 1-minute load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, lab, wait_for

TICK = os.sysconf("SC_CLK_TCK")
GOLDEN = (5**0.5 - 1) / 2  # the pauses between changes: 0.25 + 0.5 * frac(i * GOLDEN)
PEER_EVERY = 0.002  # seconds between two questions to the peer while a change travels
SETTLE = 2.0  # seconds the change phase lasts after the peer saw the last change
READ_LIMIT = 1 << 20  # bytes: a reply to `show route <one prefix>` is a few lines


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_seconds(pid: int) -> float:
    """CPU time of every thread of a process, in nanoseconds' precision (/proc/<pid>/task/*/schedstat)."""
    tasks = Path(f"/proc/{pid}/task").glob("*/schedstat")
    return sum(int(stat.read_text().split()[0]) for stat in tasks) / 1e9


def ask(path: Path, command: bytes) -> bytes:
    """One command on HAProxy's stats socket, its whole reply (as rhid's client: half-close, read to EOF)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(command)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


def measure_queries(instance: Lab, count: int, idle_per_s: float) -> dict[str, float]:
    """What HAProxy's CPU pays for one targeted poll (`show info; show stat <iid> 2 -1`, one backend
    in the middle of the list, asked by id) and for one full poll (`show info; show stat -1 2 -1`),
    measured from its threads' schedstat over many requests, its idle CPU subtracted; and the
    wall time of each from the client (what rhid's --sweep-budget takes for HAProxy's cost)."""
    haproxy = instance.procs["haproxy"].pid
    listing = ask(instance.haproxy_socket, b"show stat -1 2 -1\n").decode()
    header = listing.split("\n", 1)[0][2:].split(",")
    iid_at = header.index("iid")
    middle = f"be{count // 2}"
    iid = next(row.split(",")[iid_at] for row in listing.split("\n")[1:] if row.split(",")[0] == middle)
    results: dict[str, float] = {}
    for key, command, repeat in (
        ("targeted", f"show info; show stat {iid} 2 -1\n".encode(), 1000),
        ("targeted_10", ("show info; " + "; ".join([f"show stat {iid} 2 -1"] * 10) + "\n").encode(), 200),
        ("full", b"show info; show stat -1 2 -1\n", 20),
    ):
        cpu, wall = run_seconds(haproxy), time.monotonic()
        for _ in range(repeat):
            ask(instance.haproxy_socket, command)
        elapsed = time.monotonic() - wall
        spent = run_seconds(haproxy) - cpu - idle_per_s * elapsed
        results[f"haproxy_cpu_ms_per_{key}_poll"] = spent / repeat * 1000
        results[f"wall_ms_per_{key}_poll"] = elapsed / repeat * 1000
    return results


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peer_count(instance: Lab) -> int:
    output = instance.birdc("peer", "show route count") or ""
    numbers = [int(word) for word in output.split() if word.isdigit()]
    return numbers[0] if numbers else 0


def prefix(index: int) -> str:
    """The route of rule `index` (the rules file below)."""
    return f"10.{100 + index // 65536}.{(index // 256) % 256}.{index % 256}/32"


class PeerWitness:
    """One connection to the peer BIRD's control socket, asking whether a prefix is in its table.

    Cheaper than a birdc process per question, so it can ask every few milliseconds while a
    change travels; it shares no code with rhid."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self.buffer = b""
        self.reply()  # 0001 BIRD ... ready.

    def reply(self) -> list[bytes]:
        """The lines of one reply: up to the line whose code is followed by a space."""
        while True:
            lines = self.buffer.split(b"\n")
            for number, line in enumerate(lines[:-1]):
                if len(line) >= 5 and line[:4].isdigit() and line[4:5] == b" ":
                    self.buffer = b"\n".join(lines[number + 1 :])
                    return lines[: number + 1]
            if len(self.buffer) > READ_LIMIT:
                raise AssertionError(f"the peer's reply is longer than {READ_LIMIT} bytes")
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("the peer closed its control socket")
            self.buffer += data

    def has(self, net: str) -> bool:
        """True if the table has `net` (reply ends 0000 after its route), False if 8001 Network not found."""
        self.sock.sendall(f"show route {net}\n".encode())
        lines = self.reply()
        if lines[-1].startswith(b"8001"):
            return False
        if lines[-1].startswith(b"0000") and any(net.encode() in line for line in lines):
            return True
        raise AssertionError(f"the peer's reply to show route {net}: {lines!r}")

    def close(self) -> None:
        self.sock.close()


def rhid_module(root: Path) -> str:
    """The rhid package the lab's `python -m rhid` imports (same interpreter, environment, directory)."""
    found = subprocess.run(
        [sys.executable, "-c", "import rhid; print(rhid.__file__)"],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
        timeout=30,
    )
    return found.stdout.strip()


def commit_of(directory: Path) -> str:
    """The git commit checked out where that rhid package lives ("" outside a git work tree)."""
    found = subprocess.run(
        ["git", "-C", str(directory), "rev-parse", "HEAD"],  # noqa: S607 -- git from PATH, as a developer runs it
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return found.stdout.strip()


def targets(count: int, changes: int, avoid: int) -> list[int]:
    """Distinct backends for the change phase, spread over all of them (not `avoid`): the one taken
    down before the first change, then one for each disabling change."""
    wanted = (changes + 1) // 2 + 1
    candidates = [index for index in range(count) if index != avoid]
    if wanted > len(candidates):
        raise SystemExit(f"--changes {changes} needs {wanted + 1} backends or more (have {count})")
    return [candidates[number * len(candidates) // wanted] for number in range(wanted)]


@dataclass(frozen=True)
class Change:
    """One step of the change phase: the backend, what is done to its server, where the peer ends."""

    backend: int
    command: str
    present: bool  # its prefix at the peer afterwards


def schedule(backends: list[int], changes: int) -> Iterator[Change]:
    """Alternately disable a fresh backend's server and enable the one disabled two changes before
    (backends[0] is down before the first change): each change on a different backend than the last."""
    down = deque([backends[0]])
    fresh = iter(backends[1:])
    for number in range(changes):
        if number % 2 == 0:
            backend = next(fresh)
            down.append(backend)
            yield Change(backend, f"disable server be{backend}/s1", present=False)
        else:
            backend = down.popleft()
            yield Change(backend, f"enable server be{backend}/s1", present=True)


def wait_peer(witness: PeerWitness, net: str, present: bool, timeout: float) -> float:
    """Ask the peer until `net` is (not) in its table; the moment it answered so."""
    deadline = time.monotonic() + timeout
    while True:
        if witness.has(net) == present:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"the peer did not {'learn' if present else 'lose'} {net} in {timeout} s")
        time.sleep(PEER_EVERY)


def percentile(values: list[float], share: int) -> float:
    """The `share`-th percentile, interpolated between the two nearest samples."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def steady_rates(rhid: int, haproxy: int, seconds: float) -> tuple[float, float]:
    """rhid's and HAProxy's CPU seconds per second over a window of `seconds`."""
    rhid_cpu, haproxy_cpu, wall = cpu_seconds(rhid), cpu_seconds(haproxy), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - wall
    return (cpu_seconds(rhid) - rhid_cpu) / elapsed, (cpu_seconds(haproxy) - haproxy_cpu) / elapsed


def measure_changes(
    instance: Lab, count: int, changes: int, seconds: float, name: str
) -> tuple[dict[str, float], list[float]]:
    """Steady CPU with events on, the change phase, steady CPU again: latencies and CPU per change
    (module doc)."""
    rhid, haproxy = instance.procs[name].pid, instance.procs["haproxy"].pid
    results: dict[str, float] = {}
    rhid_before, haproxy_before = steady_rates(rhid, haproxy, seconds)

    backends = targets(count, changes, avoid=count // 2)
    witness = PeerWitness(instance.ctl("peer"))
    latencies: list[float] = []
    try:
        instance.haproxy(f"disable server be{backends[0]}/s1")  # the first one down, untimed
        wait_peer(witness, prefix(backends[0]), present=False, timeout=30)
        time.sleep(1)
        rhid_cpu, haproxy_cpu, started = cpu_seconds(rhid), cpu_seconds(haproxy), time.monotonic()
        for number, change in enumerate(schedule(backends, changes)):
            sent = time.monotonic()
            instance.haproxy(change.command)
            seen = wait_peer(witness, prefix(change.backend), change.present, timeout=30)
            latencies.append(seen - sent)
            if number < changes - 1:
                time.sleep(1.0 + (number * GOLDEN) % 1.0)
        time.sleep(SETTLE)
        phase = time.monotonic() - started
        rhid_spent, haproxy_spent = cpu_seconds(rhid) - rhid_cpu, cpu_seconds(haproxy) - haproxy_cpu
    finally:
        witness.close()
    rhid_after, haproxy_after = steady_rates(rhid, haproxy, seconds)
    rhid_per_s, haproxy_per_s = (rhid_before + rhid_after) / 2, (haproxy_before + haproxy_after) / 2
    results["events_rhid_cpu_ms_per_s_before"] = rhid_before * 1000
    results["events_rhid_cpu_ms_per_s_after"] = rhid_after * 1000
    results["events_haproxy_cpu_ms_per_s_before"] = haproxy_before * 1000
    results["events_haproxy_cpu_ms_per_s_after"] = haproxy_after * 1000
    results["changes"] = changes
    results["change_phase_s"] = phase
    for share in (50, 90, 99):
        results[f"change_events_p{share}_s"] = percentile(latencies, share)
    results["change_events_max_s"] = max(latencies)
    results["rhid_cpu_ms_per_change"] = (rhid_spent - rhid_per_s * phase) / changes * 1000
    results["haproxy_cpu_ms_per_change"] = (haproxy_spent - haproxy_per_s * phase) / changes * 1000
    results["rhid_rss_mb_after_changes"] = rss_mb(rhid)

    for line in (f"enable server be{backend}/s1" for backend in backends):  # everything back up
        instance.haproxy(line)
    wait_for("every route back", lambda: peer_count(instance) == count, 30, every=0.05)
    return results, latencies


def measure_steady(instance: Lab, seconds: float, haproxy_idle_per_s: float) -> dict[str, float]:
    """rhid's CPU per 1 Hz cycle without events, HAProxy's for its dumps, their share, rhid's RSS."""
    rhid, haproxy = instance.procs["rhid"].pid, instance.procs["haproxy"].pid
    rhid_cpu, haproxy_cpu, wall = cpu_seconds(rhid), cpu_seconds(haproxy), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - wall
    rhid_per_s = (cpu_seconds(rhid) - rhid_cpu) / elapsed
    dump_per_s = (cpu_seconds(haproxy) - haproxy_cpu) / elapsed - haproxy_idle_per_s
    return {
        "rhid_cpu_ms_per_cycle": rhid_per_s * 1000,  # 1 cycle per second
        "haproxy_dump_cpu_ms_per_cycle": max(dump_per_s, 0.0) * 1000,
        "core_share_at_1hz_pct": (rhid_per_s + max(dump_per_s, 0.0)) * 100,
        "rhid_rss_mb": rss_mb(rhid),
    }


def run(count: int, seconds: float, changes: int) -> tuple[dict[str, float], dict[str, object]]:
    backends = {f"be{i}": ["web"] for i in range(count)}
    rules = "".join(f"{prefix(i).removesuffix('/32')} = all(b:be{i})\n" for i in range(count))
    results: dict[str, float] = {"backends": count, "rules": count, "load_1m_start": os.getloadavg()[0]}
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="rhid-scale-") as tmp, lab(Path(tmp)) as instance:
        module = extra["rhid_module"] = rhid_module(Path(tmp))
        extra["rhid_commit"] = commit_of(Path(module).parent)
        print(f"rhid under test: {module} ({extra['rhid_commit']})", flush=True)
        instance.start_web("web")
        instance.start_haproxy(backends, [], checks=dict.fromkeys(backends, ""), ring=True)
        from rhid.rules import parse_rules  # noqa: PLC0415 -- after the lab is up

        instance.write_speaker_config(parse_rules(rules))
        instance.start_speaker()
        instance.start_peer()
        instance.wait_established(60)
        haproxy = instance.procs["haproxy"].pid

        idle_start = cpu_seconds(haproxy)
        time.sleep(seconds / 2)
        haproxy_idle_per_s = (cpu_seconds(haproxy) - idle_start) / (seconds / 2)
        results.update(measure_queries(instance, count, haproxy_idle_per_s))

        started = time.monotonic()
        instance.start_rhid(rules, "--interval", "1", "--fall", "1", "--haproxy-events", "none")
        wait_for("all routes at the peer", lambda: peer_count(instance) == count, 120, every=0.05)
        results["cold_start_s"] = time.monotonic() - started
        results["cold_start_rhid_cpu_s"] = cpu_seconds(instance.procs["rhid"].pid)
        time.sleep(2)  # settle
        results.update(measure_steady(instance, seconds, haproxy_idle_per_s))

        instance.haproxy(f"disable server be{count // 2}/s1")
        change = time.monotonic()
        wait_for("one withdrawal", lambda: peer_count(instance) == count - 1, 30, every=0.01)
        results["one_change_polling_s"] = time.monotonic() - change
        instance.stop("rhid", signal.SIGKILL)

        instance.start_rhid(rules, "--interval", "1", "--fall", "1", name="rhid_events")

        def streaming() -> bool:
            return any(e["event"] == "haproxy.events_streaming" for e in instance.events("rhid_events"))

        wait_for("the event stream", streaming, 30)
        wait_for("the route back", lambda: peer_count(instance) == count - 1, 30, every=0.05)
        instance.haproxy(f"enable server be{count // 2}/s1")
        change = time.monotonic()
        wait_for("one announcement", lambda: peer_count(instance) == count, 30, every=0.005)
        results["one_change_events_s"] = time.monotonic() - change

        time.sleep(2)  # settle
        measured, latencies = measure_changes(instance, count, changes, seconds, "rhid_events")
        results.update(measured)
        steady, dumps = (
            sum(measured[f"events_{name}_cpu_ms_per_s_{when}"] for when in ("before", "after")) / 2
            for name in ("rhid", "haproxy")
        )
        results["events_core_share_pct"] = (steady + max(dumps - haproxy_idle_per_s * 1000, 0.0)) / 10
        extra["change_events_latencies_s"] = latencies
    results["load_1m_end"] = os.getloadavg()[0]
    return results, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--changes", type=int, default=50, help="changes timed with events on (>= 1)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/scale.json"))
    args = parser.parse_args()
    if args.changes < 1:
        parser.error("--changes must be 1 or more")
    results, extra = run(args.backends, args.seconds, args.changes)
    goals = {
        "core_share_at_1hz_pct": 2.0,
        "events_core_share_pct": 2.0,
        "rhid_rss_mb": 80.0,
        "cold_start_s": 3.0,
        "change_events_p50_s": 0.02,
        "change_events_p99_s": 0.05,
    }
    print(f"{'measure':<36}{'value':>12}{'target':>10}")
    for key, value in results.items():
        target = goals.get(key)
        print(f"{key:<36}{value:>12.3f}{'' if target is None else f'< {target:g}':>10}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**results, **extra}, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
