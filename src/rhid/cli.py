"""The ``rhid`` command line: argument parsing and what each subcommand prints."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rhid import __version__, daemon, log, names, settings, status
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


_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")


def bird_snippet(rules: RuleSet, bird_dir: str) -> str:
    """The BIRD 2 configuration that reads rhid's files, one static protocol per table and family."""
    lines = [
        "# rhid: paste into bird.conf (BIRD 2). rhid writes the files; the wildcard lets BIRD start",
        f"# before rhid has written anything, but {bird_dir} itself must exist before BIRD starts.",
    ]
    protocols = sorted(rules.channels)
    for channel in protocols:
        pattern = f"{bird_dir.rstrip('/')}/{channel.table}.ipv{channel.family}*.conf"
        lines += [
            f"protocol static {channel.protocol} {{",
            f"  ipv{channel.family};",
            f'  include "{pattern}";',
            "}",
        ]
    v4 = " || ".join(f'proto = "{c.protocol}"' for c in protocols if c.family == 4)
    v6 = " || ".join(f'proto = "{c.protocol}"' for c in protocols if c.family == 6)
    lines.append("# and in each BGP session towards your routers, export them:")
    if v4:
        lines.append(f"#   ipv4 {{ import none; export where {v4}; next hop self; }};")
    if v6:
        lines.append(f"#   ipv6 {{ import none; export where {v6}; next hop self; }};")
    return "\n".join(lines) + "\n"


def bird_config(path: str, bird_dir: str, *, out: TextIO, err: TextIO) -> int:
    """``rhid bird-config``: print the BIRD snippet for the tables the rules use."""
    if not _SAFE_PATH.match(bird_dir):
        print(f"rhid: --bird-dir {bird_dir!r} must be an absolute path of [A-Za-z0-9._/-]", file=err)
        return EXIT_INVALID
    try:
        rules = load_rules(path, allow_empty=True)
    except RuleFileError as exc:
        print(f"rhid: cannot read rule file {exc}", file=err)
        return EXIT_UNREADABLE
    except RuleError as exc:
        print(exc.render(), file=err)
        return EXIT_INVALID
    out.write(bird_snippet(rules, bird_dir))
    return EXIT_OK


def show_status(bird_dir: str, prefix: str | None, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """``rhid status``: ask the daemon over its control socket."""
    path = str(Path(bird_dir) / status.SOCKET_NAME)
    try:
        document = status.fetch(path, prefix)
    except status.StatusUnavailableError as exc:
        print(f"rhid: cannot reach the daemon at {exc.path}: {exc.reason}", file=err)
        return EXIT_UNREADABLE
    if as_json:
        json.dump(document, out, indent=2)
        out.write("\n")
    else:
        print(status.render(document), file=out)
    if "error" in document:
        return EXIT_INVALID
    if prefix and not document["routes"]:
        print(f"rhid: no rule announces {prefix}", file=err)
        return EXIT_INVALID
    return EXIT_OK


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_RULES_PATH,
        metavar="FILE",
        help=f"rule file (default {DEFAULT_RULES_PATH})",
    )


