"""Where rhid finds its peers and how it paces itself: a value built once from arguments and files.

Each setting is declared once, as a field of `Settings`: its type and default, and, when an
operator may set it, how the command line spells it (`command_line`: the flag, the help, the
metavar and the `Kind` of value, which reads the text and knows the bounds). `rhid run`'s options
are generated from these fields, in their order (`cli.build_parser`); `from_options` builds the
value from what was given; and every `Settings`, however built, checks each bound in one place
(`Option.check`), so that none holds a value its option would refuse. A new setting is one field
(after `verify_every` to be listed there; a new kind of value is one small class like `Count`):

    metrics_listen: Listen | None = field(
        default=None,
        metadata=command_line("--metrics-listen", "serve ... at /metrics; default: off", "HOST:PORT", LISTEN),
    )

and the daemon reads ``settings.metrics_listen``: `rhid run --help`, rhid(8) (regenerate it),
`Settings()` and `cli.start` follow. Other commands reuse a declaration with `cli._add_setting`.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from rhid import gateway, health, names, sweep
from rhid.dialect import VERSIONS
from rhid.errors import SettingError
from rhid.gateway import Gateway

DEFAULT_RULES_PATH = "/etc/hapee-extras/hapee-rhi.cfg"
DEFAULT_HAPROXY_SOCKET = "/var/run/hapee-extras/hapee-lb.sock"
DEFAULT_BIRD_SOCKET = "/run/bird/bird.ctl"
DEFAULT_BIRD6_SOCKET = "/run/bird/bird6.ctl"  # Debian's bird (1.6) package: bird6's socket
DRY_RUN_DIR = "dry-run"  # a dry run's own directory in --bird-dir (the include glob skips it)
DEFAULT_BIRD_DIR = "/run/rhid"
DEFAULT_STATE_DIR = "/var/lib/rhid"
DEFAULT_FAST_INTERVAL = 0.1
ENVIRONMENT_FILES = ("/etc/default/hapee-extras-rhi", "/etc/sysconfig/hapee-extras-rhi")
SOCKET_VARIABLE = "HAPEE_LB_SOCKET"
ARGS_VARIABLE = "RHID_ARGS"  # more options for `rhid run`, expanded by the unit's ExecStart
RULES_VARIABLE = "RHID_RULES"  # the rule file the unit's ExecStart passes as -c
RESTART_VARIABLES = (ARGS_VARIABLE, RULES_VARIABLE)  # only a restart applies a change of these
WATCHED_VARIABLES = (SOCKET_VARIABLE, *RESTART_VARIABLES)
MAX_DURATION = 86400.0  # a day: any longer period is a typo, and would overflow deadlines
MAX_COUNT = 1000

# KEY="value", KEY='value' or KEY=value. Values that a shell would expand ($, `, \) or treat as
# syntax are not matched: rhid does not run a shell, so it skips what it cannot read literally.
_ASSIGNMENT = re.compile(
    r"""\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"$`\\]*)"|'([^']*)'|([^\s#"'$`\\;|&<>()]*))\s*(?:#.*)?\Z"""
)

OnStop = Literal["withdraw", "hold"]
OnOff = Literal["on", "off"]


def parse_environment_file(text: str) -> dict[str, str]:
    """Shell-style ``KEY="value"`` lines (as in /etc/default files); anything needing a shell is skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            key, double, single, bare = match.groups()
            values[key] = next(value for value in (double, single, bare) if value is not None)
    return values


def read_defaults(files: Sequence[str] = ENVIRONMENT_FILES) -> dict[str, str]:
    """The variables rhid cares about as the environment files set them now (a later file wins, as
    with systemd's EnvironmentFile= lines)."""
    values: dict[str, str] = {}
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = parse_environment_file(text)
        values.update({key: found[key] for key in WATCHED_VARIABLES if key in found})
    return values


def find_haproxy_socket(
    explicit: str | None,
    environ: Mapping[str, str],
    files: Sequence[str] = ENVIRONMENT_FILES,
) -> tuple[str, str]:
    """The HAProxy socket path and where it came from: argument, environment, file, or default."""
    if explicit:
        return explicit, "--haproxy-socket"
    if environ.get(SOCKET_VARIABLE):
        return environ[SOCKET_VARIABLE], f"${SOCKET_VARIABLE}"
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        value = parse_environment_file(text).get(SOCKET_VARIABLE)
        if value:
            return value, name
    return DEFAULT_HAPROXY_SOCKET, "default"


# ---- --metrics-listen's address --------------------------------------------------------------

EXPOSED = "exposed:"  # --metrics-listen's word for "other hosts may reach this address"
_PORT = re.compile(r"[1-9][0-9]{0,4}\Z")
MAX_PORT = 65535
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Listen:
    """Where `--metrics-listen` serves: an IP address (never a name: nothing is resolved) and a
    port. `exposed` says the operator asked for an address other hosts can reach."""

    address: Address
    port: int
    exposed: bool = False

    @property
    def host(self) -> str:
        """The address as it is written in HOST:PORT (IPv6 in brackets)."""
        return f"[{self.address}]" if self.address.version == 6 else str(self.address)

    def __str__(self) -> str:
        return f"{EXPOSED if self.exposed else ''}{self.host}:{self.port}"


LISTEN_EXAMPLE = "127.0.0.1:9198, [::1]:9198 or localhost:9198"


def parse_listen(text: str) -> Listen:
    """`--metrics-listen`: ``127.0.0.1:PORT``, ``[::1]:PORT`` or ``localhost:PORT`` (127.0.0.1), or
    ``exposed:HOST:PORT`` for any other IP address. ValueError says what is wrong and what to write."""
    if not text.isascii() or not text.isprintable() or any(char.isspace() for char in text):
        raise ValueError(
            f"{text!r} must be HOST:PORT ({LISTEN_EXAMPLE}), without spaces or control characters"
        )
    exposed = text.startswith(EXPOSED)
    host, port = _host_and_port(text, text.removeprefix(EXPOSED))
    if not _PORT.match(port) or int(port) > MAX_PORT:
        raise ValueError(f"{text!r}: the port must be a number from 1 to {MAX_PORT}, not {port!r}")
    address = _address(text, host, port)
    if address.is_loopback and exposed:
        raise ValueError(f"{text!r}: {address} is a loopback address already: drop {EXPOSED!r}")
    if not address.is_loopback and not exposed:
        raise ValueError(
            f"{text!r}: {address} is not a loopback address, and metrics are served without "
            "authentication or TLS; to serve them to other hosts say so: "
            f'{EXPOSED}{text} (README, "Metrics": how to restrict who may connect)'
        )
    return Listen(address, int(port), exposed)


def _host_and_port(text: str, rest: str) -> tuple[str, str]:
    """HOST and PORT of HOST:PORT, where an IPv6 HOST is in brackets."""
    if rest.startswith("["):  # the port follows the bracket
        close = rest.find("]")
        host, colon, port = rest[: close + 1], rest[close + 1 : close + 2], rest[close + 2 :]
        if close < 0:
            colon = ""
    else:
        host, colon, port = rest.rpartition(":")
    if colon != ":" or not host:
        raise ValueError(f"{text!r} must be HOST:PORT ({LISTEN_EXAMPLE})")
    return host, port


def _address(text: str, host: str, port: str) -> Address:
    """The IP address HOST names: an IPv6 address in brackets, an IPv4 address, or localhost."""
    if host.startswith("[") and host.endswith("]"):
        try:
            v6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv6 address") from None
        if v6.scope_id is not None:
            raise ValueError(f"{text!r}: a scope (%{v6.scope_id}) is not supported: use [::1]")
        return v6
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, as in [::1]:{port}")
    if host == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        what = (
            "is not an IPv4 address (four numbers from 0 to 255, without leading zeros)"
            if host.replace(".", "").isdigit()
            else "is not an IP address (rhid resolves no names: write an address, or localhost for 127.0.0.1)"
        )
        raise ValueError(f"{text!r}: {host!r} {what}") from None


# ---- kinds of value: each reads an option's text and says what is out of bounds ------------------


class Kind(Protocol):
    """What values a setting may take."""

    def read(self, text: str) -> Any:
        """The value the text spells; ValueError (the problem, in words) when it spells none."""

    def problem(self, value: Any, shown: str) -> str | None:
        """Why `value` (written as `shown`) is out of bounds, or None when it is within them."""


@dataclass(frozen=True, slots=True)
class Duration:
    """A period in seconds: finite, more than 0 (or 0 itself, when `zero` says it turns a feature
    off), at most `most`."""

    most: float = MAX_DURATION
    zero: bool = False

    def read(self, text: str) -> float:
        """The number of seconds."""
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"not a number of seconds: {text!r}") from None

    def problem(self, value: float, shown: str) -> str | None:
        """Not finite, not positive, or longer than `most`."""
        if math.isfinite(value) and (value > 0 or (self.zero and value == 0)) and value <= self.most:
            return None
        least = "0 (off) or more" if self.zero else "more than 0"
        return f"must be {least} and at most {self.most:g} seconds, not {shown}"


@dataclass(frozen=True, slots=True)
class Amount:
    """A number that need not be whole (a penalty): finite, more than 0, at most `most`."""

    most: float = MAX_COUNT

    def read(self, text: str) -> float:
        """The number."""
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"not a number: {text!r}") from None

    def problem(self, value: float, shown: str) -> str | None:
        """Not finite, not positive, or above `most`."""
        if math.isfinite(value) and 0 < value <= self.most:
            return None
        return f"must be more than 0 and at most {self.most:g}, not {shown}"


@dataclass(frozen=True, slots=True)
class Count:
    """A whole number of consecutive polls, from `least` to `most`."""

    least: int = 1
    most: int = MAX_COUNT

    def read(self, text: str) -> int:
        """The whole number."""
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"not a whole number: {text!r}") from None

    def problem(self, value: int, shown: str) -> str | None:
        """Below `least` or above `most`."""
        return (
            None
            if self.least <= value <= self.most
            else f"must be from {self.least} to {self.most}, not {shown}"
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words (the command line lists them, and refuses any other)."""

    words: tuple[str, ...]

    def read(self, text: str) -> str:
        """The word itself."""
        return text

    def problem(self, value: str, shown: str) -> str | None:
        """Not one of the words."""
        return None if value in self.words else f"must be one of {', '.join(self.words)}, not {shown!r}"


@dataclass(frozen=True, slots=True)
class Ring:
    """auto, none, or an HAProxy ring name: it goes into a command sent to HAProxy."""

    def read(self, text: str) -> str:
        """The name itself."""
        return text

    def problem(self, value: str, shown: str) -> str | None:
        """Neither auto, none, nor a name of HAProxy's characters."""
        if value in {"auto", "none"} or names.is_proxy_name(value):
            return None
        return f"{shown!r} is not an HAProxy ring name (nor auto or none)"


@dataclass(frozen=True, slots=True)
class IncludeDirectory:
    """An absolute path of safe characters: it goes into BIRD's configuration as an include pattern."""

    def read(self, text: str) -> Path:
        """The path."""
        return Path(text)

    def problem(self, value: Path, shown: str) -> str | None:
        """Relative, or a character outside [A-Za-z0-9._/-]."""
        if names.SAFE_PATH.match(shown) and names.SAFE_PATH.match(str(value)):
            return None
        return f"{shown!r} must be an absolute path of [A-Za-z0-9._/-]"


@dataclass(frozen=True, slots=True)
class Gateways:
    """``TABLE=ADDRESS``, one per table and family (`rhid.gateway`): each value read alone, and
    all of them together (two for one table and family are refused)."""

    def read(self, text: str) -> Gateway:
        """The gateway."""
        return gateway.parse(text)

    def problem(self, value: Gateway | tuple[Gateway, ...], shown: str) -> str | None:
        """An address that is no next hop (`gateway.unusable`), or two gateways for one channel."""
        del shown
        chosen = value if isinstance(value, tuple) else (value,)
        for one in chosen:
            unusable = gateway.unusable(one.address)
            if unusable is not None:
                return f"{one.address} {unusable}"
        return gateway.conflicts(chosen)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where metrics are served: a loopback HOST:PORT, or exposed:HOST:PORT (see `parse_listen`)."""

    def read(self, text: str) -> Listen:
        """The address and port."""
        return parse_listen(text)

    def problem(self, value: Listen, shown: str) -> str | None:
        """A value built without `read` that `read` would refuse (another host's address not said to
        be exposed, or a loopback one said to be)."""
        if value.address.is_loopback == value.exposed:
            fix = "drop exposed: for the loopback" if value.exposed else "write exposed: before the"
            return f"{shown!r}: {fix} address {value.address}"
        return None


# ---- how a setting is spelled on the command line ---------------------------------------------

OPTION = "option"  # the key of a field's Option in its metadata


@dataclass(frozen=True, slots=True)
class Option:
    """How an operator sets one setting on the command line."""

    flag: str  # --interval
    help: str  # what it does; ``%(default)s`` is the default
    metavar: str | None = None
    kind: Kind | None = None  # None: any text (a path)
    short: str | None = None  # -c
    # value: the flag takes one; switch: the flag alone means True; repeated: each use adds one
    # value to a tuple, and none means the default.
    form: Literal["value", "switch", "repeated"] = "value"
    looked_up: bool = False  # not given: looked up at start (from_options), so the parser's default is None

    @property
    def dest(self) -> str:
        """The attribute an argparse namespace holds the option's value in."""
        return self.flag.lstrip("-").replace("-", "_")

    def read(self, text: str) -> Any:
        """The value the text spells; SettingError, naming the flag, when it spells none in bounds."""
        if self.kind is None:
            return text
        try:
            value = self.kind.read(text)
        except ValueError as exc:
            raise SettingError(self.flag, str(exc)) from None
        self.check(value, text)
        return value

    def check(self, value: Any, shown: str | None = None) -> None:
        """SettingError, naming the flag and the bounds, when `value` is out of bounds."""
        if self.kind is None or value is None:
            return
        problem = self.kind.problem(value, str(value) if shown is None else shown)
        if problem is not None:
            raise SettingError(self.flag, problem)


def command_line(
    flag: str,
    help: str,  # noqa: A002 - argparse's word for it
    metavar: str | None = None,
    kind: Kind | None = None,
    *,
    short: str | None = None,
    form: Literal["value", "switch", "repeated"] = "value",
    looked_up: bool = False,
) -> dict[str, Option]:
    """A field's metadata saying that `flag` sets it (see `Option`)."""
    return {OPTION: Option(flag, help, metavar, kind, short, form, looked_up)}


DURATION = Duration()
LISTEN = ListenAddress()
COUNT = Count()
ON_STOP = Choice(get_args(OnStop))
ON_OFF = Choice(get_args(OnOff))
UNSIGNED32 = Count(0, 2**32 - 1)  # a BGP local preference or MED
BIRD_VERSIONS = Choice(("auto", *VERSIONS))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `rhid run` needs besides the rules. The fields with an option are `rhid run`'s
    options, in this order; the first seven (up to `rise`) may be given by position."""

    rules_path: str = field(
        default=DEFAULT_RULES_PATH,
        metadata=command_line("--config", "rule file (default %(default)s)", "FILE", short="-c"),
    )
    haproxy_socket: str = field(
        default=DEFAULT_HAPROXY_SOCKET,
        metadata=command_line(
            "--haproxy-socket",
            f"HAProxy stats or master socket (default: ${SOCKET_VARIABLE}, then "
            f"{' or '.join(ENVIRONMENT_FILES)}, then {DEFAULT_HAPROXY_SOCKET})",
            "PATH",
            looked_up=True,
        ),
    )
    bird_socket: str = field(
        default=DEFAULT_BIRD_SOCKET,
        metadata=command_line(
            "--bird-socket", "BIRD's control socket, unrestricted (default %(default)s)", "PATH"
        ),
    )
    bird_dir: Path = field(
        default=Path(DEFAULT_BIRD_DIR),
        metadata=command_line(
            "--bird-dir",
            "where rhid writes BIRD include files and its status socket (default %(default)s)",
            "DIR",
            IncludeDirectory(),
        ),
    )
    interval: float = field(
        default=1.0,
        metadata=command_line("--interval", "poll period (default %(default)s)", "SECONDS", DURATION),
    )
    fall: int = field(
        default=health.DEFAULT_FALL,
        metadata=command_line(
            "--fall", "down polls before a proxy is down (default %(default)s)", "N", COUNT
        ),
    )
    rise: int = field(
        default=health.DEFAULT_RISE,
        metadata=command_line("--rise", "up polls before a proxy is up (default %(default)s)", "N", COUNT),
    )
    # Poll period while a proxy is between states. None: 0.1 s while HAProxy's event stream is live,
    # and the plain interval without one, so that defaults without a ring stay the vendor's.
    fast_interval: float | None = field(
        default=None,
        metadata=command_line(
            "--fast-interval",
            "poll period while a proxy is between states (its fall or rise count started); "
            f"default {DEFAULT_FAST_INTERVAL:g} while HAProxy's event stream is live, else --interval "
            "(the vendor's behaviour)",
            "SECONDS",
            DURATION,
        ),
    )
    # While the event stream is live, events wake targeted polls and the full poll is the guard
    # against lost events: its period follows its cost (rhid.sweep), within these two.
    sweep_budget: float = field(
        default=sweep.DEFAULT_BUDGET,
        metadata=command_line(
            "--sweep-budget",
            "while HAProxy's event stream is live, the full poll of every proxy runs as often as "
            "this share of one core allows (rhid's CPU for it and HAProxy's dump), never more "
            "often than --interval nor less often than --sweep-max; without a live stream every "
            "poll is a full one, every --interval (default %(default)s)",
            "PERCENT",
            Amount(most=100.0),
        ),
    )
    sweep_max: float = field(
        default=sweep.DEFAULT_MOST,
        metadata=command_line(
            "--sweep-max",
            "while HAProxy's event stream is live, the longest time between two full polls: the "
            "bound on noticing a change whose event was lost (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    events: str = field(  # a ring name, "auto" (the ring HAProxy has, if any) or "none"
        default="auto",
        metadata=command_line(
            "--haproxy-events",
            "poll at once when this HAProxy log ring reports a state change; auto (default): the "
            "ring named rhid, else the first ring declared in HAProxy's configuration (never one of "
            "HAProxy's own, such as buf0 or dpapi), if any; none: polling only",
            "RING",
            Ring(),
        ),
    )
    # An HAProxy whose replies stay unreadable counts as down after this long (see the README).
    unreadable_down_after: float = field(
        default=health.DEFAULT_UNREADABLE_DOWN_AFTER,
        metadata=command_line(
            "--unreadable-down-after",
            "an HAProxy whose replies stay unreadable this long counts as down (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    # A proxy seen before and now absent (renamed or removed by an HAProxy reload) keeps its last
    # status this long, then counts as down like one never seen.
    vanished_keep: float = field(
        default=health.DEFAULT_VANISHED_KEEP,
        metadata=command_line(
            "--vanished-keep",
            "a proxy that HAProxy no longer shows (renamed or removed by a reload) keeps its last "
            "status this long, then counts as down (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    on_stop: OnStop = field(
        default="withdraw",
        metadata=command_line(
            "--on-stop", "what stopping rhid does to its routes (default %(default)s)", kind=ON_STOP
        ),
    )
    on_restart: OnStop = field(  # a stop that systemd does as half of a restart
        default="hold",
        metadata=command_line(
            "--on-restart",
            "what a stop does when systemd is restarting rhid (systemctl restart, a package "
            "upgrade): default %(default)s, so a restart does not flap the routes",
            kind=ON_STOP,
        ),
    )
    allow_empty: bool = field(
        default=False,
        metadata=command_line(
            "--allow-empty", "accept a rule file without rules (every route is then withdrawn)", form="switch"
        ),
    )
    verify_every: float = field(
        default=30.0,
        metadata=command_line(
            "--verify-interval",
            "re-check BIRD's routes this often (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    metrics_listen: Listen | None = field(
        default=None,
        metadata=command_line(
            "--metrics-listen",
            "serve Prometheus metrics over HTTP at /metrics on this address: 127.0.0.1:PORT, "
            "[::1]:PORT or localhost:PORT; any other address only as exposed:HOST:PORT (no "
            "authentication: restrict who may connect); default: off",
            "HOST:PORT",
            LISTEN,
        ),
    )
    state_dir: Path = field(
        default=Path(DEFAULT_STATE_DIR),
        metadata=command_line(
            "--state-dir",
            "where rhid keeps what must outlive a reboot: the drains (default %(default)s; the unit's "
            "StateDirectory=)",
            "DIR",
            IncludeDirectory(),
        ),
    )
    dry_run: bool = field(
        default=False,
        metadata=command_line(
            "--dry-run",
            "poll, decide, log and answer rhid status as usual, but never write BIRD's include files "
            "nor send configure (the log says route.would_announce / route.would_withdraw); for "
            "trying rules on a live node beside the running rhid, whose files it only reads (its "
            "own rhid status socket: --bird-dir DIR/dry-run)",
            form="switch",
        ),
    )
    # ---- the policies that keep rhid from making an outage worse (rhid.shutdown, rhid.damping,
    # rhid.guard; the README's "Never making an outage worse" says why each default is what it is)
    graceful_shutdown: float = field(
        default=5.0,
        metadata=command_line(
            "--graceful-shutdown",
            "a planned withdrawal (a stop, a rule removed by a reload) first keeps the route "
            "announced with the GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326) this long, so that "
            "routers move traffic away while this node still serves it; 0: withdraw at once "
            "(default %(default)s)",
            "SECONDS",
            Duration(most=3600.0, zero=True),
        ),
    )
    graceful_shutdown_local_pref: int | None = field(
        default=None,
        metadata=command_line(
            "--graceful-shutdown-local-pref",
            "also set this BGP local preference on a route under graceful shutdown (iBGP; 0 makes "
            "it the last resort without the router's help); default: none",
            "N",
            UNSIGNED32,
        ),
    )
    graceful_shutdown_med: int | None = field(
        default=None,
        metadata=command_line(
            "--graceful-shutdown-med",
            "also set this MED on a route under graceful shutdown (eBGP to routers that compare the "
            "MEDs of one AS); default: none",
            "N",
            UNSIGNED32,
        ),
    )
    damping: OnOff = field(
        default="on",
        metadata=command_line(
            "--damping",
            "flap damping (RFC 2439's idea on health checks' time scale): a route withdrawn by "
            "health too often stays withdrawn until its penalty decays (default %(default)s)",
            kind=ON_OFF,
        ),
    )
    damping_half_life: float = field(
        default=30.0,
        metadata=command_line(
            "--damping-half-life",
            "each withdrawal by health adds a penalty of 1, which halves in this time (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    damping_suppress: float = field(
        default=2.5,
        metadata=command_line(
            "--damping-suppress",
            "a withdrawal that brings the penalty to this suppresses the route: it is not announced "
            "again until the penalty is below --damping-reuse (default %(default)s: the third "
            "withdrawal within a few seconds)",
            "PENALTY",
            Amount(),
        ),
    )
    damping_reuse: float = field(
        default=1.0,
        metadata=command_line(
            "--damping-reuse",
            "a suppressed route may be announced again once its penalty is below this (default %(default)s)",
            "PENALTY",
            Amount(),
        ),
    )
    damping_max_suppress: float = field(
        default=120.0,
        metadata=command_line(
            "--damping-max-suppress",
            "a route is never kept withdrawn by damping longer than this after its last withdrawal "
            "(default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    guard: OnOff = field(
        default="on",
        metadata=command_line(
            "--guard",
            "the blast-radius guard: hold a withdrawal by health of more than --guard-share of the "
            "announced routes (and more than --guard-min) while HAProxy answers (default %(default)s)",
            kind=ON_OFF,
        ),
    )
    guard_share: int = field(
        default=50,
        metadata=command_line(
            "--guard-share",
            "the guard holds a withdrawal of more than this percentage of the announced routes "
            "(default %(default)s)",
            "PERCENT",
            Count(1, 100),
        ),
    )
    guard_min: int = field(
        default=5,
        metadata=command_line(
            "--guard-min",
            "... and of more than this many routes, so that a node with few routes behaves as "
            "without the guard (default %(default)s)",
            "N",
            Count(0, 1_000_000),
        ),
    )
    guard_hold: float = field(
        default=60.0,
        metadata=command_line(
            "--guard-hold",
            "how long the guard holds: then the routes are withdrawn (at once: rhid guard release) "
            "(default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    guard_window: float = field(
        default=10.0,
        metadata=command_line(
            "--guard-window",
            "withdrawals by health this far apart count together towards --guard-share (default %(default)s)",
            "SECONDS",
            DURATION,
        ),
    )
    guard_degraded: OnOff = field(
        default="on",
        metadata=command_line(
            "--guard-degraded",
            "the guard holds routes marked as under graceful shutdown (65535:0, and the "
            "--graceful-shutdown-local-pref and -med), so that routers prefer other nodes where "
            "they can (default %(default)s)",
            kind=ON_OFF,
        ),
    )
    defaults_files: tuple[str, ...] = field(  # re-read on reload
        default=ENVIRONMENT_FILES,
        metadata=command_line(
            "--defaults-file",
            f"where {SOCKET_VARIABLE} and {ARGS_VARIABLE} are set, read at start and at every reload; "
            f"repeat for several (default: {' and '.join(ENVIRONMENT_FILES)})",
            "PATH",
            form="repeated",
        ),
    )
    bird6_socket: str = field(
        default=DEFAULT_BIRD6_SOCKET,
        metadata=command_line(
            "--bird6-socket",
            "BIRD 1.6's IPv6 daemon (bird6): its control socket, unrestricted; the IPv6 routes go "
            "there, the IPv4 ones to --bird-socket (default %(default)s; unused with BIRD 2 and 3)",
            "PATH",
        ),
    )
    bird_version: str = field(
        default="auto",
        metadata=command_line(
            "--bird-version",
            "which BIRD rhid speaks to: 1.6 (two daemons, bird and bird6), 2 or 3 (one daemon); "
            "auto (default): as the control socket's greeting says (BIRD 1.6.8 ready.), at start; "
            "if no BIRD answers then, 1.6 when --bird6-socket exists, else 2",
            kind=BIRD_VERSIONS,
        ),
    )
    gateways: tuple[Gateway, ...] = field(
        default=(),
        metadata=command_line(
            gateway.FLAG,
            "the routes of TABLE (of ADDRESS's family) lead via ADDRESS instead of a blackhole, "
            "as the vendor's `protocol volatile TABLE { gateway ADDRESS }`; repeat for more tables, "
            "and for a table's other family (default: none, every route a blackhole)",
            "TABLE=ADDRESS",
            Gateways(),
            form="repeated",
        ),
    )
    bird_timeout: float = 2.0  # show status / show route
    configure_timeout: float = 30.0  # BIRD 1.6 needs seconds for 100k static routes (quadratic diff)
    haproxy_socket_source: str = "default"  # --haproxy-socket, $HAPEE_LB_SOCKET, a file, or default
    defaults: Mapping[str, str] = field(default_factory=dict)  # read_defaults() at start

    def __post_init__(self) -> None:
        for name, option in OPTIONS.items():
            option.check(getattr(self, name))
        if self.damping_reuse >= self.damping_suppress:
            raise SettingError(
                "--damping-reuse",
                f"must be below --damping-suppress ({self.damping_suppress:g}), not {self.damping_reuse:g}",
            )
        needed = self.damping_half_life * math.log2(self.damping_suppress / self.damping_reuse)
        if self.damping_max_suppress < needed:
            raise SettingError(
                "--damping-max-suppress",
                f"must be at least {needed:.4g} s, the time a penalty of --damping-suppress "
                f"({self.damping_suppress:g}) takes to decay to --damping-reuse ({self.damping_reuse:g}), "
                f"not {self.damping_max_suppress:g}",
            )

    @property
    def own_dir(self) -> Path:
        """Where this rhid keeps its lock, its rhid status socket and the last good copy of its
        rules: --bird-dir, or a dry run's own directory inside it (the live rhid's stay its own)."""
        return self.bird_dir / DRY_RUN_DIR if self.dry_run else self.bird_dir

    @property
    def poll_timeout(self) -> float:
        """The whole HAProxy exchange must finish within this: below the interval, within reason."""
        return min(2.0, max(0.25, 0.8 * self.interval))


# Each setting an operator may give, by field name, in the order `rhid run --help` lists them.
OPTIONS: dict[str, Option] = {
    spec.name: spec.metadata[OPTION] for spec in fields(Settings) if OPTION in spec.metadata
}
DEFAULTS = Settings()  # every setting's default, in one value


def from_options(given: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """The settings `rhid run` was given (a value for some of `OPTIONS`' names; None: not given),
    with the HAProxy socket looked up where it was not given, and the defaults files read."""
    values = {name: value for name, value in given.items() if value is not None}
    for name, value in values.items():
        if OPTIONS[name].form == "repeated":
            values[name] = tuple(value)
    files: tuple[str, ...] = values.pop("defaults_files", DEFAULTS.defaults_files)
    socket, source = find_haproxy_socket(values.pop("haproxy_socket", None), environ, files)
    return Settings(
        **values,
        haproxy_socket=socket,
        haproxy_socket_source=source,
        defaults=read_defaults(files),
        defaults_files=files,
    )


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
