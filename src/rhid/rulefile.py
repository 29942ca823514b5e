"""The rule file on disk (I/O): loading it, keeping a copy of the last good rules, and noticing when
the file on disk no longer says what rhid runs on.

*The last good copy.* A restart or a package upgrade stops the running rhid with its routes held. If
the file on disk was broken meanwhile (`systemctl reload` refused it), the new rhid cannot load it;
without a copy it would fail, and the held routes would stay in BIRD with nothing watching them.
With the copy it starts on the rules the old rhid ran, says so loudly (log and `rhid status`), and
keeps watching HAProxy. The copy lives in the state directory (`/run/rhid`, empty at boot), so it
never outlives the boot: a node that boots with a broken file announces nothing. It is the file's
text followed by one comment line naming the file it came from; a copy of another file (a changed
`--config`) is never used.

*The watch.* Each cycle `RuleFileWatch.look` stats the file (microseconds); a file that changed since
rhid last read it is validated once, never applied (only a reload applies rules), so `rhid status`
can say that the file on disk is invalid however the reload was refused.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

from rhid import routefiles
from rhid.errors import RuleError, RuleFileError
from rhid.grammar import parse
from rhid.rules import MAX_RULES_FILE_BYTES, RuleSet, compile_rules, decode_rules_file, parse_rules

COPY_NAME = "rules.last-good"
_TRAILER = re.compile(r"\n# rhid: last good copy of (?P<path>.+), loaded (?P<at>\S+)\n\Z")

Signature = tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


@dataclass(frozen=True, slots=True)
class Loaded:
    """Rules and where they came from: the file (its signature when read) or the last good copy."""

    rules: RuleSet
    text: str
    signature: Signature | None
    copy_loaded_at: str | None = None  # set when these are the last good copy's rules


def signature(path: str) -> Signature | None:
    """What identifies one version of the file cheaply; None if it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def load(path: str, *, allow_empty: bool) -> Loaded:
    """Read and compile the rule file. Raises RuleFileError or RuleError."""
    seen = signature(path)
    text = read_rules_file(path)
    return Loaded(parse_rules(text, path, allow_empty=allow_empty), text, seen)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """How the last reload went: `at` (local time) and, for one that was refused, the first error.
    Shown as ``none since start``, ``ok at T`` or ``failed at T: ERROR``."""

    at: str | None = None  # None: no reload since the start
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the last reload was refused."""
        return self.error is not None

    def __str__(self) -> str:
        if self.at is None:
            return "none since start"
        return f"failed at {self.at}: {self.error}" if self.error is not None else f"ok at {self.at}"


NO_RELOAD = ReloadResult()


def first_error(exc: RuleError | RuleFileError) -> str:
    """The first thing wrong with a file, on one line."""
    if isinstance(exc, RuleFileError):
        return f"cannot read it: {exc.reason}"
    return exc.diagnostics[0].render().splitlines()[0]


def keep(directory: Path, loaded: Loaded, wall_now: float) -> None:
    """Make `loaded` (read from its file) the last good copy. Raises OSError."""
    at = datetime.datetime.fromtimestamp(wall_now).astimezone().isoformat(timespec="seconds")
    # Bytes that are not UTF-8 can only stand in comments (names refuse them): write them as U+FFFD.
    body = loaded.text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    trailer = f"\n# rhid: last good copy of {loaded.rules.path}, loaded {at}\n"
    routefiles.write_atomically(directory / COPY_NAME, body + trailer)


def recall(directory: Path, path: str, *, allow_empty: bool) -> Loaded | None:
    """The last good copy of `path`'s rules, or None (no copy of that file, or it does not compile)."""
    copy = directory / COPY_NAME
    try:
        text = copy.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    match = _TRAILER.search(text)
    if match is None or match["path"] != path:
        return None
    body = text[: match.start()]
    try:
        rules = parse_rules(body, os.fspath(copy), allow_empty=allow_empty)
    except RuleError:
        return None
    return Loaded(rules, body, None, copy_loaded_at=match["at"])


class RuleFileWatch:
    """Whether the rule file on disk is one rhid could load; checked once per change of the file."""

    def __init__(self, path: str, *, allow_empty: bool) -> None:
        self.path = path
        self.allow_empty = allow_empty
        self.checked: Signature | None = None
        self.problem: str | None = None  # the first error of the file on disk, while it has one

    def loaded(self, loaded: Loaded) -> None:
        """The rules in force were just read from the file (or, for the copy, the file is bad)."""
        if loaded.signature is not None:
            self.checked, self.problem = loaded.signature, None

    def refused(self, seen: Signature | None, exc: RuleError | RuleFileError) -> None:
        """A load of the file at `seen` failed with `exc`."""
        self.checked, self.problem = seen, first_error(exc)

    def look(self) -> None:
        """Validate the file if it changed since rhid last read it (never applies it)."""
        seen = signature(self.path)
        if seen is not None and seen == self.checked:
            return
        try:
            load(self.path, allow_empty=self.allow_empty)
        except (RuleError, RuleFileError) as exc:
            self.refused(seen, exc)
        else:
            self.checked, self.problem = seen, None


def read_rules_file(path: str | os.PathLike[str]) -> str:
    """Read a rule file as text. Raises RuleFileError if it cannot be read."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_RULES_FILE_BYTES + 1)
    except FileNotFoundError:
        raise RuleFileError(shown, "no such file") from None
    except IsADirectoryError:
        raise RuleFileError(shown, "is a directory, not a rule file") from None
    except PermissionError:
        raise RuleFileError(shown, f"permission denied (running as uid {os.getuid()})") from None
    except OSError as exc:
        raise RuleFileError(shown, exc.strerror or str(exc)) from None
    return decode_rules_file(data, shown)


def load_rules(path: str | os.PathLike[str], *, allow_empty: bool = False) -> RuleSet:
    """Read, parse and compile a rule file: the one validation start-up, reload and check share."""
    return compile_rules(parse(read_rules_file(path), os.fspath(path)), allow_empty=allow_empty)
