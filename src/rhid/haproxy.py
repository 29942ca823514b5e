"""The HAProxy side (I/O): the client, the event stream, and `HAProxySide`, which turns both into
observations and owns HAProxy's reachability.

One fresh connection per poll, a deadline and a byte cap on every read. Never hold a connection
across polls: after an HAProxy reload, a held connection keeps talking to the old, stopping worker
(docs/notes/haproxy-runtime-api.md §5.5).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import structlog

from rhid import health, inventory, sockets, stats
from rhid.backoff import Backoff
from rhid.errors import HAProxyProtocolError, HAProxyUnavailableError
from rhid.model import HAProxyState, Proxy, ProxyKind, StreamState
from rhid.settings import DEFAULTS, ENVIRONMENT_FILES, Settings

if TYPE_CHECKING:
    from rhid.rules import RuleSet

log = structlog.get_logger("rhid")

READ_CHUNK = 256 * 1024
DEBIAN_HAPROXY_SOCKET = "/run/haproxy/admin.sock"  # Debian's haproxy.cfg: stats socket ... level admin


def fetch(path: str, command: bytes, timeout: float, limit: int = stats.MAX_REPLY_BYTES) -> bytes:
    """Send one command line, half-close, read to EOF. The whole exchange must fit in `timeout`.

    A peer that closes before reading the command (EPIPE or ECONNRESET on the send, or a reset
    before the first byte of a reply: which one depends on timing) is an unavailable HAProxy; a reset
    in the middle of a reply is a garbled one (fault matrix H6).
    """
    deadline = time.monotonic() + timeout
    sock = sockets.connect(path, deadline, HAProxyUnavailableError, "HAProxy")
    chunks: list[bytes] = []
    size = 0
    try:
        try:
            sock.sendall(command)
            sock.shutdown(socket.SHUT_WR)  # required by the master CLI, free on the worker socket
        except TimeoutError:
            raise
        except OSError as exc:
            raise HAProxyUnavailableError(
                path, _closed(exc, "before reading rhid's command"), "closed"
            ) from None
        while chunk := sockets.receive(sock, deadline, READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise HAProxyProtocolError(f"{path}: reply larger than {limit} bytes")
            chunks.append(chunk)
    except TimeoutError:
        # Accepted but silent: the process is hung, and a hung HAProxy cannot serve (counts as down).
        raise HAProxyUnavailableError(path, f"no complete reply within {timeout:.3g} s", "timeout") from None
    except OSError as exc:
        if not size:
            raise HAProxyUnavailableError(path, _closed(exc, "before replying"), "closed") from None
        # Reset in the middle of a reply: what arrived says nothing either way (fault matrix H6).
        raise HAProxyProtocolError(f"{path}: connection broken mid-reply: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return b"".join(chunks)


def _closed(exc: OSError, when: str) -> str:
    return f"HAProxy closed the connection {when} ({exc.strerror or exc})"


class HAProxyClient:
    """Polls one stats socket; detects a master CLI socket and prefixes its commands with ``@1``.

    Server rows are fetched only while the INI guard needs them: from the start and after every
    new worker Pid (an HAProxy start or reload), until one such poll shows no first check pending
    in the named backends. A first check is pending only after a start or reload.
    """

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.master = False
        self.servers = True
        self.pid: str | None = None
        self.reloaded_from: str | None = None  # the previous worker's Pid, after a poll that saw a new one
        self.counted: frozenset[Proxy] = frozenset()  # backends whose servers the rules' thresholds count
        self._index: tuple[Collection[Proxy], frozenset[Proxy], stats.ProxyIndex] | None = None
        self.ids: Mapping[Proxy, str] = {}  # each proxy's id in worker `pid`, from its last full poll
        self.fetched = 0.0  # wall seconds of the last poll's exchanges (HAProxy's dump is most of it)

    def poll(self, wanted: Collection[Proxy]) -> stats.Snapshot:
        """One poll: the status of every wanted proxy, or an Unavailable/Protocol error."""
        self.fetched = 0.0
        snapshot = self._poll(wanted)
        if not self.servers and snapshot.pid != self.pid:
            self.servers = True  # a new worker: its first checks may be pending; ask again with servers
            snapshot = self._poll(wanted)
        self.servers = snapshot.pending
        self.reloaded_from = self.pid if self.pid not in {None, snapshot.pid} else None
        self.pid = snapshot.pid
        self.ids = snapshot.ids
        return snapshot

    def poll_targeted(self, targets: Collection[Proxy]) -> stats.Snapshot | None:
        """A poll of `targets` only (a few of the rules' proxies, asked by the ids the last full poll
        of this worker printed), or None when only a full poll can answer: a target without a known
        id, more than stats.MAX_TARGETS of them, or a reply from another worker (HAProxy reloaded:
        its ids may be others'), or a reply that lacks one of them (its id was taken as another
        proxy's name). Unavailable/Protocol errors as `poll`."""
        self.fetched = 0.0
        if self.pid is None or not 0 < len(targets) <= stats.MAX_TARGETS:
            return None
        servers = self.servers or bool(self.counted & set(targets))
        queries = stats.queries_for(targets, self.ids, self.servers, self.counted)
        if queries is None:
            return None
        command = stats.targeted_command(self.master, queries)
        started = time.monotonic()
        data = fetch(self.path, command, self.timeout)
        self.fetched = time.monotonic() - started
        index = stats.ProxyIndex.of(targets, self.counted)
        snapshot = stats.parse_targeted(data, index, servers=servers)
        if snapshot.pid != self.pid:
            return None
        if any(proxy not in snapshot.proxies for proxy in targets):
            # A proxy cannot leave a running worker: one missing means its id was taken for
            # another's name (HAProxy looks `show stat 3` up as a name first: a backend named
            # "3"), or the Pid is another worker's reused. Only a full poll can tell.
            return None
        self.servers = self.servers or snapshot.pending
        self.reloaded_from = None
        return snapshot

    def _poll(self, wanted: Collection[Proxy]) -> stats.Snapshot:
        if self._index is None or self._index[0] is not wanted or self._index[1] is not self.counted:
            self._index = (
                wanted,
                self.counted,
                stats.ProxyIndex.of(wanted, self.counted),
            )  # on new rules only
        servers = self.servers or bool(self.counted)  # thresholds count servers at every poll
        started = time.monotonic()
        data = fetch(self.path, self._command(wanted, servers), self.timeout)
        if not self.master and stats.is_master_cli_refusal(data):
            self.master = True
            data = fetch(self.path, self._command(wanted, servers), self.timeout)
        self.fetched += time.monotonic() - started
        return stats.parse_poll(data, self._index[2], servers=servers)

    def _command(self, wanted: Collection[Proxy], servers: bool) -> bytes:
        return stats.poll_command(self.master, stats.typemask_for(wanted, servers))


def find_ring(path: str, timeout: float) -> stats.RingChoice:
    """Ask HAProxy which log rings it has (``show events``) and pick the one to stream, if any."""
    return stats.pick_ring(stats.parse_sinks(fetch(path, b"show events\n", timeout, limit=1 << 20)))


def list_proxies(path: str, timeout: float) -> inventory.Inventory:
    """Every frontend and backend HAProxy has (on a master CLI socket, its first worker's, as polls
    ask). A constant command: nothing of the rules reaches HAProxy."""
    data = fetch(path, inventory.LIST_COMMAND, timeout)
    if stats.is_master_cli_refusal(data):
        data = fetch(path, stats.MASTER_PREFIX.encode() + inventory.LIST_COMMAND, timeout)
    return inventory.parse_proxies(data)


def sessions(path: str, timeout: float) -> dict[Proxy, int]:
    """The current sessions of every frontend and backend (`rhid drain --wait`). A constant command."""
    data = fetch(path, inventory.LIST_COMMAND, timeout)
    if stats.is_master_cli_refusal(data):
        data = fetch(path, stats.MASTER_PREFIX.encode() + inventory.LIST_COMMAND, timeout)
    return inventory.parse_sessions(data)


class EventStream:
    """One long-lived connection streaming an HAProxy ring (``show events RING -nw``).

    Only a wake-up signal: a state-change line makes the daemon poll at once. It is never
    half-closed (that ends the stream) and never written to after the command (any key stops it).
    """

    MAX_BUFFER = 1 << 20

    def __init__(self, path: str, ring: str, timeout: float) -> None:
        self.path = path
        self.ring = ring
        deadline = time.monotonic() + timeout
        self.sock = sockets.connect(path, deadline, HAProxyUnavailableError, "HAProxy")
        try:
            self.sock.sendall(stats.events_command(ring))
        except OSError as exc:
            self.sock.close()
            raise HAProxyUnavailableError(path, f"event stream: {exc.strerror or exc}", "closed") from None
        self.sock.setblocking(False)
        self._buffer = b""
        self._started = False
        self.reads = 0  # recv calls that returned data: what a busy ring costs, in `rhid status`
        self.received = 0

    def fileno(self) -> int:
        """For select()."""
        return self.sock.fileno()

    def read(self) -> bytes:
        """The complete lines that arrived, as one block (b"" if none). Raises Unavailable at EOF,
        Protocol on a refusal or a line longer than MAX_BUFFER."""
        try:
            chunk = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise HAProxyUnavailableError(
                self.path, f"event stream: {exc.strerror or exc}", "closed"
            ) from None
        if not chunk:
            raise HAProxyUnavailableError(
                self.path, "event stream closed (HAProxy reloaded or stopped?)", "closed"
            )
        self.reads += 1
        self.received += len(chunk)
        self._buffer += chunk
        end = self._buffer.rfind(b"\n") + 1
        if not end:
            if len(self._buffer) > self.MAX_BUFFER:
                raise HAProxyProtocolError(f"{self.path}: event line longer than {self.MAX_BUFFER} bytes")
            return b""
        block, self._buffer = self._buffer[:end], self._buffer[end:]
        if not self._started and block.strip():
            self._started = True
            if block.lstrip().startswith(stats.EVENT_REFUSALS):
                first = block.lstrip().split(b"\n", 1)[0].decode("utf-8", "replace")
                raise HAProxyProtocolError(f"{self.path}: show events {self.ring}: {first}")
        return block

    def close(self) -> None:
        """Close the stream."""
        self.sock.close()


# ---- the HAProxy side: polls and the event stream turned into observations ------------------------

FULL, TARGETED = "full", "targeted"  # the kinds of poll (HAProxySide.last_poll)


@dataclass(frozen=True, slots=True)
class News:
    """What a read of the event stream brings: the rules' proxies its state-change lines name, and
    whether every proxy must be polled. True when a poll is due."""

    proxies: frozenset[Proxy] = frozenset()
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.proxies)

    def __or__(self, other: News) -> News:
        return News(self.proxies | other.proxies, self.everything or other.everything)


