"""Reconciling BIRD with the plan (I/O): the executor of `rhid.reconciler`'s actions.

`BirdSide` is the only writer of rhid's include files and the only caller of BIRD's ``configure``.
It is handed a plan and writes the files that differ from it; the pure `Reconciler` decides what to
ask BIRD (show status, configure, verify) and when, and `BirdSide` performs each action: on a
socket that joins the daemon loop's ``select`` (`join_loop`: a slow ``configure`` never stops
HAProxy polls, `rhid status` or the watchdog), or, before that and in tests, waiting for each reply
in turn. It owns BIRD's reachability and reports it as a value; it decides no route.

A BIRD side speaks one BIRD's dialect and may own only one family's files: BIRD 1.6 is two
daemons, so `rhid.birdpair.BirdPair` drives two BirdSides (bird for IPv4, bird6 for IPv6); a
dry-run is another implementation of the same `BirdEdge`. The routes of a table with a gateway
(`rhid.gateway`) lead via it; an attribute the BIRD cannot carry is left out of the file, logged
and reported, never dropped silently. `report().problems` lists, in operator words, every BIRD-side
condition worth paging for.
"""

from __future__ import annotations

import enum
import math
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import structlog

from rhid import bird, birdwire, gateway, routefiles
from rhid.backoff import Backoff
from rhid.dialect import BIRD2, Dialect, of_greeting
from rhid.errors import (
    BirdInterruptedError,
    BirdProtocolError,
    BirdRefusedError,
    BirdUnavailableError,
    FatalError,
)
from rhid.model import Attributes, BirdState, Channel, LogLine, Network, Route, Routes
from rhid.plan import Plan
from rhid.reconciler import MIN_CONFIGURE_GAP, Answer, Failure, Reconciler, Send, Trouble, Wait, sample
from rhid.settings import DEFAULTS, Settings

log = structlog.get_logger("rhid")

CHEAP_FAILURE = 0.05  # seconds: a failed attempt faster than this is retried on the next cycle
STOP_BOUND = 10.0  # seconds the final configure of a stop may take (systemd's TimeoutStopSec=15s)
SETTLE_POLL = 0.05  # seconds between show status while a stop waits for a reconfiguration to end


class Withdrawal(enum.Enum):
    """How far a stop's withdrawal got."""

    CONFIRMED = "confirmed"  # the files are empty and BIRD announces none of rhid's routes
    UNCONFIRMED = "not confirmed"  # the files are empty; BIRD did not confirm in time (or at all)
    NOT_ON_DISK = "not on disk"  # a file could not be emptied: BIRD re-reads its routes at restart


class Connection(Protocol):
    """What the BIRD side needs of a control-socket client (BirdClient; a scripted one in tests)."""

    path: str
    greeting: str
    connections: int

    def connect(self) -> str: ...

    def request(self, command: str, timeout: float | None = None) -> birdwire.Reply: ...

    def close(self) -> None: ...


class BirdEdge(Protocol):
    """What the loop needs of a BIRD side: `BirdSide`, or a dry run's (`rhid.dryrun`)."""

    @property
    def busy(self) -> bool: ...

    @property
    def owned(self) -> frozenset[Channel]: ...

    @property
    def count(self) -> int: ...

    def watch(self, interrupt: socket.socket) -> None: ...

    def join_loop(self) -> None: ...

    def announced(self) -> dict[Route, Attributes]: ...

    def apply(self, plan: Plan, now: float) -> bool: ...

    def stop(self, plan: Plan, now: float, bound: float = ...) -> Withdrawal: ...

    def waitable(self) -> bird.BirdClient | None: ...

    def waitables(self) -> tuple[bird.BirdClient, ...]: ...

    @property
    def dialect(self) -> Dialect: ...

    def wake_at(self) -> float: ...

    def on_readable(self, now: float) -> None: ...

    def on_time(self, now: float) -> None: ...

    def report(self) -> BirdReport: ...


