"""The errors rhid raises, as one small hierarchy.

    RhidError
    ├── RuleError           the rule file is wrong (every position, with hints)
    ├── RuleFileError       the rule file cannot be read at all
    ├── SettingError        a setting's value is out of its bounds (names the option)
    ├── ProtocolError       a peer sent something we cannot accept
    │   ├── HAProxyProtocolError
    │   └── BirdProtocolError
    ├── UnavailableError    a peer could not be reached or timed out
    │   ├── HAProxyUnavailableError
    │   ├── BirdUnavailableError
    │   │   └── BirdInterruptedError  (a stop signal arrived while rhid waited on BIRD)
    │   └── StatusUnavailableError   (the daemon, for `rhid status`)
    ├── BirdRefusedError    BIRD understood a command and refused it (its code says why)
    └── CannotRunError      rhid cannot start; the operator must act (the message says how)
        ├── AlreadyRunningError
        └── FatalError

A ProtocolError is the peer's fault and is handled (retry, count as unknown). Our own bugs are not
in this tree: they are plain assertions and exceptions that must stay loud.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

SOURCE_WINDOW = 160


class RhidError(Exception):
    """Base of every error rhid raises on purpose."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at one place in a rule file. Lines and columns count from 1."""

    path: str
    line: int
    col: int
    message: str
    source: str
    hint: str | None = None

    def render(self) -> str:
        """Render as ``FILE:LINE:COL: message``, the line, a caret under the column, and a hint.

        A very long line (a 1 MB rule) is shown as a window of it around the column.
        """
        source, index = self.source, self.col - 1
        if len(source) > SOURCE_WINDOW:
            start = max(0, min(index - SOURCE_WINDOW // 2, len(source) - SOURCE_WINDOW))
            end = start + SOURCE_WINDOW
            prefix = "..." if start else ""
            source = prefix + source[start:end] + ("..." if end < len(source) else "")
            index = index - start + len(prefix)
        lines = [f"{self.path}:{self.line}:{self.col}: {self.message}"]
        if source:  # a problem of the whole file (no rules at all) has no line to point into
            shown, caret_at = _printable(source, index)
            lines += [f"    {shown}", "    " + caret_at + "^"]
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


def _printable(source: str, index: int) -> tuple[str, str]:
    """Escape what a terminal should not interpret; return the text and the padding up to `index`.

    Control characters, bidi overrides and other non-printing code points in a hostile file are
    shown as escapes, so the echoed line can neither drive the terminal nor hide what it contains.
    """
    shown: list[str] = []
    pad: list[str] = []
    for position, char in enumerate(source):
        if char == "\t":
            piece = "\t"
        elif char.isprintable() and unicodedata.category(char) not in {"Cf", "Zl", "Zp"}:
            piece = char
        else:
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape: show the byte
                code -= 0xDC00
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        if position < index:
            pad.append("\t" if piece == "\t" else " " * len(piece))
        shown.append(piece)
    if index > len(source):
        pad.append(" " * (index - len(source)))
    return "".join(shown), "".join(pad)


class RuleError(RhidError):
    """The rule file has one or more errors; `diagnostics` has every one, in file order."""

    def __init__(self, diagnostics: tuple[Diagnostic, ...]) -> None:
        if not diagnostics:
            raise AssertionError("a RuleError needs at least one diagnostic")
        self.diagnostics = diagnostics
        super().__init__(self.render())

    def render(self) -> str:
        """Every diagnostic, rendered, one block after another."""
        return "\n".join(d.render() for d in self.diagnostics)


class RuleFileError(RhidError):
    """The rule file is missing, unreadable or too large to be a rule file."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DrainFileError(RhidError):
    """The drains file (rhid's own, in its state directory) is not what rhid writes."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class SettingError(RhidError):
    """A setting's value is not one it may take; names the option that sets it and the bounds."""

    def __init__(self, flag: str, problem: str) -> None:
        self.flag = flag
        self.problem = problem
        super().__init__(f"{flag}: {problem}")


class ProtocolError(RhidError):
    """A peer (HAProxy or BIRD) sent bytes we cannot accept."""


class HAProxyProtocolError(ProtocolError):
    """HAProxy's reply was garbled, truncated, too large or not what the command returns."""


class BirdProtocolError(ProtocolError):
    """BIRD's control socket sent something outside its line protocol."""


class UnavailableError(RhidError):
    """A peer could not be reached, refused us, or did not answer before the deadline.

    `kind` says which: "missing" (no socket file), "refused" (nobody listening), "permission",
    "timeout", "closed" (the peer hung up) or "other".
    """

    def __init__(self, path: str, reason: str, kind: str = "other") -> None:
        self.path = path
        self.reason = reason
        self.kind = kind
        super().__init__(f"{path}: {reason}")


class HAProxyUnavailableError(UnavailableError):
    """HAProxy's stats socket could not be used."""


class BirdUnavailableError(UnavailableError):
    """BIRD's control socket could not be used."""


class BirdInterruptedError(BirdUnavailableError):
    """rhid stopped waiting for BIRD's reply because SIGTERM or SIGINT arrived (the connection is
    dropped: BIRD finishes the command on its own, rhid does not know how it ended)."""


class BirdRefusedError(RhidError):
    """BIRD understood the command and refused it; `code` and BIRD's own message say why."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"BIRD refused: {code:04d} {message}")


class StatusUnavailableError(UnavailableError):
    """The daemon's control socket could not be used."""


class CannotRunError(RhidError):
    """rhid cannot run until the operator acts; the message says how."""


class AlreadyRunningError(CannotRunError):
    """Another rhid holds the lock of this state directory."""


class FatalError(CannotRunError):
    """A condition rhid cannot work around (a restricted or forbidden BIRD socket)."""
