"""`rhid probe`: does this node announce a prefix? A question keepalived can ask every second.

    rhid probe [--bird-dir DIR] [TABLE%]PREFIX
        asks the running daemon over its control socket (``route [TABLE%]PREFIX``) what its plan
        says of that route: the decision that writes BIRD's files and that `rhid status` shows.
    rhid probe --standalone [-c FILE] [--haproxy-socket PATH] [TABLE%]PREFIX
        no daemon and no BIRD (a node that runs keepalived only): reads the rule file, polls HAProxy
        once and evaluates the prefix's rule as the daemon would with --fall 1 --rise 1.

Exit status: 0 announced, 1 withdrawn, 2 wrong usage, 3 cannot tell (no answer from the daemon;
standalone: the rule file unreadable or invalid, HAProxy's reply unreadable or its socket refusing,
a first health check pending), 4 no rule names the prefix (or several tables do: name one).

What it loads matters, since keepalived runs it every second: the `rhid` command (`rhid.entry`)
hands `probe` here before anything else is imported, and asking the daemon loads argparse, json
and the socket layer (`rhid.controlwire`), never the rule compiler, the daemon or logging
(tests/unit/test_probe.py checks it; bench/probe.py measures it). --standalone imports the rule
compiler and the HAProxy client when it runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import re
import sys
from collections.abc import Sequence

from rhid import controlwire

TYPE_CHECKING = False  # typing costs a probe 4 ms; mypy reads any TYPE_CHECKING as True
if TYPE_CHECKING:
    from typing import Any, TextIO

    from rhid.model import Network, Proxy
    from rhid.rules import RuleSet
    from rhid.stats import ProxyStatus

EXIT_ANNOUNCED = 0
EXIT_WITHDRAWN = 1
EXIT_USAGE = 2  # argparse's own
EXIT_CANNOT_TELL = 3
EXIT_NO_RULE = 4

# The defaults of `rhid run`, written out here so that asking the daemon does not load the modules
# that define them (tests/unit/test_probe.py checks that they agree).
DEFAULT_BIRD_DIR = "/run/rhid"
DEFAULT_RULES_PATH = "/etc/hapee-extras/hapee-rhi.cfg"
DEFAULT_TIMEOUT = 0.8  # below keepalived's usual `interval 1`
MAX_TIMEOUT = 60.0
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")  # a BIRD symbol's shape; the daemon checks the rest

SUMMARY = "exit 0 while rhid announces a prefix, 1 while it is withdrawn (a keepalived vrrp_script)"
DESCRIPTION = (
    f"{SUMMARY}. It asks the running daemon (its plan, as `rhid status` shows it); with --standalone "
    "it reads the rule file and polls HAProxy once instead, with no daemon and no BIRD. Exit 3: cannot "
    "tell (no answer from the daemon; standalone: the rule file unreadable or invalid, HAProxy's reply "
    "unreadable or its socket refusing, a first health check pending); exit 4: no rule names the "
    "prefix, or several tables do (then ask for TABLE%PREFIX)"
)

Target = tuple[str | None, "Network"]  # (table or None for any, prefix)


def parse_target(text: str) -> Target:
    """``[TABLE%]PREFIX`` as the rules write it: an address is its host route, host bits must be zero."""
    table, sep, prefix = text.rpartition("%")
    if sep and not _TABLE.match(table):
        raise argparse.ArgumentTypeError(f"{table!r} is not a table name ([A-Za-z_][A-Za-z0-9_]*)")
    try:
        return (table if sep else None), ipaddress.ip_network(prefix, strict=True)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{prefix!r} is not a prefix or address (host bits must be zero: 10.0.0.0/24, not 10.0.0.1/24)"
        ) from None


def shown(target: Target) -> str:
    """The target as the operator wrote it, canonical: ``vol1%192.0.2.10/32`` or ``192.0.2.10/32``."""
    table, prefix = target
    return f"{table}%{prefix}" if table is not None else str(prefix)


def request_line(target: Target) -> bytes:
    """The control socket request: ``route [TABLE%]PREFIX``, from values already checked."""
    return f"route {shown(target)}\n".encode("ascii")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_TIMEOUT:g} s, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`rhid probe`'s arguments (rhid.cli's parser has them too, for --help and the manual page)."""
    parser.add_argument(
        "target",
        type=parse_target,
        metavar="PREFIX",
        help="the prefix or address a rule names, as the rule writes it; TABLE%%PREFIX for one table",
    )
    parser.add_argument(
        "--bird-dir",
        default=DEFAULT_BIRD_DIR,
        metavar="DIR",
        help="the running daemon's --bird-dir, where its socket rhid.sock is (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="for the whole question: the daemon's answer, else exit 3; with --standalone HAProxy's, "
        "else it counts as down, as in the daemon (default %(default)s)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no daemon, no BIRD (a node running keepalived only): evaluate the prefix's rule from the "
        "rule file with one HAProxy poll, as the daemon would with --fall 1 --rise 1",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=f"with --standalone: the rule file (default {DEFAULT_RULES_PATH})",
    )
    parser.add_argument(
        "--haproxy-socket",
        metavar="PATH",
        help="with --standalone: HAProxy's stats or master socket (default: as rhid run finds it, "
        "from $HAPEE_LB_SOCKET or the defaults file)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser `rhid probe` runs with: the same arguments as rhid.cli's `probe` subcommand."""
    parser = argparse.ArgumentParser(prog="rhid probe", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    """`rhid probe ...`, reached from rhid.entry before the rest of rhid is imported."""
    return run(build_parser().parse_args(argv), sys.stdout, sys.stderr)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Ask the daemon, or with --standalone HAProxy; print one line; return the exit status."""
    if args.standalone:
        config = args.config or DEFAULT_RULES_PATH
        return standalone(config, args.haproxy_socket, args.target, args.timeout, out=out, err=err)
    if args.config is not None or args.haproxy_socket is not None:
        print("rhid probe: -c and --haproxy-socket go with --standalone", file=err)
        return EXIT_USAGE
    path = os.path.join(args.bird_dir, controlwire.SOCKET_NAME)
    data = controlwire.exchange(path, request_line(args.target), args.timeout)
    if isinstance(data, controlwire.NoAnswer):
        print(f"rhid: cannot reach the daemon at {data.path}: {data.reason}", file=err)
        return EXIT_CANNOT_TELL
    code, line = outcome(decode(data), args.target)
    say(code, line, out, err)
    return code


def say(code: int, line: str, out: TextIO, err: TextIO) -> None:
    """An answer (announced, withdrawn) on `out`; anything else, as an ``rhid:`` line, on `err`."""
    if code in {EXIT_ANNOUNCED, EXIT_WITHDRAWN}:
        print(line, file=out)
    else:
        print(f"rhid: {line}", file=err)


def decode(data: bytes) -> object:
    """The daemon's JSON reply, or None when it is empty or not JSON."""
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def outcome(reply: object, target: Target) -> tuple[int, str]:  # noqa: PLR0911 -- one per kind of answer
    """The exit status and the line to print, from the daemon's answer to a route query."""
    if not isinstance(reply, dict):
        return EXIT_CANNOT_TELL, "the daemon's reply is not an answer to a route query (empty or not JSON)"
    if "error" in reply:  # an rhid that predates `route`, or a bug of ours: say what it said
        return EXIT_CANNOT_TELL, f"the daemon did not take the question: {str(reply['error'])[:200]}"
    routes: Any = reply.get("routes")
    if not isinstance(routes, list) or not all(isinstance(route, dict) for route in routes):
        return EXIT_CANNOT_TELL, "the daemon's reply is not an answer to a route query (no routes)"
    table, prefix = target
    if not routes:
        where = f" in table {table}" if table is not None else ""
        return EXIT_NO_RULE, f"no rule names {prefix}{where} (rhid check --json lists the routes)"
    if len(routes) > 1:
        tables = ", ".join(str(route.get("route")) for route in routes)
        example = routes[0].get("route")
        return EXIT_NO_RULE, f"{prefix} is in several tables ({tables}): ask for one (rhid probe {example})"
    route = routes[0]
    line = f"{route.get('route')}: {route.get('state')}: {route.get('reason')}"
    announced = route.get("announced")
    if announced is True:
        return EXIT_ANNOUNCED, line
    if announced is False:
        return EXIT_WITHDRAWN, line
    return EXIT_CANNOT_TELL, line  # the daemon has not planned this route yet


def standalone(
    config: str, haproxy_socket: str | None, target: Target, timeout: float, *, out: TextIO, err: TextIO
) -> int:
    """`rhid probe --standalone`: the rule file, one HAProxy poll, the route's decision; no daemon,
    no BIRD.

    The decision is the daemon's plan (`plan.decide`) for that rule alone, made from one poll with
    --fall 1 --rise 1 and no previous plan: a proxy HAProxy does not have, or an HAProxy that does
    not answer, is down; announced plainly or degraded is exit 0. A reply rhid cannot read, a socket
    that refuses rhid, or a verdict not known yet (a first health check pending) is exit 3."""
    from rhid import health, plan  # noqa: PLC0415 -- only --standalone pays for the rule compiler
    from rhid.errors import RuleError, RuleFileError  # noqa: PLC0415
    from rhid.model import Route  # noqa: PLC0415
    from rhid.rulefile import load_rules  # noqa: PLC0415
    from rhid.rules import RuleSet  # noqa: PLC0415

    try:
        rules = load_rules(config)
    except RuleFileError as exc:
        print(f"rhid: cannot read rule file {exc}", file=err)
        return EXIT_CANNOT_TELL
    except RuleError as exc:
        print(exc.render(), file=err)
        print(f"rhid: {config} is invalid (rhid check): the probe cannot tell", file=err)
        return EXIT_CANNOT_TELL
    table, prefix = target
    tables = [table] if table is not None else sorted({channel.table for channel in rules.channels})
    found = [Route(name, prefix) for name in tables if Route(name, prefix) in rules.by_route]
    if len(found) != 1:
        code, line = outcome({"routes": [{"route": str(route)} for route in found]}, target)
        say(code, line, out, err)
        return code
    route = found[0]
    one = RuleSet.of(rules.path, [rules.by_route[route]])  # that rule alone: its proxies, its terms
    observed = poll(one, haproxy_socket, timeout)
    if isinstance(observed, str):
        print(f"rhid: {observed}: cannot tell", file=err)
        return EXIT_CANNOT_TELL
    once = health.Thresholds(fall=1, rise=1)
    states, _, _ = health.observe({}, observed, 0.0, once)
    terms, _, _ = health.observe_terms({}, one.terms, observed, 0.0, once)
    decided = plan.decide(plan.EMPTY, one, states, plan.NO_INTENTS, 0.0, terms=terms)
    decision, why = decided.decisions[route], decided.reason(route)
    if decision.held and not decision.announced:  # it may still turn either way
        print(f"rhid: {route}: not known yet: {why}", file=err)
        return EXIT_CANNOT_TELL
    print(f"{route}: {decision.state.value}: {why}", file=out)
    return EXIT_ANNOUNCED if decision.announced else EXIT_WITHDRAWN


def poll(rules: RuleSet, haproxy_socket: str | None, timeout: float) -> dict[Proxy, ProxyStatus] | str:
    """One HAProxy poll for what `rules` read, as the daemon polls (a master CLI socket is
    recognised, servers are counted for thresholds): what HAProxy says of each proxy, each down when
    HAProxy does not answer; or why nothing is known."""
    from rhid import health, settings  # noqa: PLC0415
    from rhid.errors import HAProxyProtocolError, HAProxyUnavailableError  # noqa: PLC0415
    from rhid.haproxy import HAProxyClient  # noqa: PLC0415
    from rhid.model import HAProxyState  # noqa: PLC0415

    proxies = rules.proxies
    if not proxies:
        return {}
    path, _ = settings.find_haproxy_socket(haproxy_socket, settings.environment())
    client = HAProxyClient(path, timeout)
    client.counted = frozenset(rules.counted)
    try:
        snapshot = client.poll(proxies)
    except HAProxyUnavailableError as exc:
        if exc.kind == "permission":  # a process listens; whether HAProxy serves is not known
            return f"HAProxy's socket refuses rhid ({exc})"
        # HAProxy dead: this node cannot serve (each proxy as the daemon counts it: down)
        outage = health.Outage(HAProxyState.UNREACHABLE, 0.0)
        return health.during(outage, proxies, 0.0, health.Thresholds())
    except HAProxyProtocolError as exc:
        return f"HAProxy's reply is unreadable ({exc})"
    return {proxy: snapshot.status_of(proxy) for proxy in proxies}
