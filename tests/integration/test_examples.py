"""The examples the README sends operators to are valid for the real programs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rhid.birdconf import bird_snippet
from rhid.rules import load_rules
from tests.integration.lab import BIRD

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_example_bird_conf_is_valid_and_carries_the_example_rules(tmp_path: Path) -> None:
    """etc/bird.conf.example parses with bird -p and declares exactly rhid bird-config's protocols."""
    example = (ROOT / "etc" / "bird.conf.example").read_text()
    config = tmp_path / "bird.conf"
    config.write_text(example.replace("/run/rhid", str(tmp_path)))
    result = subprocess.run(
        [BIRD, "-p", "-c", str(config)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    snippet = bird_snippet(load_rules(ROOT / "etc" / "hapee-rhi.cfg"), "/run/rhid")
    declared = re.findall(r"^protocol static (\S+) \{\n  (ipv[46]);\n  include \"([^\"]+)\";", example, re.M)
    assert declared == re.findall(
        r"^protocol static (\S+) \{\n  (ipv[46]);\n  include \"([^\"]+)\";", snippet, re.M
    )
    code = [line.split("#", 1)[0] for line in example.splitlines()]
    assert not [line for line in code if "export all" in line], "nothing exports every route to the kernel"
