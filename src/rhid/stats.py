"""What HAProxy says about its proxies: reply bytes in, a Snapshot out. No sockets here.

rhid asks ``show info; show stat -1 <mask> -1`` (`poll_command`: the mask selects frontend, backend
and, only while a first health check may be pending, server rows) and reads the reply with
`parse_poll`. For the event ring it sends ``show events`` (`parse_sinks`, `pick_ring`) and then
``show events <ring> -nw`` (`events_command`), whose lines `has_state_change` scans.

The mapping from HAProxy's status strings to up/down follows the measurements in
docs/notes/haproxy-runtime-api.md §2.4:

    row        up              down                    keep the last status (not known yet)
    FRONTEND   OPEN            anything else           -
    BACKEND    first word UP   anything else           UP or DOWN while a checked server is INI
                                                       (DOWN: HAProxy 3.1+'s `init-state down`; with
                                                       `fully-down` and rise >= 2 a server is DOWN
                                                       after its first passing check, as HAProxy says)
    (missing)  -               disabled in the config  removed by an HAProxy reload

A checked server is one whose row has a check_status and that is not in maintenance (HAProxy 2.6
prints no check_status for servers without `check` or in MAINT; a server in MAINT is never counted,
so that a backend whose servers are all disabled is down, whatever a newer HAProxy prints). INI is
a first check that has not finished since a start or reload: such a backend is not known yet
(PENDING), whichever way HAProxy leans meanwhile.

"Keep" is decided later, in `rhid.health`, which knows whether the proxy was ever seen.

Server counts, for the rules' thresholds (``b:be_app>=3``, ``b:be_app>=50%``), are read only for
the backends `ProxyIndex.counted` names, and only from a reply the caller says it asked with
server rows (`parse_poll(..., servers=True)`, after `typemask_for(..., servers=True)`): otherwise a
counted backend's counts are None, never a false "0 of 0". Of a backend's servers, backups
(``bck`` 1) are left out entirely; every other server is in the total, whatever its state
(MAINT, DRAIN, NOLB and DOWN included: a server taken out still belongs to the capacity the
threshold is a share of); it is up when its status's first word is ``UP`` (``UP 1/3`` while
failing but under fall) or it is ``no check``, and its weight is not 0. That is exactly what
HAProxy's own ``act`` column counts on the BACKEND row (servers usable for load balancing). The
sessions are the BACKEND row's ``scur``. Columns ``bck``, ``weight`` and ``scur`` are read when the
header has them (every HAProxy has; a reply without them counts every server as active and
weighted, and has no sessions).

HAProxy prints operator and peer text verbatim (`description`, `last_chk`, `check_desc`...), in any
encoding. The reply is therefore decoded losslessly (latin-1: one code point per byte, so nothing
fails to decode) and only the fields rhid reads are validated, and only in the rows of the proxies
the rules name: `Pid` must be ASCII digits; `type`, `status` and `check_status` printable ASCII.
One odd byte anywhere else never makes a poll unreadable (docs/STYLE.md, 15).
"""

from __future__ import annotations

import csv
import enum
import functools
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from rhid.errors import HAProxyProtocolError
from rhid.model import Proxy, ProxyKind
from rhid.names import is_proxy_name

POLL_COMMAND = "show info; show stat -1 7 -1"  # the fullest form; see poll_command
MASTER_PREFIX = "@1 "
MAX_REPLY_BYTES = 64 * 1024 * 1024

_TYPE_FRONTEND = "0"
_TYPE_BACKEND = "1"
_TYPE_SERVER = "2"
_TYPE_LISTENER = "3"
FRONTENDS, BACKENDS, SERVERS = 1, 2, 4  # show stat's type mask
_NEEDED_COLUMNS = ("pxname", "svname", "status", "type", "check_status")


class Observation(enum.Enum):
    """What one poll says about one proxy."""

    UP = "up"
    DOWN = "down"
    PENDING = "pending"  # a first health check after a start or reload is still pending (INI)
    ABSENT = "absent"  # no row: removed by a reload, or never existed
    UNKNOWN = "unknown"  # the poll's reply was garbage: it says nothing either way