NO_NEWS = News()
EVERYTHING = News(everything=True)

EVENT_READ_GAP = 0.01  # seconds: after a read of only traffic lines, the ring waits this long
NO_RING_RETRY = 60.0  # seconds between looks for a ring when HAProxy has none
LOGGED_NAMES = 100  # names HAProxy lacks logged one by one at each check; then one line with the count


class Poller(Protocol):
    """What the HAProxy side needs of a client (HAProxyClient; a scripted one in tests)."""

    master: bool
    pid: str | None
    reloaded_from: str | None

    def poll(self, wanted: Collection[Proxy]) -> stats.Snapshot: ...


class HAProxySide:
    """Everything rhid knows about HAProxy: whether it answers, what it says of each proxy, and the
    event stream that wakes a poll. Turns bytes and failures into observations and logs each change
    of its own weather once; it decides no route."""

    def __init__(
        self,
        path: str,
        timeout: float,
        *,
        events: str = DEFAULTS.events,  # the settings' defaults: one truth for `rhid run` and a test's side
        unreadable_down_after: float = DEFAULTS.unreadable_down_after,
        poller: Poller | None = None,
        source: str = "--haproxy-socket",
    ) -> None:
        self.path = path
        self.source = source  # where the path was set, for the operator who must fix it
        self.timeout = timeout
        self.events_setting = events  # a ring name, "auto" or "none"
        self.unreadable_down_after = unreadable_down_after  # for the words of `problems` only
        self.client: Poller = poller if poller is not None else HAProxyClient(path, timeout)
        self.state = HAProxyState.NOT_POLLED
        self.error: str | None = None
        self.state_since = 0.0  # when `state` began (monotonic seconds)
        self.reported: set[tuple[Proxy, str]] = set()
        self.stream: EventStream | None = None
        self.stream_note: StreamState | None = None
        self.stream_backoff = Backoff()
        self.stream_noisy = False
        self.paused_until = 0.0
        # True once a ring was streamed: HAProxy has one even while the stream is down (it died or
        # reloaded), so the event wake-up's fast polls still apply.
        self.has_ring = False
        # The proxy names the rules use (None: any): an event about another proxy wakes no poll.
        self.watched: frozenset[str] | None = None
        self.by_name: Mapping[str, tuple[Proxy, ...]] = {}  # the rules' proxies of each watched name
        self.frontends = True  # the rules name a frontend (a paused frontend's line matters)
        self.full_polls = self.targeted_polls = 0  # polls made, by kind (rhid status, tests)
        self.last_poll: str | None = None  # FULL or TARGETED: the kind of the last poll that answered
        self.opened = 0  # event streams opened so far: a new one may have missed lines (a full poll)
        # What the last check_names found (None: not known), and for which rules and worker it asked.
        self.missing: tuple[inventory.Missing, ...] | None = None
        self.names_checked: tuple[Mapping[Proxy, tuple[int, ...]], str | None] | None = None

    @classmethod
    def of(cls, settings: Settings) -> HAProxySide:
        """The HAProxy side `rhid run`'s settings ask for."""
        return cls(
            settings.haproxy_socket,
            settings.poll_timeout,
            events=settings.events,
            unreadable_down_after=settings.unreadable_down_after,
            source=settings.haproxy_socket_source,
        )

    # ---- polls ---------------------------------------------------------------------------------

    def observe(
        self, proxies: Collection[Proxy], now: float, targets: Collection[Proxy] | None = None
    ) -> dict[Proxy, stats.ProxyStatus] | health.Outage:
        """Poll once: what HAProxy says of each proxy, or the outage that kept it from saying
        (`health.during` says what that means for each proxy).

        With `targets` (some of `proxies`), a targeted poll asks for those only, and the result
        holds those only: a proxy not asked for is not in it (it is not absent: nothing was said of
        it), one asked for and not in HAProxy's reply is absent, as in a full poll. When only a full
        poll can answer (HAProxyClient.poll_targeted), it is one, over `proxies`. `last_poll` says
        which it was."""
        self.last_poll = None
        try:
            snapshot = None
            if targets is not None and isinstance(self.client, HAProxyClient):
                snapshot = self.client.poll_targeted(targets)
            if snapshot is None:
                asked: Collection[Proxy] = proxies
                snapshot = self.client.poll(proxies)
                self.full_polls += 1
                self.last_poll = FULL
            else:
                asked = targets if targets is not None else proxies
                self.targeted_polls += 1
                self.last_poll = TARGETED
        except HAProxyUnavailableError as exc:
            if exc.kind == "permission":  # a process listens; whether HAProxy serves is not known
                first = self.state is not HAProxyState.FORBIDDEN
                fields = sockets.denial(exc.path).fields() if first else {}
                self._weather(
                    HAProxyState.FORBIDDEN, f"{exc.path}: {exc.reason}", now, reason=exc.reason, **fields
                )
            else:
                self._weather(
                    HAProxyState.UNREACHABLE,
                    f"{exc.path}: {exc.reason}",
                    now,
                    reason=exc.reason,
                    path=exc.path,
                    hint=self.hint(),
                )
            return health.Outage(self.state, self.state_since)
        except HAProxyProtocolError as exc:
            self._weather(HAProxyState.GARBLED, str(exc), now, reason=str(exc))
            return health.Outage(self.state, self.state_since)
        if self.client.reloaded_from is not None:
            log.info("haproxy.reloaded", old_pid=self.client.reloaded_from, new_pid=snapshot.pid)
            self.close_stream()  # the stream stays with the old, stopping worker: follow the new one
        self._weather(HAProxyState.REACHABLE, None, now, pid=snapshot.pid)
        self._report_unknown(snapshot.unknown)
        return {proxy: snapshot.status_of(proxy) for proxy in asked}

    @property
    def fetched(self) -> float:
        """Wall seconds the last poll's exchanges with HAProxy took (0 when not measured): HAProxy's
        dump is CPU-bound, so this estimates (from above) what the poll cost HAProxy."""
        return self.client.fetched if isinstance(self.client, HAProxyClient) else 0.0

    def _report_unknown(self, unknown: tuple[tuple[Proxy, str], ...]) -> None:
        """Each (proxy, status) HAProxy 2.6 never printed is logged once, one line per status: a new
        HAProxy printing a new word for 10,000 backends is one line, not 10,000."""
        new: dict[str, list[Proxy]] = {}
        for proxy, status in unknown:
            if (proxy, status) not in self.reported:
                self.reported.add((proxy, status))
                new.setdefault(status, []).append(proxy)
        for status, proxies in new.items():
            sample = health.sample(proxies)
            single = {"proxy": sample[0]} if len(proxies) == 1 else {}
            log.warning(
                "haproxy.unknown_status",
                **single,
                status=status,
                proxies=sample,
                count=len(proxies),
                counts_as="down",
            )

    def _weather(self, state: HAProxyState, error: str | None, now: float, **fields: str) -> None:
        self.error = error
        if state is self.state:
            return
        # garbled <-> forbidden: nothing has been known since the first of them
        unknown = (HAProxyState.GARBLED, HAProxyState.FORBIDDEN)
        if not (state in unknown and self.state in unknown):
            self.state_since = now
        self.state = state
        if state is HAProxyState.REACHABLE:
            log.info("haproxy.reachable", **fields)
        elif state is HAProxyState.UNREACHABLE:
            log.error("haproxy.unreachable", **fields)
        elif state is HAProxyState.GARBLED:
            log.error("haproxy.garbled", **fields)
        else:
            log.critical("haproxy.forbidden", **fields)

    # ---- the names the rules use, against HAProxy's ------------------------------------------

    def check_names(self, named: Mapping[Proxy, tuple[int, ...]]) -> tuple[inventory.Missing, ...] | None:
        """Ask HAProxy for every proxy it has and compare with `named` (each proxy the rules name, with
        the lines naming it: `RuleSet.lines_of`); log each one HAProxy lacks once, as a warning, with
        the closest name it has (`rhid status` adds it to its PROBLEM line). None: not known.

        Asks only while HAProxy answers polls, and once per rule set (the very mapping) and HAProxy
        worker (its Pid), answered or not: cheap to call at every cycle, and asked again after a
        reload of the rules or of HAProxy."""
        pid, checked = self.client.pid, self.names_checked
        if checked is not None and checked[0] is named and checked[1] == pid:
            return self.missing  # the same rules and the same worker: nothing new to learn
        if self.state is not HAProxyState.REACHABLE:  # not polled yet, or failing: it would wait again
            return None
        self.names_checked, self.missing = (named, pid), None
        try:
            found = inventory.missing(named, list_proxies(self.path, self.timeout))
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            log.debug("rules.names_not_checked", reason=str(exc))
            return None
        self.missing = found
        for item in found[:LOGGED_NAMES]:
            log.warning(
                "rules.no_such_proxy",
                proxy=str(item.proxy),
                lines=list(item.lines),
                hint=item.advice,
                message=item.sentence(),
            )
        if len(found) > LOGGED_NAMES:
            log.warning(
                "rules.no_such_proxy",
                count=len(found),
                proxies=health.sample(item.proxy for item in found),
                message=f"{len(found)} proxies the rules name are not in HAProxy (the first "
                f"{LOGGED_NAMES} are logged one by one); check the socket's path, then rhid check --live",
            )
        return found

    # ---- the event ring: a wake-up signal only ------------------------------------------------

    def watch(self, rules: RuleSet) -> None:
        """Wake a poll only for events about the proxies `rules` name; count the servers of the
        backends their thresholds name."""
        by_name: dict[str, list[Proxy]] = {}
        for proxy in rules.proxies:
            by_name.setdefault(proxy.name, []).append(proxy)
        self.by_name = {name: tuple(proxies) for name, proxies in by_name.items()}
        self.watched = frozenset(self.by_name)
        self.frontends = any(proxy.kind is ProxyKind.FRONTEND for proxy in rules.proxies)
        if isinstance(self.client, HAProxyClient):
            self.client.counted = frozenset(rules.counted)

    @property
    def streaming(self) -> bool:
        """True while the event stream is open."""
        return self.stream is not None

    def waitable(self, now: float) -> EventStream | None:
        """The stream to select on now, or None (closed, or paused after a read of traffic)."""
        return self.stream if self.stream is not None and now >= self.paused_until else None

    def ensure_stream(self, now: float) -> None:
        """Open the event stream when configured, not open, and due (with backoff after failures)."""
        if self.events_setting == "none" or self.stream is not None or not self.stream_backoff.ready(now):
            return
        if self.client.master:
            self._note(StreamState.UNAVAILABLE, reason="the master CLI does not stream events: polling only")
            self.stream_backoff.wait_until(float("inf"))
            return
        try:
            if self.events_setting == "auto":
                choice = find_ring(self.path, self.timeout)
            else:
                choice = stats.RingChoice(self.events_setting, "--haproxy-events")
            if choice.ring is None:
                self._note(StreamState.UNAVAILABLE, reason=f"{choice.why}: polling only")
                self.stream_backoff.wait_until(now + NO_RING_RETRY)
                return
            self.stream = EventStream(self.path, choice.ring, self.timeout)
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            self._note(StreamState.UNAVAILABLE, reason=str(exc))
            self.stream_backoff.failed(now)
            return
        self.has_ring = True
        self.opened += 1
        self._note(StreamState.STREAMING, ring=choice.ring, chosen_as=choice.why)

    def read_stream(self, now: float) -> News:
        """Read the stream: the News its lines bring (true when a poll is due). `News.proxies`: the
        rules' proxies that state-change lines name; `News.everything`: a poll of every proxy is
        due (the stream ended: HAProxy reloaded or died, a poll tells which; or the rules are not
        known yet).

        A read of complete lines without a state change (traffic logs in the ring) pauses reading for
        EVENT_READ_GAP, so a busy ring costs at most 1/EVENT_READ_GAP reads a second however many
        lines it carries; a read that ends inside a line does not, so a state change split across
        two reads is seen at once.
        """
        if self.stream is None:
            return NO_NEWS
        try:
            block = self.stream.read()
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            self.close_stream()
            self._note(StreamState.UNAVAILABLE, reason=str(exc))
            self.stream_backoff.failed(now)
            return EVERYTHING  # the stream's end is news: HAProxy reloaded or died; poll at once
        self.stream_backoff.succeeded()
        if block and not self.stream_noisy and stats.is_noisy(block):
            self.stream_noisy = True
            log.warning(
                "haproxy.events_noisy",
                ring=self.stream.ring,
                hint="this ring carries traffic logs (level info); give rhid a dedicated ring at level "
                "notice: see the README, 'Event wake-up'",
            )
        if self.watched is None:
            news = EVERYTHING if stats.has_state_change(block) else NO_NEWS
        else:
            names = stats.changed_proxies(block, self.watched, self.frontends)
            news = (
                News(frozenset(p for name in names for p in self.by_name.get(name, ()))) if names else NO_NEWS
            )
        if (
            not news and block
        ):  # complete lines, none a state change: traffic. (Half a line: read on at once.)
            self.paused_until = now + EVENT_READ_GAP
        return news

    def close_stream(self) -> None:
        """Drop the event stream; `ensure_stream` reopens it."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None

    def _note(self, note: StreamState, **fields: str) -> None:
        if note is self.stream_note:
            return
        self.stream_note = note
        if note is StreamState.STREAMING:
            log.info("haproxy.events_streaming", **fields)
        else:
            log.warning("haproxy.events_unavailable", **fields)

    def hint(self) -> str:
        """Where the socket's path is set, and Debian's own, for an HAProxy rhid cannot reach."""
        return (
            f"the path comes from {self.source} (HAPEE_LB_SOCKET in {' or '.join(ENVIRONMENT_FILES)}); "
            f"Debian's HAProxy listens on {DEBIAN_HAPROXY_SOCKET}"
        )

    def problems(self) -> list[str]:
        """What is wrong on the HAProxy side, one operator sentence each (`rhid status` prints each
        as a PROBLEM line); empty when HAProxy answers."""
        limit = f"--unreadable-down-after, {self.unreadable_down_after:g} s"
        if self.state is HAProxyState.UNREACHABLE:
            return [f"HAProxy is unreachable ({self.error}): every proxy counts as down; {self.hint()}"]
        if self.state is HAProxyState.GARBLED:
            return [
                f"HAProxy's replies are unreadable ({self.error}): nothing is known, routes hold, and "
                f"count as down once nothing has been readable for {limit}"
            ]
        if self.state is HAProxyState.FORBIDDEN:
            return [
                f"HAProxy's socket refuses rhid ({self.error}): nothing is known, routes hold, and "
                f"count as down once this has lasted {limit}"
            ]
        return []

    def report(self) -> HAProxyReport:
        """What `rhid status` shows of HAProxy."""
        return HAProxyReport(
            socket=self.path,
            state=self.state,
            pid=self.client.pid,
            last_error=self.error if self.state is not HAProxyState.REACHABLE else None,
            problems=tuple(self.problems()),
            events=StreamReport(
                state=self.stream_note
                or (StreamState.OFF if self.events_setting == "none" else StreamState.NOT_STARTED),
                ring=self.stream.ring if self.stream is not None else None,
                reads=self.stream.reads if self.stream is not None else 0,
                bytes=self.stream.received if self.stream is not None else 0,
            ),
            polls={FULL: self.full_polls, TARGETED: self.targeted_polls},
            names={str(item.proxy): item.advice for item in self.missing or () if item.advice is not None},
        )


@dataclass(frozen=True, slots=True)
class StreamReport:
    """The event stream, as `rhid status` shows it."""

    state: StreamState
    ring: str | None
    reads: int
    bytes: int


@dataclass(frozen=True, slots=True)
class HAProxyReport:
    """What `rhid status` (and later metrics) shows of HAProxy."""

    socket: str
    state: HAProxyState
    pid: str | None
    last_error: str | None
    problems: tuple[str, ...]
    events: StreamReport
    # The closest name HAProxy has, by each proxy of the rules it lacks (`check_names`): "b:x" -> advice.
    names: Mapping[str, str] = field(default_factory=dict)
    polls: Mapping[str, int] = field(default_factory=dict)  # polls made since the start, by kind

    def document(self) -> dict[str, object]:
        """The report as `rhid status`'s JSON has it."""
        return {
            "socket": self.socket,
            "state": self.state.value,
            "pid": self.pid,
            "last_error": self.last_error,
            "problems": list(self.problems),
            "names": dict(self.names),
            "polls": dict(self.polls),
            "events": {
                "state": self.events.state.value,
                "ring": self.events.ring,
                "reads": self.events.reads,
                "bytes": self.events.bytes,
            },
        }
