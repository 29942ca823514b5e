"""The house's one-way arrows: the shared vocabulary and the protocol modules never load the rule
compiler (or pyparsing), and the vocabulary imports nothing of rhid's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(module: str) -> list[str]:
    """The rhid modules and pyparsing that importing `module` alone loads, in a fresh interpreter."""
    code = (
        f"import sys, json, {module}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('rhid', 'pyparsing')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "module",
    ["rhid.health", "rhid.stats", "rhid.birdwire", "rhid.routefiles", "rhid.haproxy", "rhid.backoff"],
)
def test_protocol_modules_do_not_load_the_rule_compiler(module: str) -> None:
    """Parsers, the hysteresis policy and the HAProxy edge work without rules, grammar or pyparsing."""
    loaded = loaded_after(module)
    assert not {"rhid.rules", "rhid.grammar", "pyparsing"} & set(loaded), loaded


def test_the_vocabulary_imports_nothing_of_rhid() -> None:
    """rhid.model depends on nothing else of rhid's."""
    assert loaded_after("rhid.model") == ["rhid", "rhid.model"]
