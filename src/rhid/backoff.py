"""Retry pacing for a peer that failed: a pure value, the caller passes `now`."""

from __future__ import annotations

from dataclasses import dataclass

FIRST = 0.5
MAXIMUM = 30.0


@dataclass
class Backoff:
    """Exponential retry delay: 0.5 s doubling to 30 s, reset on success."""

    delay: float = 0.0
    retry_at: float = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at `now`; returns the delay before the next try."""
        self.delay = min(MAXIMUM, self.delay * 2 if self.delay else FIRST)
        self.retry_at = now + self.delay
        return self.delay

    def wait_until(self, moment: float) -> None:
        """Do not try before `moment` (a condition that will not change soon, like a missing ring)."""
        self.retry_at = moment

    def succeeded(self) -> None:
        """A success: the next failure starts from the first delay again."""
        self.delay = 0.0
        self.retry_at = 0.0

    def ready(self, now: float) -> bool:
        """True when a try is due."""
        return now >= self.retry_at
