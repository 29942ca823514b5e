"""The README tells operators what to type: every `rhid` command and option it shows must exist."""

from __future__ import annotations

import re
from pathlib import Path

from rhid.cli import build_parser
from rhid.manpage import subcommands

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
# Options of other programs the README shows (systemctl enable --now ...).
FOREIGN_OPTIONS = {"--now", "--help", "--version", "--force-confdef", "--force-confold"}  # dpkg's too
OTHER_PROGRAMS = ("python ", "python3 ", "bash ")
# `rhid` as a command word: at the start of a command, or after what runs one.
COMMAND = re.compile(r"(?:^|\$ |&& |\|\| |; |-- |/usr/bin/)rhid(?: +([a-z][a-z-]*))?")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][A-Za-z0-9-]*)")


def code_of(markdown: str) -> list[str]:
    """The code a Markdown text shows: each `inline span`, and each line of an indented block."""
    units = re.findall(r"`([^`\n]+)`", markdown)
    units += [line.strip() for line in markdown.splitlines() if line.startswith("    ") and line.strip()]
    return units


def options() -> dict[str, set[str]]:
    """Each rhid command's options (and the top level's, under "")."""
    parser = build_parser()
    found = {"": {flag for action in parser._actions for flag in action.option_strings}}
    for name, sub in subcommands(parser).items():
        found[name] = {flag for action in sub._actions for flag in action.option_strings}
    return found


def mentioned(units: list[str]) -> list[tuple[str | None, str]]:
    """(command, option) for each option shown: the rhid command it follows in its unit, or None."""
    pairs: list[tuple[str | None, str]] = []
    for unit in units:
        code = unit.split(" #", 1)[0]  # a shell comment is prose
        commands = list(COMMAND.finditer(code))
        if not commands and code.startswith(OTHER_PROGRAMS):
            continue  # a benchmark's or script's own command line: its options are its own
        for option in OPTION.finditer(code):
            before = [match for match in commands if match.end() <= option.start()]
            segment = code[before[-1].end() : option.start()] if before else ""
            after_separator = any(sep in segment for sep in ("&&", "||", ";", "|"))
            command = before[-1][1] or "" if before and not after_separator else None
            pairs.append((command, option[1]))
    return pairs


def test_every_rhid_command_the_readme_shows_exists() -> None:
    """Each `rhid COMMAND` in the README's code is one of rhid's commands."""
    known = options()
    shown = {match[1] for unit in code_of(README.read_text()) for match in COMMAND.finditer(unit)}
    assert {"check", "run", "status", "bird-config"} <= shown  # the scan finds the commands
    assert shown - {None} <= set(known), shown - set(known)


def test_every_option_the_readme_shows_exists() -> None:
    """Each option in the README's code exists: for the rhid command it follows, else for some command."""
    known = options()
    everywhere = set().union(*known.values())
    pairs = mentioned(code_of(README.read_text()))
    assert len(pairs) > 50  # the scan finds the options (79 when this test was written)
    wrong = []
    for command, option in pairs:
        if command is not None and command in known:
            allowed = known[command] | {"-h", "--help"}
        else:
            allowed = everywhere | FOREIGN_OPTIONS
        if not option.startswith("--") and command is None:
            continue  # a short option of another program (journalctl -u, apt -y ...)
        if option not in allowed:
            wrong.append((command, option))
    assert not wrong, wrong


def test_the_scan_tells_a_command_from_another_programs_option() -> None:
    """The README scan attributes `rhid status --json` to status, and `usermod -G rhid x` to nobody."""
    units = ["rhid status --json", "usermod -a -G rhid nagios", "rhid check && systemctl enable --now x",
             "python bench/cluster.py --repeat 5"]  # fmt: skip
    pairs = mentioned(units)
    assert (None, "--repeat") not in pairs
    assert ("status", "--json") in pairs
    assert (None, "-a") in pairs
    assert (None, "-G") in pairs
    assert (None, "--now") in pairs
    assert ("check", "--now") not in pairs
