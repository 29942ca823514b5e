"""BIRD 1.6's two daemons as one BIRD edge (I/O), and the choice of edge for `rhid run`.

BIRD 1.6 runs one daemon per family: ``bird`` (IPv4, ``--bird-socket``) and ``bird6`` (IPv6,
``--bird6-socket``), each with its own ``bird.conf`` / ``bird6.conf`` and a static protocol named
as the table in both (the vendor's ``export where proto = "vol1";`` works unchanged in each).
`BirdPair` drives one `rhid.reconcile.BirdSide` per daemon, each with the 1.6 dialect and only its
family's files (the files keep their names, ``vol1.ipv4.conf`` and ``vol1.ipv6.conf``, so a move
to BIRD 2 finds them as they are): each side has its own conversation, its own ``configure``
(only when its own files changed) and its own reachability. The loop sees one `BirdEdge`: busy
while either is, both connections in its ``select``, one report with each daemon's inside.

A stop empties both daemons' files first (durable before anything waits), then has both confirm
at the same time, each in a thread of its own bounded by the same deadline: a hung bird6 cannot
eat bird's share of the stop's 10 s.

`choose` decides which BIRD ``rhid run`` speaks to (the greeting of --bird-socket, or
--bird-version) and `edge` builds the edge for it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import structlog

from rhid import bird
from rhid.dialect import BIRD2, BIRD16, Dialect, of_greeting, of_version
from rhid.errors import BirdProtocolError, BirdUnavailableError, CannotRunError
from rhid.model import Attributes, BirdState, Channel, Route
from rhid.plan import Plan
from rhid.reconcile import STOP_BOUND, BirdEdge, BirdReport, BirdSide, Withdrawal
from rhid.settings import Settings

log = structlog.get_logger("rhid")

NAMES = {4: "bird", 6: "bird6"}  # BIRD 1.6's daemons, by the family each carries
# a stop's outcomes, best first
WORST = (Withdrawal.CONFIRMED, Withdrawal.UNCONFIRMED, Withdrawal.NOT_ON_DISK)


class BirdPair:
    """BIRD 1.6: bird (IPv4) and bird6 (IPv6), each reconciled by a BirdSide of its own."""

    def __init__(self, v4: BirdSide, v6: BirdSide) -> None:
        if (v4.family, v6.family) != (4, 6):
            raise AssertionError("a BIRD pair is an IPv4 side and an IPv6 side")
        self.sides = {4: v4, 6: v6}
        # the families with a channel (in the files or the plan): a daemon of no family rhid routes
        # is not contacted (an IPv4-only node may run no bird6), and its silence is no problem
        self.families = {channel.family for channel in v4.owned | v6.owned}

    @classmethod
    def of(
        cls,
        settings: Settings,
        keepalive: Callable[[], None] | None,
        watchdog: float | None,
        dialect: Dialect = BIRD16,
    ) -> BirdPair:
        """bird's side on --bird-socket and bird6's on --bird6-socket."""
        v4, v6 = (
            BirdSide.for_socket(settings, path, keepalive, watchdog, dialect=dialect, family=family)
            for path, family in ((settings.bird_socket, 4), (settings.bird6_socket, 6))
        )
        return cls(v4, v6)

    # ---- what the loop reads ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while either daemon's round runs."""
        return any(side.busy for side in self.sides.values())

    @property
    def owned(self) -> frozenset[Channel]:
        """The channels either daemon has files for."""
        return self.sides[4].owned | self.sides[6].owned

    @property
    def count(self) -> int:
        """How many routes the files of both announce."""
        return sum(side.count for side in self.sides.values())

    @property
    def dialect(self) -> Dialect:
        """BIRD 1.6's (bird's, which bird6 shares)."""
        return self.sides[4].dialect

    def announced(self) -> dict[Route, Attributes]:
        """The routes both daemons' files announce, with what each carries."""
        return {**self.sides[4].announced(), **self.sides[6].announced()}

    # ---- the loop's calls, to each daemon ----------------------------------------------------------

    def watch(self, interrupt: socket.socket) -> None:
        """A stop signal abandons a wait on either daemon."""
        for side in self.sides.values():
            side.watch(interrupt)

    def join_loop(self) -> None:
        """Both daemons' commands go out without waiting from now on."""
        for side in self.sides.values():
            side.join_loop()

    def apply(self, plan: Plan, now: float) -> bool:
        """Each daemon writes its family's files and configures if they changed. True when every
        file of both was written."""
        self.families |= {channel.family for channel in plan.channels}
        written = [side.apply(plan, now) for family, side in self.sides.items() if family in self.families]
        return all(written)

    def waitable(self) -> bird.BirdClient | None:
        """bird's connection with a command in flight, else bird6's (the loop selects on both:
        `waitables`)."""
        found = self.waitables()
        return found[0] if found else None

    def waitables(self) -> tuple[bird.BirdClient, ...]:
        """Each daemon's connection with a command in flight."""
        return tuple(client for side in self.sides.values() for client in side.waitables())

    def wake_at(self) -> float:
        """The sooner of the two daemons' deadlines or waits."""
        return min(side.wake_at() for side in self.sides.values())

    def on_readable(self, now: float) -> None:
        """A connection is readable: each side reads what it has (nothing, for the other)."""
        for side in self.sides.values():
            if side.sent is not None:
                side.on_readable(now)

    def on_time(self, now: float) -> None:
        """A deadline or a wait may have passed, for either."""
        for side in self.sides.values():
            side.on_time(now)

    # ---- the stop ----------------------------------------------------------------------------

    def stop(self, plan: Plan, now: float, bound: float = STOP_BOUND) -> Withdrawal:
        """Empty both daemons' files, then have both confirm within the same `bound` seconds, at
        the same time; the worse of the two outcomes."""
        deadline = time.monotonic() + bound
        self.families |= {channel.family for channel in plan.channels}
        sides = {family: side for family, side in self.sides.items() if family in self.families}
        unwritten = {family: side.empty(plan, now) for family, side in sides.items()}
        outcomes: dict[int, Withdrawal] = {4: Withdrawal.CONFIRMED}  # when no family is routed at all

        def confirm(family: int) -> None:
            try:
                outcomes[family] = self.sides[family].confirm_stop(plan, deadline, unwritten[family])
            except Exception:  # a thread's failure is the stop's: reported, never lost
                log.exception(
                    "daemon.stopping", on_stop="withdraw", bird="not confirmed", daemon=NAMES[family]
                )
                outcomes[family] = Withdrawal.NOT_ON_DISK if unwritten[family] else Withdrawal.UNCONFIRMED

        threads = [threading.Thread(target=confirm, args=(family,), daemon=True) for family in sides]
        for thread in threads:
            thread.start()
        for thread in threads:  # each wait inside is bounded by `deadline`; this one too, with slack
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
        for family in sides:
            if family not in outcomes:
                outcomes[family] = Withdrawal.UNCONFIRMED
        return max(outcomes.values(), key=WORST.index)

    # ---- report ------------------------------------------------------------------------------

    def report(self) -> BirdReport:
        """Both daemons as one report (the worse state, in sync when both are, every problem
        naming its daemon), with each daemon's own report inside."""
        daemons = tuple(
            _named(side.report(), NAMES[family], side.client.path, family in self.families)
            for family, side in self.sides.items()
        )
        used = [daemon for daemon, family in zip(daemons, self.sides, strict=True) if family in self.families]
        states = [daemon.state for daemon in used]
        state = (
            BirdState.UNREACHABLE
            if BirdState.UNREACHABLE in states
            else BirdState.NOT_CONTACTED
            if BirdState.NOT_CONTACTED in states
            else BirdState.REACHABLE
        )
        errors = [f"{d.name}: {d.last_error}" for d in daemons if d.last_error]
        writes = [d.write_error for d in daemons if d.write_error]
        return BirdReport(
            socket=" and ".join(d.socket for d in daemons),
            state=state,
            greeting=daemons[0].greeting or daemons[1].greeting,
            in_sync=all(d.in_sync for d in used),
            missing_protocols=tuple(f"{d.name}: {p}" for d in daemons for p in d.missing_protocols),
            write_error="; ".join(writes) or None,
            last_error="; ".join(errors) or None,
            problems=tuple(problem for d in daemons for problem in d.problems),
            gateways=tuple(g for d in daemons for g in d.gateways),
            daemons=daemons,
        )


