"""rhid(8) is generated from the argument parser; the committed page must be the current one."""

from __future__ import annotations

from pathlib import Path

from rhid.cli import build_parser
from rhid.manpage import render, subcommands

PAGE = Path(__file__).parents[2] / "packaging" / "rhid.8"


def test_committed_man_page_is_generated_from_the_current_parser() -> None:
    """packaging/rhid.8 equals `python -m rhid.manpage` (regenerate it after changing an option)."""
    assert PAGE.read_text() == render()


def test_man_page_names_every_option_and_exit_status() -> None:
    """Every option of every command appears in the page, and so does each exit status."""
    page = render()
    for sub in subcommands(build_parser()).values():
        for action in sub._actions:
            for flag in set(action.option_strings) - {"-h", "--help"}:
                assert flag.replace("-", "\\-") in page, flag
    for status in range(5):
        assert f"\n  {status}  " in page, status
