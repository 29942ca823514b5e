"""rhid(8), generated from the argument parser itself, so the manual cannot drift from the program.

python -m rhid.manpage > packaging/rhid.8      (a test checks the committed page is current)
"""

from __future__ import annotations

import argparse
import datetime

from rhid import __version__
from rhid.cli import EPILOG, build_parser

DATE = datetime.date(2026, 11, 22)  # of the page's text; bump with it

FILES = [
    ("/etc/hapee-extras/hapee-rhi.cfg", "the rules; validate with rhid check"),
    ("/etc/default/hapee-extras-rhi", "HAPEE_LB_SOCKET (Debian; /etc/sysconfig/hapee-extras-rhi on RHEL)"),
    ("/run/rhid/", "the include files rhid writes for BIRD, its status socket and its lock"),
    ("/usr/share/doc/rhid/README.md", "the full manual: rules, BIRD set-up, every fault and what rhid does"),
]


def _escape(text: str) -> str:
    """Text for troff: backslashes and hyphens escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _metavar(action: argparse.Action) -> str:
    if action.choices:
        return "|".join(map(str, action.choices))
    return action.metavar if isinstance(action.metavar, str) else action.dest.upper()


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            flags = ", ".join(f"\\fB{_escape(flag)}\\fR" for flag in action.option_strings)
            if action.nargs != 0:
                flags += f" \\fI{_escape(_metavar(action))}\\fR"
        else:
            flags = f"\\fI{_escape(_metavar(action))}\\fR"
        help_text = (action.help or "") % {"default": action.default} if action.help else ""
        lines += [".TP", flags, _escape(help_text)]
    return lines


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name (argparse has no public way to list them)."""
    found = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(found.choices)


def render() -> str:
    """The whole page, in troff's man macros."""
    commands = subcommands(build_parser())
    lines = [
        f'.TH RHID 8 "{DATE.isoformat()}" "rhid {__version__}" "System Administration"',
        ".SH NAME",
        "rhid \\- Route Health Injection for HAProxy and BIRD (hapee\\-extras\\-rhi)",
        ".SH SYNOPSIS",
    ]
    for name in commands:
        lines += [f".B rhid {name}", ".RI [ options ]", ".br"]
    lines += [
        ".SH DESCRIPTION",
        "rhid announces a service IP in BIRD while HAProxy says this node may serve it, and withdraws",
        "it when it may not. It runs as the systemd service \\fBhapee\\-extras\\-rhi\\fR;",
        "\\fBsystemctl reload\\fR re\\-reads the rules without touching healthy routes.",
    ]
    for name, sub in commands.items():
        lines += [
            ".SH COMMAND: " + name.upper().replace("-", "\\-"),
            _escape(sub.description or ""),
            *_options(sub),
        ]
    status = EPILOG.split("\n", 1)[1].strip("\n")
    lines += [".SH EXIT STATUS", ".nf", _escape(status), ".fi", ".SH FILES"]
    for path, what in FILES:
        lines += [".TP", f"\\fI{_escape(path)}\\fR", _escape(what)]
    lines += [".SH SEE ALSO", "\\fBbird\\fR(8), \\fBbirdc\\fR(8), \\fBhaproxy\\fR(1), \\fBsystemctl\\fR(1)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
