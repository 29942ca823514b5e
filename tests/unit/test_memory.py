"""Freed memory goes back to the system only in quiet cycles, at most every TRIM_EVERY seconds."""

from __future__ import annotations

from rhid import memory


def test_a_trim_waits_for_quiet_and_its_period() -> None:
    """No trim within QUIET of a plan or within TRIM_EVERY of the last trim; one otherwise."""
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    trimmer = memory.Trimmer(trim)
    assert not trimmer.quiet(100.0, planned_at=100.0 - memory.QUIET / 2), "a plan was just made"
    assert trimmer.quiet(100.0, planned_at=90.0)
    assert not trimmer.quiet(100.0 + memory.TRIM_EVERY / 2, planned_at=90.0), "trimmed just now"
    assert trimmer.quiet(100.0 + memory.TRIM_EVERY, planned_at=90.0)
    assert calls == [0, 0]
    assert trimmer.trims == 2


def test_without_malloc_trim_nothing_is_done() -> None:
    """A C library without malloc_trim (musl): quiet never trims."""
    trimmer = memory.Trimmer(None)
    assert not trimmer.quiet(1000.0, planned_at=0.0)
    assert trimmer.trims == 0


def test_glibc_has_malloc_trim() -> None:
    """On Debian (glibc) the trim is found, and calling it returns."""
    trimmer = memory.Trimmer.of_libc()
    assert trimmer.trim is not None
    assert trimmer.quiet(1000.0, planned_at=0.0)
