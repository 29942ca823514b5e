"""The include files rhid owns in its BIRD directory: one per table and address family.

    <dir>/<table>.ipv4.conf     route 192.0.2.10/32 blackhole;   (one line per announced route)
    <dir>/<table>.ipv6.conf

BIRD's ``include "<dir>/<table>.ipv4*.conf";`` reads them at every start and ``configure``. The
files are the desired state: they are replaced atomically (temp file in the same directory,
fsync, rename), so BIRD reads the old set or the new one, never half; they survive an rhid crash,
and rhid reads them back at start-up as "announced", so a restart withdraws nothing healthy.

A withdrawal must not need free space (a full /run would otherwise keep a dead service's route):
when the atomic replacement fails, `write_text` removes a file that is to be empty (the wildcard
include matches nothing and BIRD 2 configures fine: tests/integration/test_faults.py proves it), and
rewrites a file in place when its new text is no longer than the old one. Overwriting blocks the
file already has needs none; the file is briefly a mix of the new text and the old one's tail, every
line of which is a line of one of them or a fragment BIRD rejects whole (8002: BIRD keeps its old
routes). Nobody reads it in that moment: BIRD reads the files only at a ``configure`` or a start,
and rhid, the one sender of ``configure`` for its files, sends it only after the fsync.

A change of a few routes among 10,000 renders only their lines: `FileText` keeps a file's lines in
address order between writes (the whole file is still written, atomically, every time: BIRD 2
re-reads every included file at each ``configure`` anyway, and one file or a hundred measured the
same, 7-10 ms for 10,000 routes).
"""

from __future__ import annotations

import bisect
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rhid.dialect import BIRD2, Dialect
from rhid.model import PLAIN, Attributes, Channel, Network, Route, Routes
from rhid.names import is_bird_symbol

HEADER = "# Written by rhid; replaced atomically on every change. Do not edit: rhid owns this file.\n"
_FILE = re.compile(r"(?P<table>[A-Za-z_][A-Za-z0-9_]*)\.ipv(?P<family>[46])\.conf\Z")
FILE_MODE = 0o644  # BIRD runs as user bird and must read the files at every configure and boot


def file_name(channel: Channel) -> str:
    """``<table>.ipv4.conf`` or ``<table>.ipv6.conf``."""
    return f"{channel.table}.ipv{channel.family}.conf"


def render_routes(routes: Iterable[Network] | Mapping[Network, Attributes], dialect: Dialect = BIRD2) -> str:
    """The file's text: a header and one route line per prefix (``route P blackhole;``, with its
    attributes), in the dialect's words, sorted by address: an unchanged route's line never moves."""
    attributes = routes if isinstance(routes, Mapping) else dict.fromkeys(routes, PLAIN)
    ordered = sorted(attributes, key=lambda p: (int(p.network_address), p.prefixlen))
    return HEADER + "".join(dialect.route_line(prefix, attributes[prefix]) + "\n" for prefix in ordered)


def _address(prefix: Network) -> tuple[int, int]:
    return (int(prefix.network_address), prefix.prefixlen)


class FileText:
    """One include file's text, kept between writes: each route's line rendered once and kept in
    address order, so that a change of a few routes among 10,000 renders those few (`update`) and
    `text` only joins the lines. Its text is `render_routes`'s, byte for byte."""

    def __init__(self, routes: Mapping[Network, Attributes], dialect: Dialect = BIRD2) -> None:
        self.dialect = dialect
        ordered = sorted(routes, key=_address)
        self.keys = [_address(prefix) for prefix in ordered]  # sorted: where each line goes
        self.lines = [dialect.route_line(prefix, routes[prefix]) + "\n" for prefix in ordered]

    def update(self, routes: Mapping[Network, Attributes], changed: Iterable[Network]) -> None:
        """The file now holds `routes`, which differ from what it held at most at `changed`."""
        for prefix in changed:
            key = _address(prefix)
            at = bisect.bisect_left(self.keys, key)
            had = at < len(self.keys) and self.keys[at] == key
            attributes = routes.get(prefix)
            if attributes is None:
                if had:
                    del self.keys[at], self.lines[at]
                continue
            line = self.dialect.route_line(prefix, attributes) + "\n"
            if had:
                self.lines[at] = line
            else:
                self.keys.insert(at, key)
                self.lines.insert(at, line)

    def text(self) -> str:
        """The file's text: the header, then one line per route in address order."""
        return HEADER + "".join(self.lines)


