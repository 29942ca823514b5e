"""The manual pages, generated from the program itself, so that they cannot drift from it.

    rhid(8)            every option and default from the argument parser, plus what the daemon does
                       on each signal, the environment it reads, exit status, files and examples
    hapee-rhi.cfg(5)   the rule file: syntax, meaning, examples, and every diagnostic `rhid check`
                       prints, each shown exactly as rhid prints it (compiled when the page is made)

    python -m rhid.manpage rhid.8          > packaging/rhid.8
    python -m rhid.manpage hapee-rhi.cfg.5 > packaging/hapee-rhi.cfg.5

tests/unit/test_manpage.py checks that both committed pages are current, that they render without
a warning, and that the rule page explains every message the rule compiler can emit.
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from rhid import __version__
from rhid.cli import EPILOG, build_parser, summarize
from rhid.errors import Diagnostic, RuleError
from rhid.names import MAX_PROXY_NAME, MAX_SYMBOL, PROXY_NAME_CHARS
from rhid.rules import DEFAULT_TABLE, MAX_RULES_FILE_BYTES, MAX_SERVERS, parse_rules
from rhid.settings import DEFAULT_HAPROXY_SOCKET, DEFAULT_RULES_PATH, ENVIRONMENT_FILES, SOCKET_VARIABLE

DATE = datetime.date(2026, 12, 1)  # of the pages' text; bump with it
WIDTH = 78  # source lines, so that `mandoc -T lint` has nothing to say about their length
EXAMPLE_FILE = "hapee-rhi.cfg"  # the path the rule page's diagnostics show

FILES = [
    (DEFAULT_RULES_PATH, "the rules (see `hapee-rhi.cfg`(5)); validate them with `rhid check`"),
    (
        ENVIRONMENT_FILES[0],
        f"`{SOCKET_VARIABLE}`, and `RHID_ARGS` for the unit (Debian; {ENVIRONMENT_FILES[1]} on RHEL)",
    ),
    ("/run/rhid/", "the include files rhid writes for BIRD, its status socket `rhid.sock` and its lock"),
    (
        "/usr/share/doc/rhid/README.md",
        "the operator's manual: install, BIRD set-up, every fault and what rhid does",
    ),
    ("/usr/share/doc/rhid/bird.conf.example", "a complete, safe /etc/bird/bird.conf around rhid's protocols"),
    (
        "/usr/share/doc/rhid/MIGRATION.md",
        "moving a node from hapee-extras-rhi and hapee-extras-route to rhid and stock BIRD (1.6, 2 or 3), "
        "with no route withdrawn on the way (with BGP graceful restart)",
    ),
    (
        "/usr/share/rhid/systemd/metrics.conf",
        "the drop-in that turns `--metrics-listen` on and lets the unit's sandbox serve it on loopback",
    ),
    (
        "/usr/share/rhid/prometheus/rhid-alerts.yml",
        "Prometheus alerting rules for rhid's metrics (and bird_exporter's), for the Prometheus server",
    ),
    (
        "/usr/share/rhid/grafana/rhid-dashboard.json",
        "a Grafana dashboard: route states over time, health, peers",
    ),
]


# ---------------------------------------------------------------------------------------------
# roff: text in, man(7) source lines out

_BOLD = re.compile(r"`([^`]+)`")
_ITALIC = re.compile(r"\{([a-z][a-z0-9 _-]*)\}")


def _escape(text: str) -> str:
    """Text for troff: backslashes and hyphens escaped, no line starting with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _markup(text: str) -> str:
    """Escape prose, then `code` to bold and {name} (a placeholder) to italic."""
    text = _escape(text)
    text = _BOLD.sub(lambda match: f"\\fB{match[1]}\\fR", text)
    return _ITALIC.sub(lambda match: f"\\fI{match[1]}\\fR", text)


def _prose(text: str) -> list[str]:
    """One filled paragraph's source lines: marked up, then wrapped at spaces only."""
    wrapped = textwrap.wrap(
        _markup(" ".join(text.split())), WIDTH, break_on_hyphens=False, break_long_words=False
    )
    return ["\\&" + line if line.startswith((".", "'")) else line for line in wrapped]


def _paragraphs(*texts: str) -> list[str]:
    lines: list[str] = []
    for text in texts:
        lines += [".PP", *_prose(text)]
    return lines


def _verbatim(text: str) -> list[str]:
    """Lines shown as they are: escaped, and anything not printable ASCII written as its escape."""
    visible = text.rstrip("\n").encode("ascii", "backslashreplace").decode("ascii")
    return [".EX", *_escape(visible).split("\n"), ".EE"]


def _example(text: str) -> list[str]:
    """A paragraph shown as it is (no filling, fixed width), indented."""
    return [".PP", ".RS 4", *_verbatim(text), ".RE"]


def _item_example(text: str) -> list[str]:
    """The same inside a tagged paragraph, at its indentation."""
    return [".IP", *_verbatim(text)]


def _item(term: str, *texts: str) -> list[str]:
    """A tagged paragraph: the term (already marked up) on its own line, then the text."""
    lines = [".TP", term]
    for index, text in enumerate(texts):
        lines += ([] if index == 0 else [".IP"]) + _prose(text)
    return lines


def _header(name: str, section: int, title: str) -> list[str]:
    return [f'.TH {_escape(name.upper())} {section} "{DATE.isoformat()}" "rhid {__version__}" "{title}"']


