"""Benchmark: a burst of `rhid status` listings at scale, and what it does to the loop.

    python bench/status_burst.py [--backends 10000] [--clients 16] [--request 'status routes']
                                 [--seconds 10] [--json bench/results/status_burst.json]

Starts a lab with real HAProxy (`--backends` backends, one server each) and a BIRD speaker, and
rhid on it at `--interval 1` (events on) with a NOTIFY_SOCKET that this bench reads every 5 ms,
stamping each datagram's arrival. After READY=1 and a settle, it records `--seconds` of steady
WATCHDOG=1 (rhid sends one after every completed cycle), then opens `--clients` connections at
once to rhid.sock, each sending `--request` (``status routes`` is every route since the overview
became the default; an older rhid lists every route on ``status``: pass ``--request status`` to
measure one with PYTHONPATH=<its worktree>/src) and reading to EOF on its own thread. Prints,
for the burst (from the first connection until the last client is done, plus one interval) and the
steady window before it: the largest gap between two WATCHDOG=1, their count, rhid's CPU; and per
client whether its reply was complete (JSON with every route, or the overview's JSON for
``status`` since it became the default), its size and its time. Asserts
nothing. The load average is printed at the start and the end: the machine is shared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.lab import Lab, NotifyListener, lab, wait_for

TICK = os.sysconf("SC_CLK_TCK")

SETTLE = 3.0  # seconds after READY=1 before the steady window
INTERVAL = 1.0  # rhid's --interval


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc (as bench/scale.py reads it)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rule_line(index: int) -> str:
    """Rule `index`: a /32 of its own for backend be<index> (bench/scale.py's addresses)."""
    return f"10.{100 + index // 65536}.{(index // 256) % 256}.{index % 256} = all(b:be{index})\n"


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


class Stamps:
    """WATCHDOG=1 arrivals on the notify socket, read every 5 ms on a thread."""

    def __init__(self, listener: NotifyListener) -> None:
        self.listener = listener
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self) -> None:
        while not self.stop.is_set():
            self.listener.collect()
            time.sleep(0.005)

    def watchdog(self, start: float, end: float) -> list[float]:
        """When each WATCHDOG=1 arrived between `start` and `end`."""
        messages = list(self.listener.messages)
        return [at for at, text in messages if start <= at <= end and "WATCHDOG=1" in text.split("\n")]

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def gaps(stamps: list[float], start: float, end: float) -> float:
    """The largest gap between two WATCHDOG=1, counting the window's edges."""
    points = [start, *stamps, end]
    return max(b - a for a, b in itertools.pairwise(points))


@dataclass
class Got:
    """What one client got: a complete reply (JSON with every route), its size, its time, why not."""

    complete: bool
    size: int
    seconds: float
    end: float
    why: str = ""


