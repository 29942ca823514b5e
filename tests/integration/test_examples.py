"""The examples the README sends operators to are valid for the real programs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rhid.birdconf import bird_snippet, include_directory
from rhid.rulefile import load_rules
from rhid.rules import parse_rules
from tests.integration.lab import BIRD, Lab, lab, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_example_bird_conf_is_valid_and_carries_the_example_rules(tmp_path: Path) -> None:
    """etc/bird.conf.example parses with bird -p and declares exactly rhid bird-config's protocols."""
    example = (ROOT / "etc" / "bird.conf.example").read_text()
    config = tmp_path / "bird.conf"
    config.write_text(example.replace("/run/rhi[d]", include_directory(str(tmp_path / "rhid"))))
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


def test_bird_starts_and_configures_while_the_include_directory_is_missing(tmp_path: Path) -> None:
    """Real BIRD starts and `configure`s with rhid's snippet while its directory does not exist (a
    boot before rhid ran, a purge), and reads the routes once the directory and files appear."""
    with lab(tmp_path) as instance:
        instance.write_speaker_config(parse_rules("10.80.0.1 = always\n"))
        instance.bird_dir.rmdir()
        instance.start_speaker()
        assert "Reconfigured" in (instance.birdc("speaker", "configure") or ""), instance.log("speaker")
        instance.bird_dir.mkdir()
        (instance.bird_dir / "vol1.ipv4.conf").write_text("route 10.80.0.1/32 blackhole;\n")
        assert "Reconfigured" in (instance.birdc("speaker", "configure") or "")
        wait_for("the route in BIRD", lambda: "10.80.0.1/32" in _routes(instance), 10)


def _routes(instance: Lab) -> str:
    return instance.birdc("speaker", "show route protocol vol1") or ""