# ---------------------------------------------------------------------------------------------
# rhid(8)


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
        lines += [".TP", flags, *_prose(help_text.replace("`", "'"))]
    return lines


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name (argparse has no public way to list them)."""
    found = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(found.choices)


# What the daemon does on each signal it handles (rhid.service.signals installs exactly these).
SIGNALS = {
    "SIGHUP": (
        "Re-read the rule file. The new file is validated in full, exactly as `rhid check` does, and "
        "swapped in only if it is valid: only the routes of added, removed or changed rules move, the "
        "others keep their state and counters. A bad file changes nothing: the old rules stay in "
        "force, every error is logged (`rules.reload_failed`) and `rhid status` says the last reload "
        "failed (exit status 4). `systemctl reload hapee-extras-rhi` runs `rhid check` first, so a "
        "bad file fails the reload itself. Options and the environment are not re-read: a change to "
        "them needs a restart.",
    ),
    "SIGTERM": (
        "Stop: tell systemd (STOPPING=1), then, with `--on-stop withdraw` (the default), withdraw "
        "every route (empty include files, one `configure`) and exit 0; with `--on-stop hold` leave "
        "BIRD announcing what it announces. The withdrawal is graceful (`--graceful-shutdown`, "
        "default 5 s): each route the rules announce is first re-announced with the community "
        "65535:0 (RFC 8326), and withdrawn once that time has passed, while rhid goes on polling "
        "(a route that becomes unhealthy meanwhile is withdrawn at once); systemd is asked to wait "
        "that long (EXTEND_TIMEOUT_USEC). A second SIGTERM or SIGINT withdraws at once. When "
        "systemd stops rhid as half of a restart "
        "(`systemctl restart`, a package upgrade), `--on-restart` applies instead, by default "
        "`hold`: the routes stay announced and the new rhid reads them back from its files, so a "
        "restart does not flap the service addresses. rhid tells the two apart by asking "
        "`systemctl list-jobs`; when it cannot tell, a stop withdraws.",
    ),
    "SIGINT": ("As SIGTERM (Ctrl-C in a terminal; a second Ctrl-C skips the graceful shutdown).",),
}

ENVIRONMENT = {
    SOCKET_VARIABLE: (
        f"HAProxy's stats (or master CLI) socket when `--haproxy-socket` is not given. Unset, rhid "
        f"reads the `{SOCKET_VARIABLE}=` line of {' or '.join(ENVIRONMENT_FILES)} itself (literal "
        f"values only: nothing a shell would expand), and falls back to {DEFAULT_HAPROXY_SOCKET}.",
    ),
    "RHID_ARGS": (
        f"Not read by rhid: the `hapee-extras-rhi` unit passes it to `rhid run` as extra options, "
        f'from {ENVIRONMENT_FILES[0]} (for example `RHID_ARGS="--fall 2 --interval 0.5"`). A '
        f"change takes effect at the next `systemctl restart hapee-extras-rhi`.",
    ),
    "RHID_METRICS": (
        "Not read by rhid: the metrics drop-in (see FILES) sets it to `--metrics-listen=127.0.0.1:9198`, "
        "and the unit passes it to `rhid run` after `RHID_ARGS`.",
    ),
    "NOTIFY_SOCKET": (
        "Set by systemd for a `Type=notify` service. rhid sends READY=1 after its first complete "
        "cycle (the routes are in BIRD by then), STATUS= when its one-line status changes, "
        "RELOADING=1 and READY=1 around a reload, STOPPING=1 and WATCHDOG=1. Unset, nothing is "
        "sent; a socket that fails is logged once (`notify.failed`) and routing goes on.",
    ),
    "WATCHDOG_USEC": (
        "systemd's watchdog period (`WatchdogSec=10s` in the unit). rhid sends WATCHDOG=1 after every "
        "complete cycle, so a hung loop is restarted, and keeps it fed while it waits (at most 30 s) "
        "for a slow BIRD `configure`.",
    ),
    "INVOCATION_ID": (
        "Set by systemd for every service it starts. Only with it does a stopping rhid ask systemd "
        "whether the stop is half of a restart (see SIGTERM); without it a stop applies "
        "`--on-stop`.",
    ),
    "JOURNAL_STREAM": (
        "Set by systemd when stderr is the journal. With `--log-format auto` rhid then sends each "
        "event with native journal fields (`RHID_EVENT=route.withdrawn`, `RHID_PREFIX=`, "
        "`RHID_PROXY=`, `RHID_REASON=` ...), which `journalctl` can match on; on a terminal it "
        "writes readable lines, elsewhere JSON lines.",
    ),
}

EXAMPLES = [
    (
        "Check the rules after every edit, then apply them without touching healthy routes:",
        "rhid check\nsystemctl reload hapee-extras-rhi",
    ),
    ("Print BIRD's side of the set-up for the tables the rules use:", "rhid bird-config"),
    (
        "On BIRD 1.6 (bird for IPv4, bird6 for IPv6; rhid finds it from the greeting), with the vendor's "
        "`gateway 192.0.2.1` of table vol1: print bird.conf's and bird6.conf's parts, then run with it "
        "(in the unit: `RHID_ARGS=` in /etc/default/hapee-extras-rhi):",
        "rhid bird-config --bird-version 1.6 --gateway vol1=192.0.2.1\n"
        "rhid run --bird6-socket /run/bird/bird6.ctl --gateway vol1=192.0.2.1",
    ),
    (
        "The routes counted by state, the peers, and the first 20 routes not plainly announced "
        "(withdrawn, degraded, held, drained) with how many more; exit status 4 and PROBLEM: lines "
        "when something needs attention (a monitoring check can run it as it is); every route, "
        "announced or not, since when and why (streamed: megabytes at 10,000 routes); or one "
        "route explained:",
        "rhid status\nrhid status --routes\nrhid status 192.0.2.10",
    ),
    (
        "Check that HAProxy has every backend and frontend the rules name (a typo is an error "
        "with the closest name HAProxy has), with the socket `rhid run` uses:",
        "rhid check --live",
    ),
    (
        "A keepalived `vrrp_script` that holds the VIP only while rhid announces it (exit 0; 1 "
        "withdrawn, 3 cannot tell, 4 no rule names it), or without a daemon, from one HAProxy poll:",
        "rhid probe 192.0.2.10\nrhid probe --standalone 192.0.2.10",
    ),
    (
        "From the journal: every withdrawal, what happened to one address, every up and down of one "
        "backend (`journalctl -F RHID_EVENT` lists the events logged so far):",
        "journalctl -u hapee-extras-rhi RHID_EVENT=route.withdrawn\n"
        "journalctl -u hapee-extras-rhi RHID_PREFIX=192.0.2.10/32\n"
        "journalctl -u hapee-extras-rhi RHID_PROXY=b:be_app",
    ),
    (
        "Serve Prometheus metrics on loopback (the unit's sandbox needs the drop-in; see FILES), and "
        "look at them:",
        "install -D -m 644 /usr/share/rhid/systemd/metrics.conf \\\n"
        "    /etc/systemd/system/hapee-extras-rhi.service.d/metrics.conf\n"
        "systemctl daemon-reload && systemctl restart hapee-extras-rhi\n"
        "curl -s http://127.0.0.1:9198/metrics | grep ^rhid_route_announced",
    ),
    (
        "Run in the foreground, with Debian's HAProxy socket and without the event wake-up, as the "
        "service's user (so that the files it writes stay the service's; stop the service first: "
        "one rhid runs per directory):",
        "runuser -u rhid -g rhid -G bird -G haproxy -- rhid run \\\n"
        "    --haproxy-socket /run/haproxy/admin.sock --haproxy-events none --log-format console",
    ),
]


def render() -> str:
    """rhid(8), in troff's man macros."""
    commands = subcommands(build_parser())
    lines = [
        *_header("rhid", 8, "System Administration"),
        ".SH NAME",
        "rhid \\- Route Health Injection for HAProxy and BIRD (hapee\\-extras\\-rhi)",
        ".SH SYNOPSIS",
    ]
    for index, name in enumerate(commands):
        lines += [*([".br"] if index else []), f".B rhid {name}", ".RI [ options ]"]
    lines += [
        ".SH DESCRIPTION",
        *_prose(
            "rhid announces a service IP in BIRD while HAProxy says this node may serve it, and "
            "withdraws it when it may not. It runs as the systemd service `hapee-extras-rhi`; "
            "`systemctl reload` re-reads the rules without touching healthy routes. The rules are "
            "described in `hapee-rhi.cfg`(5). It speaks to BIRD 2 and 3 (one daemon) and BIRD 1.6 "
            "(bird and bird6: `--bird6-socket`), as the control socket's greeting says. Moving a node "
            "from the vendor's hapee-extras-rhi and hapee-extras-route: "
            "/usr/share/doc/rhid/MIGRATION.md."
        ),
    ]
    for name, sub in commands.items():
        lines += [".SH COMMAND: " + _escape(name.upper()), *_prose(sub.description or ""), *_options(sub)]
    lines.append(".SH SIGNALS")
    for signame, texts in SIGNALS.items():
        lines += _item(f"\\fB{signame}\\fR", *texts)
    lines += _paragraphs(
        "A killed or crashed rhid (SIGKILL, the watchdog's SIGABRT) withdraws nothing: BIRD keeps "
        "announcing what rhid's files say, and the restarted rhid reads them back and withdraws "
        "nothing healthy."
    )
    lines.append(".SH ENVIRONMENT")
    for variable, texts in ENVIRONMENT.items():
        lines += _item(f"\\fB{variable}\\fR", *texts)
    status = EPILOG.split("\n", 1)[1].strip("\n")
    lines += [".SH EXIT STATUS", ".nf", _escape(status), ".fi", ".SH FILES"]
    for path, what in FILES:
        lines += _item(f"\\fI{_escape(path)}\\fR", what)
    lines.append(".SH EXAMPLES")
    for index, (text, commands_shown) in enumerate(EXAMPLES):
        lines += [*([] if index == 0 else [".PP"]), *_prose(text), *_example(commands_shown)]
    lines += [
        ".SH SEE ALSO",
        "\\fBhapee\\-rhi.cfg\\fR(5), \\fBbird\\fR(8), \\fBbirdc\\fR(8), \\fBhaproxy\\fR(1),",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# hapee-rhi.cfg(5)


@dataclass(frozen=True, slots=True)
class Explained:
    """One message `rhid check` can print: its words ({name} marks a part that varies), what it
    means and what to do, and rule files that make rhid print it (each shown as rhid prints it)."""

    message: str
    meaning: str
    examples: tuple[str, ...]

    def pattern(self) -> re.Pattern[str]:
        """The message as a regular expression: each {name} stands for any text."""
        parts = re.split(r"\{[^}]+\}", self.message)
        return re.compile(".+?".join(map(re.escape, parts)) + r"\Z", re.DOTALL)


SAMPLE = "192.0.2.10 = all(b:be_app)"
LONG_TABLE = "t" * (MAX_SYMBOL + 1)

DIAGNOSTICS: dict[str, tuple[Explained, ...]] = {
    "The shape of a rule": (
        Explained(
            "expected network ([table%]address[/length]), found {text}",
            "The line does not start with an address (or a table, then `%`).",
            (", 192.0.2.10 = all(b:be_app)",),
        ),
        Explained(
            "expected '=' or ',', found {text}",
            "After the networks comes `=` (or `,` and another network).",
            ("192.0.2.10 all(b:be_app)",),
        ),
        Explained(
            "expected all, any, never or always (or not, atleast), found {text}",
            "After `=` (and after `degraded`) comes the condition's word, in lowercase; a near "
            "miss gets a hint, and so does a target written without a condition around it.",
            ("192.0.2.10 = alll(b:be_app)", "192.0.2.10 = ALL(b:be_app)", "192.0.2.10 = b:be_app>=3"),
        ),
        Explained(
            "expected ',' or ')', found {text}",
            "The list of targets is not closed.",
            ("192.0.2.10 = all(b:be_app",),
        ),
        Explained(
            "expected a target (b:<backend> or f:<frontend>) after ',', found {text}",
            "A comma in the list of targets is followed by nothing, or by another comma.",
            ("192.0.2.10 = all(b:be_app,)", "192.0.2.10 = all(b:be_app,"),
        ),
        Explained(
            "expected a target (b:<backend> or f:<frontend>) or ')', found {text}",
            "Inside the parentheses each target starts with its kind: `b:` or `f:`, and a "
            "condition inside another has its parentheses.",
            ("192.0.2.10 = all(be_app)", "192.0.2.10 = all(", "192.0.2.10 = any(all, b:be_app)"),
        ),
        Explained(
            "a space cannot be part of a name: {name} is followed by {text}",
            "A target's name ends at a space, and targets are separated by commas: either the name "
            "holds a space (HAProxy's names cannot) or a comma is missing.",
            ("192.0.2.10 = all(b:be app)",),
        ),
        Explained(
            "expected end of rule, found {text}",
            "Something follows a complete rule: one condition per line (a `#` starts a comment), "
            "then only a degraded clause.",
            ("192.0.2.10 = all(b:be_app) all(b:be_static)", "192.0.2.10 = all(b:a) degrade any(b:x) med 1"),
        ),
        Explained(
            "U+{code} {name} where only a space or a tab may stand",
            "A character that looks like a space but is not one, such as the no-break space that text "
            "copied from a web page or a word processor carries: retype it as a plain space.",
            ("192.0.2.10 =\u00a0all(b:be_app)",),
        ),
    ),
    "Networks": (
        Explained(
            "{address} is not an IPv4 or IPv6 address",
            "Only addresses are accepted, not host names. Common slips get a hint: IPv6 in brackets, "
            "an IPv4 address with fewer than four numbers, leading zeros.",
            (
                "www.example.com = all(b:be_app)",
                "[2001:db8::10] = all(b:be_app)",
                "192.168.1 = all(b:be_app)",
                "192.168.001.10 = all(b:be_app)",
            ),
        ),
        Explained(
            "missing prefix length after '/'",
            "A `/` must be followed by the prefix length, or left out for a host route.",
            ("192.0.2.0/ = all(b:be_app)",),
        ),
        Explained(
            "prefix length must be a number",
            "The prefix length is a decimal number.",
            ("192.0.2.0/2x = all(b:be_app)",),
        ),
        Explained(
            "a netmask is not a prefix length",
            "A dotted netmask after `/` is refused; the hint gives its length.",
            ("192.0.2.0/255.255.255.0 = all(b:be_app)",),
        ),
        Explained(
            "prefix length /{length} is out of range for IPv{family} ({range})",
            "IPv4 lengths go up to 32, IPv6 lengths up to 128.",
            ("192.0.2.10/33 = all(b:be_app)",),
        ),
        Explained(
            "{network} has host bits set",
            "The address is not the first one of its prefix. rhid does not guess which was meant: "
            "the network, or a host route.",
            ("10.0.0.1/24 = all(b:be_app)",),
        ),
        Explained(
            "{prefix} in table {t} is already used {where}",
            "A prefix may appear in one rule per table only, so that one condition decides it. "
            "{where} is `by line` and the first line's number, or `on this line`.",
            (f"{SAMPLE}\n192.0.2.10/32 = any(b:be_static)", "192.0.2.10, 192.0.2.10 = all(b:be_app)"),
        ),
    ),
    "Tables": (
        Explained("empty table name", "A `%` must follow a table name.", ("%" + SAMPLE,)),
        Explained(
            "table name must start with a letter or '_'",
            "A table is a BIRD symbol: `[A-Za-z_][A-Za-z0-9_]*`.",
            ("2vol%" + SAMPLE,),
        ),
        Explained(
            "invalid character {char} in table name",
            "A table is a BIRD symbol: letters, digits and `_` only.",
            ("vol-1%" + SAMPLE,),
        ),
        Explained(
            "table name {t}... is longer than 64 characters",
            f"BIRD's symbols have at most {MAX_SYMBOL} characters; the message shows the first 12.",
            (LONG_TABLE + "%" + SAMPLE,),
        ),
        Explained(
            "table name {t} is a BIRD keyword",
            "BIRD refuses its own keywords as protocol names (`static`, `bgp`, `kernel`, `filter`, "
            "... rhid knows every one of BIRD 2.0 and 1.6).",
            ("static%" + SAMPLE,),
        ),
        Explained(
            "table name {t} reads as a hex byte string in BIRD",
            "BIRD reads 32 or more hex digits as bytes, not as a name.",
            ("deadbeef" * 4 + "%" + SAMPLE,),
        ),
        Explained(
            "table name {t} cannot carry IPv6 routes: {reason}",
            "IPv6 routes of table {t} go to the BIRD protocol {t}`_v6`, which must be a valid BIRD "
            f"symbol too: a table with IPv6 routes has at most {MAX_SYMBOL - 3} characters.",
            ("t" * (MAX_SYMBOL - 2) + "%2001:db8::10 = all(b:be_app)",),
        ),
        Explained(
            "BIRD protocol {name} would carry both table {t1} (IPv{family}) and table {t2} (IPv{family})",
            "Table {t}`_v6`'s IPv4 routes and table {t}'s IPv6 routes would both go to the protocol "
            "{t}`_v6`.",
            ("web_v6%192.0.2.10 = all(b:be_app)\nweb%2001:db8::10 = all(b:be_app)",),
        ),
    ),
    "Conditions and targets": (
        Explained(
            "'{aggregate}' needs at least one target",
            "`all` and `any` decide from their targets, so they need one; only `never` and `always` "
            "may stand alone.",
            ("192.0.2.10 = all", "192.0.2.10 = any()", "192.0.2.10 = any(all(), b:be_app)"),
        ),
        Explained(
            "'{word}' cannot be nested",
            "`never` and `always` decide a whole rule, for debugging: they stand after `=` only.",
            ("192.0.2.10 = any(always(), b:be_app)",),
        ),
        Explained(
            "'not' takes one target or condition, not {count}",
            "`not` inverts one operand. For several, say which inverse you mean: "
            "`not(any(...))` is true while none is up, `not(all(...))` while not all are.",
            ("192.0.2.10 = not(f:fe_a, f:fe_b)", "192.0.2.10 = not"),
        ),
        Explained(
            "'atleast' needs a count first",
            "`atleast(`{k}`, ...)` is true while at least {k} of the operands after the count are.",
            ("192.0.2.10 = atleast(b:be_a, b:be_b)",),
        ),
        Explained(
            "the count of 'atleast' must be a number, not {text}",
            "The count is a whole number, written in digits.",
            ("192.0.2.10 = atleast(2x, b:be_a, b:be_b)",),
        ),
        Explained(
            "atleast({count}, ...) is always true",
            "A count of 0 holds whatever the operands are: the rule would never withdraw.",
            ("192.0.2.10 = atleast(0, b:be_a, b:be_b)",),
        ),
        Explained(
            "atleast({count}, ...) can never be true: it has {n} operands",
            "The count is larger than the number of operands after it.",
            ("192.0.2.10 = atleast(3, b:be_a, b:be_b)",),
        ),
        Explained(
            "a count ({count}) is only the first argument of atleast",
            "A bare number means something only as the first argument of `atleast`.",
            ("192.0.2.10 = all(2, b:be_a, b:be_b)", "192.0.2.10 = atleast(1, b:be_a, 2)"),
        ),
        Explained(
            "unknown target kind {kind}",
            "A target is `b:` (a backend) or `f:` (a frontend), in lowercase.",
            ("192.0.2.10 = all(s:be_app)", "192.0.2.10 = all(B:be_app)"),
        ),
        Explained(
            "empty {kind} name", "`b:` and `f:` must be followed by a name.", ("192.0.2.10 = all(b:)",)
        ),
        Explained(
            "invalid character {char} in {kind} name",
            f"HAProxy's names use only {PROXY_NAME_CHARS}. Anything else (`;`, quotes, spaces, "
            "control characters, non-ASCII) is refused, so that a name can never smuggle a command "
            "into HAProxy's or BIRD's socket. A character that would be invisible or move the text "
            "(a bidi override) is named by its code, a byte that is not UTF-8 by its value.",
            ("192.0.2.10 = all(b:be_a;x)", "192.0.2.10 = all(f:fe\u202ewww)"),
        ),
        Explained(
            "{kind} name longer than 255 characters",
            f"HAProxy's names have at most {MAX_PROXY_NAME} characters.",
            ("192.0.2.10 = all(b:" + "x" * (MAX_PROXY_NAME + 1) + ")",),
        ),
    ),
    "Server thresholds": (
        Explained(
            "a server threshold is written '>=', not {text}",
            "A threshold says how many servers must be up at least; there is no other comparison.",
            ("192.0.2.10 = all(b:be_app>3)", "192.0.2.10 = all(b:be_app=3)"),
        ),
        Explained(
            "a server threshold needs a backend: {target} is a frontend",
            "Only backends have servers to count.",
            ("192.0.2.10 = all(f:fe_www>=2)",),
        ),
        Explained(
            "a server threshold is a number of servers or a percentage, not {text}",
            "After `>=` comes a whole number of servers (`>=3`) or a share of them (`>=50%`).",
            ("192.0.2.10 = all(b:be_app>=half)",),
        ),
        Explained(
            "a server threshold needs a number after {comparison}",
            "The number of servers, or the share of them, is missing.",
            ("192.0.2.10 = all(b:be_app>=)",),
        ),
        Explained(
            "server threshold {threshold} is always true",
            "At least none is always so: write the backend alone for its own health (up while "
            "HAProxy says so), or `>=1` for at least one server up.",
            ("192.0.2.10 = all(b:be_app>=0)", "192.0.2.10 = all(b:be_app>=0%)"),
        ),
        Explained(
            "server threshold {threshold} can never be met",
            "A share of the servers is at most 100 %.",
            ("192.0.2.10 = all(b:be_app>=101%)",),
        ),
        Explained(
            "server threshold {threshold} is out of range (1-{maximum})",
            f"A count of servers is at most {MAX_SERVERS:,}.",
            (f"192.0.2.10 = all(b:be_app>={MAX_SERVERS + 1})",),
        ),
    ),
    "Degraded clauses": (
        Explained(
            "the degraded clause sets no attribute",
            "A degraded route is announced with BGP attributes that make routers prefer other "
            "nodes; without any, it would be the plain route.",
            ("192.0.2.10 = all(b:a>=50%) degraded any(b:a)",),
        ),
        Explained(
            "unknown attribute {word}",
            "The attributes are `med`, `local-pref`, `community` and `large-community`, in lowercase.",
            ("192.0.2.10 = all(b:a>=50%) degraded any(b:a) metric 200",),
        ),
        Explained(
            "{attribute} needs a value",
            "Each attribute is followed by its value.",
            ("192.0.2.10 = all(b:a>=50%) degraded any(b:a) med",),
        ),
        Explained(
            "{attribute} must be a number from 0 to 4294967295, not {value}",
            "`med` and `local-pref` are 32-bit unsigned numbers.",
            (
                "192.0.2.10 = all(b:a>=50%) degraded any(b:a) med -1",
                "192.0.2.10 = all(b:a>=50%) degraded any(b:a) local-pref 4294967296",
            ),
        ),
        Explained(
            "community must be A:B with each number from 0 to 65535, not {value}",
            "A community is two 16-bit numbers; with a 4-byte AS number, use a large community.",
            (
                "192.0.2.10 = all(b:a>=50%) degraded any(b:a) community 65000:70000",
                "192.0.2.10 = all(b:a>=50%) degraded any(b:a) community 65000:1:2",
            ),
        ),
        Explained(
            "large-community must be A:B:C with each number from 0 to 4294967295, not {value}",
            "A large community (RFC 8092) is three 32-bit numbers.",
            ("192.0.2.10 = all(b:a>=50%) degraded any(b:a) large-community 65000:1",),
        ),
        Explained(
            "{attribute} is set twice",
            "A route carries one MED and one local preference.",
            ("192.0.2.10 = all(b:a>=50%) degraded any(b:a) med 100 med 200",),
        ),
        Explained(
            "{attribute} {value} is listed twice",
            "Communities are a set: each is carried once, so a repeat is a slip.",
            ("192.0.2.10 = all(b:a>=3) degraded any(b:a) community 1:1 community 1:1",),
        ),
    ),
    "The whole file": (
        Explained(
            "the rule file has no rules: every route would be withdrawn",
            "A file without a rule (empty, or only comments, like the file the package installs) "
            "would withdraw every route; a truncated deploy looks the same. Write rules, or pass "
            "`--allow-empty` to `rhid check` and `rhid run` if that is what you want.",
            ("# every rule commented out\n# 192.0.2.10 = all(b:be_app)",),
        ),
    ),
}

# What `rhid: cannot read rule file PATH: REASON` can say (exit status 3): rulefile.read_rules_file.
FILE_PROBLEMS = {
    "no such file": "The path is wrong, or the file was never written (`-c` names another file).",
    "is a directory, not a rule file": "The path names a directory.",
    "permission denied (running as uid {uid})": (
        "The user running rhid may not read the file: the service runs as the user `rhid`, so the "
        "file must be readable by it (the package installs it mode 0644, owned by root)."
    ),
    "larger than 64 MiB; not a rule file": "Rule files are refused unread above this size.",
    "{error}": "Any other error the system reports on reading, in its own words.",
}

RULE_EXAMPLE = """\
# Inject 10.200.200.200/32 if both backends "be_static" and "be_app" are up.
10.200.200.200/32 = all(b:be_static,b:be_app)

# Announce 192.168.1.10/32 while either be_app or be_app2 is up.
192.168.1.10/32 = any(b:be_app,b:be_app2)

# A second table, exported by its own BGP filter.
vol2%192.168.1.11/32 = any(b:k8s_servers)

# IPv4 and IPv6 addresses of one service, tied to a frontend: pausing it
# (disable frontend fe_www) withdraws both.
vol2%192.0.2.10, 2001:db8::10 = all(f:fe_www)

# A whole prefix, and a route kept announced while debugging.
198.51.100.0/24 = all(b:be_app)  # a comment may follow a rule
192.0.2.99 = always

# The full share while half of be_app's servers are up; with fewer, still
# announced but less preferred; with none, withdrawn.
192.0.2.20 = all(b:be_app>=50%) degraded any(b:be_app) med 200 community 65000:666

# Either pair of backends; two sites of three; at least three servers and
# no maintenance flag (a frontend operators disable to drain the node).
192.0.2.21 = any(all(b:be_a,b:be_b), all(b:be_c,b:be_d))
192.0.2.22 = atleast(2, b:site1, b:site2, b:site3)
192.0.2.23 = all(b:be_app>=3, not(f:fe_maint))
"""


def shown(text: str) -> str:
    """What `rhid check` prints for a rule file holding `text`: its errors, or its summary line."""
    try:
        rules = parse_rules(text, EXAMPLE_FILE)
    except RuleError as exc:
        return exc.render()
    return summarize(rules)


CHECK_SAMPLE = "10.0.0.1/24 = all(b:be_app)\n192.0.2.1 = all(b:be_a;x)\n"


def check_output(text: str) -> str:
    """What `rhid check -c hapee-rhi.cfg` prints on stderr for a wrong file: the errors, the count."""
    count = len(example_diagnostics(text))
    return f"{shown(text)}\n{EXAMPLE_FILE}: {count} error{'' if count == 1 else 's'}"


def example_diagnostics(text: str) -> tuple[Diagnostic, ...]:
    """The diagnostics of an example that must be wrong (an example that compiles is our bug)."""
    try:
        parse_rules(text, EXAMPLE_FILE)
    except RuleError as exc:
        return exc.diagnostics
    raise AssertionError(f"the example {text!r} is a valid rule file")


def _diagnostic_example(text: str) -> list[str]:
    """What `rhid check` prints for a wrong file (which it quotes), preceded by the file if it has
    several lines. A line too long to show is left out with its caret: the message and hint stay."""
    lines = [".IP", "For the file", *_item_example(text), ".IP", "it prints"] if "\n" in text else []
    blocks = []
    for diagnostic in example_diagnostics(text):
        block = diagnostic.render().split("\n")
        if len(block[1]) > WIDTH:  # the line and its caret would not fit: the message and hint only
            block = [block[0], *block[3:]]
        blocks += block
    return [*lines, *_item_example("\n".join(blocks))]


def render_rules_page() -> str:
    """hapee-rhi.cfg(5), in troff's man macros."""
    lines = [
        *_header("hapee-rhi.cfg", 5, "File Formats"),
        ".SH NAME",
        "hapee\\-rhi.cfg \\- which service addresses rhid may announce, and when",
        ".SH SYNOPSIS",
        f"\\fI{_escape(DEFAULT_RULES_PATH)}\\fR",
        ".SH DESCRIPTION",
        *_prose(
            "The rule file of `rhid`(8), the same file and syntax as HAProxy Enterprise's "
            "hapee-extras-rhi. Each rule names one or more networks and the condition, on HAProxy's "
            "backends and frontends, under which this node announces them in BIRD. `rhid check` "
            "validates the file exactly as the daemon does at start-up and on every reload; a file "
            "with any error is refused whole, and on a reload the old rules stay in force."
        ),
        ".SH SYNTAX",
        *_prose(
            "One rule per line. Blank lines and comments (from `#` to the end of the line, on a line "
            "of their own or after a rule) are ignored; spaces and tabs around `=`, `,`, `(` and `)` "
            "are free."
        ),
        *_example("[<table>%]<network>[,<network>...] = all|any|never|always(b:<backend>|f:<frontend>,...)"),
        *_paragraphs(
            "That is the vendor's syntax, and every file written in it means what it always meant. "
            "rhid adds nested conditions, server thresholds and a degraded clause:"
        ),
        *_example(
            "<rule>       [<table>%]<network>[,...] = <condition> [<degraded>]\n"
            "<condition>  all(<operand>,...) | any(<operand>,...) | never | always\n"
            "             | not(<operand>) | atleast(<K>,<operand>,...)\n"
            "<operand>    b:<backend> | f:<frontend> | <condition>\n"
            "             | b:<backend>>=<N> | b:<backend>>=<N>%\n"
            "<degraded>   degraded <condition> <attribute> [<attribute>...]\n"
            "<attribute>  med <N> | local-pref <N> | community <A>:<B>\n"
            "             | large-community <A>:<B>:<C>"
        ),
        *_item(
            "\\fInetwork\\fR",
            "An IPv4 or IPv6 address with an optional `/`{length}. Without a length it is a host route "
            "(/32 or /128). Host bits must be zero: write 10.0.0.0/24, not 10.0.0.1/24. One rule may "
            "list several networks, of both families, separated by commas; each may carry its own table.",
        ),
        *_item(
            "\\fItable\\fB%\\fR",
            f"The BIRD static protocol that carries the route; without one, `{DEFAULT_TABLE}`. A table "
            f"is a BIRD symbol (`[A-Za-z_][A-Za-z0-9_]*`, at most {MAX_SYMBOL} characters, not a BIRD "
            f"keyword). IPv6 routes of table {{t}} go to the protocol {{t}}`_v6` (BIRD 2 and 3; on "
            "BIRD 1.6 to the protocol {t} of bird6.conf). `rhid bird-config` prints the protocols "
            "BIRD needs for the tables a file uses. The vendor's `gateway` of a volatile table is "
            "rhid's run option `--gateway` {t}`=`{address} (see `rhid`(8)).",
        ),
        *_item("\\fBall(\\fR...\\fB)\\fR", "Announce while every listed operand is up (true)."),
        *_item("\\fBany(\\fR...\\fB)\\fR", "Announce while at least one listed operand is up (true)."),
        *_item(
            "\\fBnever\\fR, \\fBalways\\fR",
            "Never, or always, announce: for debugging. Targets may be listed (and are checked) or "
            "left out, with or without the parentheses. They stand after `=` only, never inside "
            "another condition.",
        ),
        *_item(
            "\\fBnot(\\fIoperand\\fB)\\fR",
            "True while its one operand is false: `not(f:fe_maint)` announces while the frontend "
            "`fe_maint` is down.",
        ),
        *_item(
            "\\fBatleast(\\fIK\\fB, \\fR...\\fB)\\fR",
            "True while at least {k} of the operands after the count are: `atleast(2, b:a, b:b, "
            "b:c)`. {k} is from 1 to the number of operands.",
        ),
        *_item(
            "\\fIoperand\\fR",
            "A target, a server threshold, or a condition (`all`, `any`, `not`, `atleast`) with "
            "its parentheses, nested as deep as needed: `any(all(b:a,b:b), all(b:c,b:d))`. "
            "`not(...)` and `atleast(...)` may also stand alone after `=`.",
        ),
        *_item(
            "\\fBb:\\fIbackend\\fR",
            "An HAProxy backend. It is up while HAProxy reports it `UP`: it is down when all its "
            "servers fail their checks or are disabled.",
        ),
        *_item(
            "\\fBf:\\fIfrontend\\fR",
            "An HAProxy frontend. It is up while HAProxy reports it `OPEN`: it is down when it is "
            "disabled or paused.",
        ),
        *_item(
            "\\fBb:\\fIbackend\\fB>=\\fIN\\fR, \\fBb:\\fIbackend\\fB>=\\fIN\\fB%\\fR",
            "A server threshold: true while at least {n} of the backend's servers are up, or at least "
            "{n} % of them. What counts: the backend's servers except its backups; every one of "
            "them is in the total, whatever its state (in maintenance, draining, down), so that "
            "disabling servers lowers the share; a server is up when HAProxy would send it "
            "traffic: `UP` (or without health checks) and a weight above 0, not `DRAIN`, `NOLB` "
            "or `MAINT` (what HAProxy's `act` column counts). A backend without servers (other "
            "than backups) meets no threshold. {n} is from 1 to "
            f"{MAX_SERVERS:,}, or from 1% to 100%.",
        ),
        *_item(
            "\\fBdegraded\\fR \\fIcondition\\fR \\fIattribute\\fR...",
            "While the rule's condition is false and this second condition is true, the routes "
            "stay announced, with BGP attributes that make routers prefer other nodes: `med` {n} "
            "and `local-pref` {n} (each at most once, 0 to 4294967295), `community` {a}`:`{b} "
            "(each number 0 to 65535) and `large-community` {a}`:`{b}`:`{c} (each 0 to 4294967295), "
            "each as often as needed. At least one attribute is required.",
        ),
        *_paragraphs(
            f"Names use HAProxy's characters only: {PROXY_NAME_CHARS}, at most {MAX_PROXY_NAME} of "
            "them. A name that HAProxy does not have is not an error: that target is down, and the "
            "rules that need it withdraw their routes (HAProxy may define it later).",
            "The file is read as UTF-8 (a byte-order mark at its start is ignored, and so is a "
            "carriage return at the end of a line); a byte that is not UTF-8 is harmless in a "
            f"comment and refused anywhere else. Files larger than {MAX_RULES_FILE_BYTES // 2**20} MiB "
            "are refused.",
        ),
        ".SH MEANING",
        *_prose(
            "rhid polls HAProxy every `--interval` seconds (and at once when HAProxy's event ring "
            "reports a change). A target turns down after `--fall` consecutive down polls and up "
            "after `--rise` consecutive up polls; while it turns, rhid polls faster. A rule's routes "
            "are announced while its condition holds and withdrawn when it does not, each change "
            "logged with the reason (`route.withdrawn` ... `all: b:be_app is down`)."
        ),
        *_paragraphs(
            "A target that rhid has not read yet (just after start-up, while HAProxy's replies are "
            "unreadable, or one a reload has just added) is unknown, never down: `all` is false as "
            "soon as one target is down and `any` is true as soon as one is up, and otherwise a rule "
            "with an unknown target keeps its route as it is. So restarting rhid, or reloading the "
            "rules, never withdraws a healthy route. `not` of an unknown is unknown; `atleast(`{k}`, "
            "...)` is true once {k} are true and false once fewer than {k} can be.",
            "A server threshold has a health of its own, with the same `--fall` and `--rise` as a "
            "target: each poll counts the servers, and the threshold turns false after `--fall` "
            "polls in a row below it and true after `--rise` polls at or above it. While a first "
            "health check is pending after an HAProxy start or reload it is unknown, like its backend.",
            "A rule with a degraded clause gives its routes one of three states: announced while "
            "its condition is true; degraded (announced with the clause's attributes) while the "
            "condition is false and the clause's condition true; withdrawn while both are false. "
            "`rhid status` says which, and why, term by term (`b:be_app>=50%: 2 of 6 up (33 %) -> "
            "false`).",
            "On a reload (`systemctl reload hapee-extras-rhi`, or SIGHUP), only the routes of added, "
            "removed or changed rules move. The file the package installs has every rule commented "
            "out, and the service refuses to start on a file without rules, so nothing is announced "
            "before you write yours.",
        ),
        ".SH EXAMPLES",
        *_prose("From the vendor's documentation, and a few more:"),
        *_example(RULE_EXAMPLE),
        *_paragraphs("`rhid check` prints, for this file (exit status 0):"),
        *_example(shown(RULE_EXAMPLE).replace(EXAMPLE_FILE, DEFAULT_RULES_PATH)),
        ".SH DIAGNOSTICS",
        *_prose(
            "`rhid check` reports every error in the file, in file order, each as "
            "{file}`:`{line}`:`{column}`:` and a message, then the line, a caret under the column, and "
            "a hint where one helps; then a count, and exits 1. For example:"
        ),
        *_example(check_output(CHECK_SAMPLE)),
        *_paragraphs(
            "`rhid run` prints the same errors at start-up and exits 1 before it touches BIRD; a "
            "reload logs them (`rules.reload_failed`) and keeps the old rules."
        ),
        *_paragraphs(
            "Control characters and bidi overrides in the file are shown escaped (`\\x1b`, "
            "`\\u202e`), never sent to the terminal; a byte that is not UTF-8 is shown as that "
            "byte (`\\xff`). `rhid check --json` prints the same errors as data: "
            '`{"valid": false, "errors": [{"path", "line", "col", "message", "hint"}]}`.',
            "The messages, with what each means. A word in italics stands for the part of the line "
            "the message quotes.",
        ),
    ]
    for title, entries in DIAGNOSTICS.items():
        lines += [".SS " + _escape(title)]
        for entry in entries:
            lines += _item(_message_term(entry.message), entry.meaning)
            for example in entry.examples:
                lines += _diagnostic_example(example)
    lines += [
        ".SS The file itself",
        *_prose(
            "A file that cannot be read is one line on stderr, `rhid: cannot read rule file` "
            "{path}`:` {reason}, and exit status 3 (the daemon does not start; a reload keeps the "
            "old rules). The reasons:"
        ),
    ]
    for reason, meaning in FILE_PROBLEMS.items():
        lines += _item(_message_term(reason), meaning)
    lines += [
        ".SH FILES",
        *_item(f"\\fI{_escape(DEFAULT_RULES_PATH)}\\fR", "The rules (a conffile of the rhid package)."),
        *_item(
            "\\fI/usr/share/doc/rhid/README.md\\fR",
            "The operator's manual: BIRD's side, running the service, every fault and what rhid does.",
        ),
        ".SH SEE ALSO",
        "\\fBrhid\\fR(8), \\fBbird\\fR(8), \\fBhaproxy\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


def _message_term(message: str) -> str:
    """A message as a tag: its fixed words in bold, each {name} in italics."""
    parts = re.split(r"\{([^}]+)\}", message)
    shown_parts = [
        f"\\fI{_escape(part)}\\fR" if index % 2 else (f"\\fB{_escape(part)}\\fR" if part else "")
        for index, part in enumerate(parts)
    ]
    return "".join(shown_parts)


PAGES: dict[str, Callable[[], str]] = {"rhid.8": render, "hapee-rhi.cfg.5": render_rules_page}


def main(argv: list[str]) -> int:
    """Print the page named (default rhid.8)."""
    name = argv[0] if argv else "rhid.8"
    if name not in PAGES:
        print(f"usage: python -m rhid.manpage [{'|'.join(PAGES)}]", file=sys.stderr)
        return 2
    print(PAGES[name](), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