def _named(report: BirdReport, name: str, path: str, used: bool) -> BirdReport:
    """One daemon's report, its problems saying which daemon they are about; a daemon of a family
    no rule routes is not contacted, and has none."""
    if not used:
        return BirdReport(
            socket=report.socket,
            state=BirdState.NOT_CONTACTED,
            greeting="",
            in_sync=True,
            missing_protocols=(),
            write_error=None,
            last_error=None,
            problems=(),
            name=name,
            unused=True,
        )
    return BirdReport(
        socket=report.socket,
        state=report.state,
        greeting=report.greeting,
        in_sync=report.in_sync,
        missing_protocols=report.missing_protocols,
        write_error=report.write_error,
        last_error=report.last_error,
        problems=tuple(f"{name} ({path}): {problem}" for problem in report.problems),
        gateways=report.gateways,
        name=name,
    )


# ---- which BIRD `rhid run` speaks to ----------------------------------------------------------------


def choose(settings: Settings) -> tuple[Dialect, str]:
    """The BIRD `rhid run` speaks to, and how that was decided (logged as ``bird.dialect``).

    --bird-version 1.6, 2 or 3 is taken as said, unless the BIRD on --bird-socket greets as
    another (a CannotRunError naming both: the setting is wrong, or BIRD was replaced). auto asks
    the greeting; if no BIRD answers on --bird-socket, the greeting on --bird6-socket; if none
    answers (BIRD not started yet), BIRD 1.6 when --bird6-socket exists, else BIRD 2."""
    greeting = _greeting(settings.bird_socket, settings.bird_timeout)
    if settings.bird_version != "auto":
        chosen = of_version(settings.bird_version)
        if greeting and of_greeting(greeting).per_family != chosen.per_family:
            raise CannotRunError(
                f"--bird-version {settings.bird_version}, but {settings.bird_socket} greets {greeting!r}: "
                "give the version of the BIRD that runs there (or --bird-version auto)"
            )
        if greeting:
            return of_greeting(
                greeting
            ), f"--bird-version {settings.bird_version}; {settings.bird_socket} greets {greeting!r}"
        return (
            chosen,
            f"--bird-version {settings.bird_version} (no BIRD answers on {settings.bird_socket} yet)",
        )
    if greeting:
        return of_greeting(greeting), f"{settings.bird_socket} greets {greeting!r}"
    if os.path.exists(settings.bird6_socket):
        greeting6 = _greeting(settings.bird6_socket, settings.bird_timeout)
        if greeting6 and of_greeting(greeting6).per_family:
            return of_greeting(greeting6), f"{settings.bird6_socket} greets {greeting6!r}"
        return BIRD16, f"no BIRD answers on {settings.bird_socket}, and {settings.bird6_socket} exists"
    return BIRD2, f"no BIRD answers on {settings.bird_socket} (nor a bird6 socket exists): BIRD 2 assumed"


def _greeting(path: str, timeout: float) -> str:
    """The greeting of the BIRD at `path`, or "" when none answers (it may not have started)."""
    client = bird.BirdClient(path, timeout)
    try:
        return client.connect()
    except (BirdUnavailableError, BirdProtocolError):  # no answer: decided without it
        return ""
    finally:
        client.close()


def edge(
    settings: Settings, dialect: Dialect, keepalive: Callable[[], None] | None, watchdog: float | None
) -> BirdEdge:
    """The BIRD edge for `dialect`: one BirdSide, or BIRD 1.6's pair."""
    if dialect.per_family:
        return BirdPair.of(settings, keepalive, watchdog, dialect)
    return BirdSide.for_socket(settings, settings.bird_socket, keepalive, watchdog, dialect=dialect)
