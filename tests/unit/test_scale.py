"""C7: big rule files stay linear in time and bounded in memory (ratios, never absolute times)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from rhid.errors import RuleError
from rhid.grammar import parse_line
from rhid.plan import NO_INTENTS, decide, initial
from rhid.rules import parse_rules


def rules_text(count: int) -> str:
    return "".join(
        f"10.{i // 65536}.{(i // 256) % 256}.{i % 256} = all(b:be_{i % 50})\n" for i in range(count)
    )


def best_of(runs: int, text: str) -> float:
    """The least CPU time of `runs` compiles: the process's own CPU, which other processes on a
    busy machine do not inflate as they do the wall clock."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        parse_rules(text)
        best = min(best, time.process_time() - start)
    return best


def test_check_time_grows_linearly() -> None:
    """10x the rules costs about 10x the time (under 20x): no quadratic step hides in compile."""
    small, large = best_of(3, rules_text(1_000)), best_of(2, rules_text(10_000))
    assert large / small < 20, f"1k: {small:.3f} s, 10k: {large:.3f} s of CPU"


def test_a_run_of_comparison_characters_without_a_closing_parenthesis_costs_linear_time() -> None:
    """4x the `>` of an unclosed threshold costs about 4x the time (under 8x), not 16x: the
    comparison never gives characters back to the limit (it backtracked quadratically)."""

    def cost(length: int) -> float:
        line = "10.0.0.1 = all(b:" + ">" * length
        best = float("inf")
        for _ in range(5):
            start = time.process_time()
            for _ in range(20):
                parse_line(1, line, "t.cfg")
            best = min(best, time.process_time() - start)
        return best

    small, large = cost(1_000), cost(4_000)
    assert large / small < 8, f"1,000: {small:.4f} s, 4,000: {large:.4f} s of CPU"


def test_ten_megabytes_of_file_in_bounded_memory() -> None:
    """A 10 MB file (mostly comments, 2,000 rules) parses with peak memory a small multiple of its size."""
    text = ("# " + "x" * 1000 + "\n") * 10_000 + rules_text(2_000)
    tracemalloc.start()
    try:
        rules = parse_rules(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rules.rules) == 2_000
    assert peak < 6 * len(text), f"peak {peak / 1e6:.1f} MB for a {len(text) / 1e6:.1f} MB file"


def test_one_megabyte_line() -> None:
    """A 1 MB rule line with 50,000 networks compiles; a 1 MB bad line is reported in a short window."""
    networks = ",".join(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}" for i in range(50_000))
    rules = parse_rules(f"{networks} = any(b:be)\n")
    assert len(rules.routes) == 50_000
    assert len(decide(initial(set(), set(), 0.0), rules, {}, NO_INTENTS, 0.0).files()) == 1
    with pytest.raises(RuleError) as caught:
        parse_rules(f"{networks},10.0.0.300 = any(b:be)\n")
    rendered = caught.value.render()
    assert len(rendered) < 1_000
    assert "'10.0.0.300' is not an IPv4 or IPv6 address" in rendered