@dataclass(frozen=True, slots=True)
class Counts:
    """A counted backend's servers in one poll: how many are up, of how many (backups left out),
    and its current sessions (None when the reply has no ``scur`` column)."""

    up: int
    total: int
    sessions: int | None = None


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    """One proxy's row, reduced: what it means and the raw status HAProxy printed (for logs), and
    for a counted backend its server counts (None: not counted, or no poll said)."""

    observation: Observation
    status: str
    servers: Counts | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One poll's worth of HAProxy state for the proxies the rules reference."""

    pid: str
    proxies: dict[Proxy, ProxyStatus]
    pending: bool = False  # some named backend has a server whose first check is still running
    unknown: tuple[tuple[Proxy, str], ...] = ()  # named proxies whose status 2.6 was never seen to print
    # Each named proxy's id (show stat's `iid`, checked digits), by which a targeted poll asks for it.
    ids: Mapping[Proxy, str] = field(default_factory=dict)

    def status_of(self, proxy: Proxy) -> ProxyStatus:
        """The proxy's status; ABSENT when HAProxy printed no row for it."""
        return self.proxies.get(proxy, ABSENT)


ABSENT = ProxyStatus(Observation.ABSENT, "absent")
NEVER_POLLED = "never polled"


def in_words(status: str) -> str:
    """A proxy's last status for people: HAProxy's word quoted, rhid's own words as they are.

    rhid's words for a poll that got no usable answer all start with "HAProxy" (``HAProxy
    unreachable``, ``HAProxy's reply unreadable`` ...); HAProxy's own statuses never do.
    """
    if status.startswith("HAProxy"):
        return f"{status}: HAProxy said nothing of it"
    if status == ABSENT.status:
        return "HAProxy has no such proxy"
    if status == NEVER_POLLED:
        return "not polled yet"
    return f"HAProxy last said {status!r}"


def poll_command(master: bool, typemask: int = FRONTENDS | BACKENDS | SERVERS) -> bytes:
    """``show info; show stat -1 <typemask> -1``; on the master CLI each command gets ``@1``."""
    if not 1 <= typemask <= 7:
        raise AssertionError(f"bad show stat type mask {typemask}")
    parts = ["show info", f"show stat -1 {typemask} -1"]
    prefix = MASTER_PREFIX if master else ""
    return "; ".join(prefix + part for part in parts).encode() + b"\n"


def typemask_for(wanted: Iterable[Proxy], servers: bool) -> int:
    """Fetch only the rows needed: frontends and/or backends the rules name, and server rows only
    while the INI guard needs them."""
    kinds = {proxy.kind for proxy in wanted}
    mask = (FRONTENDS if ProxyKind.FRONTEND in kinds else 0) | (BACKENDS if ProxyKind.BACKEND in kinds else 0)
    if servers and mask & BACKENDS:
        mask |= SERVERS
    return mask or BACKENDS


def is_master_cli_refusal(data: bytes) -> bool:
    """True when a reply is the master CLI refusing a worker command (it then lists `show proc`)."""
    return data.startswith(b"Unknown command") and b"show proc" in data


def _printable(value: str) -> bool:
    """True for printable ASCII (or empty): what HAProxy's own enumerations are made of."""
    return value.isascii() and value.isprintable()


def _check_field(column: str, name: str, value: str) -> str:
    """`value` if it is printable ASCII, else the peer's garbage: a protocol error naming the row."""
    if not _printable(value):
        raise HAProxyProtocolError(f"show stat: {column} of {name!r} is not printable ASCII: {value[:40]!r}")
    return value


_PID = re.compile(r"[0-9]{1,10}")
_IID = re.compile(
    r"[1-9][0-9]{0,9}"
)  # a proxy id (show stat's iid): the only thing of the reply a targeted poll sends back


