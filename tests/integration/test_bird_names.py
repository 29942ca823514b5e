"""rhid refuses every name the installed BIRD refuses, and BIRD takes the names rhid accepts.

rhid's reserved-word list is conservative on purpose: it is what BIRD 2.0 and 1.6 refuse, so a
rule file stays valid on every BIRD. Newer BIRDs refuse fewer of its words (2.17 and 3.4 take most
keywords as names), which is fine; what must never happen is a name rhid accepts and the installed
BIRD refuses, so the test reads the installed BIRD's keywords from its executable and probes them.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from rhid import names
from tests.integration.lab import BIRD, BIRD_EXECUTABLE

pytestmark = pytest.mark.integration

_ERROR_LINE = re.compile(r"probe\.conf:(\d+):\d+ ")
_FIRST_LINE = 2  # the probe's line 1 is the router id, then one protocol a line


def bird_accepts(tmp_path: Path, name: str) -> bool:
    return not refused_by_bird(tmp_path, [name])


def refused_by_bird(tmp_path: Path, candidates: Iterable[str]) -> list[str]:
    """The candidates `bird -p` refuses as protocol names, probed many to a file.

    BIRD stops at the first error and names its line: that name counts as refused if BIRD
    refuses it alone too, and the rest are probed again without it."""
    pending = sorted(set(candidates))
    refused: list[str] = []
    config = tmp_path / "probe.conf"
    while pending:
        config.write_text(
            "router id 127.0.0.1;\n" + "".join(f"protocol static {name} {{ ipv4; }}\n" for name in pending)
        )
        result = subprocess.run([BIRD, "-p", "-c", str(config)], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return refused
        said = result.stdout + result.stderr
        line = _ERROR_LINE.search(said)
        index = int(line.group(1)) - _FIRST_LINE if line else -1
        if not 0 <= index < len(pending):
            raise AssertionError(f"bird -p refused the probe outside its names: {said.strip()}")
        culprit = pending.pop(index)
        if not pending or refused_by_bird(tmp_path, [culprit]):
            refused.append(culprit)
    return refused


def keyword_candidates(executable: Path) -> set[str]:
    """Every lowercase word in BIRD's executable, and every suffix of one (the linker merges the
    tails of strings, so a keyword may be stored only inside a longer one)."""
    data = executable.read_bytes()
    assert data.startswith(b"\x7fELF"), f"{executable} is not BIRD's executable: set RHID_BIRD_EXECUTABLE"
    words: set[str] = set()
    for run in re.findall(rb"[a-z0-9_]+", data):
        text = run.decode()
        words.update(text[start:] for start in range(len(text)) if not text[start].isdigit())
    return words


def quietly_accepted(name: str) -> bool:
    """rhid takes the name without an error or a warning."""
    return names.is_bird_symbol(name) and names.newer_bird_problem(name) is None


def test_every_name_bird_refuses_rhid_refuses_too(tmp_path: Path) -> None:
    """Each keyword of the installed BIRD that it refuses as a protocol name, rhid refuses or warns of."""
    candidates = keyword_candidates(Path(BIRD_EXECUTABLE))
    assert {"protocol", "static", "ipv4", "bgp"} <= candidates, "these are not BIRD's keywords"
    assert refused_by_bird(tmp_path, ["ipv4"]) == ["ipv4"], "the probe cannot see a refusal"
    accepted_by_rhid = {word for word in candidates if quietly_accepted(word)}
    assert refused_by_bird(tmp_path, accepted_by_rhid) == []


def test_hex_names_rhid_accepts_are_accepted_by_bird(tmp_path: Path) -> None:
    """Runs of hex digits of every length up to 64 that rhid takes are names to BIRD, not byte strings."""
    runs = [digits[:length] for digits in ("ab" * 32, "a0" * 32, "f" * 64) for length in range(1, 65)]
    assert refused_by_bird(tmp_path, [run for run in runs if quietly_accepted(run)]) == []


def test_names_rhid_accepts_are_accepted_by_bird(tmp_path: Path) -> None:
    """Random names that pass rhid's check also pass `bird -p`: no false acceptances."""
    rng = random.Random(2026)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    samples = ["vol1", "vol1_v6", "g" * 64, "A" * 31, "a" * 33]
    while len(samples) < 60:
        name = rng.choice("abcdefxyz_") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if quietly_accepted(name):
            samples.append(name)
    refused = [name for name in samples if not bird_accepts(tmp_path, name)]
    assert refused == []