def start(args: argparse.Namespace) -> int:
    """``rhid run``: build the settings, set up logging, serve until SIGTERM."""
    if not _SAFE_PATH.match(args.bird_dir):
        print(
            f"rhid: --bird-dir {args.bird_dir!r} must be an absolute path of [A-Za-z0-9._/-]", file=sys.stderr
        )
        return EXIT_INVALID
    if args.haproxy_events not in {"auto", "none"} and not names.is_proxy_name(args.haproxy_events):
        print(f"rhid: --haproxy-events {args.haproxy_events!r} is not an HAProxy ring name", file=sys.stderr)
        return EXIT_INVALID
    log.configure(args.log_level, args.log_format)
    haproxy_socket, source = settings.find_haproxy_socket(args.haproxy_socket, settings.environment())
    daemon.log.info("haproxy.socket", path=haproxy_socket, source=source)
    return daemon.run(
        settings.Settings(
            rules_path=args.config,
            haproxy_socket=haproxy_socket,
            bird_socket=args.bird_socket,
            bird_dir=Path(args.bird_dir),
            interval=args.interval,
            fall=args.fall,
            rise=args.rise,
            on_stop=args.on_stop,
            allow_empty=args.allow_empty,
            verify_every=args.verify_interval,
            events=args.haproxy_events,
            fast_interval=args.fast_interval,
        )
    )


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

    run_parser = commands.add_parser("run", help="run the daemon in the foreground until SIGTERM")
    _add_config_option(run_parser)
    run_parser.add_argument(
        "--haproxy-socket",
        metavar="PATH",
        help=f"HAProxy stats or master socket (default: ${settings.SOCKET_VARIABLE}, then "
        f"{' or '.join(settings.ENVIRONMENT_FILES)}, then {settings.DEFAULT_HAPROXY_SOCKET})",
    )
    run_parser.add_argument("--bird-socket", default=settings.DEFAULT_BIRD_SOCKET, metavar="PATH")
    run_parser.add_argument(
        "--bird-dir",
        default=settings.DEFAULT_BIRD_DIR,
        metavar="DIR",
        help="where rhid writes BIRD include files",
    )
    run_parser.add_argument(
        "--interval", type=_positive_float, default=1.0, metavar="SECONDS", help="poll period"
    )
    run_parser.add_argument(
        "--fast-interval",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="poll period while a proxy is between states (its fall or rise count started); "
        "default 0.1 while HAProxy's event stream is live, else --interval (the vendor's behaviour)",
    )
    run_parser.add_argument(
        "--haproxy-events",
        default="auto",
        metavar="RING",
        help="poll at once when this HAProxy log ring reports a state change; "
        "auto (default): the ring HAProxy has, if any; none: polling only",
    )
    run_parser.add_argument("--fall", type=_at_least_one, default=3, help="down polls before a proxy is down")
    run_parser.add_argument("--rise", type=_at_least_one, default=1, help="up polls before a proxy is up")
    run_parser.add_argument(
        "--on-stop", choices=["withdraw", "hold"], default="withdraw", help="what SIGTERM does to the routes"
    )
    run_parser.add_argument("--allow-empty", action="store_true", help="accept a rule file without rules")
    run_parser.add_argument(
        "--verify-interval",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="re-check BIRD's routes",
    )
    run_parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run_parser.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "console", "journal"],
        help="auto: journal under systemd, console on a terminal, else JSON lines",
    )

    status_parser = commands.add_parser("status", help="ask the running daemon what it announces and why")
    status_parser.add_argument(
        "prefix", nargs="?", metavar="PREFIX", help="explain the route(s) for this prefix"
    )
    status_parser.add_argument("--json", action="store_true", help="print the status document as JSON")
    status_parser.add_argument(
        "--bird-dir", default=settings.DEFAULT_BIRD_DIR, metavar="DIR", help="the daemon's --bird-dir"
    )

    snippet_parser = commands.add_parser("bird-config", help="print the BIRD snippet for the rules' tables")
    _add_config_option(snippet_parser)
    snippet_parser.add_argument("--bird-dir", default=settings.DEFAULT_BIRD_DIR, metavar="DIR")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rhid`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return check(
                args.config, as_json=args.json, allow_empty=args.allow_empty, out=sys.stdout, err=sys.stderr
            )
        if args.command == "run":
            return start(args)
        if args.command == "status":
            return show_status(args.bird_dir, args.prefix, as_json=args.json, out=sys.stdout, err=sys.stderr)
        if args.command == "bird-config":
            return bird_config(args.config, args.bird_dir, out=sys.stdout, err=sys.stderr)
    except BrokenPipeError:
        # `rhid check --json | head`: the reader left; that is not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command!r}")
