"""The house's one-way arrows: the shared vocabulary and the protocol modules never load the rule
compiler (or pyparsing), and the vocabulary imports nothing of rhid's."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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
    [
        "rhid.health",
        "rhid.stats",
        "rhid.birdwire",
        "rhid.routefiles",
        "rhid.haproxy",
        "rhid.backoff",
        "rhid.inventory",
        "rhid.controlwire",
        "rhid.probe",
        "rhid.entry",
    ],
)
def test_protocol_modules_do_not_load_the_rule_compiler(module: str) -> None:
    """Parsers, the hysteresis policy and the HAProxy edge work without rules, grammar or pyparsing."""
    loaded = loaded_after(module)
    assert not {"rhid.rules", "rhid.grammar", "pyparsing"} & set(loaded), loaded


def test_the_vocabulary_imports_nothing_of_rhid() -> None:
    """rhid.model depends on nothing else of rhid's."""
    assert loaded_after("rhid.model") == ["rhid", "rhid.model"]


PURE = [
    "model",
    "grammar",
    "rules",
    "stats",
    "birdwire",
    "health",
    "plan",
    "reconciler",
    "backoff",
    "names",
    "catalogue",
    "dialect",
    "drain",
    "birdconf",
    "shutdown",
    "damping",
    "guard",
    "gateway",
    "series",
    "inventory",
    "sweep",
]
EFFECTS = {
    "socket",
    "select",
    "time",
    "os",
    "signal",
    "subprocess",
    "threading",
    "selectors",
    "pathlib",
    "io",
}


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """What a module of src/rhid imports, read from its source: other packages' top-level names, and
    rhid's own modules."""
    tree = ast.parse((Path(__file__).parents[2] / "src" / "rhid" / f"{module}.py").read_text())
    packages: set[str] = set()
    ours: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "rhid":
            ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rhid."):
            ours.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module:
            packages.add(node.module.split(".")[0])
    return packages, ours


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_touch_no_sockets_files_clock_or_signals(module: str) -> None:
    """The pure core imports no socket, select, time, os or other effect, and no I/O module of rhid's."""
    packages, ours = imports_of(module)
    assert not packages & EFFECTS, f"rhid.{module} imports {sorted(packages & EFFECTS)}"
    assert ours <= {*PURE, "errors"}, (
        f"rhid.{module} imports rhid's I/O modules {sorted(ours - {*PURE, 'errors'})}"
    )
