"""`rhid run`: the loop that owns the clock, the signals and the logging of transitions.

One cycle:  poll HAProxy ─> step every proxy's state machine ─> evaluate the rules
            ─> rewrite the include files that changed ─> one ``configure`` ─> verify BIRD.

BIRD is kept in sync on its own schedule: a failed ``configure`` or an unreachable BIRD is
retried with backoff while the files (the desired state) stay current; BIRD's routes are checked
after every change, every `verify_every` seconds, after a reconnect, and whenever ``show status``
shows a reboot or reconfiguration rhid did not cause.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from rhid import __version__, birdwire, control, health, routefiles, service, status
from rhid.bird import KEEPALIVE_EVERY, BirdClient
from rhid.errors import (
    BirdProtocolError,
    BirdRefusedError,
    BirdUnavailableError,
    HAProxyProtocolError,
    HAProxyUnavailableError,
    RhidError,
    RuleError,
    RuleFileError,
)
from rhid.haproxy import EventStream, HAProxyClient, find_ring
from rhid.rules import (
    Channel,
    Network,
    Proxy,
    Route,
    Rule,
    RuleSet,
    evaluate,
    load_rules,
    render_rule,
    route_order,
)
from rhid.service import Notifier
from rhid.settings import DEFAULT_FAST_INTERVAL, Settings
from rhid.stats import Observation, ProxyStatus, has_state_change, is_known_status, is_noisy

log = structlog.get_logger("rhid")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
LOCK_NAME = ".rhid.lock"
BIRD_STATES = {True: "reachable", False: "unreachable", None: "not contacted"}
EVENT_GAP = 0.01  # seconds: event-triggered polls are at least this far apart (a log flood cannot spin us)
EVENT_READ_GAP = 0.01  # seconds: after a read of only traffic lines, the ring waits this long
NO_RING_RETRY = 60.0  # seconds between looks for a ring when HAProxy has none
# What a failed poll says about every proxy: short and constant, so that a new failure reason (logged
# once as haproxy.unreachable) is not a new status for thousands of proxies.
UNREACHABLE = ProxyStatus(Observation.DOWN, "HAProxy unreachable")
UNREADABLE = ProxyStatus(Observation.UNKNOWN, "HAProxy's reply unreadable")
CHEAP_FAILURE = 0.05  # seconds: a failed attempt faster than this is retried on the next cycle


def explain(rule: Rule | None, states: Mapping[Proxy, health.ProxyState]) -> str:
    """Why a rule decides as it does, in operator words: each target's health and HAProxy status."""
    if rule is None:
        return "no rule names this route any more"
    condition = rule.condition
    if not condition.operands:
        return f"{condition.aggregate.value}()"
    parts = []
    for proxy in condition.operands:
        state = states.get(proxy, health.ProxyState())
        parts.append(f"{proxy} is {state.health.value} (HAProxy last said {state.last_status!r})")
    return f"{condition.aggregate.value}: " + ", ".join(parts)


@dataclass
class Backoff:
    """Exponential retry delay: 0.5 s doubling to 30 s, reset on success."""

    delay: float = 0.0
    retry_at: float = 0.0

    def failed(self, now: float) -> float:
        self.delay = min(BACKOFF_MAX, self.delay * 2 if self.delay else BACKOFF_FIRST)
        self.retry_at = now + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0
        self.retry_at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.retry_at


@dataclass
class BirdSync:
    """What rhid knows about BIRD: whether it has applied the files, and its last seen status."""

    in_sync: bool = False
    status: birdwire.Status | None = None
    connections_seen: int = 0
    next_verify: float = 0.0
    reachable: bool | None = None
    missing_protocols: set[str] = field(default_factory=set)
    last_error: str | None = None
    backoff: Backoff = field(default_factory=Backoff)


