"""The ``rhid`` command line: argument parsing and what each subcommand prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rhid import __version__
from rhid.errors import RuleError, RuleFileError
from rhid.rules import DEFAULT_RULES_PATH, ProxyKind, RuleSet, load_rules

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def summarize(rules: RuleSet) -> str:
    """One line an operator can read: what the file asks for."""
    routes = rules.routes
    v6 = sum(1 for route in routes if route.prefix.version == 6)
    tables = sorted({channel.table for channel in rules.channels})
    backends = sum(1 for proxy in rules.proxies if proxy.kind is ProxyKind.BACKEND)
    frontends = len(rules.proxies) - backends
    return (
        f"{rules.path}: OK: {_count(len(rules.rules), 'rule')}, "
        f"{_count(len(routes), 'route')} ({len(routes) - v6} IPv4, {v6} IPv6) "
        f"in {_count(len(tables), 'table')} ({', '.join(tables) or '-'}), "
        f"{_count(len(rules.proxies), 'proxy', 'proxies')} referenced "
        f"({_count(backends, 'backend')}, {_count(frontends, 'frontend')})"
    )


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def describe(rules: RuleSet) -> dict[str, Any]:
    """The compiled rules as plain data, for ``--json``."""
    return {
        "path": rules.path,
        "rules": [
            {
                "line": rule.line,
                "routes": [
                    {
                        "table": route.table,
                        "prefix": str(route.prefix),
                        "family": route.prefix.version,
                        "bird_protocol": route.channel.protocol,
                    }
                    for route in rule.routes
                ],
                "condition": {
                    "aggregate": rule.condition.aggregate.value,
                    "operands": [
                        {"kind": proxy.kind.word, "name": proxy.name} for proxy in rule.condition.operands
                    ],
                },
            }
            for rule in rules.rules
        ],
        "tables": sorted({channel.table for channel in rules.channels}),
        "proxies": sorted(
            ({"kind": proxy.kind.word, "name": proxy.name} for proxy in rules.proxies),
            key=lambda item: (item["kind"], item["name"]),
        ),
    }


def check(path: str, *, as_json: bool, allow_empty: bool, out: TextIO, err: TextIO) -> int:
    """``rhid check``: the exact validation the daemon runs at start-up and reload."""
    try:
        rules = load_rules(path, allow_empty=allow_empty)
    except RuleFileError as exc:
        print(f"rhid: cannot read rule file {exc}", file=err)
        return EXIT_UNREADABLE
    except RuleError as exc:
        if as_json:
            errors = [
                {"path": d.path, "line": d.line, "col": d.col, "message": d.message, "hint": d.hint}
                for d in exc.diagnostics
            ]
            json.dump({"valid": False, "errors": errors}, out, indent=2)
            out.write("\n")
        print(exc.render(), file=err)
        print(f"{path}: {_count(len(exc.diagnostics), 'error')}", file=err)
        return EXIT_INVALID
    if as_json:
        json.dump({"valid": True, **describe(rules)}, out, indent=2)
        out.write("\n")
    else:
        print(summarize(rules), file=out)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="rhid", description="Route Health Injection for HAProxy and BIRD.")
    parser.add_argument("--version", action="version", version=f"rhid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check_parser = commands.add_parser("check", help="validate the rule file exactly as the daemon does")
    check_parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_RULES_PATH,
        metavar="FILE",
        help=f"rule file (default {DEFAULT_RULES_PATH})",
    )
    check_parser.add_argument("--json", action="store_true", help="print the compiled rules as JSON")
    check_parser.add_argument(
        "--allow-empty", action="store_true", help="accept a file without rules (withdraws every route)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rhid`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return check(
                args.config, as_json=args.json, allow_empty=args.allow_empty, out=sys.stdout, err=sys.stderr
            )
    except BrokenPipeError:
        # `rhid check --json | head`: the reader left; that is not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command!r}")
