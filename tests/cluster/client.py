"""The cluster lab's client: a steady stream of short HTTP requests, each recorded (run as a script).

    python client.py HOST PORT RATE TIMEOUT OUT

Every 1/RATE seconds it opens a new connection to HOST:PORT, sends one ``GET /`` and reads the
answer, all within TIMEOUT seconds. Each request becomes one line of OUT, written within 50 ms of
its end:

    <start, CLOCK_MONOTONIC seconds> <duration seconds> <outcome>

The outcome is the first word of a 200 answer's body (the backend's node name), else ``http<code>``,
``refused``, ``reset``, ``timeout``, ``empty``, ``garbled`` or ``oserror<errno>``. CLOCK_MONOTONIC is shared
by every network namespace, so the lab compares these times with its own. SIGTERM flushes and stops.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from contextlib import suppress
from typing import TextIO

MAX_ANSWER = 4096
FLUSH_EVERY = 0.05


async def exchange(host: str, port: int) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET / HTTP/1.0\r\nHost: service\r\n\r\n")
        answer = b""
        while len(answer) < MAX_ANSWER:
            chunk = await reader.read(MAX_ANSWER)
            if not chunk:
                break
            answer += chunk
    finally:
        writer.close()
    if not answer:
        return "empty"  # the connection closed before any answer
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
        return "garbled"
    if status[1] != b"200":
        return f"http{status[1].decode()}"
    words = body.split()
    return words[0].decode("ascii", "replace") if words else "garbled"


async def request(host: str, port: int, timeout: float, lines: list[str]) -> None:
    start = time.monotonic()
    try:
        outcome = await asyncio.wait_for(exchange(host, port), timeout)
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except ConnectionResetError:
        outcome = "reset"
    except OSError as exc:
        outcome = f"oserror{exc.errno}"
    lines.append(f"{start:.6f} {time.monotonic() - start:.6f} {outcome}\n")


async def flush(lines: list[str], out: TextIO) -> None:
    while True:
        await asyncio.sleep(FLUSH_EVERY)
        if lines:
            out.write("".join(lines))
            lines.clear()
            out.flush()


async def stream(host: str, port: int, rate: float, timeout: float, out: TextIO) -> None:
    lines: list[str] = []
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    flusher = asyncio.create_task(flush(lines, out))
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            continue
        task = asyncio.create_task(request(host, port, timeout, lines))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    if pending:
        await asyncio.wait(pending)
    flusher.cancel()
    out.write("".join(lines))
    out.flush()


def main() -> None:
    host, port, rate, timeout, path = sys.argv[1:6]
    with open(path, "a") as out:
        asyncio.run(stream(host, int(port), float(rate), float(timeout), out))


if __name__ == "__main__":
    main()