class Daemon:
    """The running service: its rules, proxy states, the files it owns, and its two clients."""

    def __init__(self, settings: Settings, rules: RuleSet) -> None:
        self.settings = settings
        self.rules = rules
        self.thresholds = health.Thresholds(fall=settings.fall, rise=settings.rise)
        self.states: dict[Proxy, health.ProxyState] = {}
        self.haproxy = HAProxyClient(settings.haproxy_socket, settings.poll_timeout)
        self.notifier = Notifier()
        # A configure can take BIRD longer than the watchdog period (BIRD 1.6, large tables): keep
        # systemd's watchdog fed while waiting on BIRD; every wait is still bounded by its deadline.
        self.bird = BirdClient(
            settings.bird_socket,
            settings.bird_timeout,
            keepalive=self.notifier.keepalive,
            keepalive_every=min(KEEPALIVE_EVERY, (self.notifier.watchdog_period or KEEPALIVE_EVERY) / 3),
        )
        self.sync = BirdSync()
        self.haproxy_state: str | None = None
        self.haproxy_error: str | None = None
        self.unknown_statuses: set[tuple[Proxy, str]] = set()
        self.unreadable_since: float | None = None
        self.unconfirmed: list[tuple[str, str]] = []  # route events written but not yet seen in BIRD
        self.write_error: str | None = None
        self.reevaluate = True
        self.events: EventStream | None = None
        self.events_backoff = Backoff()
        self.events_note: str | None = None
        self.events_noisy = False
        self.events_paused_until = 0.0
        self.started = time.monotonic()
        self.rules_loaded = self.started
        self.reload_result = "none since start"
        self.cycles = 0
        on_disk = routefiles.read_announced(settings.bird_dir)
        self.written = on_disk.announced
        self.foreign = set(on_disk.foreign)  # files holding lines rhid did not write: rewrite them
        for warning in on_disk.warnings:
            log.warning("files.strange", detail=warning)
        log.info(
            "daemon.started",
            rules=len(rules.rules),
            routes=len(rules.routes),
            announced_from_files=self.announced(),
            haproxy_socket=settings.haproxy_socket,
            bird_socket=settings.bird_socket,
            bird_dir=str(settings.bird_dir),
        )
        self.since: dict[Route, float] = dict.fromkeys(rules.routes, self.started)

    # ---- HAProxy -> per-proxy health --------------------------------------------------------

    def observe(self, now: float) -> None:
        """Poll HAProxy once and step every referenced proxy's state machine."""
        proxies = self.rules.proxies
        from_haproxy = False  # statuses HAProxy printed, as opposed to rhid's words for a failed poll
        try:
            snapshot = self.haproxy.poll(proxies)
        except HAProxyUnavailableError as exc:
            self.haproxy_error = f"{exc.path}: {exc.reason}"
            self.unreadable_since = None
            self._haproxy_state("unreachable", reason=exc.reason, path=exc.path)
            observed = dict.fromkeys(proxies, UNREACHABLE)
        except HAProxyProtocolError as exc:
            self.haproxy_error = str(exc)
            self._haproxy_state("garbled", reason=str(exc))
            if self.unreadable_since is None:
                self.unreadable_since = now
            limit = self.settings.unreadable_down_after
            if now - self.unreadable_since >= limit:
                failed = ProxyStatus(Observation.DOWN, f"HAProxy's replies unreadable for over {limit:g} s")
            else:
                failed = UNREADABLE
            observed = dict.fromkeys(proxies, failed)
        else:
            if self.haproxy.reloaded_from is not None:
                log.info("haproxy.reloaded", old_pid=self.haproxy.reloaded_from, new_pid=snapshot.pid)
                self.close_events()  # the stream stays with the old, stopping worker: follow the new one
            self.unreadable_since = None
            self._haproxy_state("reachable", pid=snapshot.pid)
            observed = {proxy: snapshot.status_of(proxy) for proxy in proxies}
            from_haproxy = True
        for proxy, observed_status in observed.items():
            before = self.states.get(proxy, health.INITIAL)
            after, events = health.step(before, observed_status, now, self.thresholds)
            if after is before:
                continue  # settled and confirmed: the common case, kept cheap
            if from_haproxy and observed_status.status != before.last_status:
                self._check_known(proxy, observed_status)
            self.states[proxy] = after
            if after.health is not before.health:
                self.reevaluate = True
            for event in events:
                self._log_proxy_event(proxy, event, after)

    def _check_known(self, proxy: Proxy, observed: ProxyStatus) -> None:
        """Report, once per proxy and value, a status HAProxy 2.6 was never seen to print."""
        if observed.observation is Observation.ABSENT or is_known_status(proxy.kind, observed.status):
            return
        if (proxy, observed.status) not in self.unknown_statuses:
            self.unknown_statuses.add((proxy, observed.status))
            log.warning("haproxy.unknown_status", proxy=str(proxy), status=observed.status, counts_as="down")

    def _haproxy_state(self, state: str, **fields: str) -> None:
        if state != self.haproxy_state:
            level = log.info if state == "reachable" else log.error
            level(f"haproxy.{state}", **fields)
            self.haproxy_state = state

    @staticmethod
    def _log_proxy_event(proxy: Proxy, event: health.Event, state: health.ProxyState) -> None:
        fields: dict[str, object] = {
            "proxy": str(proxy),
            "status": state.last_status,
            "transitions": state.transitions,
        }
        if isinstance(event, health.WentUp):
            log.info("proxy.up", **fields)
        elif isinstance(event, health.WentDown):
            log.warning("proxy.down", **fields)
        elif isinstance(event, health.Vanished):
            log.warning("proxy.vanished", **fields, keeps=state.health.value)
        else:
            log.warning("proxy.never_seen", **fields, counts_as="down")

    def poll_interval(self) -> float:
        """The fast interval while a proxy is between states (see Settings.fast_interval), else --interval."""
        fast = self.settings.fast_interval
        if fast is None and self.events is not None:
            fast = DEFAULT_FAST_INTERVAL
        if fast is not None and any(health.in_transition(state) for state in self.states.values()):
            return min(fast, self.settings.interval)
        return self.settings.interval

    # ---- HAProxy's event ring: a wake-up signal ----------------------------------------------

    def _events_note(self, note: str, **fields: str) -> None:
        if note != self.events_note:
            self.events_note = note
            (log.info if note == "streaming" else log.warning)(f"haproxy.events_{note}", **fields)

    def ensure_events(self, now: float) -> None:
        """Open the event stream when configured, not open, and due (with backoff after failures)."""
        setting = self.settings.events
        if setting == "none" or self.events is not None or not self.events_backoff.ready(now):
            return
        if self.haproxy.master:
            self._events_note("unavailable", reason="the master CLI does not stream events: polling only")
            self.events_backoff.retry_at = float("inf")
            return
        try:
            ring = (
                setting
                if setting != "auto"
                else find_ring(self.settings.haproxy_socket, self.settings.poll_timeout)
            )
            if ring is None:
                self._events_note("unavailable", reason="HAProxy has no log ring: polling only")
                self.events_backoff.retry_at = now + NO_RING_RETRY
                return
            self.events = EventStream(self.settings.haproxy_socket, ring, self.settings.poll_timeout)
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            self._events_note("unavailable", reason=str(exc))
            self.events_backoff.failed(now)
            return
        self._events_note("streaming", ring=ring)

    def read_events(self, now: float) -> bool:
        """Read the stream; True when a line says a server, backend or frontend changed.

        A read without a state change (traffic logs in the ring) pauses reading for EVENT_READ_GAP,
        so a busy ring costs at most 1/EVENT_READ_GAP reads a second however many lines it carries.
        """
        if self.events is None:
            return False
        try:
            block = self.events.read()
        except (HAProxyUnavailableError, HAProxyProtocolError) as exc:
            self.close_events()
            self._events_note("unavailable", reason=str(exc))
            self.events_backoff.failed(now)
            return False
        self.events_backoff.succeeded()
        if block and not self.events_noisy and is_noisy(block):
            self.events_noisy = True
            log.warning(
                "haproxy.events_noisy",
                ring=self.events.ring,
                hint="this ring carries traffic logs (level info); give rhid a dedicated ring at level "
                "notice: see the README, 'Event wake-up'",
            )
        if has_state_change(block):
            return True
        self.events_paused_until = now + EVENT_READ_GAP
        return False

    def close_events(self) -> None:
        """Drop the event stream; the loop reopens it."""
        if self.events is not None:
            self.events.close()
            self.events = None

    # ---- rules -> files ---------------------------------------------------------------------

    def health_map(self) -> dict[Proxy, bool | None]:
        """Each proxy the rules name, with its health: True, False, or None while unknown (never polled,
        or only unreadable replies so far)."""
        states = self.states
        return {proxy: health.is_up(states.get(proxy, health.INITIAL)) for proxy in self.rules.proxies}

    def desired(self) -> dict[Channel, frozenset[Network]]:
        """What the files should say now: the rules' verdicts, unknowns held, stale channels empty."""
        held = {
            Route(channel.table, prefix) for channel, prefixes in self.written.items() for prefix in prefixes
        }
        desired = dict.fromkeys(self.written, frozenset[Network]())
        desired.update(evaluate(self.rules, self.health_map(), held))
        return desired

    def write_changes(self, desired: Mapping[Channel, frozenset[Network]], reason: str | None = None) -> int:
        """Rewrite each include file whose routes changed; log every route that moved, and why."""
        changed = 0
        for channel, prefixes in sorted(desired.items()):
            before = self.written.get(channel)
            if before == prefixes and channel not in self.foreign:
                continue
            path = self.settings.bird_dir / routefiles.file_name(channel)
            try:
                routefiles.ensure_directory(self.settings.bird_dir)  # someone may have removed it
                routefiles.write_atomically(path, routefiles.render_routes(prefixes))
            except OSError as exc:
                # A full or broken /run: the old file stays (BIRD keeps its routes); retry next cycle.
                if self.write_error != str(exc):
                    log.error("files.write_failed", path=str(path), reason=str(exc))
                self.write_error = str(exc)
                self.reevaluate = True  # try again next cycle, even if no proxy changes
                continue
            self.write_error = None
            self.foreign.discard(channel)
            self.written[channel] = prefixes
            changed += 1
            before = before or frozenset()
            for prefix, event in [(p, "route.announced") for p in prefixes - before] + [
                (p, "route.withdrawn") for p in before - prefixes
            ]:
                route = Route(channel.table, prefix)
                self.since[route] = time.monotonic()
                rule = self.rules.by_route.get(route)
                log.info(
                    event,
                    prefix=str(prefix),
                    table=channel.table,
                    rule_line=rule.line if rule else None,
                    reason=reason or explain(rule, self.states),
                    bird="file written; bird.confirmed follows once BIRD announces it",
                )
                self.unconfirmed.append((event, str(route)))
        if changed:
            self.sync.in_sync = False
            self.sync.backoff.succeeded()  # a new desired state is worth trying at once
        return changed

    # ---- files -> BIRD ----------------------------------------------------------------------

    def sync_bird(self, now: float) -> None:
        """Make BIRD apply the files if it has not, and check what it really announces."""
        if not self.sync.backoff.ready(now):
            return
        started = time.monotonic()
        try:
            bird_status = birdwire.parse_status(self.bird.request(birdwire.SHOW_STATUS))
            fresh = self.bird.connections != self.sync.connections_seen
            self.sync.connections_seen = self.bird.connections
            self._bird_reachable(True)
            if not self.sync.in_sync:
                converged = self.apply(now, "files changed")
            else:
                converged = self.check(now, bird_status, fresh)
            if converged:
                self.sync.backoff.succeeded()
                self.sync.last_error = None
            else:
                self.sync.last_error = "BIRD's routes differ from rhid's files after configure"
                delay = self.sync.backoff.failed(now)
                log.error(
                    "bird.not_converged",
                    hint="see bird.mismatch; is bird.conf including rhid's files?",
                    retry_in=delay,
                )
                self.sync.in_sync = False
        except BirdUnavailableError as exc:
            self.sync.last_error = f"{exc.path}: {exc.reason}"
            self._bird_reachable(False, reason=exc.reason)
            if time.monotonic() - started > CHEAP_FAILURE:
                self.sync.backoff.failed(now)  # it cost us a timeout: do not block every cycle on it
            # else: refused or missing socket costs microseconds; try again next cycle (BIRD restarts
            # are then healed within one poll)
        except BirdProtocolError as exc:
            self.sync.last_error = str(exc)
            log.error("bird.garbled", reason=str(exc))
            self.bird.close()
            self.sync.backoff.failed(now)
        except BirdRefusedError as exc:
            self.sync.last_error = str(exc)
            if exc.code == birdwire.ACCESS_DENIED and self.cycles == 0:
                raise FatalError(
                    f"BIRD refused configure on {self.settings.bird_socket} (8007 access denied): the socket "
                    "is restricted (birdc -r). rhid needs BIRD's unrestricted control socket."
                ) from None
            delay = self.sync.backoff.failed(now)
            if exc.code in {birdwire.SYNTAX_ERROR, birdwire.NOT_A_PROTOCOL}:
                log.critical(
                    "bird.bug",
                    code=exc.code,
                    bird_says=exc.message,
                    hint="rhid sent a command BIRD did not understand: please report this as a bug in rhid",
                )
            else:
                log.error("bird.refused", code=exc.code, bird_says=exc.message, retry_in=delay)

    def check(self, now: float, bird_status: birdwire.Status, fresh: bool) -> bool:
        """Verify BIRD when it reconnected, its status changed, or a check is due; re-apply if it
        differs. True when BIRD matches the files."""
        changed = bird_status != self.sync.status
        if not (fresh or changed or now >= self.sync.next_verify):
            return True
        why = "reconnected" if fresh else "status changed" if changed else "periodic"
        if self.verify(now, why):
            self.sync.status = bird_status  # seen and checked: an operator's configure is not news twice
            return True
        return self.apply(now, f"re-apply ({why})")

    def apply(self, now: float, why: str) -> bool:
        """``configure``, then verify. True when BIRD matches the files (or is still applying them)."""
        code = self.configure(now)
        log.debug("bird.configured", code=code, why=why)
        if code != 3:  # 0004/0005: accepted, still in progress; verify on the next cycle
            self.sync.next_verify = now
            return True
        return self.verify(now, "after configure")

    def _bird_reachable(self, reachable: bool, **fields: str) -> None:
        if reachable != self.sync.reachable:
            if reachable:
                log.info("bird.reachable", greeting=self.bird.greeting)
            else:
                log.error("bird.unreachable", **fields)
            self.sync.reachable = reachable

    def configure(self, now: float) -> int:
        """One ``configure``: BIRD re-reads its config and rhid's files. Returns BIRD's success code."""
        reply = self.bird.request(birdwire.CONFIGURE, timeout=self.settings.configure_timeout)
        if reply.code not in birdwire.CONFIGURE_DONE:
            raise BirdRefusedError(reply.code, reply.text)
        self.sync.in_sync = True
        self.sync.status = birdwire.parse_status(self.bird.request(birdwire.SHOW_STATUS))
        self.sync.next_verify = now + self.settings.verify_every
        return reply.code

    def verify(self, now: float, why: str) -> bool:
        """Compare each protocol's routes in BIRD with rhid's files. True when they all match."""
        self.sync.next_verify = now + self.settings.verify_every
        matches = True
        for channel in sorted(self.rules.channels):
            reply = self.bird.request(birdwire.show_route_command(channel.protocol))
            if birdwire.is_unknown_protocol(reply):
                if channel.protocol not in self.sync.missing_protocols:
                    log.error(
                        "bird.protocol_missing",
                        protocol=channel.protocol,
                        hint="add the output of `rhid bird-config` to bird.conf, then `birdc configure`",
                    )
                    self.sync.missing_protocols.add(channel.protocol)
                continue
            self.sync.missing_protocols.discard(channel.protocol)
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

    # ---- the loop ---------------------------------------------------------------------------

    def cycle(self, now: float) -> None:
        """One complete cycle: HAProxy read, files written, BIRD reconciled; then tell systemd."""
        self.observe(now)
        if self.reevaluate:  # routes can only move when a proxy's health or the rules changed
            self.reevaluate = False
            self.write_changes(self.desired())
        self.sync_bird(now)
        self.cycles += 1
        self.notifier.status(self.summary())
        if self.cycles == 1:
            self.notifier.send("READY=1")
            log.info("daemon.ready", status=self.summary())
        self.notifier.send("WATCHDOG=1")  # only ever after a completed cycle: a hung loop gets restarted

    def announced(self) -> int:
        """How many routes rhid's files announce right now."""
        return sum(map(len, self.written.values()))

    def summary(self) -> str:
        """The one-line STATUS= text."""
        announced = self.announced()
        total = len(self.rules.routes)
        bird = BIRD_STATES[self.sync.reachable]
        text = (
            f"{announced} announced, {max(total - announced, 0)} withdrawn; "
            f"HAProxy {self.haproxy_state or 'not polled'}; "
            f"BIRD {bird}{'' if self.sync.in_sync else ', not in sync'}"
        )
        if self.reload_result.startswith("failed"):
            text += "; reload failed, old rules kept"
        return text

    def reload(self) -> None:
        """Re-read the rules; on any error keep everything as it is and say where the file is wrong."""
        self.notifier.send("RELOADING=1")
        try:
            rules = load_rules(self.settings.rules_path, allow_empty=self.settings.allow_empty)
        except (RuleError, RuleFileError) as exc:
            errors = [d.render() for d in exc.diagnostics] if isinstance(exc, RuleError) else [str(exc)]
            self.reload_result = f"failed at {_wall(time.monotonic())}: {errors[0].splitlines()[0]}"
            log.error("rules.reload_failed", errors=errors, kept_rules=len(self.rules.rules))
        else:
            now = time.monotonic()
            for route in rules.routes:
                self.since.setdefault(route, now)
            self.rules = rules
            self.rules_loaded = now
            self.states = {proxy: state for proxy, state in self.states.items() if proxy in rules.proxies}
            self.reevaluate = True
            self.reload_result = f"ok at {_wall(now)}"
            log.info("rules.reloaded", rules=len(rules.rules), routes=len(rules.routes))
        self.notifier.status(self.summary())
        self.notifier.send("READY=1")

    def shut_down(self) -> None:
        """Apply --on-stop (withdraw everything: empty files + configure; or hold), except that a
        stop systemd does as half of a restart applies --on-restart (default hold: no flap)."""
        self.notifier.send("STOPPING=1")
        action = self.settings.on_stop
        if action == "withdraw" and self.settings.on_restart == "hold" and service.restarting():
            action = "hold"
            log.info("daemon.restarting", on_restart="hold")
        if action == "hold":
            log.info("daemon.stopping", on_stop="hold", announced=self.announced())
            return
        self.write_changes(
            dict.fromkeys(self.written, frozenset[Network]()), reason="rhid stopping (--on-stop withdraw)"
        )
        try:
            self.configure(time.monotonic())
            log.info("daemon.stopping", on_stop="withdraw", bird="configured")
        except (BirdUnavailableError, BirdProtocolError, BirdRefusedError) as exc:
            log.error(
                "daemon.stopping", on_stop="withdraw", bird="not reached: files emptied", reason=str(exc)
            )
        finally:
            self.bird.close()

    # ---- rhid status ------------------------------------------------------------------------

    def status_document(self, wanted: Network | None) -> dict[str, Any]:
        """Everything `rhid status` shows: peers, rules, and every route with its reasons."""
        routes = []
        up = self.health_map()
        for route in sorted(self.rules.routes, key=route_order):
            if wanted is not None and not status.matches(route.prefix, wanted):
                continue
            rule = self.rules.by_route[route]
            routes.append(
                {
                    "prefix": str(route.prefix),
                    "table": route.table,
                    "protocol": route.channel.protocol,
                    "rule_line": rule.line,
                    "rule": render_rule(rule),
                    "announced": route.prefix in self.written.get(route.channel, frozenset()),
                    "since": _wall(self.since.get(route, self.started)),
                    "verdict": rule.condition.verdict(up),
                    "targets": [self._target(proxy) for proxy in rule.condition.operands],
                }
            )
        announced = self.announced()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started": _wall(self.started),
            "status": self.summary(),
            "rules": {
                "path": self.settings.rules_path,
                "count": len(self.rules.rules),
                "loaded": _wall(self.rules_loaded),
                "reload": self.reload_result,
            },
            "haproxy": {
                "socket": self.settings.haproxy_socket,
                "state": self.haproxy_state or "not polled",
                "pid": self.haproxy.pid,
                "last_error": self.haproxy_error if self.haproxy_state != "reachable" else None,
                "events": {
                    "state": self.events_note or "not started",
                    "ring": self.events.ring if self.events is not None else None,
                    "reads": self.events.reads if self.events is not None else 0,
                    "bytes": self.events.received if self.events is not None else 0,
                },
            },
            "bird": {
                "socket": self.settings.bird_socket,
                "state": {True: "reachable", False: "unreachable", None: "not contacted"}[
                    self.sync.reachable
                ],
                "greeting": self.bird.greeting,
                "in_sync": self.sync.in_sync,
                "missing_protocols": sorted(self.sync.missing_protocols),
                "last_error": self.sync.last_error,
            },
            "announced": announced,
            "withdrawn": max(len(self.rules.routes) - announced, 0),
            "routes": routes,
        }

    def _target(self, proxy: Proxy) -> dict[str, Any]:
        state = self.states.get(proxy, health.ProxyState())
        return {
            "proxy": str(proxy),
            "health": state.health.value,
            "haproxy_status": state.last_status,
            "since": _wall(state.since) if state.health is not health.Health.UNKNOWN else None,
            "down_count": state.down_count,
            "up_count": state.up_count,
            "fall": self.thresholds.fall,
            "rise": self.thresholds.rise,
        }

    def answer(self, request: bytes) -> bytes:
        """The reply to one `rhid status` request line."""
        parsed = status.parse_request(request)
        document = {"error": parsed} if isinstance(parsed, str) else self.status_document(parsed)
        return json.dumps(document, indent=1).encode() + b"\n"

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Cycle every interval (faster while a proxy is between states, at once on an HAProxy event)
        until SIGTERM or SIGINT; SIGHUP reloads; answer `rhid status`."""
        path = self.settings.bird_dir / status.SOCKET_NAME
        with _signals() as signals, control.control_socket(path) as server:
            next_tick = last_cycle = time.monotonic()
            try:
                while True:
                    now = time.monotonic()
                    if now >= next_tick:
                        last_cycle = now
                        self.cycle(now)
                        next_tick = max(last_cycle + self.poll_interval(), time.monotonic())
                    self.ensure_events(time.monotonic())
                    readers: list[Any] = [signals]
                    writers: list[Any] = []
                    wake = next_tick
                    if server is not None:
                        readers += server.readers()
                        writers += server.writers()
                        wake = min(wake, server.next_deadline() or wake)
                    if self.events is not None:
                        if time.monotonic() >= self.events_paused_until:
                            readers.append(self.events)
                        else:
                            wake = min(wake, self.events_paused_until)
                    timeout = max(0.0, wake - time.monotonic())
                    ready, writable, _ = select.select(readers, writers, [], timeout)
                    if (
                        self.events is not None
                        and self.events in ready
                        and self.read_events(time.monotonic())
                    ):
                        next_tick = min(next_tick, last_cycle + EVENT_GAP)
                    if server is not None:
                        server.serve(ready, writable, time.monotonic(), self.answer)
                    for signum in _drain(signals) if signals in ready else []:
                        if signum == signal.SIGHUP:
                            self.reload()
                            next_tick = time.monotonic()
                        elif signum in {signal.SIGTERM, signal.SIGINT}:
                            self.shut_down()
                            return 0
            finally:
                self.close_events()


def _wall(monotonic: float) -> str:
    """A monotonic instant as local ISO time, for people."""
    wall = time.time() - (time.monotonic() - monotonic)
    return datetime.datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")


@contextmanager
def _signals() -> Iterator[socket.socket]:
    """Deliver SIGTERM/SIGINT/SIGHUP through a socketpair, so waiting for the next tick wakes at once."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield reader
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reader.close()
        writer.close()


