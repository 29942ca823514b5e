"""The BIRD side's conversation, sans I/O: what to ask BIRD next, given what the files hold and what
BIRD answered. Pure: no sockets, no clock (`now` is passed in), no logging (lines are handed back).

It is driven like h11's connection:

    reconciler.files_written(files, changed)   # the include files now hold this (the executor wrote them)
    reconciler.tick(now)                       # a cycle: time to look at BIRD again
    action = reconciler.next_action(now)       # Send(command) | Wait(until)
    reconciler.receive(Answer(reply) | Failure(...), now)

and an executor (`rhid.reconcile.BirdSide`) performs the actions: it writes the files, sends each
command on a socket that is one more fd in the loop's ``select``, and feeds back each reply or
failure. One command is in flight at a time; one ``configure`` at most.

Never two reconfigurations in flight: a ``configure`` is sent only right after ``show status`` said
``Daemon is up and running``, and at least `MIN_CONFIGURE_GAP` after the previous one ended. After
``0004``/``0005`` (BIRD 3 answers 0004 often) or while an operator's own ``configure`` runs, the
reconciler waits for a later round's ``show status`` and then sends one ``configure`` for all that
changed meanwhile (the files always hold the latest plan): a ``configure`` queued behind another
(``0005``) is what BIRD 3.3/3.4 can abort on.

After a ``configure``, only what changed is verified: each changed prefix with ``show route
<prefix> protocol P`` (a channel with more than `PREFIX_CHECKS` changes, or one BIRD differed on,
with a full listing). Every channel is listed in full after a reconnect, when ``show status`` shows
a reboot or reconfiguration rhid did not cause, and every `verify_every` seconds.

    phase      what happened                      next phase: what to do
    IDLE       tick (backoff ready)               STATUS: send show status
    STATUS     status, BIRD reconfiguring         IDLE (look again next tick)
    STATUS     status, files not applied          GAP: wait out the configure gap
    STATUS     status, check due                  VERIFY: list every channel
    STATUS     status, nothing due                IDLE (converged)
    GAP        the gap has passed                 CONFIGURE: rewrite differing files, send configure
    CONFIGURE  0003/0004/0005                     CONFIRM: send show status
    CONFIGURE  any other code                     IDLE, back off (8007 before any success: fatal)
    CONFIRM    status after 0004/0005             IDLE (verify once BIRD is up and running)
    CONFIRM    status, files changed meanwhile    GAP: configure again
    CONFIRM    status after 0003                  VERIFY: what changed
    VERIFY     listing, more to list              VERIFY: the next one
    VERIFY     listing, last one, all match       IDLE (converged)
    VERIFY     last one, differs, was a check     GAP: re-apply (then verify what differed)
    VERIFY     last one, differs after configure  IDLE, back off: not converged
    any        failure (unreachable, timeout)     IDLE, back off when it cost time
    any        garbage                            IDLE, back off; the executor reconnects
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from rhid import birdwire
from rhid.backoff import Backoff
from rhid.dialect import BIRD2, Dialect
from rhid.errors import BirdProtocolError
from rhid.model import BirdState, Channel, LogLine, Network

MIN_CONFIGURE_GAP = 0.1  # seconds between two configures (BIRD 3.4 survived storms with this gap)
LONG_RECONFIGURATION = 10.0  # seconds: BIRD reconfiguring longer than this is a problem to page for
PREFIX_CHECKS = 16  # changed prefixes of one channel verified one by one; more: the whole listing


class Phase(enum.Enum):
    """Where the conversation with BIRD stands."""

    IDLE = "idle"  # nothing in flight; a tick starts a round
    STATUS = "status"  # show status sent: a round's first look
    GAP = "gap"  # a configure is due: waiting out MIN_CONFIGURE_GAP
    CONFIGURE = "configure"  # configure sent
    CONFIRM = "confirm"  # show status sent after an accepted configure
    VERIFY = "verify"  # show route sent, for the first of the checks left


class Trouble(enum.Enum):
    """Why a command got no reply."""

    UNAVAILABLE = "unavailable"  # no socket, refused, closed, timed out
    GARBLED = "garbled"  # the bytes were not BIRD's protocol
    INTERRUPTED = "interrupted"  # a stop signal abandoned the wait


@dataclass(frozen=True, slots=True)
class Send:
    """Send `command`; before a configure, first rewrite the files of `rewrite` from the plan (and
    any file someone else changed)."""

    command: str
    timeout: float | None = None
    rewrite: frozenset[Channel] = frozenset()


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to send before `until` (math.inf: before the next tick or change of the files)."""

    until: float


