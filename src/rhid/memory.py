"""Giving freed memory back to the system. Each change replaces maps of every route (a plan of
10,000 routes is a few MB of dicts); Python frees the old ones, but glibc's allocator keeps the
freed pages, so the daemon's RSS creeps up by tens of MB after changes although nothing leaks.
`malloc_trim(0)` hands them back. It runs at most every `TRIM_EVERY` seconds, in a quiet cycle
(no plan made in it or in the second before): never on a change's way to BIRD. Where the C
library has no `malloc_trim` (musl), nothing is done."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable

TRIM_EVERY = 30.0  # seconds between two trims at most
QUIET = 1.0  # seconds without a new plan before a trim


def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's malloc_trim, or None."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name)
    except OSError:
        return None
    trim = getattr(library, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Callable[[int], int] = trim
    return function


class Trimmer:
    """When to give freed memory back (`quiet`), and doing it."""

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self.trim = trim  # None: nothing to call (a C library without malloc_trim)
        self.last = -math.inf
        self.trims = 0

    @classmethod
    def of_libc(cls) -> Trimmer:
        """The trimmer of the C library this process runs on."""
        return cls(_malloc_trim())

    def quiet(self, now: float, planned_at: float) -> bool:
        """In a cycle with no plan made since `planned_at` + QUIET: trim if TRIM_EVERY has passed
        since the last trim. True when it trimmed."""
        if self.trim is None or now - planned_at < QUIET or now - self.last < TRIM_EVERY:
            return False
        self.last = now
        self.trim(0)
        self.trims += 1
        return True