def read_reply(path: str, request: bytes) -> bytes | str:
    """Ask once on a plain socket (no rhid code, so any rhid version can be measured) and read to
    EOF, at most 10 s without a byte; the reply, or why there is none."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10.0)
        try:
            sock.connect(path)
            try:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered at once (busy) and closed: read what it said
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}"
    return b"".join(chunks)


Replies = list[tuple[bytes | str, float, float]]  # each client's reply (or why none), its time, its end


def client(path: str, request: bytes, out: Replies, go: threading.Event) -> None:
    """One client: wait for the start, ask, read to EOF; keep the reply (parsed after the burst, so
    that this process's parsing never delays the notify socket's stamps)."""
    go.wait()
    started = time.monotonic()
    reply = read_reply(path, request)
    out.append((reply, time.monotonic() - started, time.monotonic()))


def judge(reply: bytes | str, took: float, end: float, count: int) -> Got:
    """A complete reply is JSON with every route."""
    if isinstance(reply, str):
        return Got(False, 0, took, end, reply)
    try:
        document = json.loads(reply)
    except ValueError:
        return Got(False, len(reply), took, end, "truncated (not JSON)")
    routes = document.get("routes")
    overview = "attention" in document  # `status` since the overview is the default
    complete = (isinstance(routes, list) and len(routes) == count) or overview
    why = "" if complete else str(document.get("error") or f"{len(routes or [])} routes")
    return Got(complete, len(reply), took, end, why)


def run(count: int, clients: int, request: bytes, seconds: float) -> dict[str, object]:
    rules = "".join(rule_line(i) for i in range(count))
    results: dict[str, object] = {"backends": count, "clients": clients, "request": request.decode().strip()}
    results["load_1m_start"] = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rhid-burst-") as tmp, lab(Path(tmp)) as instance:
        module = rhid_module(Path(tmp))
        results["rhid_module"], results["rhid_commit"] = module, commit_of(Path(module).parent)
        print(f"rhid under test: {module} ({results['rhid_commit']})", flush=True)
        listener = NotifyListener(Path(tmp) / "notify.sock")
        stamps = Stamps(listener)
        try:
            results.update(burst(instance, listener, stamps, rules, count, clients, request, seconds))
        finally:
            stamps.close()
            listener.close()
    results["load_1m_end"] = os.getloadavg()[0]
    return results


def burst(  # noqa: PLR0917 -- one lab's parts, passed once
    instance: Lab,
    listener: NotifyListener,
    stamps: Stamps,
    rules: str,
    count: int,
    clients: int,
    request: bytes,
    seconds: float,
) -> dict[str, object]:
    """Start rhid, measure the steady window, then the burst."""
    backends = {f"be{i}": ["web"] for i in range(count)}
    instance.start_web("web")
    instance.start_haproxy(backends, [], checks=dict.fromkeys(backends, ""), ring=True)
    from rhid.rules import parse_rules  # noqa: PLC0415 -- after the lab is up

    instance.write_speaker_config(parse_rules(rules))
    instance.start_speaker()
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "10000000"}
    instance.start_rhid(rules, "--interval", str(INTERVAL), "--fall", "1", env=env)
    wait_for("READY=1", lambda: any("READY=1" in text.split("\n") for _, text in listener.messages), 120)
    time.sleep(SETTLE)
    pid = instance.procs["rhid"].pid
    steady_start, steady_cpu = time.monotonic(), cpu_seconds(pid)
    time.sleep(seconds)
    steady_end = time.monotonic()
    steady_cpu = cpu_seconds(pid) - steady_cpu
    path = str(instance.bird_dir / "rhid.sock")
    replies: Replies = []
    go = threading.Event()
    threads = [threading.Thread(target=client, args=(path, request, replies, go)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    burst_cpu = cpu_seconds(pid)
    burst_start = time.monotonic()
    go.set()
    for thread in threads:
        thread.join()
    out = [judge(reply, took, end, count) for reply, took, end in replies]
    last = max(one.end for one in out)
    time.sleep(INTERVAL)
    burst_end = last + INTERVAL
    burst_cpu = cpu_seconds(pid) - burst_cpu
    fed_steady = stamps.watchdog(steady_start, steady_end)
    fed_burst = stamps.watchdog(burst_start, burst_end)
    times = sorted(one.seconds for one in out)
    return {
        "steady_watchdog_count": len(fed_steady),
        "steady_max_watchdog_gap_s": gaps(fed_steady, steady_start, steady_end),
        "steady_rhid_cpu_s_per_s": steady_cpu / (steady_end - steady_start),
        "burst_seconds": last - burst_start,
        "burst_watchdog_count": len(fed_burst),
        "burst_max_watchdog_gap_s": gaps(fed_burst, burst_start, burst_end),
        "burst_rhid_cpu_s": burst_cpu,
        "clients_complete": sum(1 for one in out if one.complete),
        "client_seconds_min": times[0],
        "client_seconds_max": times[-1],
        "reply_bytes_max": max(one.size for one in out),
        "failures": sorted({one.why for one in out if not one.complete}),
        "burst_watchdog_at_s": [round(at - burst_start, 3) for at in fed_burst],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--request", default="status routes", help="the request line each client sends")
    parser.add_argument("--seconds", type=float, default=10.0, help="the steady window before the burst")
    parser.add_argument("--json", type=Path, default=Path("bench/results/status_burst.json"))
    args = parser.parse_args()
    results = run(args.backends, args.clients, args.request.encode() + b"\n", args.seconds)
    for key, value in results.items():
        print(f"{key:<32}{value:>14.3f}" if isinstance(value, float) else f"{key:<32}{value!s:>14}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
