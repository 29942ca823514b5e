"""What a busy log ring costs rhid: its CPU share while the ring it streams carries HTTP traffic logs,
and how fast a state change among that traffic still wakes a poll.

    python bench/ring_traffic.py [--seconds 5] [--rates 0,32000,64000,128000]

A fake HAProxy on a UNIX socket answers rhid's polls and streams its ring `rhid` at each rate in
turn (lines a second), 16 lines a write: one Python thread cannot write 32,000 single lines a
second, and rhid reads the same bytes either way (the kernel queues them while rhid waits); above
32,000 lines a second, rate/2000 lines a write. `rhid run`, a real
subprocess, streams it. rhid's CPU time comes from /proc/<pid>/stat over each window. Every
WAKE_EVERY seconds the stream carries one state-change line (``Server be/s1 is UP``) among the
traffic; its wake-up latency runs from the write of that line to the next poll request rhid sends
(a targeted one, ``show stat 7 ...``, when rhid targets; else any poll: a timer poll may then come
first, rarely); p50 and p99 are printed beside the CPU share. Prints a table and writes
bench/results/ring_traffic.json. Everything runs on this machine's loopback sockets in a temp
directory, and stops by itself. The CI's short version is the read-count test in
tests/fault/test_process.py. To measure another rhid: PYTHONPATH=<its src> python bench/ring_traffic.py.

    python bench/ring_traffic.py --haproxy real [--seconds 5] [--connections 0,1,4,32]

The same against a real HAProxy (the lab's: RHID_HAPROXY names another) that serves HTTP itself
(``http-request return``) and logs every request (``option httplog``) to its ring ``rhid`` at
level info, driven by wrk (``apt-get install wrk``: one thread, each count of connections in turn;
0 is a window without traffic). The machine's own cores are shared by wrk, HAProxy and rhid, so
the last count is about the most this machine's HAProxy serves. Every WAKE_EVERY seconds the bench
disables or enables a server rhid's rule watches, on HAProxy's admin socket; the wake-up runs from
just before that command to the timestamp of rhid's ``proxy.down`` or ``proxy.up`` line (fall and
rise 1), the first such line before the next change; a change without one is counted as missed.
wrk's requests a second are its own average over its run (the window and half a second either
side). HAProxy's CPU share is printed beside rhid's; writes bench/results/ring_traffic_real.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fault import fakes
from tests.integration.lab import HAPROXY, Lab, free_port, lab, wait_for

TRAFFIC = (
    b'<6>2026-11-22T10:00:00+00:00 127.0.0.1:4242 [22/Nov/2026] fe be/s1 0/0/1/1/2 200 "GET / HTTP/1.1"\n'
)
GOOD = b"Name: HAProxy\nPid: 42\n\n# pxname,svname,status,type,check_status,iid,\nbe,BACKEND,UP,1,,7,\n\n"
CHANGE = b"<5>2026-11-22T10:00:00+00:00 Server be/s1 is UP, reason: Layer4 check passed.\n"
WAKE_EVERY = 0.2  # seconds between two state-change lines in the stream
TICKS = os.sysconf("SC_CLK_TCK")
BATCH = 16  # lines per write
RING_SIZE = 1 << 20  # bytes: the real HAProxy's ring (at 100,000 lines/s, about 70 ms of traffic)
MISSED_AFTER = 2.0  # seconds: a change rhid logs nothing for within this is missed
REQUESTS = re.compile(rb"Requests/sec:\s+([0-9.]+)")


class Ring:
    """The rate the stream is written at, changed by the bench between windows."""

    def __init__(self) -> None:
        self.rate = 0
        self.sent = 0
        self.lock = threading.Lock()
        self.changed_at: float | None = None  # when the last state-change line was written, until polled
        self.latencies: list[float] = []

    def handler(self, conn: socket.socket, stopping: threading.Event) -> None:
        conn.settimeout(2)
        request = conn.recv(4096)
        if request.startswith(b"show events\n"):
            conn.sendall(b"Supported events sinks:\n    rhid       : type=buffer, 0 dropped, rhid\n\n")
            return
        if b"show events rhid -nw" not in request:
            with self.lock:
                if self.changed_at is not None:
                    self.latencies.append(time.monotonic() - self.changed_at)
                    self.changed_at = None
            conn.sendall(GOOD)
            return
        conn.settimeout(None)  # blocking: a timeout makes every write a poll() too (a third of the rate)
        started, written, rate = time.monotonic(), 0, self.rate
        change_due = time.monotonic() + WAKE_EVERY
        while not stopping.is_set():
            if time.monotonic() >= change_due:
                conn.sendall(CHANGE)
                with self.lock:
                    self.changed_at = time.monotonic()
                change_due = time.monotonic() + WAKE_EVERY
            if self.rate != rate or not self.rate:  # a new window: pace from now on, no catching up
                started, written, rate = time.monotonic(), 0, self.rate
                time.sleep(0.001)
                continue
            batch = max(BATCH, rate // 2000)  # at most 2,000 writes a second: one thread keeps up
            writes = (int((time.monotonic() - started) * rate) - written) // batch
            if writes <= 0:
                time.sleep(0.001)
                continue
            for _ in range(min(writes, 50)):
                conn.sendall(TRAFFIC * batch)
            written += batch * min(writes, 50)
            self.sent += batch * min(writes, 50)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted `values` lie (nearest rank; nan if none)."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(share * len(values) + 0.5) - 1))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> int:
    parser = argparse.ArgumentParser(description="rhid's CPU share while its ring carries traffic logs")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window per rate")
    parser.add_argument(
        "--haproxy", choices=("fake", "real"), default="fake", help="the fake's rates, or HAProxy and wrk"
    )
    parser.add_argument(
        "--rates", default="0,32000,64000,128000", help="fake: traffic lines a second, comma-separated"
    )
    parser.add_argument(
        "--connections", default="0,1,4,32", help="real: wrk's connections per window, comma-separated"
    )
    parser.add_argument("--profile", type=Path, help="run rhid under cProfile, its stats written here")
    args = parser.parse_args()
    if args.haproxy == "real":
        return measure_real(args.seconds, [int(count) for count in args.connections.split(",")])
    rates = [int(rate) for rate in args.rates.split(",")]
    ring = Ring()
    results = []
    with tempfile.TemporaryDirectory(prefix="rhid-ring-") as tmp:
        root = Path(tmp)
        (root / "rules.cfg").write_text("10.0.0.1 = all(b:be)\n")
        server = fakes.FakeServer(root / "haproxy.sock", ring.handler, concurrent=True)
        rhid = subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", str(args.profile)] if args.profile else []),
             "-m", "rhid", "run", "-c", str(root / "rules.cfg"),
             "--haproxy-socket", str(root / "haproxy.sock"), "--bird-socket", str(root / "none.ctl"),
             "--bird-dir", str(root / "rhid"), "--haproxy-events", "auto", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(2.0)  # started, streaming
            for rate in rates:
                ring.rate = rate
                time.sleep(0.5)
                with ring.lock:
                    ring.latencies = []
                sent, cpu, wall = ring.sent, cpu_seconds(rhid.pid), time.monotonic()
                time.sleep(args.seconds)
                sent, cpu, wall = ring.sent - sent, cpu_seconds(rhid.pid) - cpu, time.monotonic() - wall
                with ring.lock:
                    latencies = sorted(ring.latencies)
                results.append(
                    {
                        "rate_asked": rate,
                        "lines_per_second": round(sent / wall),
                        "rhid_cpu_share": round(cpu / wall, 4),
                        "wakes": len(latencies),
                        "wake_p50_ms": round(1000 * percentile(latencies, 0.50), 2),
                        "wake_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
                    }
                )
        finally:
            rhid.terminate()
            rhid.wait(10)
            server.close()
    print(
        f"{'traffic lines/s (asked)':>24} {'written/s':>10} {'rhid CPU, share of a core':>26} "
        f"{'wakes':>6} {'wake p50 ms':>12} {'wake p99 ms':>12}"
    )
    for row in results:
        print(
            f"{row['rate_asked']:>24} {row['lines_per_second']:>10} {row['rhid_cpu_share']:>25.1%} "
            f"{row['wakes']:>6} {row['wake_p50_ms']:>12} {row['wake_p99_ms']:>12}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ring_traffic.json").write_text(
        json.dumps({"seconds": args.seconds, "results": results}, indent=2)
    )
    return 0


def haproxy_config(root: Path, port: int) -> Path:
    """HAProxy answering HTTP itself and logging every request to the ring rhid streams."""
    config = root / "haproxy.cfg"
    config.write_text(
        "\n".join(
            [
                "global",
                f"    stats socket {root / 'haproxy.sock'} mode 600 level admin",
                "    log ring@rhid local0 info",  # traffic logs in the ring: what this bench is about
                "ring rhid",
                "    format timed",
                f"    size {RING_SIZE}",
                "defaults",
                "    mode http",
                "    log global",
                "    option httplog",
                "    timeout connect 1s",
                "    timeout client 5s",
                "    timeout server 5s",
                "frontend fe",
                f"    bind 127.0.0.1:{port}",
                "    http-request return status 200 content-type text/plain string ok",
                "backend be",
                f"    server s1 127.0.0.1:{free_port()}",  # never connected to: only its state moves
            ]
        )
        + "\n"
    )
    return config


def logged_at(event: dict[str, object]) -> float:
    """The wall-clock time of one of rhid's JSON log lines."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


