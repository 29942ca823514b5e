"""The ``rhid`` command line: argument parsing and what each subcommand prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

from rhid import (
    __version__,
    birdpair,
    daemon,
    gateway,
    haproxy,
    inventory,
    log,
    names,
    plan,
    probe,
    settings,
    status,
)
from rhid.birdconf import bird_snippets, cautions
from rhid.dialect import BIRD2, Dialect, of_version
from rhid.errors import (
    CannotRunError,
    HAProxyProtocolError,
    HAProxyUnavailableError,
    RuleError,
    RuleFileError,
    SettingError,
    StatusUnavailableError,
)
from rhid.instance import instance_lock
from rhid.model import ProxyKind
from rhid.reconcile import Withdrawal
from rhid.rulefile import load_rules
from rhid.rules import RuleSet, describe_condition, parse_rules, render_rule

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2  # argparse's own
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


def describe(rules: RuleSet, dialect: Dialect = BIRD2) -> dict[str, Any]:
    """The compiled rules as plain data, for ``--json`` (protocol names in `dialect`'s words)."""
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
                        "bird_protocol": dialect.protocol(route.channel),
                    }
                    for route in rule.routes
                ],
                "rule": render_rule(rule),
                "condition": describe_condition(rule.condition),
                "degraded": None
                if rule.degraded is None
                else {
                    "condition": describe_condition(rule.degraded.condition),
                    "attributes": {
                        "med": rule.degraded.attributes.med,
                        "local_pref": rule.degraded.attributes.local_pref,
                        "communities": [list(c) for c in rule.degraded.attributes.communities],
                        "large_communities": [list(c) for c in rule.degraded.attributes.large_communities],
                    },
                },
            }
            for rule in rules.rules
        ],
        "tables": sorted({channel.table for channel in rules.channels}),
        "proxies": sorted(
            ({"kind": proxy.kind.word, "name": proxy.name} for proxy in rules.proxies),
            key=lambda item: (item["kind"], item["name"]),
        ),
        "thresholds": sorted(str(term) for term in rules.terms),
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


def check(
    path: str,
    *,
    as_json: bool,
    allow_empty: bool,
    out: TextIO,
    err: TextIO,
    haproxy_socket: str | None = None,
    bird_version: str = "auto",
    gateways: Sequence[gateway.Gateway] = (),
) -> int:
    """``rhid check``: the exact validation the daemon runs at start-up and reload; with
    `haproxy_socket`, also every proxy the rules name against that running HAProxy; told which
    BIRD will read the files (`bird_version`) and the gateways, what will not work well there."""
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
    dialect = BIRD2 if bird_version == "auto" else of_version(bird_version)
    warn_bird(rules, dialect, gateways, err)
    live = None
    if haproxy_socket is not None:
        live = compare_live(rules, haproxy_socket, err)
        if live is None:
            return EXIT_UNREADABLE
    missing = live is not None and bool(live["missing"])
    if as_json:
        json.dump(
            {"valid": True, **describe(rules, dialect), **({"live": live} if live else {})}, out, indent=2
        )
        out.write("\n")
    elif not missing:
        print(summarize(rules), file=out)
        if live is not None:
            print(f"{rules.path}: every proxy the rules name is in HAProxy ({haproxy_socket})", file=out)
    return EXIT_INVALID if missing else EXIT_OK


LIVE_TIMEOUT = 5.0  # seconds for HAProxy's list of proxies (10,000 backends: well under a second)


def compare_live(rules: RuleSet, socket: str, err: TextIO) -> dict[str, Any] | None:
    """Each proxy the rules name that the HAProxy at `socket` lacks, said on `err` (``FILE:LINE:
    b:be_sttic: no such backend; did you mean be_static?``) and returned as data; None (also said
    on `err`) when HAProxy cannot be asked."""
    try:
        found = inventory.missing(rules.lines_of, haproxy.list_proxies(socket, LIVE_TIMEOUT))
    except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
        print(f"rhid: cannot ask HAProxy for its proxies: {exc}", file=err)
        return None
    for item in found:
        print(f"{rules.path}:{_lines(item.lines)}: {item.sentence()}", file=err)
    if found:
        print(f"{rules.path}: {_count(len(found), 'proxy', 'proxies')} not in HAProxy ({socket})", file=err)
    return {"socket": socket, "missing": [_missing_data(item) for item in found]}


def _lines(lines: tuple[int, ...]) -> str:
    """The first line naming a proxy, and the others: ``3`` or ``3 (and lines 7, 9)``."""
    if len(lines) == 1:
        return str(lines[0])
    shown = ", ".join(map(str, lines[1:6])) + (" ..." if len(lines) > 6 else "")
    return f"{lines[0]} (and line{'s' if len(lines) > 2 else ''} {shown})"


