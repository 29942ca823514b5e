"""The ``rhid`` command line: argument parsing and what each subcommand prints."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rhid import __version__, bird, daemon, log, names, plan, settings, status
from rhid.birdconf import SAFE_PATH, bird_snippet
from rhid.errors import CannotRunError, RuleError, RuleFileError, StatusUnavailableError
from rhid.instance import instance_lock
from rhid.model import ProxyKind
from rhid.reconcile import BirdSide, Withdrawal
from rhid.rules import DEFAULT_RULES_PATH, RuleSet, load_rules, parse_rules

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 3
EXIT_PROBLEM = 4  # rhid status: the daemon runs, but something needs the operator


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


def _load(path: str, *, allow_empty: bool, err: TextIO) -> RuleSet | RuleError | None:
    """The rules; or, after saying on `err` what is wrong, the rule errors, or None (unreadable)."""
    try:
        return load_rules(path, allow_empty=allow_empty)
    except RuleFileError as exc:
        print(f"rhid: cannot read rule file {exc}", file=err)
        return None
    except RuleError as exc:
        print(exc.render(), file=err)
        print(f"{path}: {_count(len(exc.diagnostics), 'error')}", file=err)
        return exc


def check(path: str, *, as_json: bool, allow_empty: bool, out: TextIO, err: TextIO) -> int:
    """``rhid check``: the exact validation the daemon runs at start-up and reload."""
    rules = _load(path, allow_empty=allow_empty, err=err)
    if rules is None:
        return EXIT_UNREADABLE
    if isinstance(rules, RuleError):
        if as_json:
            errors = [
                {"path": d.path, "line": d.line, "col": d.col, "message": d.message, "hint": d.hint}
                for d in rules.diagnostics
            ]
            json.dump({"valid": False, "errors": errors}, out, indent=2)
            out.write("\n")
        return EXIT_INVALID
    warn_newer_bird(rules, err)
    if as_json:
        json.dump({"valid": True, **describe(rules)}, out, indent=2)
        out.write("\n")
    else:
        print(summarize(rules), file=out)
    return EXIT_OK


def warn_newer_bird(rules: RuleSet, err: TextIO) -> None:
    """Say which table names BIRD 3 would refuse (valid for BIRD 2.0 and 1.6: the file keeps them)."""
    for table in sorted({channel.table for channel in rules.channels}):
        problem = names.newer_bird_problem(table)
        if problem is not None:
            print(
                f"{rules.path}: warning: table {problem}: it works with BIRD 2.0, but rename the "
                f"table (e.g. vol_{table}) before this node runs BIRD 2.17 or 3",
                file=err,
            )


def bird_config(path: str, bird_dir: str, *, out: TextIO, err: TextIO) -> int:
    """``rhid bird-config``: print the BIRD snippet for the tables the rules use."""
    rules = _load(path, allow_empty=True, err=err)
    if rules is None:
        return EXIT_UNREADABLE
    if isinstance(rules, RuleError):
        return EXIT_INVALID
    if not rules.rules:
        print(
            f"rhid: {path} has no rules, so BIRD needs no protocol for rhid yet: write the rules "
            "(rhid check), then run rhid bird-config again",
            file=err,
        )
        return EXIT_INVALID
    warn_newer_bird(rules, err)
    out.write(bird_snippet(rules, bird_dir))
    return EXIT_OK


def show_status(bird_dir: str, prefix: str | None, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """``rhid status``: ask the daemon over its control socket."""
    path = str(Path(bird_dir) / status.SOCKET_NAME)
    try:
        document = status.fetch(path, prefix)
    except StatusUnavailableError as exc:
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
    return EXIT_PROBLEM if status.problems(document) else EXIT_OK


def withdraw(bird_dir: str, bird_socket: str, timeout: float, *, out: TextIO, err: TextIO) -> int:
    """``rhid withdraw``: empty every include file in `bird_dir` and have BIRD apply it, while no rhid
    runs there (the unit's OnFailure= safety net: routes never outlive the rhid that watches them).

    It is the daemon's own stop with every route withdrawn (`BirdSide.stop`): no free space needed
    (an emptied file is removed when it cannot be replaced), no configure queued behind a
    reconfiguration, BIRD's routes verified, all within `timeout`.
    """
    log.configure("info", "auto", err)
    directory = Path(bird_dir)
    try:
        with instance_lock(directory):
            side = BirdSide(directory, bird.BirdClient(bird_socket, min(timeout, 2.0)))
            count = side.count
            nothing = parse_rules("", allow_empty=True)
            files = plan.initial(side.announced(), side.owned, 0.0)
            final = plan.decide(files, nothing, {}, plan.Intents(stopping="rhid withdraw"), 0.0)
            outcome = side.stop(final, 0.0, bound=timeout)
    except CannotRunError as exc:
        print(f"rhid: {exc}", file=err)
        return EXIT_INVALID
    if outcome is Withdrawal.NOT_ON_DISK:
        print(f"rhid: some of {count} route(s) could not be withdrawn from the files (see above)", file=err)
        return EXIT_INVALID
    if outcome is Withdrawal.UNCONFIRMED:
        print(f"rhid: {count} route(s) withdrawn from the files; BIRD did not confirm (see above)", file=err)
        return EXIT_UNREADABLE
    print(f"rhid: {count} route(s) withdrawn; BIRD reconfigured and confirmed", file=out)
    return EXIT_OK


MAX_DURATION = 86400.0  # a day: any longer period is a typo, and would overflow deadlines


def _duration(text: str) -> float:
    """A period in seconds: finite, greater than 0, at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION):
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_DURATION:g} seconds, not {text}"
        )
    return value


