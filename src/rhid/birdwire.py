"""BIRD's control-socket protocol, sans I/O: bytes in, replies out; commands built from checked names.

Framing (docs/notes/bird-control-socket.md §2), one line at a time:

    DDDD-text    a line of code DDDD; more lines follow
    DDDD text    the last line of the reply (``0000 `` ends listings)
     text        continues the previous code
    +text        an asynchronous message, not part of any reply: dropped

Decisions rest on codes, never on text: 0xxx done, 1xxx rows, 2xxx headers, 8xxx run-time
errors, 9xxx parse errors.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from rhid.errors import BirdProtocolError
from rhid.model import Network
from rhid.names import require_bird_symbol

MAX_LINE_BYTES = 64 * 1024
MAX_REPLY_BYTES = 64 * 1024 * 1024

GREETING = 1
RECONFIGURED = 3
CONFIGURE_DONE = frozenset({3, 4, 5})  # Reconfigured / in progress / queued: all mean "accepted"
STATUS_REPLY = 13
RUNNING = "Daemon is up and running"  # show status's last line when no reconfiguration is under way
CONFIG_REJECTED = 8002
ACCESS_DENIED = 8007
SYNTAX_ERROR = 9001
NOT_A_PROTOCOL = 9002  # BIRD 1.6 (show protocols X); BIRD 2 answers 9001 for an undeclared name
NETWORK_NOT_FOUND = 8001  # show route N: no route for N in the table

_LINE = re.compile(rb"(\d{4})([ -])(.*)\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete reply: the final code and every line as (code, text)."""

    code: int
    lines: tuple[tuple[int, str], ...]

    @property
    def text(self) -> str:
        """The text of the final line (BIRD's message, e.g. the 8002 position)."""
        return self.lines[-1][1] if self.lines else ""

    @property
    def ok(self) -> bool:
        """True for a 0xxx final code."""
        return self.code < 1000


class ReplyReader:
    """Feed it bytes as they arrive; it returns each reply once complete."""

    def __init__(self, max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []
        self._size = 0
        self._max = max_reply_bytes

    def feed(self, data: bytes) -> list[Reply]:
        """Consume `data`; return the replies it completed. Raises BirdProtocolError on garbage."""
        self._buffer += data
        replies: list[Reply] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    raise BirdProtocolError(f"line longer than {MAX_LINE_BYTES} bytes")
                return replies
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            reply = self._line(line)
            if reply is not None:
                replies.append(reply)

    @property
    def pending(self) -> bool:
        """True while a reply has started but not ended (or a partial line is buffered)."""
        return bool(self._lines or self._buffer)

    def _line(self, line: bytes) -> Reply | None:
        if line.startswith(b"+"):
            return None
        self._size += len(line) + 1
        if self._size > self._max:
            raise BirdProtocolError(f"reply larger than {self._max} bytes")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BirdProtocolError(f"undecodable line {line[:60]!r}") from None
        match = _LINE.match(line)
        if match is None:
            if not line.startswith(b" ") or not self._lines:
                raise BirdProtocolError(f"unexpected line {line[:60]!r}")
            self._lines.append((self._lines[-1][0], text[1:]))
            return None
        code = int(match.group(1))
        self._lines.append((code, text[5:]))
        if match.group(2) == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._lines = []
        self._size = 0
        return reply


# ---- commands: constants, or built only from names that passed rhid.names ---------------------

CONFIGURE = "configure"
SHOW_STATUS = "show status"


def show_route_command(protocol: str) -> str:
    """``show route protocol P`` for a validated BIRD symbol."""
    return f"show route protocol {require_bird_symbol(protocol)}"


def show_prefix_command(protocol: str, prefix: Network) -> str:
    """``show route N protocol P``: the one network N (a value, not text) of a validated protocol."""
    return f"show route {prefix.with_prefixlen} protocol {require_bird_symbol(protocol)}"


def encode(command: str) -> bytes:
    """One command line. Refuses anything that could carry a second command."""
    if not command or any(char in command for char in "\n\r;\x00") or not command.isascii():
        raise AssertionError(f"refusing to send {command!r} to BIRD")
    return command.encode("ascii") + b"\n"


# ---- reading replies -----------------------------------------------------------------------


def parse_route_listing(reply: Reply) -> frozenset[Network]:
    """The prefixes in a ``show route`` reply (BIRD 2 puts a ``Table ...:`` line first)."""
    if not reply.ok:
        raise BirdProtocolError(f"show route failed: {reply.code:04d} {reply.text}")
    prefixes: set[Network] = set()
    for code, text in reply.lines:
        if code not in {1007, 0}:
            raise BirdProtocolError(f"unexpected code {code:04d} in a route listing")
        words = text.split(None, 1)
        if not words or text[:1].isspace() or words[0] == "Table":
            continue  # blank, a next hop of a multipath route, or a table header
        try:
            prefixes.add(ipaddress.ip_network(words[0]))
        except ValueError:
            raise BirdProtocolError(f"route listing line without a prefix: {text[:60]!r}") from None
    return frozenset(prefixes)


def parse_prefix_listing(reply: Reply) -> frozenset[Network]:
    """The prefixes in a ``show route N protocol P`` reply: N, or none (8001 says so too)."""
    if reply.code == NETWORK_NOT_FOUND:
        return frozenset()
    return parse_route_listing(reply)


@dataclass(frozen=True, slots=True)
class Status:
    """What ``show status`` says about BIRD's life: a change of the two times means someone else
    acted; `running` is False while a reconfiguration (or a shutdown) is under way, when a
    ``configure`` would be queued behind it (0005), which BIRD 3.3/3.4 can abort on."""

    reboot: str
    reconfiguration: str
    running: bool = field(default=True, compare=False)


def parse_status(reply: Reply) -> Status:
    """``Last reboot on ...``, ``Last reconfiguration on ...`` and the final 0013 line of ``show status``."""
    if reply.code != STATUS_REPLY:
        raise BirdProtocolError(f"show status answered {reply.code:04d} {reply.text}")
    found: dict[str, str] = {}
    for _code, text in reply.lines:
        for key in ("Last reboot on ", "Last reconfiguration on "):
            if text.strip().startswith(key):
                found[key] = text.strip()[len(key) :]
    if len(found) != 2:
        raise BirdProtocolError("show status without 'Last reboot' and 'Last reconfiguration'")
    return Status(found["Last reboot on "], found["Last reconfiguration on "], reply.text.strip() == RUNNING)


def is_unknown_protocol(reply: Reply) -> bool:
    """True when BIRD answered that the name is not a declared protocol: BIRD 2's ``9001 syntax
    error, unexpected CF_SYM_UNDEFINED``, BIRD 1.6's ``9001 vol1 is not a protocol`` (``show route
    protocol vol1``, measured on 1.6.8) and ``9002 vol1 is not a protocol`` (``show protocols``)."""
    if reply.code == NOT_A_PROTOCOL:
        return True
    return reply.code == SYNTAX_ERROR and (
        "CF_SYM_UNDEFINED" in reply.text or reply.text.endswith(" is not a protocol")
    )
