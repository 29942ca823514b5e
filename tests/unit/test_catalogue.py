"""One catalogue of event names: every event rhid logs is a literal in rhid.catalogue, at the level
it is logged at, and every catalogued event is logged somewhere (so `grep NAME src/` finds it)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from rhid.catalogue import EVENTS, table

SOURCES = Path(__file__).parents[2] / "src" / "rhid"
NAME = re.compile(r"[a-z]+\.[a-z_]+\Z")
NOT_EVENTS = {"rhid.sock", "drains.json", "bird.conf"}  # file names of the same shape
LEVELS = ["debug", "info", "warning", "error", "critical"]


def literals() -> dict[str, set[str]]:
    """Every string constant of an event's shape in src/rhid (outside the catalogue), by module."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES.glob("*.py"):
        if path.stem == "catalogue":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
                found[node.value].add(path.stem)
    return found


def logged_levels() -> dict[str, set[str]]:
    """The levels of every direct call `log.LEVEL("name", ...)` and `_log("name", level=...)`."""
    levels: dict[str, set[str]] = defaultdict(set)
    for path in SOURCES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                continue
            name = node.args[0].value
            function = node.func
            if isinstance(function, ast.Attribute) and function.attr in LEVELS:
                levels[str(name)].add(function.attr)
            elif isinstance(function, ast.Attribute) and function.attr == "_log":
                level = next((k.value for k in node.keywords if k.arg == "level"), ast.Constant("info"))
                assert isinstance(level, ast.Constant)
                levels[str(name)].add(str(level.value))
    return levels


def test_every_event_logged_is_catalogued_and_every_entry_is_logged() -> None:
    """No event name outside the catalogue, and no catalogue entry that nothing emits."""
    found = set(literals()) - NOT_EVENTS
    assert found - set(EVENTS) == set(), "logged but not catalogued"
    assert set(EVENTS) - found == set(), "catalogued but never spelt as a literal in src/rhid"


def test_each_event_is_catalogued_at_the_worst_level_it_is_logged_at() -> None:
    """The catalogue's level is the most severe of the levels the code logs the event at."""
    for name, levels in logged_levels().items():
        if name in EVENTS:
            assert EVENTS[name].level == max(levels, key=LEVELS.index), name


def test_the_table_lists_every_event_once() -> None:
    """The table has a row per event."""
    rows = [line for line in table().splitlines() if line.startswith("| `")]
    assert len(rows) == len(EVENTS)


def test_the_readme_lists_the_catalogue() -> None:
    """The README's table of events is the catalogue's, row for row."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    shown = [line.strip() for line in readme.splitlines() if line.strip().startswith("| `") and "." in line]
    assert [row for row in table().splitlines() if row.startswith("| `")] == [
        row for row in shown if row.split("`")[1] in EVENTS
    ]