def parse_info(block: str) -> dict[str, str]:
    """``show info``: ``Key: value`` lines into a dict."""
    info: dict[str, str] = {}
    for line in block.split("\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            raise HAProxyProtocolError(f"show info: line without 'Key: value': {line[:80]!r}")
        info[key] = value
    return info


def _columns(header: str) -> dict[str, int]:
    if not header.startswith("# pxname,"):
        raise HAProxyProtocolError(f"show stat: expected a '# pxname,' header, got {header[:80]!r}")
    names = header[2:].split(",")
    index = {name: position for position, name in enumerate(names)}
    missing = [name for name in _NEEDED_COLUMNS if name not in index]
    if missing:
        raise HAProxyProtocolError(f"show stat: header lacks column(s) {', '.join(missing)}")
    return index


KNOWN_FRONTEND_STATUSES = frozenset({"OPEN", "PAUSED", "STOP", "FULL"})
KNOWN_BACKEND_WORDS = frozenset({"UP", "DOWN"})


def is_known_status(kind: ProxyKind, status: str) -> bool:
    """True for the statuses HAProxy 2.6 was seen to print; others map to down and are reported once."""
    if kind is ProxyKind.FRONTEND:
        return status in KNOWN_FRONTEND_STATUSES
    return status.removesuffix(" (first check pending)").split(" ", 1)[0] in KNOWN_BACKEND_WORDS


def frontend_observation(status: str) -> Observation:
    """A FRONTEND row is up only while OPEN (PAUSED, STOP and anything unknown are down)."""
    return Observation.UP if status == "OPEN" else Observation.DOWN


def backend_observation(status: str, servers_pending: bool) -> Observation:
    """A BACKEND row is up when its status starts with the word UP, down otherwise; either way not
    known yet while a checked server is still INI (`servers_pending`): its first check may turn the
    backend (HAProxy 2.6 counts an INI server as up; 3.1+'s `init-state down` as down, so a DOWN
    backend whose other servers failed may still come UP when the INI one passes)."""
    if servers_pending:
        return Observation.PENDING
    return Observation.UP if status.split(" ", 1)[0] == "UP" else Observation.DOWN


def _rows(lines: list[str], index: dict[str, int], more: tuple[int, ...] = ()) -> Iterable[list[str]]:
    """Split rows into fields. Only the columns up to the last one rhid reads (`more`: the optional
    ones it reads too) are split; a row with a quote (a check description like "Busy, retry later")
    goes through the csv module."""
    width = len(index)
    last = max(index[name] for name in _NEEDED_COLUMNS)
    last = max(last, *more) if more else last
    for line in lines:
        if line.count(",") < width - 1:
            raise HAProxyProtocolError(f"show stat: short row: {line[:60]!r}")
        if '"' in line or "\x00" in line:
            try:
                row = next(csv.reader([line], strict=True))
            except (csv.Error, StopIteration) as exc:  # the peer's garbage, not our bug
                raise HAProxyProtocolError(f"show stat: unreadable CSV row: {exc}") from None
            if len(row) <= last:  # quoted commas passed the raw count above: check the real fields
                raise HAProxyProtocolError(f"show stat: short row: {line[:60]!r}")
            yield row
        else:
            yield line.split(",", last + 1)


@dataclass(frozen=True, slots=True)
class ProxyIndex:
    """The proxies a poll looks for, by name: built once per rule set, reused by every poll."""

    frontends: dict[str, Proxy]
    backends: dict[str, Proxy]
    counted: frozenset[str] = frozenset()  # backends whose servers are counted (rules' thresholds)

    @classmethod
    def of(cls, wanted: Iterable[Proxy], counted: Iterable[Proxy] = ()) -> ProxyIndex:
        """Index checked names only: a name outside HAProxy's charset can never match a row.
        `counted`: the backends whose server counts the rules' thresholds need."""
        proxies = [proxy for proxy in wanted if is_proxy_name(proxy.name)]
        backends = {p.name: p for p in proxies if p.kind is ProxyKind.BACKEND}
        return cls(
            frontends={p.name: p for p in proxies if p.kind is ProxyKind.FRONTEND},
            backends=backends,
            counted=frozenset(p.name for p in counted if backends.get(p.name) == p),
        )


@functools.lru_cache(maxsize=1024)
def _status(observation: Observation, status: str, servers: Counts | None = None) -> ProxyStatus:
    """Interned: a poll of 10,000 proxies sees only a handful of distinct statuses."""
    return ProxyStatus(observation, status, servers)


class _Counter:
    """The server counts of the counted backends, as a reply's rows go by (see the docstring of
    this module: backups left out, every other server in the total, up when HAProxy balances to
    it). Columns ``bck``, ``weight`` and ``scur`` are read when the header has them."""

    __slots__ = ("bck", "names", "scur", "sessions", "tallies", "weight")

    def __init__(self, names: frozenset[str], index: dict[str, int]) -> None:
        self.names = names
        columns = ("bck", "weight", "scur")
        self.bck, self.weight, self.scur = (index.get(column) if names else None for column in columns)
        self.tallies: dict[str, list[int]] = {}  # per counted backend: [up, total]
        self.sessions: dict[str, int] = {}

    @property
    def columns(self) -> tuple[int, ...]:
        """The optional columns the rows must be split up to."""
        return tuple(at for at in (self.bck, self.weight, self.scur) if at is not None)

    def backend(self, name: str, row: list[str]) -> None:
        """A BACKEND row: its sessions, if it is counted."""
        if name in self.names and self.scur is not None:
            value = row[self.scur]
            if not (value.isascii() and value.isdigit()):
                raise HAProxyProtocolError(f"show stat: scur of {name!r} is not a number: {value[:20]!r}")
            self.sessions[name] = int(value)

    def server(self, name: str, status: str, row: list[str]) -> None:
        """A server row: counted in its backend's total unless a backup, and up when UP (or not
        checked) with a weight."""
        if name not in self.names or (self.bck is not None and row[self.bck] == "1"):
            return
        tally = self.tallies.setdefault(name, [0, 0])
        weight = "1" if self.weight is None else row[self.weight]
        first = _check_field("status", name, status).split(" ", 1)[0]
        tally[0] += (first == "UP" or status == "no check") and weight != "0"
        tally[1] += 1

    def counts(self, name: str) -> Counts | None:
        """A backend's counts (0 of 0 for a counted backend without servers); None if not counted."""
        if name not in self.names:
            return None
        up, total = self.tallies.get(name, (0, 0))
        return Counts(up, total, self.sessions.get(name))


def parse_stat(
    block: str, wanted: ProxyIndex, servers: bool = False
) -> tuple[dict[Proxy, ProxyStatus], bool, tuple[tuple[Proxy, str], ...], dict[Proxy, str]]:
    """``show stat`` CSV: statuses of the FRONTEND/BACKEND rows named in `wanted`, whether any of
    their servers' first check is still pending (INI), those whose status is unknown, and each
    one's id (`iid`, when the header has it and the row's is digits: what `targeted_command`
    asks by). With `servers` (the reply was asked with server rows), the counts of
    `wanted.counted` backends.

    Rows of other proxies are skipped before splitting (a name cannot contain a comma or quote),
    which keeps a poll cheap on configurations with thousands of proxies.
    """
    header, _, body = block.partition("\n")
    index = _columns(header)
    name_at, kind_at, status_at, check_at = (index[c] for c in ("pxname", "type", "status", "check_status"))
    iid_at = index.get("iid")
    counter = _Counter(wanted.counted if servers else frozenset(), index)
    names = wanted.frontends.keys() | wanted.backends.keys()
    lines = [line for line in body.split("\n") if line.split(",", 1)[0] in names]
    frontends: dict[str, str] = {}
    backends: dict[str, str] = {}
    pending: dict[str, int] = {}  # per backend: servers whose first check is pending (INI)
    frontend_ids: dict[str, str] = {}
    backend_ids: dict[str, str] = {}
    more = counter.columns if iid_at is None else (*counter.columns, iid_at)
    for row in _rows(lines, index, more):
        name, kind, status = row[name_at], row[kind_at], row[status_at]
        if kind == _TYPE_FRONTEND:
            frontends[name] = status
            if iid_at is not None:
                frontend_ids[name] = row[iid_at]
        elif kind == _TYPE_BACKEND:
            backends[name] = status
            counter.backend(name, row)
            if iid_at is not None:
                backend_ids[name] = row[iid_at]
        elif kind == _TYPE_SERVER:
            check = _check_field("check_status", name, row[check_at]).lstrip("* ")
            if check == "INI" and not _check_field("status", name, status).startswith("MAINT"):
                pending[name] = pending.get(name, 0) + 1
            counter.server(name, status, row)
        elif kind != _TYPE_LISTENER:
            raise HAProxyProtocolError(f"show stat: unknown row type {kind[:10]!r} for {name!r}")
    _check_statuses(frontends)
    _check_statuses(backends)
    result: dict[Proxy, ProxyStatus] = {}
    for name, status in frontends.items():
        if name in wanted.frontends:
            result[wanted.frontends[name]] = _status(frontend_observation(status), status)
    for name, status in backends.items():
        if name in wanted.backends:
            waiting = pending.get(name, 0)
            observation = backend_observation(status, waiting > 0)
            shown = f"{status} (first check pending)" if observation is Observation.PENDING else status
            result[wanted.backends[name]] = _status(observation, shown, counter.counts(name))
    unknown = _unknown(frontends, wanted.frontends, ProxyKind.FRONTEND) + _unknown(
        backends, wanted.backends, ProxyKind.BACKEND
    )
    ids = _ids(frontend_ids, wanted.frontends) | _ids(backend_ids, wanted.backends)
    return result, any(name in wanted.backends for name in pending), unknown, ids


def _ids(found: dict[str, str], wanted: dict[str, Proxy]) -> dict[Proxy, str]:
    """The ids of the wanted proxies that are a proxy id's digits (anything else: not targetable)."""
    return {wanted[name]: iid for name, iid in found.items() if name in wanted and _IID.fullmatch(iid)}


def _check_statuses(statuses: dict[str, str]) -> None:
    """Each distinct status once (a poll of 10,000 proxies sees a handful): printable ASCII."""
    for status in set(statuses.values()):
        if not _printable(status):
            name = next(name for name, value in statuses.items() if value == status)
            _check_field("status", name, status)


def _unknown(
    statuses: dict[str, str], wanted: dict[str, Proxy], kind: ProxyKind
) -> tuple[tuple[Proxy, str], ...]:
    """The wanted proxies whose status is one HAProxy 2.6 was never seen to print; each distinct
    status is checked once (a poll of 10,000 proxies sees a handful)."""
    odd = {status for status in set(statuses.values()) if not is_known_status(kind, status)}
    if not odd:
        return ()
    return tuple(
        (wanted[name], status) for name, status in statuses.items() if status in odd and name in wanted
    )


def parse_poll(data: bytes, wanted: Iterable[Proxy] | ProxyIndex, *, servers: bool = False) -> Snapshot:
    """The whole reply to `POLL_COMMAND`: ``show info`` block, blank line, CSV, blank line.
    `servers`: it was asked with server rows (`typemask_for(..., servers=True)`), so the counted
    backends' counts are complete."""
    pid, stat_block = _split_info(data)
    index = wanted if isinstance(wanted, ProxyIndex) else ProxyIndex.of(wanted)
    proxies, pending, unknown, ids = parse_stat(stat_block, index, servers)
    return Snapshot(pid=pid, proxies=proxies, pending=pending, unknown=unknown, ids=ids)


def _split_info(data: bytes) -> tuple[str, str]:
    """The worker's Pid from the ``show info`` block, and the text after it."""
    if len(data) > MAX_REPLY_BYTES:
        raise HAProxyProtocolError(f"reply larger than {MAX_REPLY_BYTES} bytes")
    text = data.decode("latin-1")  # lossless: every byte is one code point, nothing fails here
    if not text.endswith("\n\n"):
        raise HAProxyProtocolError("reply truncated: it does not end with an empty line")
    info_block, sep, stat_block = text[:-2].partition("\n\n")
    if not sep:
        raise HAProxyProtocolError(f"expected show info and show stat, got {text[:80]!r}")
    info = parse_info(info_block)
    pid = info.get("Pid", "")
    # Recognised by structure, not by product name: HAProxy Enterprise and forks name themselves
    # otherwise. `show info` must be `Key: value` lines with a numeric Pid, and `show stat` must
    # start with its `# pxname,` header (checked by parse_stat).
    if not _PID.fullmatch(pid):
        raise HAProxyProtocolError(f"show info: no numeric 'Pid', got {info_block[:80]!r}")
    return pid, stat_block


# ---- targeted polls: a few proxies, asked by id --------------------------------------------------
#
# ``show stat <iid> <typemask> -1`` dumps one proxy's rows (2.6, 3.0 and 3.2 alike: measured). By
# name it is ambiguous (a frontend and a backend of one name: the first wins, and the other's query
# returns the header only), so rhid asks by id: the `iid` a full poll of the same worker (its Pid)
# printed for that very proxy of the rules. HAProxy looks the argument up as a name first, so an
# id can also hit a proxy named with those digits (a backend "3"): a reply lacking a proxy asked
# for is not trusted (HAProxyClient.poll_targeted falls back to a full poll). Nothing of an event
# line reaches HAProxy: a name from the ring only selects, among the rules' own proxies, which ids
# to ask for. Several queries go in one line, after ``show info`` (the Pid proves the ids are this
# worker's); each query's reply is the CSV header and that proxy's rows, an unknown id the header
# only.

MAX_TARGETS = 64  # proxies a targeted poll may ask for; more (a burst, a reload): a full poll instead


def targeted_command(master: bool, queries: Iterable[tuple[str, int]]) -> bytes:
    """``show info; show stat <iid> <typemask> -1; ...`` for each (iid, typemask) of `queries`."""
    parts = ["show info"]
    for iid, typemask in queries:
        if not _IID.fullmatch(iid) or not 1 <= typemask <= 7:
            raise AssertionError(f"refusing to send an unchecked show stat query {iid!r} {typemask}")
        parts.append(f"show stat {iid} {typemask} -1")
    if len(parts) < 2 or len(parts) > MAX_TARGETS + 1:
        raise AssertionError(f"a targeted poll asks for 1 to {MAX_TARGETS} proxies, not {len(parts) - 1}")
    prefix = MASTER_PREFIX if master else ""
    return "; ".join(prefix + part for part in parts).encode() + b"\n"


def queries_for(
    targets: Iterable[Proxy], ids: Mapping[Proxy, str], servers: bool, counted: Collection[Proxy] = ()
) -> list[tuple[str, int]] | None:
    """The (iid, typemask) queries asking for `targets`: one per id (a `listen` section is a
    frontend and a backend of one id), server rows for a backend while the INI guard needs them
    (`servers`) or when its servers are `counted`. None when a target has no known id (never seen
    in a full poll of this worker): only a full poll can say what it is."""
    masks: dict[str, int] = {}
    for proxy in targets:
        iid = ids.get(proxy)
        if iid is None:
            return None
        if proxy.kind is ProxyKind.FRONTEND:
            mask = FRONTENDS
        else:
            mask = BACKENDS | (SERVERS if servers or proxy in counted else 0)
        masks[iid] = masks.get(iid, 0) | mask
    return sorted(masks.items(), key=lambda item: int(item[0]))


def parse_targeted(data: bytes, wanted: ProxyIndex, *, servers: bool = False) -> Snapshot:
    """The reply to `targeted_command`: ``show info``, then one CSV block per query. The statuses
    of `wanted` (the proxies asked for) found in any block; one asked for and found in none is
    absent, as in a full poll (`Snapshot.status_of`). `servers`: counted backends were asked with
    server rows."""
    pid, stats_text = _split_info(data)
    proxies: dict[Proxy, ProxyStatus] = {}
    pending = False
    unknown: tuple[tuple[Proxy, str], ...] = ()
    ids: dict[Proxy, str] = {}
    for block in stats_text.split("\n\n"):
        found, waiting, odd, numbers = parse_stat(block, wanted, servers)
        proxies.update(found)
        pending = pending or waiting
        unknown += odd
        ids.update(numbers)
    return Snapshot(pid=pid, proxies=proxies, pending=pending, unknown=unknown, ids=ids)


# ---- the event ring (a wake-up signal only; polling stays the source of truth) ----------------

_STATE_CHANGE = re.compile(
    rb"(?:Server (?P<server>\S+)/\S+ (?:is |was |enters )"
    rb"|backend (?P<backend>\S+) has no server available"
    rb"|(?:Paused|Resumed) frontend (?P<frontend>\S+)\."
    rb"|Proxy (?P<proxy>\S+) stopped)"
)
# Every state-change line holds one of these words, and with it the byte beside it: a server's line
# "Server ", a backend's "has no server available!", a stopped proxy's "Proxy ... (cumulated conns:
# FE: ...)", a frontend's "Resumed frontend " or "Paused frontend ". A ring full of traffic is
# scanned for the byte first (memchr, tens of GB/s): a block without it cannot hold that kind of
# line; only a block with it is scanned for the word (a few GB/s), and only the lines that hold a
# word are matched against _STATE_CHANGE (a match never leaves its line), never the whole block (the
# expression's alternation tries every byte: about 4 ms for 128 kB). Real traffic logs do hold an S
# and an R (``<NOSRV>``, ``LR--``) and every one a P ("HTTP/1.1"): a frontend's words are looked for
# only when the rules name a frontend.
_STATE_CHANGE_WORDS = (
    (b"S", b"Server "),
    (b"!", b"backend "),
    (b"F", b"Proxy "),
)
_FRONTEND_WORDS = (
    (b"R", b"Resumed frontend "),
    (b"P", b"Paused frontend "),
)
_SEVERITY = re.compile(rb"<(\d{1,3})>")
NOISY_SEVERITY = 6  # info: HAProxy's traffic logs (option httplog/tcplog); state changes are 0-5
EVENT_REFUSALS = (b"Permission denied", b"No such event sink")


def events_command(ring: str) -> bytes:
    """Stream new lines of `ring` without the CLI's idle timeout; the name must be a checked one."""
    if not is_proxy_name(ring):
        raise AssertionError(f"refusing to send unvalidated ring name {ring!r}")
    return f"set timeout cli 86400; show events {ring} -nw\n".encode()


def _state_changes(block: bytes, frontends: bool = True) -> Iterator[re.Match[bytes]]:
    """The _STATE_CHANGE matches of `block`, line by line among the lines that hold one of the
    words (see _STATE_CHANGE_WORDS), in the order of the lines. `frontends`: a paused or resumed
    frontend matters (the rules name a frontend), else their words are not looked for."""
    kinds = _STATE_CHANGE_WORDS + _FRONTEND_WORDS if frontends else _STATE_CHANGE_WORDS
    words = [word for byte, word in kinds if byte in block]
    lines: set[tuple[int, int]] = set()
    for word in words:
        at = block.find(word)
        while at >= 0:
            end = block.find(b"\n", at)
            end = len(block) if end < 0 else end
            lines.add((block.rfind(b"\n", 0, at) + 1, end))
            at = block.find(word, end)
    for start, end in sorted(lines):
        yield from _STATE_CHANGE.finditer(block, start, end)


def _named(match: re.Match[bytes]) -> str:
    """The proxy a _STATE_CHANGE match names (whichever group matched), as text."""
    raw = next(group for group in match.groups() if group is not None)
    return raw.decode("ascii", "replace")


def has_state_change(block: bytes, watched: Collection[str] | None = None) -> bool:
    """True when some line of `block` (complete lines from the ring) is a server, backend or frontend
    changing state, of a proxy named in `watched` (None: of any proxy). A block without any
    state-change word costs a few scans at memory speed (`_state_changes`); lines about proxies no
    rule names cost no poll (a flapping check in a backend rhid does not watch)."""
    changes = _state_changes(block)
    if watched is None:
        return next(changes, None) is not None
    return any(_named(match) in watched for match in changes)


def changed_proxies(block: bytes, watched: Collection[str], frontends: bool = True) -> frozenset[str]:
    """The names of the proxies in `watched` (the rules' proxy names) that some state-change line of
    `block` names: a server's backend, a backend, a frontend, a stopped proxy. A name reaches the
    result only when it is of HAProxy's characters (`is_proxy_name`) and one of `watched`: what the
    ring says selects among the rules' own proxies, and never reaches a command. A block without
    any state-change word costs a few scans at memory speed (`_state_changes`: a ring full of traffic).
    `frontends`: the rules name a frontend (else a paused or resumed frontend's line is not looked for)."""
    found: set[str] = set()
    for match in _state_changes(block, frontends):
        name = _named(match)
        if name in watched and is_proxy_name(name):
            found.add(name)
    return frozenset(found)


def is_noisy(block: bytes) -> bool:
    """True when the first line of `block` is at level info or debug: the ring carries traffic logs."""
    match = _SEVERITY.match(block)
    return match is not None and int(match.group(1)) % 8 >= NOISY_SEVERITY


@dataclass(frozen=True, slots=True)
class Sink:
    """One event sink of ``show events``: its name, its type (fd, buffer) and its description."""

    name: str
    kind: str
    description: str

    @property
    def declared(self) -> bool:
        """True for a ring the operator declared in HAProxy's configuration.

        Told by the reply's structure, not by a list of names: HAProxy gives a `ring` section the
        ring's own name as its description, while the rings HAProxy creates itself carry a fixed
        description of their own (``buf0``: "in-memory ring buffer"; 3.2's ``dpapi``: "DPAPI ring
        buffer"), and so will whatever it adds next. A ring whose section sets a `description` cannot
        be told from HAProxy's own: `auto` leaves it alone (name it with --haproxy-events).
        """
        return self.kind == "buffer" and self.description == self.name and self.name not in HAPROXY_RINGS


HAPROXY_RINGS = frozenset({"buf0", "dpapi"})  # HAProxy's own rings up to 3.3, never streamed by `auto`


def parse_sinks(data: bytes) -> list[Sink]:
    """``show events`` (no argument): every event sink HAProxy lists, as
    ``    <name> : type=<type>, <n> dropped, <description>`` lines after a title line. Sinks whose
    name is outside HAProxy's proxy charset (implicit rings such as ``ring#1``) are left out."""
    sinks = []
    for line in data.decode("ascii", errors="replace").split("\n")[1:]:
        name, sep, rest = line.partition(": type=")
        name = name.strip()
        if sep and is_proxy_name(name):
            kind, _, rest = rest.partition(", ")
            _, _, description = rest.partition(" dropped, ")
            sinks.append(Sink(name, kind, description))
    return sinks


DEDICATED_RING = "rhid"


@dataclass(frozen=True, slots=True)
class RingChoice:
    """The ring `auto` streams (None: polling only) and why, in operator words, for the log."""

    ring: str | None
    why: str


def pick_ring(sinks: list[Sink]) -> RingChoice:
    """The ring to stream: one named `rhid` (the dedicated ring the README recommends), else the
    first ring declared in HAProxy's configuration (`Sink.declared`); never one of HAProxy's own."""
    rings = [sink for sink in sinks if sink.kind == "buffer"]
    if any(sink.name == DEDICATED_RING for sink in rings):
        return RingChoice(DEDICATED_RING, "the dedicated ring named rhid")
    declared = [sink.name for sink in rings if sink.declared]
    if declared:
        others = f"; also declared: {', '.join(declared[1:])}" if declared[1:] else ""
        return RingChoice(declared[0], f"the first ring declared in HAProxy's configuration{others}")
    untold = [sink.name for sink in rings if sink.name not in HAPROXY_RINGS and not sink.declared]
    why = "HAProxy has no ring declared in its configuration (its own rings are never streamed)"
    if untold:
        names = ", ".join(untold)
        why += f"; {names} may be HAProxy's own (a description of its own): name one with --haproxy-events"
    return RingChoice(None, why)