Action = Send | Wait
IDLE = Wait(math.inf)


@dataclass(frozen=True, slots=True)
class Answer:
    """BIRD's complete reply, on the executor's `connection`-th connection (a new number: it
    reconnected), whose greeting was `greeting`."""

    reply: birdwire.Reply
    connection: int = 1
    greeting: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """No reply: why, in operator words, and whether it cost time (a timeout: worth a backoff)."""

    trouble: Trouble
    reason: str
    slow: bool = False


Result = Answer | Failure


@dataclass(frozen=True, slots=True)
class Check:
    """One verification: a whole channel (`prefix` None), or one prefix of it."""

    channel: Channel
    prefix: Network | None = None

    def command(self, dialect: Dialect) -> str:
        """The ``show route`` command of this check."""
        return dialect.show_route(self.channel, self.prefix)


@dataclass
class Round:
    """The round in progress: why it runs, whether a reconnect was seen, its checks."""

    why: str = "files changed"
    fresh: bool = False
    mode: str = "check"  # "check": a mismatch re-applies once; "after configure": it does not
    checks: list[Check] = field(default_factory=list)
    found: dict[Channel, str] = field(default_factory=dict)  # channels that differed, and how
    verified: set[Channel] = field(default_factory=set)
    code: int = 0  # the configure's reply code
    generation: int = 0  # the files' generation the configure applied
    changed: dict[Channel, set[Network] | None] = field(default_factory=dict)  # what it verifies


