"""Hypothesis and mutation fuzzing of the HAProxy and BIRD reply parsers, whole and byte by byte."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rhid.birdwire import ReplyReader
from rhid.errors import BirdProtocolError, RuleError
from rhid.rules import parse_rules
from tests.fuzz import driver


@given(st.binary(max_size=2000))
def test_any_bytes_as_haproxy_reply(data: bytes) -> None:
    """Arbitrary bytes as an HAProxy reply give a Snapshot or HAProxyProtocolError, nothing else."""
    driver.fuzz_haproxy(data)


def test_every_prefix_of_a_real_haproxy_reply() -> None:
    """The captured reply cut at every byte (a reply arriving byte by byte) parses or is refused cleanly."""
    for end in range(len(driver.HAPROXY_SEED) + 1):
        driver.fuzz_haproxy(driver.HAPROXY_SEED[:end])


@given(st.binary(max_size=600), st.integers(1, 7))
def test_any_bytes_as_bird_replies_in_any_chunks(data: bytes, size: int) -> None:
    """Arbitrary bytes fed to the BIRD reader whole or in chunks give replies or BirdProtocolError."""
    driver.fuzz_bird(data)
    reader = ReplyReader()
    with contextlib.suppress(BirdProtocolError):
        for start in range(0, len(data), size):
            reader.feed(data[start : start + size])


def test_every_prefix_of_rule_text() -> None:
    """A rule file truncated at any byte compiles or raises RuleError."""
    text = driver.RULE_SEED.decode()
    for end in range(len(text) + 1):
        with contextlib.suppress(RuleError):
            parse_rules(text[:end], allow_empty=True)


@pytest.mark.parametrize("target", sorted(driver.TARGETS))
def test_mutation_fuzzer_short_run(target: str) -> None:
    """A short run of the mutation fuzzer (bench/fuzz.py runs a million) finds no foreign exception."""
    result = driver.run(target, 3_000)
    assert result.findings == [], "\n\n".join(result.findings)