def _drain(reader: socket.socket) -> list[int]:
    """The signal numbers waiting in the wake-up socket."""
    try:
        return list(reader.recv(64))
    except BlockingIOError:
        return []


class AlreadyRunningError(RhidError):
    """Another rhid holds the lock of this state directory."""


class FatalError(RhidError):
    """A condition rhid cannot work around; the operator must act (the message says how)."""


def check_bird_access(settings: Settings) -> None:
    """At start-up, a BIRD socket we may not open is fatal (B8); a missing or stopped BIRD is not (B1)."""
    client = BirdClient(settings.bird_socket, settings.bird_timeout)
    try:
        client.connect()
    except BirdUnavailableError as exc:
        if exc.kind == "permission":
            raise FatalError(f"cannot use BIRD's control socket {exc.path}: {exc.reason}") from None
    except BirdProtocolError:
        pass  # the loop reports it and retries
    finally:
        client.close()


@contextmanager
def instance_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` for the life of the process: one rhid per state directory."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunningError(
                f"another rhid (pid {other}) already runs with --bird-dir {directory}; "
                "stop it first (systemctl stop hapee-extras-rhi) or use another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def run(settings: Settings) -> int:
    """Validate the rules (exit 1 before touching BIRD if they are wrong), then serve."""
    try:
        rules = load_rules(settings.rules_path, allow_empty=settings.allow_empty)
    except RuleError as exc:
        log.error("rules.invalid", errors=[d.render() for d in exc.diagnostics])
        print(exc.render(), file=sys.stderr)
        return 1
    except RuleFileError as exc:
        log.error("rules.unreadable", error=str(exc))
        return 3
    try:
        check_bird_access(settings)
        routefiles.ensure_directory(settings.bird_dir)
        with instance_lock(settings.bird_dir):
            return Daemon(settings, rules).run()
    except (AlreadyRunningError, FatalError) as exc:
        log.critical("daemon.cannot_run", reason=str(exc))
        print(f"rhid: {exc}", file=sys.stderr)
        return 1