def _missing_data(item: inventory.Missing) -> dict[str, Any]:
    return {
        "kind": item.proxy.kind.word,
        "name": item.proxy.name,
        "lines": list(item.lines),
        "did_you_mean": item.suggestion,
        "other_kind": item.other_kind,
        "message": item.sentence(),
    }


def live_socket(explicit: str | None, live: bool) -> str | None:
    """The HAProxy socket `rhid check` compares the rules with: --haproxy-socket, or with --live the
    one `rhid run` would use; None for neither."""
    if explicit is None and not live:
        return None
    path, _ = settings.find_haproxy_socket(explicit, settings.environment(), settings.ENVIRONMENT_FILES)
    return path


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


def warn_bird(rules: RuleSet, dialect: Dialect, gateways: Sequence[gateway.Gateway], err: TextIO) -> None:
    """What will not work as the rules ask with `dialect`'s BIRD (`birdconf.cautions`)."""
    for caution in cautions(rules, dialect, gateways):
        print(f"{rules.path}: warning: {caution}", file=err)


def bird_config(
    path: str,
    chosen: settings.Settings,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """``rhid bird-config``: print the BIRD snippet(s) for the tables the rules use, for the BIRD
    --bird-version names (auto: the one --bird-socket greets as, else BIRD 2), with the gateways."""
    bird_dir = chosen.bird_dir
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
    try:
        dialect, why = birdpair.choose(chosen)
    except CannotRunError as exc:
        print(f"rhid: {exc}", file=err)
        return EXIT_INVALID
    warn_bird(rules, dialect, chosen.gateways, err)
    print(f"rhid: the snippet for {dialect.name} ({why})", file=err)
    snippets = bird_snippets(rules, str(bird_dir), dialect, chosen.gateways)
    out.write("\n".join(snippets.values()))
    return EXIT_OK


LISTING_TIMEOUT = 300.0  # seconds for a whole listing of every route (it streams: see LISTING_IDLE)
LISTING_IDLE = 5.0  # seconds without a byte of a listing before rhid status gives up


def show_status(
    bird_dir: Path, prefix: str | None, *, as_json: bool, out: TextIO, err: TextIO, routes: bool = False
) -> int:
    """``rhid status``: ask the daemon over its control socket for its overview, every route
    (`routes`) or a prefix's routes."""
    path = str(bird_dir / status.SOCKET_NAME)
    try:
        if prefix or routes:
            document = status.fetch(path, prefix, LISTING_TIMEOUT, routes=routes, idle=LISTING_IDLE)
        else:
            document = status.fetch(path, None)
    except StatusUnavailableError as exc:
        print(f"rhid: cannot reach the daemon at {exc.path}: {exc.reason}", file=err)
        return EXIT_UNREADABLE
    if document.get("busy"):  # too many clients at once: no answer yet, like a refused connection
        print(f"rhid: cannot reach the daemon at {path}: {document.get('error')}", file=err)
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


def release_guard(bird_dir: Path, *, out: TextIO, err: TextIO) -> int:
    """``rhid guard release``: the running daemon withdraws what its blast-radius guard holds, now."""
    path = str(bird_dir / status.SOCKET_NAME)
    try:
        reply = status.ask(path, status.RELEASE_REQUEST + b"\n")
    except StatusUnavailableError as exc:
        print(f"rhid: cannot reach the daemon at {exc.path}: {exc.reason}", file=err)
        return EXIT_UNREADABLE
    if "error" in reply:
        print(f"rhid: {reply['error']}", file=err)
        return EXIT_INVALID
    if not isinstance(reply.get("released"), int):
        print(f"rhid: the daemon at {path} did not answer guard release", file=err)
        return EXIT_UNREADABLE
    count = reply["released"]
    if not count:
        print("rhid: the guard holds nothing", file=out)
    else:
        shown = ", ".join(reply["routes"]) + (" ..." if count > len(reply["routes"]) else "")
        print(f"rhid: the guard released {_count(count, 'route')} ({shown}): withdrawn now", file=out)
    return EXIT_OK


DRAIN_POLL = 0.5  # seconds between looks at HAProxy's sessions while `rhid drain --wait` waits


def drain_routes(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    """``rhid drain``/``rhid undrain``: ask the daemon (it keeps the drain across restarts and
    reboots); `--wait`: follow the sessions still open on the drained routes' proxies."""
    targets = "all" if args.all else ",".join(args.prefixes)
    if not targets:
        print(f"rhid: {args.command}: name the prefixes, or --all", file=err)
        return EXIT_USAGE
    reason = getattr(args, "reason", "") or ""
    request = f"{args.command} {targets} {reason}".strip() + "\n"
    path = str(args.bird_dir / status.SOCKET_NAME)
    try:
        request_bytes = request.encode("ascii")
    except UnicodeEncodeError:
        print("rhid: a drain's reason is printable ASCII", file=err)
        return EXIT_USAGE
    try:
        answer = status.ask(path, request_bytes)
    except StatusUnavailableError as exc:
        print(f"rhid: cannot reach the daemon at {exc.path}: {exc.reason}", file=err)
        return EXIT_UNREADABLE
    if "error" in answer:
        print(f"rhid: {answer['error']}", file=err)
        return EXIT_INVALID
    done = answer.get("drained", answer.get("undrained", []))
    print(f"rhid: {args.command}ed {', '.join(done) or 'nothing'}", file=out)
    wait = getattr(args, "wait", None)
    if args.command != "drain" or wait is None:
        return EXIT_OK
    return wait_for_sessions(answer["haproxy_socket"], answer["proxies"], wait, out=out, err=err)


def wait_for_sessions(
    socket_path: str, proxies: list[str], timeout: float, *, out: TextIO, err: TextIO
) -> int:
    """Print the sessions still open on `proxies` as they fall; 0 at zero, 1 at the timeout."""
    deadline = time.monotonic() + timeout
    shown: int | None = None
    while True:
        try:
            current = haproxy.sessions(socket_path, 2.0)
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            print(f"rhid: cannot read HAProxy's sessions ({exc}): not waiting", file=err)
            return EXIT_UNREADABLE
        left = sum(count for proxy, count in current.items() if str(proxy) in proxies)
        if left != shown:
            print(f"rhid: {left} session(s) open on {', '.join(proxies)}", file=out, flush=True)
            shown = left
        if left == 0:
            return EXIT_OK
        if time.monotonic() >= deadline:
            print(f"rhid: {left} session(s) still open after {timeout:g} s", file=err)
            return EXIT_INVALID
        time.sleep(min(DRAIN_POLL, max(0.0, deadline - time.monotonic())))


def withdraw(chosen: settings.Settings, timeout: float, *, out: TextIO, err: TextIO) -> int:
    """``rhid withdraw``: empty every include file in `bird_dir` and have BIRD apply it, while no rhid
    runs there (the unit's OnFailure= safety net: routes never outlive the rhid that watches them).

    It is the daemon's own stop with every route withdrawn (`BirdSide.stop`): no free space needed
    (an emptied file is removed when it cannot be replaced), no configure queued behind a
    reconfiguration, BIRD's routes verified, all within `timeout`.
    """
    log.configure("info", "auto", err)
    directory = Path(chosen.bird_dir)
    try:
        with instance_lock(directory):
            dialect, why = birdpair.choose(chosen)
            daemon.log.info("bird.dialect", bird=dialect.name, why=why)
            side = birdpair.edge(chosen, dialect, None, None)
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


def start(args: argparse.Namespace) -> int:
    """``rhid run``: build the settings, set up logging, serve until SIGTERM."""
    try:
        chosen = run_settings(args)
    except SettingError as exc:  # values that cannot hold together (each alone passed argparse)
        print(f"rhid run: error: argument {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.configure(args.log_level, args.log_format)
    daemon.log.info("haproxy.socket", path=chosen.haproxy_socket, source=chosen.haproxy_socket_source)
    return daemon.run(chosen)


def run_settings(args: argparse.Namespace) -> settings.Settings:
    """The settings `rhid run`'s options give, with the HAProxy socket and the defaults files found."""
    given = {name: getattr(args, option.dest) for name, option in settings.OPTIONS.items()}
    return settings.from_options(given, settings.environment())


def command_settings(args: argparse.Namespace, timeout: float | None = None) -> settings.Settings:
    """The settings a command other than `rhid run` was given (the BIRD sockets, its version, the
    gateways, the directory); the rest their defaults."""
    given: dict[str, Any] = {
        name: getattr(args, option.dest)
        for name, option in settings.OPTIONS.items()
        if name in {"bird_dir", "bird_socket", "bird6_socket", "bird_version", "gateways"}
        and hasattr(args, option.dest)
        and getattr(args, option.dest) is not None
    }
    if "gateways" in given:
        given["gateways"] = tuple(given["gateways"])
    if timeout is not None:
        given["bird_timeout"] = min(timeout, 2.0)
    return settings.Settings(**given)


EPILOG = """exit status:
  0  success (`rhid guard release`: whether or not the guard held routes)
  1  the rule file is invalid (each error as FILE:LINE:COL), or rhid cannot run (the message says
     why: another rhid holds the directory, BIRD's socket may not be opened), or `rhid status`
     has no rule for the prefix asked; `rhid check --haproxy-socket` or `--live`: a proxy the
     rules name is not in HAProxy; `rhid probe`: the prefix is withdrawn
  2  wrong usage: an unknown option or a value out of range
  3  the rule file cannot be read, or `rhid status` (or `rhid guard release`) cannot reach the
     daemon; `rhid check --haproxy-socket` or `--live`: HAProxy cannot be asked; `rhid probe`:
     it cannot tell
  4  `rhid status`: the daemon runs but reports a problem (the rule file on disk invalid, a
     proxy HAProxy does not have, HAProxy or BIRD unreachable or refusing, a BIRD protocol
     missing, a file rhid cannot write, BIRD not in sync, the blast-radius guard holding
     routes); each is printed as a PROBLEM line; `rhid probe`: no rule names the prefix (or
     several tables do)
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
    _add_live_options(check_parser)
    _add_setting(
        check_parser, "bird_version", "warn about what will not work well with this BIRD (default: none)"
    )
    _add_setting(
        check_parser, "gateways", "warn about a --gateway that leads no route (as rhid run takes them)"
    )

    run_parser = command("run", "run the daemon in the foreground until SIGTERM (SIGHUP re-reads the rules)")
    for name in settings.OPTIONS:
        _add_setting(run_parser, name)
    for option, default in LOG_OPTIONS:
        _add_option(run_parser, option, default)

    status_parser = command("status", "ask the running daemon what it announces and why")
    status_parser.add_argument(
        "prefix", nargs="?", metavar="PREFIX", help="explain the route(s) for this prefix or address"
    )
    status_parser.add_argument(
        "--routes",
        action="store_true",
        help="list every route, announced or not, with its rule, reason and targets "
        "(by default: counts by state and the routes not plainly announced, at most 20)",
    )
    status_parser.add_argument("--json", action="store_true", help="print the status document as JSON")
    _add_bird_dir_option(status_parser, "the running daemon's --bird-dir")

    _add_probe_command(command("probe", probe.SUMMARY))

    for verb, summary in (
        ("drain", "take routes out of service on purpose, across restarts and reboots"),
        ("undrain", "put drained routes back: their rules decide again"),
    ):
        drain_parser = command(verb, summary)
        drain_parser.add_argument(
            "prefixes", nargs="*", metavar="PREFIX", help="[TABLE%%]PREFIX or an address"
        )
        drain_parser.add_argument("--all", action="store_true", help="every route the rules name")
        if verb == "drain":
            drain_parser.add_argument(
                "--reason", default="", help="why, shown by rhid status (printable ASCII)"
            )
            drain_parser.add_argument(
                "--wait",
                type=float,
                metavar="SECONDS",
                help="then wait until no session is open on the drained routes' proxies (exit 1 at timeout)",
            )
        _add_bird_dir_option(drain_parser, "the running daemon's --bird-dir")

    guard_parser = command(
        "guard", "the blast-radius guard: `rhid guard release` withdraws now the routes it holds"
    )
    guard_parser.add_argument("action", choices=["release"], help="release: withdraw what the guard holds")
    _add_bird_dir_option(guard_parser, "the running daemon's --bird-dir")

    withdraw_parser = command(
        "withdraw",
        "withdraw every route rhid's files announce and tell BIRD, while no rhid runs (the unit "
        "runs it when the service has failed for good)",
    )
    _add_bird_dir_option(withdraw_parser, "the directory rhid writes its include files to")
    for name in ("bird_socket", "bird6_socket", "bird_version"):
        _add_setting(withdraw_parser, name)
    _add_option(withdraw_parser, WITHDRAW_TIMEOUT, 10.0)

    snippet_parser = command(
        "bird-config",
        "print the BIRD configuration for the rules' tables: bird.conf's (BIRD 2 or 3), or bird.conf's "
        "and bird6.conf's (BIRD 1.6)",
    )
    _add_config_option(snippet_parser)
    _add_bird_dir_option(snippet_parser, "the directory rhid writes its include files to")
    for name in ("bird_version", "bird_socket", "bird6_socket", "gateways"):
        _add_setting(snippet_parser, name)
    return parser


# Options of `rhid run` that are not settings of the daemon: how it logs (set up before it starts).
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_OPTIONS = (
    (settings.Option("--log-level", "default %(default)s", kind=settings.Choice(LOG_LEVELS)), "info"),
    (
        settings.Option(
            "--log-format",
            "auto (default): journal under systemd, console on a terminal, else JSON lines",
            kind=settings.Choice(get_args(log.LogFormat)),
        ),
        "auto",
    ),
)
WITHDRAW_TIMEOUT = settings.Option(
    "--timeout", "how long BIRD may take to reconfigure (default %(default)s)", "SECONDS", settings.DURATION
)


def _add_setting(parser: argparse.ArgumentParser, name: str, help_text: str | None = None) -> None:
    """The option of setting `name`, as `settings.Settings` declares it (`help_text`: what it means
    to a command other than `rhid run`)."""
    _add_option(parser, settings.OPTIONS[name], getattr(settings.DEFAULTS, name), help_text)


def _add_option(
    parser: argparse.ArgumentParser, option: settings.Option, default: object, help_text: str | None = None
) -> None:
    """`option` on `parser`: its flags, help and metavar; its kind reads (and bounds) the text."""
    flags = [option.short, option.flag] if option.short else [option.flag]
    words = help_text or option.help
    if option.form == "switch":
        parser.add_argument(*flags, action="store_true", help=words)
        return
    more: dict[str, Any] = {"action": "append"} if option.form == "repeated" else {}
    if isinstance(option.kind, settings.Choice):
        more["choices"] = list(option.kind.words)  # argparse lists them in the usage and refuses others
    elif option.kind is not None:
        more["type"] = _reader(option)
    unset = option.looked_up or option.form == "repeated"  # from_options tells given from not given
    parser.add_argument(
        *flags, default=None if unset else default, metavar=option.metavar, help=words, **more
    )


def _reader(option: settings.Option) -> Callable[[str], object]:
    """argparse's `type` for `option`: its value, or a usage error naming the bounds (argparse adds
    the flag)."""

    def read(text: str) -> object:
        try:
            return option.read(text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None

    return read


def _add_live_options(parser: argparse.ArgumentParser) -> None:
    """`rhid check`'s comparison of the rules' proxy names with a running HAProxy's."""
    _add_setting(
        parser,
        "haproxy_socket",
        "also ask this running HAProxy (stats or master socket) for its proxies: each backend or "
        "frontend a rule names that it lacks is an error (exit 1), with the closest name it has",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help=f"the same, with the socket rhid run uses (${settings.SOCKET_VARIABLE}, then "
        f"{' or '.join(settings.ENVIRONMENT_FILES)}, then {settings.DEFAULT_HAPROXY_SOCKET})",
    )


def _add_probe_command(parser: argparse.ArgumentParser) -> None:
    """`rhid probe` (its arguments live in rhid.probe, which `rhid probe` runs without this module)."""
    parser.description = probe.DESCRIPTION
    probe.add_arguments(parser)


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    _add_setting(parser, "rules_path")


def _add_allow_empty_option(parser: argparse.ArgumentParser) -> None:
    _add_setting(parser, "allow_empty")


def _add_bird_dir_option(parser: argparse.ArgumentParser, what: str) -> None:
    _add_setting(parser, "bird_dir", f"{what} (default %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 -- one return per command
    """Every command but a lone `rhid probe` (rhid.entry runs that without this module)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return check(
                args.config,
                as_json=args.json,
                allow_empty=args.allow_empty,
                out=sys.stdout,
                err=sys.stderr,
                haproxy_socket=live_socket(args.haproxy_socket, args.live),
                bird_version=args.bird_version,
                gateways=tuple(args.gateway or ()),
            )
        if args.command == "run":
            return start(args)
        if args.command == "status":
            return show_status(
                args.bird_dir,
                args.prefix,
                as_json=args.json,
                out=sys.stdout,
                err=sys.stderr,
                routes=args.routes,
            )
        if args.command == "guard":
            return release_guard(args.bird_dir, out=sys.stdout, err=sys.stderr)
        if args.command == "probe":
            return probe.run(args, sys.stdout, sys.stderr)
        if args.command in {"drain", "undrain"}:
            return drain_routes(args, out=sys.stdout, err=sys.stderr)
        if args.command == "withdraw":
            return withdraw(
                command_settings(args, timeout=args.timeout), args.timeout, out=sys.stdout, err=sys.stderr
            )
        if args.command == "bird-config":
            return bird_config(args.config, command_settings(args), out=sys.stdout, err=sys.stderr)
    except BrokenPipeError:
        # `rhid check --json | head`: the reader left; that is not our failure.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    raise AssertionError(f"unhandled command {args.command!r}")