@dataclass(frozen=True, slots=True)
class BirdReport:
    """What `rhid status` (and later metrics) shows of BIRD."""

    socket: str
    state: BirdState
    greeting: str
    in_sync: bool
    missing_protocols: tuple[str, ...]
    write_error: str | None
    last_error: str | None
    problems: tuple[str, ...]
    gateways: tuple[str, ...] = ()  # --gateway TABLE=ADDRESS the files lead routes via
    daemons: tuple[BirdReport, ...] = ()  # BIRD 1.6: each daemon's own report (bird, bird6)
    name: str = ""  # which daemon, where there are two: "bird" or "bird6"
    unused: bool = False  # BIRD 1.6: a daemon of a family no rule routes (not contacted)

    @property
    def words(self) -> str:
        """The state in a few words, for the STATUS= line: ``reachable``, or each daemon's where
        there are two and they differ (``bird reachable, bird6 unreachable``)."""
        states = {daemon.state for daemon in self.daemons}
        if len(states) <= 1:
            return self.state.value
        return ", ".join(f"{daemon.name} {daemon.state.value}" for daemon in self.daemons)

    def document(self) -> dict[str, object]:
        """The report as `rhid status`'s JSON has it."""
        found: dict[str, object] = {
            "socket": self.socket,
            "state": self.state.value,
            "greeting": self.greeting,
            "in_sync": self.in_sync,
            "missing_protocols": list(self.missing_protocols),
            "write_error": self.write_error,
            "last_error": self.last_error,
            "problems": list(self.problems),
            "gateways": list(self.gateways),
        }
        if self.name:
            found["name"] = self.name
            found["unused"] = self.unused
        if self.daemons:
            found["daemons"] = [daemon.document() for daemon in self.daemons]
        return found


