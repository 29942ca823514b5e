"""`rhid run`: the loop that owns the clock, the signals and the logging of transitions.

One cycle:  poll HAProxy ─> step every proxy's state machine ─> evaluate the rules
            ─> rewrite the include files that changed ─> one ``configure`` ─> verify BIRD.

BIRD is kept in sync on its own schedule: a failed ``configure`` or an unreachable BIRD is
retried with backoff while the files (the desired state) stay current; BIRD's routes are checked
after every change, every `verify_every` seconds, after a reconnect, and whenever ``show status``
shows a reboot or reconfiguration rhid did not cause.
"""

from __future__ import annotations

import select
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from rhid import birdwire, health, routefiles
from rhid.bird import BirdClient
from rhid.errors import (
    BirdProtocolError,
    BirdRefusedError,
    BirdUnavailableError,
    HAProxyProtocolError,
    HAProxyUnavailableError,
    RuleError,
    RuleFileError,
)
from rhid.haproxy import HAProxyClient
from rhid.rules import Channel, Network, Proxy, Route, Rule, RuleSet, evaluate, load_rules
from rhid.settings import Settings
from rhid.stats import Observation, ProxyStatus

log = structlog.get_logger("rhid")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
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
        parts.append(f"{proxy} is {state.health.value} ({state.last_status})")
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
    backoff: Backoff = field(default_factory=Backoff)


