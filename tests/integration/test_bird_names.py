"""rhid's list of names BIRD refuses matches the installed BIRD."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from rhid import names
from tests.integration.lab import BIRD

pytestmark = pytest.mark.integration


def bird_accepts(tmp_path: Path, name: str) -> bool:
    config = tmp_path / "probe.conf"
    config.write_text(f"router id 127.0.0.1;\nprotocol static {name} {{\n  ipv4;\n}}\n")
    return subprocess.run([BIRD, "-p", "-c", str(config)], capture_output=True, check=False).returncode == 0


# Keywords of BIRD 1.6.8 that BIRD 2.0.12 accepts as names; rhid refuses them so that a rule file
# stays valid on both.
BIRD_1_6_ONLY = {"cast", "dual", "listen", "master", "multipath", "old", "opaque", "peer", "quitbird", "roa",
                 "transparent", "v6only"}  # fmt: skip


def test_every_reserved_word_is_refused_by_bird(tmp_path: Path) -> None:
    """Each word rhid refuses is refused by the installed BIRD 2, except the known 1.6-only ones."""
    accepted = {word for word in names.BIRD_RESERVED if bird_accepts(tmp_path, word)}
    assert accepted == BIRD_1_6_ONLY


def test_names_rhid_accepts_are_accepted_by_bird(tmp_path: Path) -> None:
    """Random names that pass rhid's check also pass `bird -p`: no false acceptances."""
    rng = random.Random(2026)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    samples = ["vol1", "vol1_v6", "g" * 64, "A" * 31, "a" * 33]
    while len(samples) < 60:
        name = rng.choice("abcdefxyz_") + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if names.is_bird_symbol(name):
            samples.append(name)
    refused = [name for name in samples if not bird_accepts(tmp_path, name)]
    assert refused == []
