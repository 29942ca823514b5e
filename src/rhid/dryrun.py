"""`rhid run --dry-run`: a BIRD side that performs nothing and says what it would have done (I/O:
it reads the live rhid's include files once, at start).

It takes the place of `rhid.reconcile.BirdSide` in the loop: it is handed every plan, compares it
with what the files would hold, and logs ``route.would_announce`` / ``route.would_withdraw`` for
each route the real BIRD side would move; it never writes a file and never opens BIRD's socket.
It starts from the routes the live rhid's files announce, so on a live node it shows what the new
rules would change there.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import structlog

from rhid import routefiles
from rhid.dialect import BIRD2, Dialect
from rhid.model import Attributes, BirdState, Channel, Route, Routes
from rhid.plan import Plan
from rhid.reconcile import BirdReport, Withdrawal, sorted_prefixes

log = structlog.get_logger("rhid")


class DryRunSide:
    """What rhid's files would hold, and what it would have told BIRD."""

    def __init__(self, directory: Path, dialect: Dialect = BIRD2) -> None:
        self.directory = directory
        self.dialect = dialect  # the BIRD the live rhid speaks to: its protocol names in rhid status
        self.written: dict[Channel, Routes] = dict(routefiles.read_announced(directory).routes)
        self.written_plan: Plan | None = None
        self.busy = False  # nothing is ever in flight

    def watch(self, interrupt: socket.socket) -> None:
        """Nothing to interrupt."""
        del interrupt

    def join_loop(self) -> None:
        """Nothing to select on."""

    def announced(self) -> dict[Route, Attributes]:
        """The routes the files would announce now, and what each carries."""
        return routefiles.announced_routes(self.written)

    @property
    def owned(self) -> frozenset[Channel]:
        """The channels with a file."""
        return frozenset(self.written)

    @property
    def count(self) -> int:
        """How many routes the files would announce."""
        return sum(map(len, self.written.values()))

    def apply(self, plan: Plan, now: float) -> bool:
        """Log each route the plan would move in the files; write nothing."""
        del now
        if plan is self.written_plan:
            return True
        for channel, routes in sorted(plan.files().items()):
            before = self.written.get(channel, {})
            if before == routes:
                continue
            for prefix in sorted_prefixes(routes.keys() - before.keys()):
                route = Route(channel.table, prefix)
                log.info(
                    "route.would_announce", prefix=str(prefix), table=channel.table, reason=plan.reason(route)
                )
            for prefix in sorted_prefixes(before.keys() - routes.keys()):
                route = Route(channel.table, prefix)
                log.info(
                    "route.would_withdraw", prefix=str(prefix), table=channel.table, reason=plan.reason(route)
                )
            self.written[channel] = routes
        self.written_plan = plan
        return True

    def stop(self, plan: Plan, now: float, bound: float = 0.0) -> Withdrawal:
        """A stop that would withdraw: logged like any plan; BIRD is not asked."""
        del bound
        self.apply(plan, now)
        log.info("daemon.stopping", on_stop="withdraw", bird="dry run: nothing was written or sent")
        return Withdrawal.CONFIRMED

    def waitable(self) -> None:
        """Never a command in flight."""

    def waitables(self) -> tuple[()]:
        """Never a connection to select on."""
        return ()

    def wake_at(self) -> float:
        """Never a deadline."""
        return math.inf

    def on_readable(self, now: float) -> None:
        """Nothing is read."""
        del now

    def on_time(self, now: float) -> None:
        """Nothing waits."""
        del now

    def report(self) -> BirdReport:
        """`rhid status` of a dry run: BIRD is not contacted, and that is no problem."""
        return BirdReport(
            socket="(dry run: not contacted)",
            state=BirdState.NOT_CONTACTED,
            greeting="",
            in_sync=True,
            missing_protocols=(),
            write_error=None,
            last_error=None,
            problems=(),
        )