class BirdSide:
    """rhid's files and BIRD's view of them: what was written, and the reconciler's actions carried out."""

    def __init__(
        self,
        directory: Path,
        client: Connection,
        *,
        configure_timeout: float = DEFAULTS.configure_timeout,
        verify_every: float = DEFAULTS.verify_every,
        dialect: Dialect = BIRD2,
        family: int | None = None,
        gateways: Collection[gateway.Gateway] = (),
    ) -> None:
        self.directory = directory
        self.client = client
        self.family = family  # None: every family's files (one BIRD for both); 4 or 6: that one's
        self.gateways = tuple(
            sorted((g for g in gateways if family in (None, g.address.version)), key=gateway.order)
        )
        on_disk = routefiles.read_announced(directory)
        self.written: dict[Channel, Routes] = {c: r for c, r in on_disk.routes.items() if self.mine(c)}
        # files holding lines rhid did not write: rewrite them
        self.foreign = {channel for channel in on_disk.foreign if self.mine(channel)}
        # what each file looked like when rhid last wrote (or read) it: a change is someone else's
        self.stamps = {channel: _stamp(self.path(channel)) for channel in self.written}
        for warning in on_disk.warnings:
            log.warning("files.strange", detail=warning)
        self.reconciler = Reconciler(
            self.written,
            path=client.path,
            verify_every=verify_every,
            configure_timeout=configure_timeout,
            dialect=dialect,
        )
        # the attributes left out of each route's line, as this BIRD cannot carry them
        self.uncarried: dict[Route, tuple[str, ...]] = {}
        self.texts: dict[Channel, routefiles.FileText] = {}  # each file's lines as last written
        self.written_plan: Plan | None = None  # the last plan whose files were all written
        self.write_errors: dict[Channel, str] = {}  # files that do not say what the plan says, and why
        self.looping: bird.BirdClient | None = None  # set by join_loop: commands without waiting
        self.sent: Send | None = None  # the command in flight on `looping`
        self.sent_at = 0.0
        self.wait_until = math.inf  # the reconciler has nothing to do before this
        self.configure_ended = -math.inf  # time.monotonic() when a waited-for configure ended

    @classmethod
    def of(cls, settings: Settings, keepalive: Callable[[], None], watchdog: float | None) -> BirdSide:
        """The BIRD side `rhid run`'s settings ask for. A stop's final configure can take BIRD
        longer than the watchdog period (BIRD 1.6, large tables): `keepalive` feeds systemd's
        watchdog while rhid waits on BIRD, every third of its period; every wait is still bounded."""
        return cls.for_socket(settings, settings.bird_socket, keepalive, watchdog)

    @classmethod
    def for_socket(
        cls,
        settings: Settings,
        path: str,
        keepalive: Callable[[], None] | None,
        watchdog: float | None,
        *,
        dialect: Dialect = BIRD2,
        family: int | None = None,
    ) -> BirdSide:
        """The BIRD side of the BIRD at `path` (one of BIRD 1.6's two daemons: `family`'s)."""
        every = min(bird.KEEPALIVE_EVERY, (watchdog or bird.KEEPALIVE_EVERY) / 3)
        client = bird.BirdClient(path, settings.bird_timeout, keepalive, every)
        return cls(
            settings.bird_dir,
            client,
            configure_timeout=settings.configure_timeout,
            verify_every=settings.verify_every,
            dialect=dialect,
            family=family,
            gateways=settings.gateways,
        )

    def mine(self, channel: Channel) -> bool:
        """True when `channel`'s file is this side's (its family's, or every one)."""
        return self.family is None or channel.family == self.family

    @property
    def dialect(self) -> Dialect:
        """The BIRD this side speaks to."""
        return self.reconciler.dialect

    def watch(self, interrupt: socket.socket) -> None:
        """Abandon any blocking wait on BIRD as soon as a stop signal is pending on `interrupt` (the
        loop's signal socket): see `rhid.bird`."""
        if isinstance(self.client, bird.BirdClient):
            self.client.interrupt = interrupt

    def join_loop(self) -> None:
        """From now on, send commands without waiting: the loop selects on `waitable()` and calls
        `on_readable`, and `wake_at()` says when a deadline or a wait ends."""
        if isinstance(self.client, bird.BirdClient):
            self.looping = self.client

    # ---- the reconciler's state, as the rest of rhid reads it --------------------------------------

    @property
    def backoff(self) -> Backoff:
        """The reconciler's retry pacing."""
        return self.reconciler.backoff

    @property
    def in_sync(self) -> bool:
        """True when BIRD accepted a configure of the files as they are now."""
        return self.reconciler.in_sync

    @property
    def next_verify(self) -> float:
        """When BIRD's routes are next listed in full."""
        return self.reconciler.next_verify

    @property
    def last_error(self) -> str | None:
        """The last failure's words, until a round succeeds."""
        return self.reconciler.last_error

    # ---- files ---------------------------------------------------------------------------------

    def announced(self) -> dict[Route, Attributes]:
        """The routes rhid's files announce now, and what each carries."""
        return routefiles.announced_routes(self.written)

    @property
    def owned(self) -> frozenset[Channel]:
        """The channels rhid has files for."""
        return frozenset(self.written)

    @property
    def count(self) -> int:
        """How many routes rhid's files announce."""
        return sum(map(len, self.written.values()))

    def path(self, channel: Channel) -> Path:
        """The include file of `channel`."""
        return self.directory / routefiles.file_name(channel)

    def _write_file(
        self, channel: Channel, routes: Routes, changed: Collection[Network] | None = None
    ) -> bool:
        """Make the channel's file hold `routes` (a withdrawal needs no free space: see
        `routefiles.write_text`); `changed`: the only prefixes whose line differs from the file's
        as last written (None: render it whole). False, logged once per reason, when it could not
        be done."""
        path = self.path(channel)
        text = self.texts.pop(channel, None)  # put back once the file holds it
        if text is None or changed is None:
            text = routefiles.FileText(routes)
        else:
            text.update(routes, changed)
        try:
            routefiles.ensure_directory(self.directory)  # someone may have removed it
            how = routefiles.write_text(path, text.text())
        except OSError as exc:
            # A full or broken /run: the old file stays (BIRD keeps its routes); retry next cycle.
            reason = exc.strerror or str(exc)
            if self.write_errors.get(channel) != reason:
                log.error("files.write_failed", path=str(path), reason=reason, retry="every cycle")
            self.write_errors[channel] = reason
            return False
        if how != "replaced":
            log.warning("files.written", path=str(path), how=how, why="the atomic replacement failed")
        if self.write_errors.pop(channel, None) is not None:
            log.info("files.write_recovered", path=str(path))
        self.foreign.discard(channel)
        self.written[channel] = routes
        self.texts[channel] = text
        self.stamps[channel] = _stamp(path)
        return True

    def files(self, plan: Plan) -> dict[Channel, Routes]:
        """What this side's files should hold for `plan`: its family's channels, each route of a
        table with a gateway leading via it, and only the attributes this BIRD can carry (what it
        cannot is logged once per route and reported: see `problems`)."""
        wanted = {channel: routes for channel, routes in plan.files().items() if self.mine(channel)}
        files = gateway.routed(wanted, self.gateways)
        uncarried: dict[Route, tuple[str, ...]] = {}
        for channel, routes in files.items():
            for prefix, attributes in routes.items():
                carried = self._carried(channel, prefix, attributes, uncarried)
                if carried is not attributes:
                    routes[prefix] = carried
        self.uncarried = uncarried
        return files

    def _carried(
        self,
        channel: Channel,
        prefix: Network,
        attributes: Attributes,
        uncarried: dict[Route, tuple[str, ...]],
    ) -> Attributes:
        """`attributes` as this BIRD can carry them; what it cannot goes into `uncarried` (logged
        once per route)."""
        dialect = self.dialect
        left_out = dialect.uncarried(attributes)
        if not left_out:
            return attributes
        route = Route(channel.table, prefix)
        uncarried[route] = left_out
        if self.uncarried.get(route) != left_out:
            log.error(
                "bird.attributes_uncarried",
                route=str(route),
                left_out=list(left_out),
                bird=self.client.greeting or dialect.name,
                hint="announced without them: this BIRD cannot set them on a static route",
            )
        return dialect.carried(attributes)

    def _changed_files(
        self, plan: Plan, moved: Mapping[Channel, Collection[Network]]
    ) -> dict[Channel, tuple[Routes, Collection[Network] | None]]:
        """The files of this side's channels that `moved` (the plan's lines that changed since the
        plan last written) touches, with the prefixes that may differ; a file someone else wrote or
        that could not be written is made whole again from the plan (None: any prefix may differ)."""
        via = {g.channel: g.address for g in self.gateways}
        uncarried = dict(self.uncarried)
        changed: dict[Channel, tuple[Routes, Collection[Network] | None]] = {}
        for channel in sorted({*moved, *self.foreign, *self.write_errors}):
            if not self.mine(channel):
                continue
            wanted = plan.file(channel)
            if channel in self.foreign or channel in self.write_errors or channel not in self.written:
                prefixes: Collection[Network] = wanted.keys() | self.written.get(channel, {}).keys()
                for prefix in self.written.get(channel, {}):
                    uncarried.pop(Route(channel.table, prefix), None)
                routes: Routes = {}
                whole = True
            else:
                prefixes, routes, whole = moved[channel], dict(self.written[channel]), False
            for prefix in prefixes:
                uncarried.pop(Route(channel.table, prefix), None)
                attributes = wanted.get(prefix)
                if attributes is None:
                    routes.pop(prefix, None)
                    continue
                if channel in via:
                    attributes = replace(attributes, via=via[channel])
                routes[prefix] = self._carried(channel, prefix, attributes, uncarried)
            changed[channel] = (routes, None if whole else prefixes)
        self.uncarried = uncarried
        return changed

    def write(self, plan: Plan, now: float) -> bool:
        """Rewrite each include file that differs from the plan. True when every file now says what
        the plan says (False: retried on the next cycle). A plan decided from the one last written
        says which lines changed (`Plan.files_moved`): only those files are compared and rewritten,
        and only those lines rendered; any other plan is compared whole."""
        del now
        if plan is self.written_plan:
            return True  # the common case: nothing moved since this plan was written
        complete = True
        moved: dict[Channel, frozenset[Network]] = {}
        events: list[tuple[str, str]] = []
        lines_moved = plan.files_moved(self.written_plan)
        if lines_moved is None:
            wanted: dict[Channel, tuple[Routes, Collection[Network] | None]] = {
                channel: (routes, None) for channel, routes in self.files(plan).items()
            }
        else:
            wanted = self._changed_files(plan, lines_moved)
        for channel, (routes, changed) in sorted(wanted.items()):
            before = self.written.get(channel)
            if before is None or changed is None:
                compared: Collection[Network] = routes.keys() | (before or {}).keys()
                if before == routes and channel not in self.foreign and channel not in self.write_errors:
                    continue
            else:
                compared = [p for p in changed if before.get(p) != routes.get(p)]
                if not compared:
                    continue
            if not self._write_file(channel, routes, None if changed is None or before is None else compared):
                complete = False
                continue
            before = before or {}
            moved[channel] = frozenset(p for p in compared if before.get(p) != routes.get(p))
            gained = sorted_prefixes([p for p in moved[channel] if p not in before])
            lost = sorted_prefixes([p for p in moved[channel] if p not in routes])
            events.extend(("route.announced", str(Route(channel.table, p))) for p in gained)
            events.extend(("route.withdrawn", str(Route(channel.table, p))) for p in lost)
        self.reconciler.files_written(self.written, moved, events)
        self.written_plan = plan if complete else None
        return complete

    def _rewrite(self, differing: Collection[Channel]) -> None:
        """Before a configure, rewrite from the plan each file whose routes BIRD has differently, or
        that someone else changed since rhid wrote it (a line added by hand, say), so that BIRD
        applies rhid's routes and nothing else."""
        touched = {c for c in self.written if _stamp(self.path(c)) != self.stamps.get(c)}
        for channel in sorted(set(differing) | touched):
            routes = self.written.get(channel, {})
            why = "BIRD differed from the plan" if channel in differing else "changed by someone else"
            if self._write_file(channel, routes):
                log.info("files.rewritten", path=str(self.path(channel)), why=why)

    # ---- carrying out the reconciler's actions ------------------------------------------------------

    def apply(self, plan: Plan, now: float) -> bool:
        """Write the plan's files, then let the reconciler make BIRD apply them and check (within
        this call, or, once in the loop, through `on_readable`). False when a file could not be
        written (retried on the next call)."""
        written = self.write(plan, now)
        self.sync(plan.channels, now)
        return written

    def sync(self, channels: Collection[Channel], now: float) -> None:
        """A cycle: start a round with BIRD, and carry it as far as it goes now."""
        del channels  # the reconciler verifies the channels the files hold
        self.reconciler.tick(now)
        self.pump(now)

    def pump(self, now: float) -> None:
        """Perform the reconciler's actions until one must wait (a reply in the loop, a gap)."""
        reconciler = self.reconciler
        try:
            while self.sent is None:
                action = reconciler.next_action(now)
                if isinstance(action, Wait):
                    if self.looping is None and action.until - now <= MIN_CONFIGURE_GAP:
                        # the gap between two configures, on the real clock: a cycle's `now` stands
                        # for the whole of a waited-for exchange
                        time.sleep(max(0.0, self.configure_ended + MIN_CONFIGURE_GAP - time.monotonic()))
                        now = max(now, action.until)
                        continue
                    self.wait_until = action.until
                    break
                self.wait_until = math.inf
                if action.command == birdwire.CONFIGURE:
                    self._rewrite(action.rewrite)
                if self.looping is None:
                    self._request(action, now)
                else:
                    self._send(self.looping, action, now)
        finally:
            self._after(reconciler.take_lines())
        if reconciler.drop:
            reconciler.drop = False
            if self.sent is None:
                self.client.close()
        if reconciler.fatal is not None:
            raise FatalError(reconciler.fatal)
        self._check_greeting()

    def _check_greeting(self) -> None:
        """A BIRD of another language than the one rhid started speaking (BIRD 1.6's two daemons,
        or BIRD 2's one) now answers on the socket: it was replaced while rhid ran (a migration).
        rhid cannot go on (its files and protocol names are the other BIRD's): it exits without
        touching the files, so BIRD keeps the routes and systemd's restart speaks the new BIRD."""
        greeting = self.client.greeting
        if not greeting or of_greeting(greeting).per_family == self.dialect.per_family:
            return
        raise FatalError(
            f"{self.client.path} now greets {greeting!r}, but rhid started speaking "
            f"{self.dialect.name} to it: BIRD was replaced while rhid ran; rhid exits (routes held as "
            "they are) so that its restart speaks to the new BIRD"
        )

    def _request(self, action: Send, now: float) -> None:
        """Carry out one command and wait for its reply (before `join_loop`, and in tests); the
        cycle's `now` stands for the whole exchange, as the reconciler's clock."""
        started = time.monotonic()
        try:
            reply = self.client.request(action.command, timeout=action.timeout)
        except (BirdUnavailableError, BirdProtocolError, BirdInterruptedError) as exc:
            slow = time.monotonic() - started > CHEAP_FAILURE
            self._ended(action)
            self.reconciler.receive(_failure(exc, slow), now)
            self.client.close()
            return
        self._ended(action)
        self.reconciler.receive(Answer(reply, self.client.connections, self.client.greeting), now)

    def _ended(self, action: Send) -> None:
        if action.command == birdwire.CONFIGURE:
            self.configure_ended = time.monotonic()

    def _send(self, client: bird.BirdClient, action: Send, now: float) -> None:
        try:
            client.send(action.command, action.timeout, now)
        except BirdUnavailableError as exc:
            self.reconciler.receive(_failure(exc, False), now)
            return
        self.sent, self.sent_at = action, now

    @property
    def busy(self) -> bool:
        """True while a round with BIRD is under way (a command in flight, or a configure due)."""
        return self.sent is not None or self.reconciler.busy

    def waitable(self) -> bird.BirdClient | None:
        """The connection to select on: a command is in flight."""
        return self.looping if self.sent is not None else None

    def waitables(self) -> tuple[bird.BirdClient, ...]:
        """The connections to select on (one at most)."""
        connection = self.waitable()
        return () if connection is None else (connection,)

    def wake_at(self) -> float:
        """When the loop must call `on_time`: a reply's deadline, or the end of a wait."""
        if self.sent is not None and self.looping is not None and self.looping.deadline is not None:
            return self.looping.deadline
        return self.wait_until

    def on_readable(self, now: float) -> None:
        """The connection is readable: feed what arrived to the reconciler, then go on."""
        client = self.looping
        if client is None or self.sent is None:
            return
        try:
            reply = client.take_reply()
        except (BirdUnavailableError, BirdProtocolError) as exc:
            self._finish(_failure(exc, now - self.sent_at > CHEAP_FAILURE), now)
            return
        if reply is not None:
            self._finish(Answer(reply, client.connections, client.greeting), now)

    def on_time(self, now: float) -> None:
        """A deadline or a wait has passed: time the command out, or go on."""
        if self.sent is not None and self.looping is not None:
            try:
                self.looping.expire(now)
            except BirdUnavailableError as exc:
                self._finish(_failure(exc, True), now)
            return
        if now >= self.wait_until:
            self.pump(now)

    def _finish(self, result: Answer | Failure, now: float) -> None:
        if self.sent is not None and self.sent.command == birdwire.CONFIGURE:
            self.configure_ended = time.monotonic()
        self.sent = None
        self.reconciler.receive(result, now)
        self.pump(now)

    def abandon(self) -> None:
        """Drop the command in flight (a stop is next: it starts with a fresh connection)."""
        if self.sent is not None:
            self.sent = None
            self.reconciler.receive(Failure(Trouble.INTERRUPTED, "rhid is stopping"), 0.0)
            self._after(self.reconciler.take_lines())
        self.client.close()

    def _after(self, lines: list[LogLine]) -> None:
        for line in lines:
            getattr(log, line.level)(line.name, **line.fields)

    # ---- the stop: every route withdrawn, confirmed within a bound --------------------------------

    def stop(self, plan: Plan, now: float, bound: float = STOP_BOUND) -> Withdrawal:
        """Write a final plan (every route withdrawn) and have BIRD apply it at once, once, within
        `bound` seconds; say how far it got (each shortfall is logged)."""
        deadline = time.monotonic() + bound
        unwritten = self.empty(plan, now)
        return self.confirm_stop(plan, deadline, unwritten)

    def empty(self, plan: Plan, now: float) -> list[str]:
        """A stop's first half: abandon any command in flight, write the final plan's files (made
        durable before anything waits on BIRD); the files it could not write, and why."""
        self.abandon()
        self.written_plan = None
        self.write(plan, now)
        unwritten = [f"{self.path(c)}: {reason}" for c, reason in sorted(self.write_errors.items())]
        if unwritten:
            log.critical(
                "daemon.stopping",
                on_stop="withdraw",
                files="NOT emptied: BIRD announces these routes again at its next configure or restart",
                errors=unwritten,
            )
        return unwritten

    def confirm_stop(self, plan: Plan, deadline: float, unwritten: list[str]) -> Withdrawal:
        """A stop's second half: have BIRD apply the emptied files and confirm it before `deadline`
        (time.monotonic()); how far it got."""
        channels = [channel for channel in plan.channels if self.mine(channel)]
        try:
            self._confirm(channels, deadline)
        except (BirdUnavailableError, BirdProtocolError, BirdRefusedError) as exc:
            log.error(
                "daemon.stopping",
                on_stop="withdraw",
                bird="not confirmed"
                + ("" if unwritten else "; the emptied files apply at its next configure"),
                socket=self.client.path,
                reason=str(exc),
            )
            return Withdrawal.NOT_ON_DISK if unwritten else Withdrawal.UNCONFIRMED
        finally:
            self.client.close()
        if unwritten:
            return Withdrawal.NOT_ON_DISK
        log.info("daemon.stopping", on_stop="withdraw", bird="confirmed", socket=self.client.path)
        return Withdrawal.CONFIRMED

    def _confirm(self, channels: Collection[Channel], deadline: float) -> None:
        """configure, wait out a reconfiguration, verify: all before `deadline`, or raise."""

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BirdUnavailableError(
                    self.client.path, "no confirmation within the stop's bound", "timeout"
                )
            return remaining

        def running() -> bool:
            return birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS, timeout=left())).running

        while not running():
            time.sleep(min(SETTLE_POLL, left()))  # never queue the final configure behind another
        gap = self.configure_ended + MIN_CONFIGURE_GAP - time.monotonic()
        if gap > 0:
            time.sleep(min(gap, left()))
        self._rewrite(())
        reply = self.client.request(birdwire.CONFIGURE, timeout=left())
        if not self.reconciler.dialect.accepted(reply.code):
            raise BirdRefusedError(reply.code, reply.text)
        running()
        while reply.code != birdwire.RECONFIGURED and not running():
            time.sleep(min(SETTLE_POLL, left()))
        differing = []
        for channel in sorted(channels):
            dialect = self.reconciler.dialect
            listing = self.client.request(dialect.show_route(channel), timeout=left())
            if dialect.unknown_protocol(listing):
                continue
            left_over = dialect.routes_listed(listing) - self.written.get(channel, {}).keys()
            if left_over:
                differing.append(f"{dialect.protocol(channel)}: {sample(sorted(map(str, left_over)))}")
        if differing:
            raise BirdUnavailableError(
                self.client.path,
                f"BIRD still announces routes after configure ({'; '.join(differing)})",
                "other",
            )

    # ---- report --------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every BIRD-side condition an operator should be paged for, in operator words."""
        r = self.reconciler
        found: list[str] = []
        if r.state is BirdState.UNREACHABLE:
            found.append(
                f"BIRD is unreachable ({r.last_error}): rhid keeps its files current, BIRD reads "
                "them when it is back"
            )
        if r.garbled is not None:
            found.append(f"BIRD's control socket {self.client.path} answers garbage: {r.garbled}")
        found.extend(
            f"BIRD has no protocol {protocol}: its routes are announced nowhere; add the output of "
            "`rhid bird-config` to bird.conf, then run `birdc configure`"
            for protocol in sorted(r.missing_protocols)
        )
        found.extend(
            f"cannot write {self.path(channel)}: {reason}; BIRD keeps what the file said before "
            "(rhid retries every cycle)"
            for channel, reason in sorted(self.write_errors.items())
        )
        via = {g.channel: g.address for g in self.gateways}
        if r.mismatches >= 2:  # longer than one verify: re-applying did not help
            found.extend(
                f"BIRD's routes for {r.dialect.protocol(channel)} differ from rhid's file "
                f"{self.path(channel)} after a re-configure: {detail}"
                + (
                    f" (its routes lead via {via[channel]} (--gateway): BIRD announces them only while "
                    f"{via[channel]} is on a network of one of its interfaces; `birdc show static` says "
                    "(dormant) otherwise)"
                    if channel in via
                    else ""
                )
                for channel, detail in sorted(r.differing.items())
            )
        found.extend(
            f"{route} is announced without its {' and '.join(left_out)}: "
            f"{self.client.greeting or r.dialect.name} cannot set them on a static route "
            "(BIRD 1.6.3 or later, 2 and 3 can)"
            for route, left_out in sorted(self.uncarried.items(), key=lambda item: str(item[0]))
        )
        lasted = r.long_reconfiguration()
        if lasted is not None:
            found.append(
                f"BIRD has been reconfiguring for {lasted:.0f} s "
                "(show status: not 'Daemon is up and running'); no configure is sent until it is done, "
                "so route changes wait: look at `birdc show protocols` for a protocol that does not stop"
            )
        if r.refused is not None:
            found.append(
                f"BIRD refuses configure: {r.refused}; BIRD keeps its previous routes until this is fixed"
            )
        return found

    def report(self) -> BirdReport:
        """What `rhid status` shows of BIRD."""
        r = self.reconciler
        write_error = "; ".join(
            f"{self.path(channel)}: {reason}" for channel, reason in sorted(self.write_errors.items())
        )
        return BirdReport(
            socket=self.client.path,
            state=r.state,
            greeting=self.client.greeting,
            in_sync=r.in_sync
            and r.state is BirdState.REACHABLE
            and not self.write_errors
            and not r.missing_protocols
            and not r.differing,  # a reconfiguration under way is not news (BIRD 3: often, briefly)
            missing_protocols=tuple(sorted(r.missing_protocols)),
            write_error=write_error or None,
            last_error=r.last_error,
            problems=tuple(self.problems()),
            gateways=tuple(map(str, self.gateways)),
        )


def _failure(exc: BirdUnavailableError | BirdProtocolError | BirdInterruptedError, slow: bool) -> Failure:
    """The reconciler's word for a client's exception."""
    if isinstance(exc, BirdInterruptedError):
        return Failure(Trouble.INTERRUPTED, exc.reason)
    if isinstance(exc, BirdProtocolError):
        return Failure(Trouble.GARBLED, str(exc))
    return Failure(Trouble.UNAVAILABLE, exc.reason, slow)


def sorted_prefixes(prefixes: Collection[Network]) -> list[Network]:
    """Prefixes in address order (networks of two families never meet in one channel)."""
    return sorted(prefixes, key=lambda p: (int(p.network_address), p.prefixlen))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and content stamp (inode, size, mtime), or None when it does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)
