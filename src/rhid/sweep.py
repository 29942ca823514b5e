"""How often the full poll runs while HAProxy's event stream is live: a pure policy.

With a live stream, an event names the proxy that changed and a targeted poll reads it; the full
poll (every proxy the rules name) is the guard against what the stream does not say: lines a ring
dropped, proxies with ``no log``, changes HAProxy logs nothing for. It need not run every
``--interval`` then; its period follows its measured cost so that it stays within a share of one
core (`budget`), between ``--interval`` and ``--sweep-max``:

    period = max(interval, min(most, cost / budget))

`cost` is the smoothed cost of one full poll, in seconds of CPU: rhid's own (the cycle's process
time: poll, parse, health, plan) plus HAProxy's (its dump, estimated from above by the wall time
of the exchange: the dump is CPU-bound). The smoothing follows a rise at once and a fall by
halves, so one cheap poll (a cache warm, a quiet moment) does not shorten the period much, and a
costly one lengthens it at once. Without a live stream the daemon does not use this: every poll is
a full one, every ``--interval``, as the vendor's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_BUDGET = 1.0  # percent of one core for the full poll while the stream is live
DEFAULT_MOST = 10.0  # seconds: the longest the full poll waits while the stream is live


@dataclass(frozen=True, slots=True)
class Sweep:
    """The full poll's smoothed cost (seconds of CPU, rhid's and HAProxy's), None before the first."""

    cost: float | None = None

    def measured(self, cost: float) -> Sweep:
        """After a full poll that cost `cost` seconds: up at once, down by half the difference."""
        if not math.isfinite(cost) or cost < 0:
            return self
        if self.cost is None or cost >= self.cost:
            return Sweep(cost)
        return Sweep((self.cost + cost) / 2)

    def period(self, budget: float, interval: float, most: float) -> float:
        """Seconds from one full poll to the next: its cost over `budget` (percent of one core), at
        least `interval` and at most `most` (and at least `interval` when `most` is shorter)."""
        cost = self.cost or 0.0
        return max(interval, min(most, cost / (budget / 100)))
