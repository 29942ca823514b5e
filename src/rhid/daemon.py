"""`rhid run`: the loop. It owns the clock, the signals and sd_notify, and wires the rooms together:

    HAProxySide.observe ─> health.observe ─> plan.decide ─> BirdSide.apply
                                                       └──> status.document (rhid status)

Each cycle: poll HAProxy, step every proxy's hysteresis, re-plan when a proxy's health or the
rules changed, hand the plan to the BIRD side, tell systemd. Between cycles it waits on the
signals, the `rhid status` socket and HAProxy's event stream, whichever comes first.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import structlog

from rhid import __version__, bird, control, health, plan, routefiles, service, status
from rhid.errors import CannotRunError, RuleError, RuleFileError
from rhid.haproxy import HAProxySide
from rhid.instance import instance_lock
from rhid.model import Proxy
from rhid.reconcile import BirdSide, Withdrawal
from rhid.rules import RuleSet, load_rules
from rhid.settings import DEFAULT_FAST_INTERVAL, Settings

log = structlog.get_logger("rhid")

EVENT_GAP = 0.01  # seconds: event-triggered polls are at least this far apart (a log flood cannot spin us)
EXIT_NOT_CONFIRMED = 5  # stop with --on-stop withdraw: files emptied, BIRD did not confirm (in time)
EXIT_NOT_WITHDRAWN = 6  # stop with --on-stop withdraw: an include file could not be emptied
STOP_EXIT = {
    Withdrawal.CONFIRMED: 0,
    Withdrawal.UNCONFIRMED: EXIT_NOT_CONFIRMED,
    Withdrawal.NOT_ON_DISK: EXIT_NOT_WITHDRAWN,
}


class Daemon:
    """The running service: its rules, its proxies' health, the current plan, and its two edges."""

    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        haproxy: HAProxySide | None = None,
        bird_side: BirdSide | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.thresholds = health.Thresholds(fall=settings.fall, rise=settings.rise)
        self.notifier = service.Notifier()
        self.haproxy = haproxy or HAProxySide.of(settings)
        self.bird = bird_side or BirdSide.of(settings, self.notifier.keepalive, self.notifier.watchdog_period)
        self.states: Mapping[Proxy, health.ProxyState] = {}
        self.plan = plan.EMPTY
        self.replan = True  # routes can only move when a proxy's health or the rules changed
        self.started = self.rules_loaded = time.monotonic()
        self.named_since = dict.fromkeys(rules.routes, self.started)  # when a rule first named each route
        self.reload_result = "none since start"
        self.cycles = 0
        log.info(
            "daemon.started",
            rules=len(rules.rules),
            routes=len(rules.routes),
            announced_from_files=self.bird.count,
            haproxy_socket=settings.haproxy_socket,
            bird_socket=settings.bird_socket,
            bird_dir=str(settings.bird_dir),
        )

    def cycle(self, now: float) -> None:
        """One complete cycle: HAProxy read, health stepped, plan made, BIRD reconciled; tell systemd."""
        observed = self.haproxy.observe(self.rules.proxies, now)
        self.states, events, moved = health.observe(self.states, observed, now, self.thresholds)
        for proxy, event, state in events:
            name, level, extra = health.describe(event, state)
            getattr(log, level)(
                name, proxy=str(proxy), status=state.last_status, transitions=state.transitions, **extra
            )
        if moved or self.replan:
            self.plan = plan.decide(self.rules, self.states, self.bird.announced(), self.bird.owned, now)
        self.replan = not self.bird.apply(self.plan, now)  # a file not written: hand it over again
        self.cycles += 1
        self.notifier.status(self.summary())
        if self.cycles == 1:
            self.notifier.send("READY=1")
            log.info("daemon.ready", status=self.summary())
        self.notifier.send("WATCHDOG=1")  # only ever after a completed cycle: a hung loop gets restarted

    def poll_interval(self) -> float:
        """The fast interval while a proxy is between states (see Settings.fast_interval), else --interval."""
        fast = self.settings.fast_interval
        if fast is None and self.haproxy.streaming:
            fast = DEFAULT_FAST_INTERVAL
        if fast is not None and any(health.in_transition(state) for state in self.states.values()):
            return min(fast, self.settings.interval)
        return self.settings.interval

    def summary(self) -> str:
        """The one-line STATUS= text."""
        return status.summary(
            self.bird.count,
            len(self.rules.routes),
            self.haproxy.state,
            self.bird.report(),
            self.reload_result,
        )

    def reload(self, now: float) -> None:
        """Re-read the rules; on any error keep everything as it is and say where the file is wrong."""
        self.notifier.send("RELOADING=1")
        at = status.wall_time(now, now, time.time())
        try:
            rules = load_rules(self.settings.rules_path, allow_empty=self.settings.allow_empty)
        except (RuleError, RuleFileError) as exc:
            errors = [d.render() for d in exc.diagnostics] if isinstance(exc, RuleError) else [str(exc)]
            self.reload_result = f"failed at {at}: {errors[0].splitlines()[0]}"
            log.error("rules.reload_failed", errors=errors, kept_rules=len(self.rules.rules))
        else:
            self.rules, self.rules_loaded, self.replan = rules, now, True
            self.named_since = {route: self.named_since.get(route, now) for route in rules.routes}
            self.states = health.keep(self.states, rules.proxies)
            self.reload_result = f"ok at {at}"
            log.info("rules.reloaded", rules=len(rules.rules), routes=len(rules.routes))
        self.notifier.status(self.summary())
        self.notifier.send("READY=1")

    def shut_down(self, now: float) -> int:
        """Apply --on-stop (withdraw everything: empty files + configure; or hold), except that a
        stop systemd does as half of a restart applies --on-restart (default hold: no flap).

        A withdrawal is made durable first (the emptied files on disk: BIRD applies them at its
        next configure or start whatever happens next), then confirmed by BIRD within
        reconcile.STOP_BOUND seconds, well inside systemd's TimeoutStopSec. The exit status says
        how it went: 0 confirmed (or hold), EXIT_NOT_CONFIRMED, EXIT_NOT_WITHDRAWN."""
        self.notifier.send("STOPPING=1")
        action = self.settings.on_stop
        if action == "withdraw" and self.settings.on_restart == "hold" and service.restarting():
            action = "hold"
            log.info("daemon.restarting", on_restart="hold")
        if action == "hold":
            log.info("daemon.stopping", on_stop="hold", announced=self.bird.count)
            return 0
        final = plan.decide(self.rules, self.states, self.bird.announced(), self.bird.owned, now)
        outcome = self.bird.stop(final.withdrawn("rhid stopping (--on-stop withdraw)"), now)
        return STOP_EXIT[outcome]

    def answer(self, request: bytes) -> bytes:
        """The reply to one `rhid status` request line."""
        parsed = status.parse_request(request)
        if isinstance(parsed, str):
            return json.dumps({"error": parsed}).encode() + b"\n"
        facts = status.Facts(
            version=__version__,
            pid=os.getpid(),
            started=self.started,
            summary=self.summary(),
            rules=self.rules,
            rules_loaded=self.rules_loaded,
            reload_result=self.reload_result,
            plan=self.plan,
            since={**self.named_since, **self.bird.changed_at},
            thresholds=self.thresholds,
            haproxy=self.haproxy.report(),
            bird=self.bird.report(),
            now=time.monotonic(),
            wall_now=time.time(),
        )
        return json.dumps(status.document(facts, parsed), indent=1).encode() + b"\n"

    def run(self) -> int:
        """Cycle every interval (faster while a proxy is between states, at once on an HAProxy event)
        until SIGTERM or SIGINT; SIGHUP reloads; answer `rhid status`."""
        with (
            service.signals() as signals,
            control.control_socket(self.settings.bird_dir / status.SOCKET_NAME) as server,
        ):
            self.bird.watch(signals)  # a stop signal abandons any wait on BIRD (a slow configure)
            next_tick = last_cycle = time.monotonic()
            try:
                while True:
                    now = time.monotonic()
                    if now >= next_tick:
                        last_cycle = now
                        self.cycle(now)
                        now = time.monotonic()  # the cycle took time
                        next_tick = max(last_cycle + self.poll_interval(), now)
                    self.haproxy.ensure_stream(now)
                    readers: list[Any] = [signals]
                    writers: list[Any] = []
                    wake = next_tick
                    if server is not None:
                        readers += server.readers()
                        writers += server.writers()
                        wake = min(wake, server.next_deadline() or wake)
                    stream = self.haproxy.waitable(now)
                    if stream is not None:
                        readers.append(stream)
                    elif self.haproxy.streaming:
                        wake = min(wake, self.haproxy.paused_until)
                    ready, writable, _ = select.select(readers, writers, [], max(0.0, wake - now))
                    now = time.monotonic()  # after the wait
                    if stream is not None and stream in ready and self.haproxy.read_stream(now):
                        next_tick = min(next_tick, last_cycle + EVENT_GAP)
                    if server is not None:
                        server.serve(ready, writable, now, self.answer)
                    for signum in service.drain(signals) if signals in ready else []:
                        if signum == signal.SIGHUP:
                            self.reload(now)
                            next_tick = now
                        elif signum in {signal.SIGTERM, signal.SIGINT}:
                            return self.shut_down(now)
            finally:
                self.haproxy.close_stream()


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
        bird.check_access(settings.bird_socket, settings.bird_timeout)
        routefiles.ensure_directory(settings.bird_dir)
        with instance_lock(settings.bird_dir):
            return Daemon(settings, rules).run()
    except CannotRunError as exc:
        log.critical("daemon.cannot_run", reason=str(exc))
        print(f"rhid: {exc}", file=sys.stderr)
        return 1