def wake_ups(instance: Lab, changes: list[tuple[float, str]]) -> tuple[list[float], int]:
    """For each (time, proxy.down|proxy.up) change, the delay to rhid's first such line after it
    and before the next change (a later line of that kind answers a later change); and how many
    got none in that time (the last change: within MISSED_AFTER)."""
    lines = [
        (logged_at(event), str(event["event"]))
        for event in instance.events()
        if event["event"] in {"proxy.down", "proxy.up"}
    ]
    delays, missed = [], 0
    ends = [at for at, _ in changes[1:]] + [changes[-1][0] + MISSED_AFTER] if changes else []
    for (at, kind), until in zip(changes, ends, strict=True):
        seen = [when - at for when, what in lines if what == kind and at <= when < until]
        if seen:
            delays.append(min(seen))
        else:
            missed += 1
    return sorted(delays), missed


def measure_real(seconds: float, connections: list[int]) -> int:
    """The real HAProxy under wrk's load: rhid's and HAProxy's CPU shares, and the wake-up."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench/ring_traffic.py --haproxy real needs wrk: apt-get install wrk")
    results = []
    with tempfile.TemporaryDirectory(prefix="rhid-ring-") as tmp, lab(Path(tmp)) as instance:
        port = free_port()
        haproxy = instance.spawn("haproxy", [HAPROXY, "-f", str(haproxy_config(instance.root, port)), "-db"])
        wait_for("HAProxy's admin socket", instance.haproxy_answers, 10)
        rhid = instance.start_rhid(
            "10.0.0.1 = all(b:be)\n", "--haproxy-events", "rhid", "--fall", "1", "--rise", "1"
        )
        wait_for(
            "rhid to stream the ring",
            lambda: any(e["event"] == "haproxy.events_streaming" for e in instance.events()),
            20,
        )
        down = False
        for count in connections:
            load = None
            if count:
                load = subprocess.Popen(
                    [wrk, "-t1", f"-c{count}", f"-d{math.ceil(seconds + 1.5)}s", f"http://127.0.0.1:{port}/"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            time.sleep(0.5)  # the load is on
            changes: list[tuple[float, str]] = []
            cpu = cpu_seconds(rhid.pid), cpu_seconds(haproxy.pid)
            wall = time.monotonic()
            while time.monotonic() < wall + seconds:
                time.sleep(WAKE_EVERY)
                down = not down
                changes.append((time.time(), "proxy.down" if down else "proxy.up"))
                instance.haproxy(f"{'disable' if down else 'enable'} server be/s1")
            wall = time.monotonic() - wall
            rhid_cpu = (cpu_seconds(rhid.pid) - cpu[0]) / wall
            haproxy_cpu = (cpu_seconds(haproxy.pid) - cpu[1]) / wall
            served = 0.0
            if load is not None:
                output, _ = load.communicate(timeout=30)
                match = REQUESTS.search(output)
                if match is None:
                    raise SystemExit(f"wrk printed no Requests/sec ({count} connections): {output[-300:]!r}")
                served = float(match.group(1))
            time.sleep(MISSED_AFTER)  # the last change's line, if it comes
            delays, missed = wake_ups(instance, changes)
            results.append(
                {
                    "connections": count,
                    "requests_per_second": round(served),
                    "rhid_cpu_share": round(rhid_cpu, 4),
                    "haproxy_cpu_share": round(haproxy_cpu, 4),
                    "changes": len(changes),
                    "missed": missed,
                    "wake_p50_ms": round(1000 * percentile(delays, 0.50), 2),
                    "wake_p99_ms": round(1000 * percentile(delays, 0.99), 2),
                }
            )
    print(
        f"{'wrk connections':>16} {'requests/s = ring lines/s':>26} {'rhid CPU':>9} {'HAProxy CPU':>12} "
        f"{'changes':>8} {'missed':>7} {'wake p50 ms':>12} {'wake p99 ms':>12}"
    )
    for row in results:
        print(
            f"{row['connections']:>16} {row['requests_per_second']:>26} {row['rhid_cpu_share']:>9.1%} "
            f"{row['haproxy_cpu_share']:>12.1%} {row['changes']:>8} {row['missed']:>7} "
            f"{row['wake_p50_ms']:>12} {row['wake_p99_ms']:>12}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ring_traffic_real.json").write_text(
        json.dumps({"seconds": seconds, "haproxy": HAPROXY, "results": results}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
