"""Misbehaving Prometheus scrapers, run as a process of their own (so that their threads do not share
the test's interpreter lock): `python -m tests.fault.scrapers PORT SECONDS FAST SLOW`.

FAST threads scrape /metrics as fast as they can, each with a short timeout; SLOW threads open a
connection, trickle a request one byte every 50 ms and never finish it. At the end it prints one
JSON line: how many scrapes succeeded, failed or were refused.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time


def fast(port: int, until: float, counts: dict[str, int], lock: threading.Lock) -> None:
    while time.monotonic() < until:
        outcome = "failed"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                outcome = "ok" if data.startswith(b"HTTP/1.1 200") else ("refused" if not data else "failed")
        except OSError:
            outcome = "refused"
        with lock:
            counts[outcome] = counts.get(outcome, 0) + 1


def slow(port: int, until: float) -> None:
    while time.monotonic() < until:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
                for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\n" * 100:
                    if time.monotonic() >= until:
                        return
                    sock.sendall(bytes([byte]))
                    time.sleep(0.05)
        except OSError:
            time.sleep(0.05)  # cut off by the server: come back


def main(argv: list[str]) -> int:
    port, seconds, fast_threads, slow_threads = int(argv[0]), float(argv[1]), int(argv[2]), int(argv[3])
    until = time.monotonic() + seconds
    counts: dict[str, int] = {}
    lock = threading.Lock()
    threads = [threading.Thread(target=fast, args=(port, until, counts, lock)) for _ in range(fast_threads)]
    threads += [threading.Thread(target=slow, args=(port, until)) for _ in range(slow_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