def parse_routes(text: str, family: int, dialect: Dialect = BIRD2) -> tuple[frozenset[Network], list[str]]:
    """Read a file back: its prefixes, and the lines that were not ours (reported, then dropped)."""
    routes, strange = read_routes(text, family, dialect)
    return frozenset(routes), strange


def read_routes(text: str, family: int, dialect: Dialect = BIRD2) -> tuple[Routes, list[str]]:
    """Read a file back: each prefix with its attributes, and the lines that were not ours."""
    routes: Routes = {}
    strange: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parsed = dialect.parse_route_line(stripped, family)
        if parsed is None:
            strange.append(line)
            continue
        routes[parsed[0]] = parsed[1]
    return routes, strange


def channel_of(name: str) -> Channel | None:
    """The channel a file name belongs to, or None for a file that is not one of ours."""
    match = _FILE.match(name)
    if match is None or not is_bird_symbol(match["table"]):
        return None
    return Channel(match["table"], int(match["family"]))


def announced_routes(files: Mapping[Channel, Routes]) -> dict[Route, Attributes]:
    """Every route the files announce, and what each carries."""
    return {
        Route(channel.table, prefix): attributes
        for channel, routes in files.items()
        for prefix, attributes in routes.items()
    }


@dataclass(frozen=True, slots=True)
class OnDisk:
    """What rhid's directory holds: each channel's routes, the files holding lines rhid did not
    write (they must be rewritten: rhid owns these files), and warnings about what was skipped."""

    routes: dict[Channel, Routes] = field(default_factory=dict)
    foreign: frozenset[Channel] = frozenset()
    warnings: tuple[str, ...] = ()

    @property
    def announced(self) -> dict[Channel, frozenset[Network]]:
        """Each channel's announced prefixes."""
        return {channel: frozenset(routes) for channel, routes in self.routes.items()}


def read_announced(directory: Path) -> OnDisk:
    """Every channel file in `directory` and its routes, and which files need rewriting."""
    announced: dict[Channel, Routes] = {}
    foreign: set[Channel] = set()
    warnings: list[str] = []
    try:
        entries = sorted(os.listdir(directory))
    except FileNotFoundError:
        return OnDisk()
    for name in entries:
        channel = channel_of(name)
        if channel is None:
            continue
        path = directory / name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            warnings.append(f"{path}: unreadable ({exc}); treated as empty and rewritten")
            foreign.add(channel)
            text = ""
        routes, strange = read_routes(text, channel.family)
        warnings.extend(f"{path}: removing a line not written by rhid: {line[:80]!r}" for line in strange)
        if strange:
            foreign.add(channel)
        announced[channel] = routes
    return OnDisk(announced, frozenset(foreign), tuple(warnings))


DIRECTORY_MODE = 0o755  # BIRD runs as user bird and must traverse it


def ensure_directory(directory: Path) -> None:
    """Create the directory, mode 0755 whatever the umask (the unit's is 0077), if it is missing."""
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        return
    directory.chmod(DIRECTORY_MODE)


def write_text(path: Path, text: str) -> str:
    """Make `path` hold `text` (a file's text as rendered: `render_routes`, `FileText.text`);
    returns how: "replaced", "removed" or "rewritten in place". Raises OSError only when no way
    worked (an announcement that needs space it lacks)."""
    try:
        write_atomically(path, text)
    except OSError:
        if text == HEADER:
            remove(path)
            return "removed"
        if rewrite_in_place(path, text):
            return "rewritten in place"
        raise
    return "replaced"


def remove(path: Path) -> None:
    """Remove `path` (no free space needed) and make the removal durable."""
    path.unlink(missing_ok=True)
    _sync_directory(path.parent)


def rewrite_in_place(path: Path, text: str) -> bool:
    """Overwrite `path` with `text` when it is no longer than the file (no new block needed), cut it
    to size, fsync. False (nothing touched) when the file is missing or shorter than `text`."""
    data = text.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        if os.fstat(fd).st_size < len(data):
            return False
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        os.ftruncate(fd, len(data))
        os.fchmod(fd, FILE_MODE)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a reader sees either the old file or the new one.

    The temp file starts with a dot and ends in ``.tmp``, so BIRD's ``<table>.ipv4*.conf`` wildcard
    never matches it, even if rhid dies before the rename.
    """
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fchmod(stream.fileno(), FILE_MODE)
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