MAX_COUNT = 1000


def _count_of_polls(text: str) -> int:
    """A number of consecutive polls: 1 to 1000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_COUNT}, not {text}")
    return value


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=DEFAULT_RULES_PATH, metavar="FILE", help="rule file (default %(default)s)"
    )


def start(args: argparse.Namespace) -> int:
    """``rhid run``: build the settings, set up logging, serve until SIGTERM."""
    log.configure(args.log_level, args.log_format)
    files = tuple(args.defaults_file or settings.ENVIRONMENT_FILES)
    haproxy_socket, source = settings.find_haproxy_socket(args.haproxy_socket, settings.environment(), files)
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
            on_restart=args.on_restart,
            unreadable_down_after=args.unreadable_down_after,
            haproxy_socket_source=source,
            defaults=settings.read_defaults(files),
            defaults_files=files,
            vanished_keep=args.vanished_keep,
        )
    )


EPILOG = """exit status:
  0  success
  1  the rule file is invalid (each error as FILE:LINE:COL), or rhid cannot run (the message says
     why: another rhid holds the directory, BIRD's socket may not be opened), or `rhid status`
     has no rule for the prefix asked
  2  wrong usage: an unknown option or a value out of range
  3  the rule file cannot be read, or `rhid status` cannot reach the daemon
  4  `rhid status`: the daemon runs but reports a problem (the rule file on disk invalid, a
     proxy HAProxy does not have, HAProxy or BIRD unreachable or refusing, a BIRD protocol
     missing, a file rhid cannot write, BIRD not in sync); each is printed as a PROBLEM line
  5  `rhid run` stopped with --on-stop withdraw: the files are emptied but BIRD did not
     confirm in time (it applies them at its next configure or start)
  6  `rhid run` stopped with --on-stop withdraw, and an include file could not be emptied
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand; every option says its default."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="rhid",
        description="Route Health Injection for HAProxy and BIRD.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"rhid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=formatter
        )

    check_parser = command("check", "validate the rule file exactly as the daemon does")
    _add_config_option(check_parser)
    check_parser.add_argument(
        "--json", action="store_true", help="print the compiled rules (or errors) as JSON"
    )
    _add_allow_empty_option(check_parser)

    run_parser = command("run", "run the daemon in the foreground until SIGTERM (SIGHUP re-reads the rules)")
    _add_config_option(run_parser)
    run_parser.add_argument(
        "--haproxy-socket",
        metavar="PATH",
        help=f"HAProxy stats or master socket (default: ${settings.SOCKET_VARIABLE}, then "
        f"{' or '.join(settings.ENVIRONMENT_FILES)}, then {settings.DEFAULT_HAPROXY_SOCKET})",
    )
    run_parser.add_argument(
        "--defaults-file",
        action="append",
        metavar="PATH",
        help=f"where {settings.SOCKET_VARIABLE} and {settings.ARGS_VARIABLE} are set, read at start and "
        f"at every reload; repeat for several (default: {' and '.join(settings.ENVIRONMENT_FILES)})",
    )
    run_parser.add_argument(
        "--bird-socket",
        default=settings.DEFAULT_BIRD_SOCKET,
        metavar="PATH",
        help="BIRD's control socket, unrestricted (default %(default)s)",
    )
    _add_bird_dir_option(run_parser, "where rhid writes BIRD include files and its status socket")
    run_parser.add_argument(
        "--interval", type=_duration, default=1.0, metavar="SECONDS", help="poll period (default %(default)s)"
    )
    run_parser.add_argument(
        "--fast-interval",
        type=_duration,
        default=None,
        metavar="SECONDS",
        help="poll period while a proxy is between states (its fall or rise count started); "
        "default 0.1 while HAProxy's event stream is live, else --interval (the vendor's behaviour)",
    )
    run_parser.add_argument(
        "--haproxy-events",
        type=_ring,
        default="auto",
        metavar="RING",
        help="poll at once when this HAProxy log ring reports a state change; auto (default): the "
        "ring named rhid, else the first ring declared in HAProxy's configuration (never one of "
        "HAProxy's own, such as buf0 or dpapi), if any; none: polling only",
    )
    run_parser.add_argument(
        "--fall",
        type=_count_of_polls,
        default=3,
        metavar="N",
        help="down polls before a proxy is down (default %(default)s)",
    )
    run_parser.add_argument(
        "--rise",
        type=_count_of_polls,
        default=1,
        metavar="N",
        help="up polls before a proxy is up (default %(default)s)",
    )
    run_parser.add_argument(
        "--unreadable-down-after",
        type=_duration,
        default=30.0,
        metavar="SECONDS",
        help="an HAProxy whose replies stay unreadable this long counts as down (default %(default)s)",
    )
    run_parser.add_argument(
        "--vanished-keep",
        type=_duration,
        default=60.0,
        metavar="SECONDS",
        help="a proxy that HAProxy no longer shows (renamed or removed by a reload) keeps its last "
        "status this long, then counts as down (default %(default)s)",
    )
    run_parser.add_argument(
        "--on-stop",
        choices=["withdraw", "hold"],
        default="withdraw",
        help="what stopping rhid does to its routes (default %(default)s)",
    )
    run_parser.add_argument(
        "--on-restart",
        choices=["withdraw", "hold"],
        default="hold",
        help="what a stop does when systemd is restarting rhid (systemctl restart, a package "
        "upgrade): default %(default)s, so a restart does not flap the routes",
    )
    _add_allow_empty_option(run_parser)
    run_parser.add_argument(
        "--verify-interval",
        type=_duration,
        default=30.0,
        metavar="SECONDS",
        help="re-check BIRD's routes this often (default %(default)s)",
    )
    run_parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="default %(default)s",
    )
    run_parser.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "console", "journal"],
        help="auto (default): journal under systemd, console on a terminal, else JSON lines",
    )

    status_parser = command("status", "ask the running daemon what it announces and why")
    status_parser.add_argument(
        "prefix", nargs="?", metavar="PREFIX", help="explain the route(s) for this prefix or address"
    )
    status_parser.add_argument("--json", action="store_true", help="print the status document as JSON")
    _add_bird_dir_option(status_parser, "the running daemon's --bird-dir")

    withdraw_parser = command(
        "withdraw",
        "withdraw every route rhid's files announce and tell BIRD, while no rhid runs (the unit "
        "runs it when the service has failed for good)",
    )
    _add_bird_dir_option(withdraw_parser, "the directory rhid writes its include files to")
    withdraw_parser.add_argument(
        "--bird-socket",
        default=settings.DEFAULT_BIRD_SOCKET,
        metavar="PATH",
        help="BIRD's control socket, unrestricted (default %(default)s)",
    )
    withdraw_parser.add_argument(
        "--timeout",
        type=_duration,
        default=10.0,
        metavar="SECONDS",
        help="how long BIRD may take to reconfigure (default %(default)s)",
    )

    snippet_parser = command("bird-config", "print the BIRD 2 snippet for the rules' tables")
    _add_config_option(snippet_parser)
    _add_bird_dir_option(snippet_parser, "the directory rhid writes its include files to")
    return parser


def _add_allow_empty_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a rule file without rules (every route is then withdrawn)",
    )


def _add_bird_dir_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--bird-dir",
        type=_bird_dir,
        default=settings.DEFAULT_BIRD_DIR,
        metavar="DIR",
        help=f"{what} (default %(default)s)",
    )


def _ring(text: str) -> str:
    """auto, none, or a ring name of HAProxy's characters: it goes into a command to HAProxy."""
    if text not in {"auto", "none"} and not names.is_proxy_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an HAProxy ring name (nor auto or none)")
    return text


def _bird_dir(text: str) -> str:
    """An absolute path of safe characters: it goes into BIRD's config as an include pattern."""
    if not SAFE_PATH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} must be an absolute path of [A-Za-z0-9._/-]")
    return text


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
        if args.command == "withdraw":
            return withdraw(args.bird_dir, args.bird_socket, args.timeout, out=sys.stdout, err=sys.stderr)
        if args.command == "bird-config":
            return bird_config(args.config, args.bird_dir, out=sys.stdout, err=sys.stderr)
    except BrokenPipeError:
        # `rhid check --json | head`: the reader left; that is not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command!r}")
