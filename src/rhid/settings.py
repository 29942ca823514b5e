"""Where rhid finds its peers and how it paces itself: a value built once from arguments and files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_HAPROXY_SOCKET = "/var/run/hapee-extras/hapee-lb.sock"
DEFAULT_BIRD_SOCKET = "/run/bird/bird.ctl"
DEFAULT_BIRD_DIR = "/run/rhid"
DEFAULT_FAST_INTERVAL = 0.1
ENVIRONMENT_FILES = ("/etc/default/hapee-extras-rhi", "/etc/sysconfig/hapee-extras-rhi")
SOCKET_VARIABLE = "HAPEE_LB_SOCKET"
ARGS_VARIABLE = "RHID_ARGS"  # more options for `rhid run`, expanded by the unit's ExecStart
RULES_VARIABLE = "RHID_RULES"  # the rule file the unit's ExecStart passes as -c
RESTART_VARIABLES = (ARGS_VARIABLE, RULES_VARIABLE)  # only a restart applies a change of these
WATCHED_VARIABLES = (SOCKET_VARIABLE, *RESTART_VARIABLES)

# KEY="value", KEY='value' or KEY=value. Values that a shell would expand ($, `, \) or treat as
# syntax are not matched: rhid does not run a shell, so it skips what it cannot read literally.
_ASSIGNMENT = re.compile(
    r"""\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"$`\\]*)"|'([^']*)'|([^\s#"'$`\\;|&<>()]*))\s*(?:#.*)?\Z"""
)

OnStop = Literal["withdraw", "hold"]


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


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `rhid run` needs besides the rules."""

    rules_path: str
    haproxy_socket: str
    bird_socket: str
    bird_dir: Path
    interval: float = 1.0
    fall: int = 3
    rise: int = 1
    on_stop: OnStop = "withdraw"
    on_restart: OnStop = "hold"  # a stop that systemd does as half of a restart
    allow_empty: bool = False
    verify_every: float = 30.0
    events: str = "auto"  # a ring name, "auto" (the ring HAProxy has, if any) or "none"
    # Poll period while a proxy is between states. None: 0.1 s while HAProxy's event stream is live,
    # and the plain interval without one, so that defaults without a ring stay the vendor's.
    fast_interval: float | None = None
    # An HAProxy whose replies stay unreadable counts as down after this long (see the README).
    unreadable_down_after: float = 30.0
    # A proxy seen before and now absent (renamed or removed by an HAProxy reload) keeps its last
    # status this long, then counts as down like one never seen.
    vanished_keep: float = 60.0
    bird_timeout: float = 2.0  # show status / show route
    configure_timeout: float = 30.0  # BIRD 1.6 needs seconds for 100k static routes (quadratic diff)
    haproxy_socket_source: str = "default"  # --haproxy-socket, $HAPEE_LB_SOCKET, a file, or default
    defaults: Mapping[str, str] = field(default_factory=dict)  # read_defaults() at start
    defaults_files: tuple[str, ...] = ENVIRONMENT_FILES  # re-read on reload

    @property
    def poll_timeout(self) -> float:
        """The whole HAProxy exchange must finish within this: below the interval, within reason."""
        return min(2.0, max(0.25, 0.8 * self.interval))


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
