"""Reconciling BIRD with the plan (I/O): rhid's include files, ``configure``, verify, backoff.

`BirdSide` is the only writer of rhid's include files and the only caller of BIRD's ``configure``.
It is handed a plan, writes the files that differ from it (logging each route that moved, with the
plan's reason), makes BIRD apply them and checks BIRD's own routes (after every change, every
`verify_every` seconds, after a reconnect, and whenever ``show status`` shows a reboot or
reconfiguration rhid did not cause). Failures are retried with backoff while the files (the desired
state) stay current. It owns BIRD's reachability and reports it as a value; it decides no route.
BIRD 1.6 (two sockets) and a dry-run sink will be other implementations of `apply`/`stop`/`report`.

Never two reconfigurations in flight: a ``configure`` is sent only right after ``show status`` said
``Daemon is up and running``, and at least `MIN_CONFIGURE_GAP` after the previous one. After
``0004`` (BIRD 3 answers it often) or while an operator's own ``configure`` runs, rhid waits for
the next cycles' ``show status`` and then sends one ``configure`` for everything that changed
meanwhile (the files always hold the latest plan): a ``configure`` queued behind another (``0005``)
is what BIRD 3.3/3.4 can abort on.

When BIRD differs from the files, the differing channels' files are rewritten from the plan before
the re-``configure`` (a line someone added to a file would otherwise be re-applied forever).
`report()["problems"]` lists, in operator words, every BIRD-side condition worth paging for.
"""

from __future__ import annotations

import enum
import socket
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol

import structlog

from rhid import bird, birdwire, routefiles
from rhid.backoff import Backoff
from rhid.errors import (
    BirdInterruptedError,
    BirdProtocolError,
    BirdRefusedError,
    BirdUnavailableError,
    FatalError,
)
from rhid.model import Channel, Network, Route
from rhid.plan import Plan
from rhid.settings import Settings

log = structlog.get_logger("rhid")

ROUTE_LINES = 100  # route.announced/withdrawn lines one write logs one by one; the rest as one line
CHEAP_FAILURE = 0.05  # seconds: a failed attempt faster than this is retried on the next cycle
MIN_CONFIGURE_GAP = 0.1  # seconds between two configures (BIRD 3.4 survived storms with this gap)
STOP_BOUND = 10.0  # seconds the final configure of a stop may take (systemd's TimeoutStopSec=15s)
SETTLE_POLL = 0.05  # seconds between show status while a stop waits for a reconfiguration to end
LONG_RECONFIGURATION = 10.0  # seconds: BIRD reconfiguring longer than this is a problem to page for


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