class Reconciler:
    """What BIRD should do next to hold what rhid's files hold, and what it has said so far."""

    def __init__(
        self,
        files: Mapping[Channel, Collection[Network]],
        *,
        path: str,
        verify_every: float,
        configure_timeout: float,
        dialect: Dialect = BIRD2,
    ) -> None:
        self.path = path
        self.dialect = dialect
        self.verify_every = verify_every
        self.configure_timeout = configure_timeout
        # each channel's prefixes, as the executor handed them (never changed after: a new file is a
        # new collection), not copied: 10,000 routes are not rebuilt for a change of one
        self.files: dict[Channel, Collection[Network]] = dict(files)
        self.generation = 0  # counts the changes of the files
        self.applied: int | None = None  # the generation BIRD last accepted a configure of
        self.changed: dict[Channel, set[Network] | None] = {}  # not verified since it changed (None: all)
        self.phase = Phase.IDLE
        self.round = Round()
        self.outgoing: Send | None = None
        self.gap_until = 0.0
        self.lines: list[LogLine] = []
        self.drop = False  # the executor should close its connection (garbage, or a failure)
        self.fatal: str | None = None
        self.status: birdwire.Status | None = None
        self.connections_seen = 0
        self.next_verify = 0.0
        self.full_check = True  # list every channel at the next verify (start, reconnect, periodic)
        self.state = BirdState.NOT_CONTACTED
        self.greeting = ""
        self.configured = False  # 8007 before a first successful configure is fatal: a restricted socket
        self.missing_protocols: set[str] = set()
        self.differing: dict[Channel, str] = {}  # channels whose routes in BIRD differ from the files
        self.mismatches = 0  # verifies in a row that found BIRD differing from the files
        self.reconfiguring = False  # BIRD is applying a configuration (0004, or show status says so)
        self.reconfiguring_since = 0.0
        self.last_sync = 0.0
        self.refused: str | None = None  # BIRD's refusal of the last configure, until one is accepted
        self.garbled: str | None = None
        self.last_configure = -MIN_CONFIGURE_GAP  # when the last configure ended
        self.last_error: str | None = None
        self.backoff = Backoff()
        self.unconfirmed: list[tuple[str, str]] = []  # (event, route) written, not yet seen in BIRD

    # ---- what the executor tells it -------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        """True when BIRD accepted a configure of the files as they are now."""
        return self.applied == self.generation

    def files_written(
        self,
        files: Mapping[Channel, Collection[Network]],
        moved: Mapping[Channel, frozenset[Network]],
        events: list[tuple[str, str]] | None = None,
    ) -> None:
        """The files now announce `files` (each channel's collection is kept, not copied: the
        executor hands a new one for a file it rewrites); `moved`: the prefixes each rewritten
        channel gained, lost or changed the attributes of (an empty set: rewritten as it was, from
        the plan). `events`: (event, route) to confirm."""
        self.files = dict(files)
        if not moved:
            return
        self.generation += 1
        self.backoff.succeeded()  # a new desired state is worth trying at once
        for channel, prefixes in moved.items():
            known = self.changed.get(channel, set())
            self.changed[channel] = None if known is None or not prefixes else known | prefixes
        self.unconfirmed.extend(events or ())

    def tick(self, now: float) -> None:
        """A cycle: start a round (show status) unless one runs or the backoff says wait."""
        if self.phase is not Phase.IDLE or not self.backoff.ready(now) or self.fatal is not None:
            return
        self.last_sync = now
        self.round = Round()
        self._send(Phase.STATUS, birdwire.SHOW_STATUS)

    def next_action(self, now: float) -> Action:
        """What to do now: a command to send (once), or how long nothing is to be done."""
        if self.phase is Phase.GAP:
            if now < self.gap_until:
                return Wait(self.gap_until)
            self.round.generation = self.generation
            self.round.changed = self.changed
            self.changed = {}
            rewrite = frozenset(self.differing)
            self._send(Phase.CONFIGURE, birdwire.CONFIGURE, self.configure_timeout, rewrite)
        outgoing, self.outgoing = self.outgoing, None
        return outgoing if outgoing is not None else IDLE

    def receive(self, result: Result, now: float) -> None:
        """What BIRD answered the command in flight (or why it did not)."""
        if isinstance(result, Failure):
            self._failed(result, now)
            return
        if result.connection != self.connections_seen:
            self.round.fresh = self.full_check = True
            self.connections_seen = result.connection
        self.greeting = result.greeting or self.greeting
        transition = TABLE.get(self.phase)
        if transition is None:
            raise AssertionError(f"a reply from BIRD with no command in flight (phase {self.phase.value})")
        try:
            transition(self, result.reply, now)
        except BirdProtocolError as exc:
            self._failed(Failure(Trouble.GARBLED, str(exc)), now)

    def take_lines(self) -> list[LogLine]:
        """The lines to log since the last call."""
        lines, self.lines = self.lines, []
        return lines

    # ---- the table's transitions ---------------------------------------------------------------

    def _on_status(self, reply: birdwire.Reply, now: float) -> None:
        status = birdwire.parse_status(reply)
        self._reachable()
        self.garbled = None
        if not status.running:
            if not self.reconfiguring:
                self._log("bird.reconfiguring", then="configure or verify once BIRD is up and running")
                self.reconfiguring_since = now
            self.reconfiguring = True
            self.phase = Phase.IDLE
            return
        if self.reconfiguring:
            self.reconfiguring = False
            self.next_verify = now  # it ended: see what it applied
        if status != self.status and self.status is not None:
            self.full_check = True  # someone else's configure or a reboot: anything may differ
        if now >= self.next_verify:
            self.full_check = True
        if not self.in_sync:
            self._configure(now, "files changed", "after configure")
            return
        changed = status != self.status
        fresh = self.round.fresh
        if not (fresh or changed or now >= self.next_verify):
            self._done()
            return
        self.round.why = "reconnected" if fresh else "status changed" if changed else "periodic"
        self.round.mode = "check"
        self.round.checks = [Check(channel) for channel in sorted(self.files)]
        self.full_check = True
        self.next_verify = now + self.verify_every
        self.status = status  # seen: an operator's configure is checked once, not every round
        self._verify_next()

    def _on_configure(self, reply: birdwire.Reply, now: float) -> None:
        self.last_configure = now
        if not self.dialect.accepted(reply.code):
            self._restore_changed()
            self._refused(reply, now)
            return
        self.refused = None
        self.configured = True
        self.applied = self.round.generation
        self.round.code = reply.code
        self._log("bird.configured", level="debug", code=reply.code, why=self.round.why)
        self.next_verify = now + self.verify_every
        self._send(Phase.CONFIRM, birdwire.SHOW_STATUS)

    def _on_confirm(self, reply: birdwire.Reply, now: float) -> None:
        self.status = birdwire.parse_status(reply)
        if self.round.code != birdwire.RECONFIGURED:  # 0004/0005: accepted, still in progress
            # (it was not reconfiguring: a configure is sent only right after "up and running")
            self.reconfiguring, self.reconfiguring_since = (
                True,
                now,
            )  # no configure, no verify until show status says it is done
            self.next_verify = now  # then verify everything
            self._done()
            return
        if not self.in_sync:  # the files changed while BIRD reconfigured: once more, for all of it
            self._restore_changed()
            self._configure(now, "files changed during configure", "after configure")
            return
        if self.full_check:
            self.next_verify = now + self.verify_every
        self.round.checks = self._changed_checks()
        self._verify_next()

    def _on_listing(self, reply: birdwire.Reply, now: float) -> None:
        check = self.round.checks.pop(0)
        channel = check.channel
        protocol = self.dialect.protocol(channel)
        if self.dialect.unknown_protocol(reply):
            if protocol not in self.missing_protocols:
                self._log(
                    "bird.protocol_missing",
                    level="error",
                    protocol=protocol,
                    hint="add the output of `rhid bird-config` to bird.conf, then `birdc configure`",
                )
                self.missing_protocols.add(protocol)
        else:
            self.missing_protocols.discard(protocol)
            self.round.verified.add(channel)
            held = self.files.get(channel, ())
            actual = self.dialect.routes_listed(reply, check.prefix)
            if check.prefix is None:
                expected = frozenset(held)
            else:
                expected = frozenset({check.prefix}) if check.prefix in held else frozenset()
            if actual != expected:
                self._mismatch(channel, expected, actual)
        if self.round.checks:
            self._verify_next()
            return
        self._verified(now)

    # ---- helpers of the transitions -------------------------------------------------------------

    def _send(
        self,
        phase: Phase,
        command: str,
        timeout: float | None = None,
        rewrite: frozenset[Channel] = frozenset(),
    ) -> None:
        self.phase = phase
        self.outgoing = Send(command, timeout, rewrite)

    def _configure(self, now: float, why: str, mode: str) -> None:
        """Go to GAP: a configure as soon as the gap since the last one has passed."""
        self.round.why, self.round.mode = why, mode
        self.phase = Phase.GAP
        self.gap_until = max(now, self.last_configure + MIN_CONFIGURE_GAP)

    def _changed_checks(self) -> list[Check]:
        """What a configure changed, to verify: each changed prefix, or whole channels (more than
        PREFIX_CHECKS changes, a rewrite, or a channel BIRD differed on)."""
        if self.full_check:
            return [Check(channel) for channel in sorted(self.files)]
        checks: list[Check] = []
        wanted = dict(self.round.changed)
        for channel in self.differing:
            wanted[channel] = None
        for channel in sorted(wanted):
            prefixes = wanted[channel]
            if prefixes is None or len(prefixes) > PREFIX_CHECKS:
                checks.append(Check(channel))
            else:
                ordered = sorted(prefixes, key=lambda p: (int(p.network_address), p.prefixlen))
                checks.extend(Check(channel, prefix) for prefix in ordered)
        return checks

    def _verify_next(self) -> None:
        if not self.round.checks:
            self._verified_now()
            return
        self._send(Phase.VERIFY, self.round.checks[0].command(self.dialect))

    def _verified_now(self) -> None:
        """A round with nothing to verify (no channel): as if everything matched."""
        self.differing = {}
        self.mismatches = 0
        self._done()

    def _mismatch(self, channel: Channel, expected: frozenset[Network], actual: frozenset[Network]) -> None:
        missing = sorted(map(str, expected - actual))
        unexpected = sorted(map(str, actual - expected))
        self.round.found[channel] = f"missing {sample(missing)}, unexpected {sample(unexpected)}"
        self._log(
            "bird.mismatch",
            level="warning",
            protocol=self.dialect.protocol(channel),
            why=self.round.why,
            missing=missing,
            unexpected=unexpected,
        )

    def _verified(self, now: float) -> None:
        found = self.round.found
        if self.full_check and not found:
            self.full_check = False
        self.differing = {
            **{c: d for c, d in self.differing.items() if c not in self.round.verified},
            **found,
        }
        self.mismatches = self.mismatches + 1 if found else 0
        if not self.differing and not self.missing_protocols and self.unconfirmed:
            self._log(
                "bird.confirmed",
                announced=[route for event, route in self.unconfirmed if event == "route.announced"],
                withdrawn=[route for event, route in self.unconfirmed if event == "route.withdrawn"],
            )
            self.unconfirmed.clear()
        if not found:
            self._done()
        elif self.round.mode == "check":
            self._configure(now, f"re-apply ({self.round.why})", "after configure")
            self.round.found, self.round.verified = {}, set()
        else:
            self.last_error = "BIRD's routes differ from rhid's files after configure"
            delay = self.backoff.failed(now)
            self._log(
                "bird.not_converged",
                level="error",
                hint="see bird.mismatch; is bird.conf including rhid's files?",
                retry_in=delay,
            )
            self.applied = None
            self.phase = Phase.IDLE

    def _done(self) -> None:
        self.backoff.succeeded()
        self.last_error = None
        self.phase = Phase.IDLE

    def _restore_changed(self) -> None:
        """A configure that did not take: what it was to verify is still to be verified."""
        for channel, prefixes in self.round.changed.items():
            known = self.changed.get(channel, set())
            self.changed[channel] = None if prefixes is None or known is None else known | prefixes
        self.round.changed = {}

    def _refused(self, reply: birdwire.Reply, now: float) -> None:
        self.refused = f"{reply.code:04d} {reply.text}"
        self.last_error = f"BIRD refused: {reply.code:04d} {reply.text}"
        self.phase = Phase.IDLE
        if reply.code == birdwire.ACCESS_DENIED and not self.configured:
            self.fatal = (
                f"BIRD refused configure on {self.path} (8007 access denied): the socket is "
                "restricted (birdc -r). rhid needs BIRD's unrestricted control socket."
            )
            return
        delay = self.backoff.failed(now)
        if reply.code in {birdwire.SYNTAX_ERROR, birdwire.NOT_A_PROTOCOL}:
            self._log(
                "bird.bug",
                level="critical",
                code=reply.code,
                bird_says=reply.text,
                hint="rhid sent a command BIRD did not understand: please report this as a bug in rhid",
            )
        else:
            self._log("bird.refused", level="error", code=reply.code, bird_says=reply.text, retry_in=delay)

    def _failed(self, failure: Failure, now: float) -> None:
        if self.phase is Phase.CONFIGURE:
            self.last_configure = now
        if self.phase in {Phase.CONFIGURE, Phase.CONFIRM, Phase.VERIFY, Phase.GAP}:
            self._restore_changed()
        self.phase = Phase.IDLE
        self.outgoing = None
        self.drop = True
        if failure.trouble is Trouble.INTERRUPTED:
            self._log("bird.interrupted", reason="stop signal while waiting on BIRD")
            self.applied = None  # whatever BIRD makes of the command, the loop withdraws next
            return
        if failure.trouble is Trouble.GARBLED:
            self.last_error = self.garbled = failure.reason
            self._log("bird.garbled", level="error", reason=failure.reason)
            self.backoff.failed(now)
            return
        self.last_error = f"{self.path}: {failure.reason}"
        if self.state is not BirdState.UNREACHABLE:
            self._log("bird.unreachable", level="error", reason=failure.reason)
            self.state = BirdState.UNREACHABLE
        if failure.slow:
            self.backoff.failed(now)  # it cost us a timeout: do not block every cycle on it
        # else: a refused or missing socket costs microseconds; try again next cycle (BIRD restarts
        # are then healed within one poll)

    def _reachable(self) -> None:
        if self.state is not BirdState.REACHABLE:
            self._log("bird.reachable", greeting=self.greeting)
            self.state = BirdState.REACHABLE

    def _log(self, name: str, level: str = "info", **fields: object) -> None:
        self.lines.append(LogLine(name, level, fields))

    # ---- what it reports -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a round runs."""
        return self.phase is not Phase.IDLE

    def long_reconfiguration(self) -> float | None:
        """How long BIRD has been reconfiguring, when longer than LONG_RECONFIGURATION."""
        lasted = self.last_sync - self.reconfiguring_since
        return lasted if self.reconfiguring and lasted > LONG_RECONFIGURATION else None


TABLE: Mapping[Phase, Callable[[Reconciler, birdwire.Reply, float], None]] = {
    Phase.STATUS: Reconciler._on_status,
    Phase.CONFIGURE: Reconciler._on_configure,
    Phase.CONFIRM: Reconciler._on_confirm,
    Phase.VERIFY: Reconciler._on_listing,
}


def sample(items: list[str], limit: int = 5) -> str:
    """A few items of a long list, for a one-line sentence."""
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