class Daemon:
    """The running service: its rules, proxy states, the files it owns, and its two clients."""

    def __init__(self, settings: Settings, rules: RuleSet) -> None:
        self.settings = settings
        self.rules = rules
        self.thresholds = health.Thresholds(fall=settings.fall, rise=settings.rise)
        self.states: dict[Proxy, health.ProxyState] = {}
        self.haproxy = HAProxyClient(settings.haproxy_socket, settings.poll_timeout)
        self.bird = BirdClient(settings.bird_socket, settings.bird_timeout)
        self.sync = BirdSync()
        self.haproxy_state: str | None = None
        routefiles.ensure_directory(settings.bird_dir)
        self.written, warnings = routefiles.read_announced(settings.bird_dir)
        for warning in warnings:
            log.warning("files.strange", detail=warning)
        log.info(
            "daemon.started",
            rules=len(rules.rules),
            routes=len(rules.routes),
            announced_from_files=sum(len(prefixes) for prefixes in self.written.values()),
            haproxy_socket=settings.haproxy_socket,
            bird_socket=settings.bird_socket,
            bird_dir=str(settings.bird_dir),
        )

    # ---- HAProxy -> per-proxy health --------------------------------------------------------

    def observe(self, now: float) -> None:
        """Poll HAProxy once and step every referenced proxy's state machine."""
        proxies = self.rules.proxies
        try:
            snapshot = self.haproxy.poll(proxies)
        except HAProxyUnavailableError as exc:
            self._haproxy_state("unreachable", reason=exc.reason, path=exc.path)
            failed = ProxyStatus(Observation.DOWN, f"HAProxy unreachable: {exc.reason}")
            observed = dict.fromkeys(proxies, failed)
        except HAProxyProtocolError as exc:
            self._haproxy_state("garbled", reason=str(exc))
            observed = dict.fromkeys(proxies, ProxyStatus(Observation.UNKNOWN, "unreadable reply"))
        else:
            self._haproxy_state("reachable", pid=snapshot.pid)
            observed = {proxy: snapshot.status_of(proxy) for proxy in proxies}
        for proxy, status in observed.items():
            before = self.states.get(proxy, health.ProxyState())
            after, events = health.step(before, status, now, self.thresholds)
            self.states[proxy] = after
            for event in events:
                self._log_proxy_event(proxy, event, after)

    def _haproxy_state(self, state: str, **fields: str) -> None:
        if state != self.haproxy_state:
            level = log.info if state == "reachable" else log.error
            level(f"haproxy.{state}", **fields)
            self.haproxy_state = state

    @staticmethod
    def _log_proxy_event(proxy: Proxy, event: health.Event, state: health.ProxyState) -> None:
        fields = {"proxy": str(proxy), "status": state.last_status}
        if isinstance(event, health.WentUp):
            log.info("proxy.up", **fields)
        elif isinstance(event, health.WentDown):
            log.warning("proxy.down", **fields)
        elif isinstance(event, health.Vanished):
            log.warning("proxy.vanished", **fields, keeps=state.health.value)
        else:
            log.warning("proxy.never_seen", **fields, counts_as="down")

    # ---- rules -> files ---------------------------------------------------------------------

    def desired(self) -> dict[Channel, frozenset[Network]]:
        """What the files should say now: the rules' verdicts, unknowns held, stale channels empty."""
        up = {proxy: health.is_up(state) for proxy, state in self.states.items()}
        held = {
            Route(channel.table, prefix) for channel, prefixes in self.written.items() for prefix in prefixes
        }
        desired = dict.fromkeys(self.written, frozenset[Network]())
        desired.update(evaluate(self.rules, up, held))
        return desired

    def write_changes(self, desired: Mapping[Channel, frozenset[Network]], reason: str | None = None) -> int:
        """Rewrite each include file whose routes changed; log every route that moved, and why."""
        changed = 0
        for channel, prefixes in sorted(desired.items(), key=lambda item: (item[0].table, item[0].family)):
            before = self.written.get(channel)
            if before == prefixes:
                continue
            path = self.settings.bird_dir / routefiles.file_name(channel)
            routefiles.write_atomically(path, routefiles.render_routes(prefixes))
            self.written[channel] = prefixes
            changed += 1
            before = before or frozenset()
            for prefix, event in [(p, "route.announced") for p in prefixes - before] + [
                (p, "route.withdrawn") for p in before - prefixes
            ]:
                route = Route(channel.table, prefix)
                rule = self.rules.by_route.get(route)
                log.info(
                    event,
                    prefix=str(prefix),
                    table=channel.table,
                    rule_line=rule.line if rule else None,
                    reason=reason or explain(rule, self.states),
                )
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
            status = birdwire.parse_status(self.bird.request(birdwire.SHOW_STATUS))
            fresh = self.bird.connections != self.sync.connections_seen
            self.sync.connections_seen = self.bird.connections
            self._bird_reachable(True)
            converged = True
            if not self.sync.in_sync:
                converged = self.apply(now, "files changed")
            elif fresh or status != self.sync.status or now >= self.sync.next_verify:
                why = (
                    "reconnected" if fresh else "status changed" if status != self.sync.status else "periodic"
                )
                converged = self.verify(now, why) or self.apply(now, f"re-apply ({why})")
            if converged:
                self.sync.backoff.succeeded()
            else:
                delay = self.sync.backoff.failed(now)
                log.error(
                    "bird.not_converged",
                    hint="see bird.mismatch; is bird.conf including rhid's files?",
                    retry_in=delay,
                )
                self.sync.in_sync = False
        except BirdUnavailableError as exc:
            self._bird_reachable(False, reason=exc.reason)
            if time.monotonic() - started > CHEAP_FAILURE:
                self.sync.backoff.failed(now)  # it cost us a timeout: do not block every cycle on it
            # else: refused or missing socket costs microseconds; try again next cycle (BIRD restarts
            # are then healed within one poll)
        except BirdProtocolError as exc:
            log.error("bird.garbled", reason=str(exc))
            self.bird.close()
            self.sync.backoff.failed(now)
        except BirdRefusedError as exc:
            delay = self.sync.backoff.failed(now)
            log.error("bird.refused", code=exc.code, bird_says=exc.message, retry_in=delay)

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
        for channel in sorted(self.rules.channels, key=lambda c: (c.table, c.family)):
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
        return matches

    # ---- the loop ---------------------------------------------------------------------------

    def cycle(self, now: float) -> None:
        """One complete cycle: HAProxy read, files written, BIRD reconciled."""
        self.observe(now)
        self.write_changes(self.desired())
        self.sync_bird(now)

    def reload(self) -> None:
        """Re-read the rules; on any error keep everything as it is and say where the file is wrong."""
        try:
            rules = load_rules(self.settings.rules_path, allow_empty=self.settings.allow_empty)
        except RuleError as exc:
            log.error("rules.reload_failed", errors=[d.render() for d in exc.diagnostics])
            return
        except RuleFileError as exc:
            log.error("rules.reload_failed", errors=[str(exc)])
            return
        self.rules = rules
        self.states = {proxy: state for proxy, state in self.states.items() if proxy in rules.proxies}
        log.info("rules.reloaded", rules=len(rules.rules), routes=len(rules.routes))

    def shut_down(self) -> None:
        """Apply --on-stop: withdraw everything (empty files + configure), or leave BIRD as it is."""
        if self.settings.on_stop == "hold":
            log.info("daemon.stopping", on_stop="hold", announced=sum(map(len, self.written.values())))
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

    def run(self) -> int:
        """Cycle every interval until SIGTERM or SIGINT; SIGHUP reloads the rules."""
        with _signals() as pending:
            next_tick = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= next_tick:
                    self.cycle(now)
                    next_tick = max(next_tick + self.settings.interval, time.monotonic())
                for signum in pending(max(0.0, next_tick - time.monotonic())):
                    if signum == signal.SIGHUP:
                        self.reload()
                        next_tick = time.monotonic()
                    elif signum in {signal.SIGTERM, signal.SIGINT}:
                        self.shut_down()
                        return 0


@contextmanager
def _signals() -> Iterator[_SignalWait]:
    """Deliver SIGTERM/SIGINT/SIGHUP through a socketpair, so waiting for the next tick wakes at once."""
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
    old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield _SignalWait(reader)
    finally:
        signal.set_wakeup_fd(old_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reader.close()
        writer.close()


class _SignalWait:
    """Wait up to a timeout for signals; returns the signal numbers that arrived."""

    def __init__(self, reader: socket.socket) -> None:
        self._reader = reader

    def __call__(self, timeout: float) -> list[int]:
        ready, _, _ = select.select([self._reader], [], [], timeout)
        if not ready:
            return []
        try:
            return list(self._reader.recv(64))
        except BlockingIOError:
            return []


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
        return 2
    return Daemon(settings, rules).run()
