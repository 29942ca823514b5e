"""Reconciling BIRD with the plan (I/O): rhid's include files, ``configure``, verify, backoff.

`BirdSide` is the only writer of rhid's include files and the only caller of BIRD's ``configure``.
It is handed a plan, writes the files that differ from it (logging each route that moved, with the
plan's reason), makes BIRD apply them and checks BIRD's own routes (after every change, every
`verify_every` seconds, after a reconnect, and whenever ``show status`` shows a reboot or
reconfiguration rhid did not cause). Failures are retried with backoff while the files (the desired
state) stay current. It owns BIRD's reachability and reports it as a value; it decides no route.
BIRD 1.6 (two sockets) and a dry-run sink will be other implementations of `apply`/`stop`/`report`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Protocol

import structlog

from rhid import bird, birdwire, routefiles
from rhid.backoff import Backoff
from rhid.errors import BirdProtocolError, BirdRefusedError, BirdUnavailableError, FatalError
from rhid.model import Channel, Network, Route
from rhid.plan import Plan
from rhid.settings import Settings

log = structlog.get_logger("rhid")

CHEAP_FAILURE = 0.05  # seconds: a failed attempt faster than this is retried on the next cycle


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
        for warning in on_disk.warnings:
            log.warning("files.strange", detail=warning)
        self.changed_at: dict[Route, float] = {}
        self.written_plan: Plan | None = None  # the last plan whose files were all written
        self.unconfirmed: list[tuple[str, str]] = []  # route events written, not yet seen in BIRD
        self.write_error: str | None = None
        self.in_sync = False
        self.status: birdwire.Status | None = None
        self.connections_seen = 0
        self.next_verify = 0.0
        self.reachable: bool | None = None
        self.configured = False  # 8007 before a first successful configure is fatal: a restricted socket
        self.missing_protocols: set[str] = set()
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

    def write(self, plan: Plan, now: float) -> bool:
        """Rewrite each include file that differs from the plan; log every route that moved, and why.
        True when every file now says what the plan says (False: retry on the next cycle)."""
        if plan is self.written_plan:
            return True  # the common case: nothing moved since this plan was written
        complete = True
        for channel, prefixes in sorted(plan.files().items()):
            before = self.written.get(channel)
            if before == prefixes and channel not in self.foreign:
                continue
            path = self.directory / routefiles.file_name(channel)
            try:
                routefiles.ensure_directory(self.directory)  # someone may have removed it
                routefiles.write_atomically(path, routefiles.render_routes(prefixes))
            except OSError as exc:
                # A full or broken /run: the old file stays (BIRD keeps its routes); retry next cycle.
                if self.write_error != str(exc):
                    log.error("files.write_failed", path=str(path), reason=str(exc))
                self.write_error = str(exc)
                complete = False
                continue
            self.write_error = None
            self.foreign.discard(channel)
            self.written[channel] = prefixes
            self.in_sync = False
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
                decision = plan.decisions.get(route)
                log.info(
                    event,
                    prefix=str(prefix),
                    table=channel.table,
                    rule_line=decision.rule.line if decision and decision.rule else None,
                    reason=plan.reason(route),
                    bird="file written; bird.confirmed follows once BIRD announces it",
                )
                self.unconfirmed.append((event, str(route)))
        self.written_plan = plan if complete else None
        return complete

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
        started = time.monotonic()
        try:
            bird_status = birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS))
            fresh = self.client.connections != self.connections_seen
            self.connections_seen = self.client.connections
            self._reachable(True)
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
        except BirdUnavailableError as exc:
            self.last_error = f"{exc.path}: {exc.reason}"
            self._reachable(False, reason=exc.reason)
            if time.monotonic() - started > CHEAP_FAILURE:
                self.backoff.failed(now)  # it cost us a timeout: do not block every cycle on it
            # else: refused or missing socket costs microseconds; try again next cycle (BIRD restarts
            # are then healed within one poll)
        except BirdProtocolError as exc:
            self.last_error = str(exc)
            log.error("bird.garbled", reason=str(exc))
            self.client.close()
            self.backoff.failed(now)
        except BirdRefusedError as exc:
            self._refused(exc, now)

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
        """``configure``, then verify. True when BIRD matches the files (or is still applying them)."""
        code = self.configure(now)
        log.debug("bird.configured", code=code, why=why)
        if code != 3:  # 0004/0005: accepted, still in progress; verify on the next cycle
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

    def configure(self, now: float) -> int:
        """One ``configure``: BIRD re-reads its config and rhid's files. Returns BIRD's success code."""
        reply = self.client.request(birdwire.CONFIGURE, timeout=self.configure_timeout)
        if reply.code not in birdwire.CONFIGURE_DONE:
            raise BirdRefusedError(reply.code, reply.text)
        self.configured = self.in_sync = True
        self.status = birdwire.parse_status(self.client.request(birdwire.SHOW_STATUS))
        self.next_verify = now + self.verify_every
        return reply.code

    def verify(self, channels: Collection[Channel], now: float, why: str) -> bool:
        """Compare each protocol's routes in BIRD with rhid's files. True when they all match."""
        self.next_verify = now + self.verify_every
        matches = True
        for channel in sorted(channels):
            reply = self.client.request(birdwire.show_route_command(channel.protocol))
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
                matches = False
                log.warning(
                    "bird.mismatch",
                    protocol=channel.protocol,
                    why=why,
                    missing=sorted(map(str, expected - actual)),
                    unexpected=sorted(map(str, actual - expected)),
                )
        if matches and self.unconfirmed:
            log.info(
                "bird.confirmed",
                announced=[route for event, route in self.unconfirmed if event == "route.announced"],
                withdrawn=[route for event, route in self.unconfirmed if event == "route.withdrawn"],
            )
            self.unconfirmed.clear()
        return matches

    def stop(self, plan: Plan, now: float) -> None:
        """Write a final plan (every route withdrawn) and have BIRD apply it at once, once."""
        self.write(plan, now)
        try:
            self.configure(now)
            log.info("daemon.stopping", on_stop="withdraw", bird="configured")
        except (BirdUnavailableError, BirdProtocolError, BirdRefusedError) as exc:
            log.error(
                "daemon.stopping", on_stop="withdraw", bird="not reached: files emptied", reason=str(exc)
            )
        finally:
            self.client.close()

    def report(self) -> dict[str, Any]:
        """What `rhid status` shows of BIRD."""
        return {
            "socket": self.client.path,
            "state": REACHABILITY[self.reachable],
            "greeting": self.client.greeting,
            "in_sync": self.in_sync,
            "missing_protocols": sorted(self.missing_protocols),
            "last_error": self.last_error,
        }


REACHABILITY = {True: "reachable", False: "unreachable", None: "not contacted"}