class BirdSide:
    """rhid's files and BIRD's view of them: what was written, whether BIRD applied it, and when to
    try again."""

    def __init__(
        self,
        directory: Path,
        client: Connection,
        *,
        configure_timeout: float = 30.0,
        verify_every: float = 30.0,
    ) -> None:
        self.directory = directory
        self.client = client
        self.configure_timeout = configure_timeout
        self.verify_every = verify_every
        on_disk = routefiles.read_announced(directory)
        self.written: dict[Channel, frozenset[Network]] = dict(on_disk.announced)
        self.foreign = set(on_disk.foreign)  # files holding lines rhid did not write: rewrite them
        # what each file looked like when rhid last wrote (or read) it: a change is someone else's
        self.stamps = {channel: _stamp(self.path(channel)) for channel in self.written}
        for warning in on_disk.warnings:
            log.warning("files.strange", detail=warning)
        self.changed_at: dict[Route, float] = {}
        self.written_plan: Plan | None = None  # the last plan whose files were all written
        self.unconfirmed: list[tuple[str, str]] = []  # route events written, not yet seen in BIRD
        self.write_errors: dict[Channel, str] = {}  # files that do not say what the plan says, and why
        self.in_sync = False  # BIRD accepted a configure of the files as they are now
        self.status: birdwire.Status | None = None
        self.connections_seen = 0
        self.next_verify = 0.0
        self.reachable: bool | None = None
        self.configured = False  # 8007 before a first successful configure is fatal: a restricted socket
        self.missing_protocols: set[str] = set()
        self.differing: dict[Channel, str] = {}  # channels whose routes in BIRD differ from the files
        self.mismatches = 0  # verifies in a row that found BIRD differing from the files
        self.reconfiguring = False  # BIRD is applying a configuration (0004, or show status says so)
        self.reconfiguring_since = 0.0
        self.last_sync = 0.0
        self.refused: str | None = None  # BIRD's refusal of the last configure, until one is accepted
        self.garbled: str | None = None
        self.last_configure = -MIN_CONFIGURE_GAP  # time.monotonic() when the last configure ended
        self.last_error: str | None = None
        self.backoff = Backoff()

    @classmethod
    def of(cls, settings: Settings, keepalive: Callable[[], None], watchdog: float | None) -> BirdSide:
        """The BIRD side `rhid run`'s settings ask for. A configure can take BIRD longer than the
        watchdog period (BIRD 1.6, large tables): `keepalive` feeds systemd's watchdog while rhid
        waits on BIRD, every third of its period; every wait is still bounded by its deadline."""
        every = min(bird.KEEPALIVE_EVERY, (watchdog or bird.KEEPALIVE_EVERY) / 3)
        client = bird.BirdClient(settings.bird_socket, settings.bird_timeout, keepalive, every)
        return cls(
            settings.bird_dir,
            client,
            configure_timeout=settings.configure_timeout,
            verify_every=settings.verify_every,
        )

    def watch(self, interrupt: socket.socket) -> None:
        """Abandon any wait on BIRD as soon as a stop signal is pending on `interrupt` (the loop's
        signal socket): see `rhid.bird`."""
        if isinstance(self.client, bird.BirdClient):
            self.client.interrupt = interrupt

    # ---- files ---------------------------------------------------------------------------------

    def announced(self) -> set[Route]:
        """The routes rhid's files announce now."""
        return {
            Route(channel.table, prefix) for channel, prefixes in self.written.items() for prefix in prefixes
        }

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

    def _write_file(self, channel: Channel, prefixes: frozenset[Network]) -> bool:
        """Make the channel's file hold `prefixes` (a withdrawal needs no free space: see
        `routefiles.write_routes`). False, logged once per reason, when it could not be done."""
        path = self.path(channel)
        try:
            routefiles.ensure_directory(self.directory)  # someone may have removed it
            how = routefiles.write_routes(path, prefixes)
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
        self.written[channel] = prefixes
        self.stamps[channel] = _stamp(path)
        self.in_sync = False
        return True

    def write(self, plan: Plan, now: float) -> bool:
        """Rewrite each include file that differs from the plan; log every route that moved, and why.
        True when every file now says what the plan says (False: retry on the next cycle)."""
        if plan is self.written_plan:
            return True  # the common case: nothing moved since this plan was written
        complete = True
        logged: dict[str, int] = {}  # route lines logged per event in this write
        for channel, prefixes in sorted(plan.files().items()):
            before = self.written.get(channel)
            if before == prefixes and channel not in self.foreign and channel not in self.write_errors:
                continue
            if not self._write_file(channel, prefixes):
                complete = False
                continue
            self.backoff.succeeded()  # a new desired state is worth trying at once
            before = before or frozenset()
            moved = sorted(
                [(p, "route.announced") for p in prefixes - before]
                + [(p, "route.withdrawn") for p in before - prefixes],
                key=lambda item: (int(item[0].network_address), item[0].prefixlen),
            )
            for prefix, event in moved:
                route = Route(channel.table, prefix)
                self.changed_at[route] = now
                self.unconfirmed.append((event, str(route)))
                logged[event] = logged.get(event, 0) + 1
                if logged[event] <= ROUTE_LINES:
                    decision = plan.decisions.get(route)
                    log.info(
                        event,
                        prefix=str(prefix),
                        table=channel.table,
                        rule_line=decision.rule.line if decision and decision.rule else None,
                        reason=plan.reason(route),
                    )
        for event, count in logged.items():
            if count > ROUTE_LINES:  # one line for the rest: journald's rate limit keeps the others
                log.info(
                    event, count=count - ROUTE_LINES, more="routes in this change, not listed one by one"
                )
        self.written_plan = plan if complete else None
        return complete

    def _rewrite_differing(self) -> None:
        """Before a configure, rewrite from the plan each file whose routes BIRD has differently, or
        that someone else changed since rhid wrote it (a line added by hand, say), so that BIRD
        applies rhid's routes and nothing else."""
        touched = {c for c in self.written if _stamp(self.path(c)) != self.stamps.get(c)}
        for channel in sorted(set(self.differing) | touched):
            prefixes = self.written.get(channel, frozenset())
            why = "BIRD differed from the plan" if channel in self.differing else "changed by someone else"
            if self._write_file(channel, prefixes):
                log.info("files.rewritten", path=str(self.path(channel)), why=why)

    # ---- BIRD ------------------------------------------------------------------------------------

    def apply(self, plan: Plan, now: float) -> bool:
        """Write the plan's files, then make BIRD apply them and check. False when a file could not
        be written (the caller hands the plan again next cycle)."""
        written = self.write(plan, now)
        self.sync(plan.channels, now)
        return written

    def sync(self, channels: Collection[Channel], now: float) -> None:
        """Make BIRD apply the files if it has not, and check what it really announces."""
        if not self.backoff.ready(now):
            return
        self.last_sync = now
        started = time.monotonic()
        try:
            bird_status = birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS))
            fresh = self.client.connections != self.connections_seen
            self.connections_seen = self.client.connections
            self._reachable(True)
            self.garbled = None
            if not self._settled(bird_status, now):
                return
            if not self.in_sync:
                converged = self._configure_and_verify(channels, now, "files changed")
            else:
                converged = self._check(channels, now, bird_status, fresh)
            if converged:
                self.backoff.succeeded()
                self.last_error = None
            else:
                self.last_error = "BIRD's routes differ from rhid's files after configure"
                delay = self.backoff.failed(now)
                log.error(
                    "bird.not_converged",
                    hint="see bird.mismatch; is bird.conf including rhid's files?",
                    retry_in=delay,
                )
                self.in_sync = False
        except BirdInterruptedError:
            # A stop is pending: whatever BIRD makes of the command, the loop withdraws next.
            log.info("bird.interrupted", reason="stop signal while waiting on BIRD")
            self.in_sync = False
        except BirdUnavailableError as exc:
            self.last_error = f"{exc.path}: {exc.reason}"
            self._reachable(False, reason=exc.reason)
            if time.monotonic() - started > CHEAP_FAILURE:
                self.backoff.failed(now)  # it cost us a timeout: do not block every cycle on it
            # else: refused or missing socket costs microseconds; try again next cycle (BIRD restarts
            # are then healed within one poll)
        except BirdProtocolError as exc:
            self.last_error = self.garbled = str(exc)
            log.error("bird.garbled", reason=str(exc))
            self.client.close()
            self.backoff.failed(now)
        except BirdRefusedError as exc:
            self._refused(exc, now)

    def _settled(self, bird_status: birdwire.Status, now: float) -> bool:
        """False while BIRD is still applying a configuration (ours after 0004, or an operator's):
        a configure now would be queued behind it (0005). The next cycle looks again."""
        if not bird_status.running:
            if not self.reconfiguring:
                log.info("bird.reconfiguring", then="configure or verify once BIRD is up and running")
                self.reconfiguring_since = now
            self.reconfiguring = True
            return False
        if self.reconfiguring:
            self.reconfiguring = False
            self.next_verify = now  # it ended: see what it applied
        return True

    def _refused(self, exc: BirdRefusedError, now: float) -> None:
        self.last_error = str(exc)
        if exc.code == birdwire.ACCESS_DENIED and not self.configured:
            raise FatalError(
                f"BIRD refused configure on {self.client.path} (8007 access denied): the socket is "
                "restricted (birdc -r). rhid needs BIRD's unrestricted control socket."
            ) from None
        delay = self.backoff.failed(now)
        if exc.code in {birdwire.SYNTAX_ERROR, birdwire.NOT_A_PROTOCOL}:
            log.critical(
                "bird.bug",
                code=exc.code,
                bird_says=exc.message,
                hint="rhid sent a command BIRD did not understand: please report this as a bug in rhid",
            )
        else:
            log.error("bird.refused", code=exc.code, bird_says=exc.message, retry_in=delay)

    def _check(
        self, channels: Collection[Channel], now: float, bird_status: birdwire.Status, fresh: bool
    ) -> bool:
        """Verify BIRD when it reconnected, its status changed, or a check is due; re-apply if it
        differs. True when BIRD matches the files."""
        changed = bird_status != self.status
        if not (fresh or changed or now >= self.next_verify):
            return True
        why = "reconnected" if fresh else "status changed" if changed else "periodic"
        if self.verify(channels, now, why):
            self.status = bird_status  # seen and checked: an operator's configure is not news twice
            return True
        return self._configure_and_verify(channels, now, f"re-apply ({why})")

    def _configure_and_verify(self, channels: Collection[Channel], now: float, why: str) -> bool:
        """Rewrite the files BIRD differs from, ``configure``, then verify. True when BIRD matches
        the files (or is still applying them)."""
        self._rewrite_differing()
        code = self.configure(now)
        log.debug("bird.configured", code=code, why=why)
        if code != birdwire.RECONFIGURED:  # 0004/0005: accepted, still in progress
            if not self.reconfiguring:
                self.reconfiguring_since = now
            self.reconfiguring = True  # no configure, no verify until show status says it is done
            self.next_verify = now
            return True
        return self.verify(channels, now, "after configure")

    def _reachable(self, reachable: bool, **fields: str) -> None:
        if reachable != self.reachable:
            if reachable:
                log.info("bird.reachable", greeting=self.client.greeting)
            else:
                log.error("bird.unreachable", **fields)
            self.reachable = reachable

    def configure(self, now: float, timeout: float | None = None) -> int:
        """One ``configure``: BIRD re-reads its config and rhid's files. Returns BIRD's success code.
        Sent at least MIN_CONFIGURE_GAP after the previous one ended (a sleep of at most that)."""
        gap = self.last_configure + MIN_CONFIGURE_GAP - time.monotonic()
        if gap > 0:
            time.sleep(gap)
        try:
            reply = self.client.request(birdwire.CONFIGURE, timeout=timeout or self.configure_timeout)
        finally:
            self.last_configure = time.monotonic()  # the gap runs from the end of this one
        if reply.code not in birdwire.CONFIGURE_DONE:
            self.refused = f"{reply.code:04d} {reply.text}"
            raise BirdRefusedError(reply.code, reply.text)
        self.refused = None
        self.configured = self.in_sync = True
        self.status = birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS, timeout=timeout))
        self.next_verify = now + self.verify_every
        return reply.code

    def verify(
        self, channels: Collection[Channel], now: float, why: str, timeout: float | None = None
    ) -> bool:
        """Compare each protocol's routes in BIRD with rhid's files. True when they all match (a
        protocol BIRD lacks is reported in `missing_protocols`, not re-applied: a configure cannot
        add it)."""
        self.next_verify = now + self.verify_every
        differing: dict[Channel, str] = {}
        for channel in sorted(channels):
            reply = self.client.request(birdwire.show_route_command(channel.protocol), timeout=timeout)
            if birdwire.is_unknown_protocol(reply):
                if channel.protocol not in self.missing_protocols:
                    log.error(
                        "bird.protocol_missing",
                        protocol=channel.protocol,
                        hint="add the output of `rhid bird-config` to bird.conf, then `birdc configure`",
                    )
                    self.missing_protocols.add(channel.protocol)
                continue
            self.missing_protocols.discard(channel.protocol)
            actual = birdwire.parse_route_listing(reply)
            expected = self.written.get(channel, frozenset())
            if actual != expected:
                missing = sorted(map(str, expected - actual))
                unexpected = sorted(map(str, actual - expected))
                differing[channel] = f"missing {_sample(missing)}, unexpected {_sample(unexpected)}"
                log.warning(
                    "bird.mismatch",
                    protocol=channel.protocol,
                    why=why,
                    missing=missing,
                    unexpected=unexpected,
                )
        self.differing = differing
        self.mismatches = self.mismatches + 1 if differing else 0
        if not differing and not self.missing_protocols and self.unconfirmed:
            log.info(
                "bird.confirmed",
                announced=[route for event, route in self.unconfirmed if event == "route.announced"],
                withdrawn=[route for event, route in self.unconfirmed if event == "route.withdrawn"],
            )
            self.unconfirmed.clear()
        return not differing

    def stop(self, plan: Plan, now: float, bound: float = STOP_BOUND) -> Withdrawal:
        """Write a final plan (every route withdrawn) and have BIRD apply it at once, once, within
        `bound` seconds; say how far it got (each shortfall is logged)."""
        deadline = time.monotonic() + bound
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
        try:
            self._confirm(plan.channels, now, deadline)
        except (BirdUnavailableError, BirdProtocolError, BirdRefusedError) as exc:
            log.error(
                "daemon.stopping",
                on_stop="withdraw",
                bird="not confirmed"
                + ("" if unwritten else "; the emptied files apply at its next configure"),
                reason=str(exc),
            )
            return Withdrawal.NOT_ON_DISK if unwritten else Withdrawal.UNCONFIRMED
        finally:
            self.client.close()
        if unwritten:
            return Withdrawal.NOT_ON_DISK
        log.info("daemon.stopping", on_stop="withdraw", bird="confirmed")
        return Withdrawal.CONFIRMED

    def _confirm(self, channels: Collection[Channel], now: float, deadline: float) -> None:
        """configure, wait out a reconfiguration, verify: all before `deadline`, or raise."""

        def left() -> float:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BirdUnavailableError(
                    self.client.path, "no confirmation within the stop's bound", "timeout"
                )
            return remaining

        while not birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS, timeout=left())).running:
            time.sleep(min(SETTLE_POLL, left()))  # never queue the final configure behind another
        code = self.configure(now, timeout=left())
        while (
            code != birdwire.RECONFIGURED
            and not birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS, timeout=left())).running
        ):
            time.sleep(min(SETTLE_POLL, left()))
        if not self.verify(channels, now, "stopping", timeout=left()):
            raise BirdUnavailableError(
                self.client.path, "BIRD still announces routes after configure", "other"
            )

    # ---- report --------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Every BIRD-side condition an operator should be paged for, in operator words."""
        found: list[str] = []
        if self.reachable is False:
            found.append(
                f"BIRD is unreachable ({self.last_error}): rhid keeps its files current, BIRD reads "
                "them when it is back"
            )
        if self.garbled is not None:
            found.append(f"BIRD's control socket {self.client.path} answers garbage: {self.garbled}")
        for protocol in sorted(self.missing_protocols):
            found.append(
                f"BIRD has no protocol {protocol}: its routes are announced nowhere; add the output of "
                "`rhid bird-config` to bird.conf, then run `birdc configure`"
            )
        for channel, reason in sorted(self.write_errors.items()):
            found.append(
                f"cannot write {self.path(channel)}: {reason}; BIRD keeps what the file said before "
                "(rhid retries every cycle)"
            )
        if self.mismatches >= 2:  # longer than one verify: re-applying did not help
            found.extend(
                f"BIRD's routes for {channel.protocol} differ from rhid's file {self.path(channel)} "
                f"after a re-configure: {detail}"
                for channel, detail in sorted(self.differing.items())
            )
        if self.reconfiguring and self.last_sync - self.reconfiguring_since > LONG_RECONFIGURATION:
            found.append(
                f"BIRD has been reconfiguring for {self.last_sync - self.reconfiguring_since:.0f} s "
                "(show status: not 'Daemon is up and running'); no configure is sent until it is done, "
                "so route changes wait: look at `birdc show protocols` for a protocol that does not stop"
            )
        if self.refused is not None:
            found.append(
                f"BIRD refuses configure: {self.refused}; BIRD keeps its previous routes until this is fixed"
            )
        return found

    def report(self) -> dict[str, Any]:
        """What `rhid status` shows of BIRD."""
        write_error = "; ".join(
            f"{self.path(channel)}: {reason}" for channel, reason in sorted(self.write_errors.items())
        )
        return {
            "socket": self.client.path,
            "state": REACHABILITY[self.reachable],
            "greeting": self.client.greeting,
            "in_sync": self.in_sync
            and self.reachable is True
            and not self.write_errors
            and not self.missing_protocols
            and not self.differing,  # a reconfiguration under way is not news (BIRD 3: often, briefly)
            "missing_protocols": sorted(self.missing_protocols),
            "write_error": write_error or None,
            "last_error": self.last_error,
            "problems": self.problems(),
        }


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """A file's identity and content stamp (inode, size, mtime), or None when it does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _sample(items: list[str], limit: int = 5) -> str:
    """A few items of a long list, for a one-line sentence."""
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


REACHABILITY = {True: "reachable", False: "unreachable", None: "not contacted"}
