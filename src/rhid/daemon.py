"""`rhid run`: the loop. It owns the clock, the signals and sd_notify, and wires the rooms together:

    HAProxySide.observe ─> health.observe ─> plan.decide ─> BirdSide.apply (reconciler's actions)
                                                       └──> status.document (rhid status)

Each cycle: poll HAProxy, step every proxy's hysteresis, re-plan when a proxy's health, the rules
or the intents changed or a policy's `wake_at` came, log the plan's transitions, hand the plan to
the BIRD side, tell systemd. Between cycles it waits on the signals, the `rhid status` socket,
HAProxy's event stream and BIRD's connection (a command in flight), whichever comes first: a slow
``configure`` never stops polls, `rhid status` or the watchdog.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import structlog

from rhid import (
    __version__,
    bird,
    birdconf,
    birdpair,
    control,
    damping,
    drain,
    guard,
    health,
    memory,
    plan,
    routefiles,
    rulefile,
    service,
    settings,
    shutdown,
    status,
    sweep,
)
from rhid.dialect import BIRD2, Dialect
from rhid.dryrun import DryRunSide
from rhid.errors import CannotRunError, DrainFileError, RuleError, RuleFileError
from rhid.haproxy import FULL, NO_NEWS, HAProxySide, News
from rhid.instance import instance_lock
from rhid.metrics import Exporter, serving
from rhid.model import PLAIN, HAProxyState, LogLine, Proxy, ServerTerm
from rhid.reconcile import STOP_BOUND, BirdEdge, Withdrawal
from rhid.rules import RuleSet, compare
from rhid.settings import DEFAULT_FAST_INTERVAL, Settings
from rhid.stats import MAX_TARGETS

log = structlog.get_logger("rhid")

EVENT_GAP = 0.01  # seconds: event-triggered polls are at least this far apart (a log flood cannot spin us)
EXIT_NOT_CONFIRMED = 5  # stop with --on-stop withdraw: files emptied, BIRD did not confirm (in time)
EXIT_NOT_WITHDRAWN = 6  # stop with --on-stop withdraw: an include file could not be emptied
STOP_MARGIN = 5.0  # seconds beyond a stop's own bounds that systemd is asked to wait (EXTEND_TIMEOUT_USEC)
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
        bird_side: BirdEdge | None = None,
        origin: rulefile.Loaded | None = None,
        *,
        dialect: Dialect = BIRD2,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.thresholds = thresholds(settings)
        self.notifier = service.Notifier()
        self.haproxy = haproxy or HAProxySide.of(settings)
        self.haproxy.watch(rules)
        self.bird: BirdEdge = bird_side or (
            DryRunSide(settings.bird_dir, dialect)
            if settings.dry_run
            else birdpair.edge(settings, dialect, self.notifier.keepalive, self.notifier.watchdog_period)
        )
        self.metrics = Exporter.of(settings, __version__)
        self.states: Mapping[Proxy, health.ProxyState] = {}
        self.terms: Mapping[ServerTerm, health.TermState] = {}  # the rules' server thresholds
        self.started = self.rules_loaded = time.monotonic()
        self.intents = plan.NO_INTENTS
        self.chain = chain(settings)
        self.drain_problem: str | None = None
        if not settings.dry_run:  # a dry run plans without the live rhid's drains
            self.load_drains()
        # Each route as the files have it (no health known yet), since the start.
        files = plan.initial(self.bird.announced(), self.bird.owned, self.started)
        self.plan = plan.decide(files, rules, {}, self.intents, self.started, chain=self.chain)
        self.replan = True  # routes move only when health, the rules or the intents changed, or time came
        self.reload_result = rulefile.NO_RELOAD
        self.rule_file = rulefile.RuleFileWatch(settings.rules_path, allow_empty=settings.allow_empty)
        self.origin = origin
        if origin is not None:
            self.rule_file.loaded(origin)
            self.keep_copy(origin)
        self.restart_needed: str | None = None  # a setting changed that only a restart applies
        self.reload_pending = False  # SIGHUPs are coalesced: one reload, then a cycle, then the next
        self.cycles = 0
        self.memory = memory.Trimmer.of_libc()
        self.planned_at = self.started  # when the last plan was made (memory is trimmed only after quiet)
        self.ready = False  # READY=1 sent
        self.next_tick = self.last_cycle = 0.0  # the loop's: when to poll next, when it last did
        # While the event stream is live: what its lines named since the last poll, the full poll's
        # measured cost (rhid.sweep) and when it is due next, and the streams opened so far (a new
        # one may have missed lines: a full poll at once).
        self.news: News = NO_NEWS
        self.sweep = sweep.Sweep()
        self.next_sweep = 0.0
        self.streams_seen = 0
        # The proxies (and threshold terms' backends) between states: their fall or rise count has
        # started. Kept up to date from what each poll stepped, so that a cycle does not look at
        # 10,000 states to find the few.
        self.between: set[Proxy] = set()
        self.tracked: tuple[object, object] | None = None  # the states and terms `between` is of
        log.info(
            "daemon.started",
            rules=len(rules.rules),
            routes=len(rules.routes),
            announced_from_files=self.bird.count,
            haproxy_socket=settings.haproxy_socket,
            bird_socket=settings.bird_socket,
            bird_dir=str(settings.bird_dir),
            bird=self.bird.dialect.name,
        )

    def cycle(self, now: float) -> None:
        """One complete cycle: HAProxy read (all proxies, a few, or none: `poll_targets`), health
        stepped for what was read, plan made, BIRD reconciled; tell systemd."""
        cpu = time.process_time()
        targets = self.poll_targets(now)
        polled = targets is None or bool(targets)  # else nothing to ask HAProxy this cycle
        moved = answered = False
        if polled:
            states, terms = self.states, self.terms
            self.moving()  # `between` is of these states: the poll's steps update it below
            observed = self.haproxy.observe(self.rules.proxies, now, targets)
            answered = not isinstance(observed, health.Outage)
            if isinstance(observed, health.Outage):
                observed = health.during(observed, self.rules.proxies, now, self.thresholds)
            self.states, events, moved = health.observe(self.states, observed, now, self.thresholds)
            self.terms, term_events, terms_moved = health.observe_terms(
                self.terms, self.rules.terms, observed, now, self.thresholds
            )
            write(health.summarize([*events, *term_events]))  # one cause, one line: not one per proxy
            moved = moved or terms_moved
            if self.states is not states or self.terms is not terms:  # else no proxy moved at all
                self.track_between(observed)
        # A full poll (or a targeted one that fell back to it) that HAProxy answered: its cost sets
        # when the next is due. A poll that failed, full or targeted (whose news it consumed): the
        # next one is full, at --interval, as without a stream.
        full = answered and (targets is None or self.haproxy.last_poll == FULL)
        if polled and not answered:
            self.next_sweep = now + self.settings.interval
        self.haproxy.check_names(self.rules.lines_of)  # at start, after a rules or HAProxy reload: once
        answers = self.haproxy.state is HAProxyState.REACHABLE  # the guard holds only then
        if answers != self.intents.haproxy_answers:
            self.intents = replace(self.intents, haproxy_answers=answers)
            self.replan = True
        if moved or self.replan or self.plan.due(now):
            self.replan_now(now)
        if not self.stop_due():  # else the stop's own bounded withdrawal comes next (run)
            self.bird.apply(self.plan, now)  # a file not written is retried at the next cycle
        if full:  # the full poll's cost sets when the next one is due (while the stream is live)
            self.sweep = self.sweep.measured(time.process_time() - cpu + self.haproxy.fetched)
            period = self.sweep.period(
                self.settings.sweep_budget, self.settings.interval, self.settings.sweep_max
            )
            self.next_sweep = now + period
        self.cycles += 1
        self.rule_file.look()
        self.notifier.status(self.summary())
        self.announce_ready()
        self.notifier.send("WATCHDOG=1")  # only ever after a completed cycle: a hung loop gets restarted
        self.memory.quiet(now, self.planned_at)  # freed memory back to the system, in a quiet cycle
        if self.metrics is not None:  # what the cycle made, for the next scrape (which never waits on us)
            self.metrics.observe(
                self.plan,
                self.states,
                haproxy=self.haproxy.report(),
                bird=self.bird.report(),
                reload_result=self.reload_result,
                ready=self.ready,
                duration=time.monotonic() - now,
                now=now,
            )

    def announce_ready(self) -> None:
        """READY=1 once, after the first cycle whose exchange with BIRD has ended (BIRD holds the
        routes, or said why not): `systemctl start` returns with the node announcing what it should."""
        if self.ready or not self.cycles or self.bird.busy or self.stopping:
            return
        self.ready = True
        self.notifier.status(self.summary())
        self.notifier.send("READY=1")
        log.info("daemon.ready", status=self.summary())

    def replan_now(self, now: float) -> None:
        """Make the plan for `now` against the current one, and log what it changed."""
        self.plan = plan.decide(
            self.plan, self.rules, self.states, self.intents, now, terms=self.terms, chain=self.chain
        )
        self.replan = False
        self.planned_at = now
        if self.metrics is not None:
            self.metrics.planned(self.plan)  # every plan's transitions, even one replaced before a scrape
        write(self.plan.lines)
        write(plan.transition_lines(self.plan))

    def track_between(self, observed: Iterable[Proxy] | None = None) -> None:
        """Update `between` for the proxies just observed (None: every proxy, after a reload)."""
        if observed is None:
            self.between = set()
            observed = self.rules.proxies
        terms_of: dict[Proxy, list[ServerTerm]] = {}
        for term in self.rules.terms:
            terms_of.setdefault(term.proxy, []).append(term)
        for proxy in observed:
            state = self.states.get(proxy)
            moving = state is not None and health.in_transition(state)
            if not moving and proxy in terms_of:
                moving = any(
                    health.in_transition(self.terms[term].state)
                    for term in terms_of[proxy]
                    if term in self.terms
                )
            if moving:
                self.between.add(proxy)
            else:
                self.between.discard(proxy)
        self.tracked = (self.states, self.terms)

    def moving(self) -> set[Proxy]:
        """The proxies between states (`between`), looked for afresh when the states were replaced
        otherwise than by a cycle's poll (a test, a reload)."""
        if self.tracked is None or self.tracked[0] is not self.states or self.tracked[1] is not self.terms:
            self.track_between()
        return self.between

    def poll_targets(self, now: float) -> frozenset[Proxy] | None:
        """What this cycle polls: None for every proxy (no live event stream; the full poll is due;
        the stream is new or said everything may have changed; too many proxies named); else the
        rules' proxies the stream named since the last poll and those between states (their fall
        or rise count goes on at the fast interval), maybe none."""
        news, self.news = self.news, NO_NEWS
        fresh = self.haproxy.opened != self.streams_seen  # a stream opened since the last cycle
        self.streams_seen = self.haproxy.opened
        if not self.haproxy.streaming or news.everything or fresh or now >= self.next_sweep:
            return None
        named = self.rules.lines_of  # the proxies of the rules in force (news may predate a reload)
        targets = {proxy for proxy in news.proxies if proxy in named} | self.moving()
        return None if len(targets) > MAX_TARGETS else frozenset(targets)

    def poll_interval(self) -> float:
        """The fast interval while a proxy is between states (see Settings.fast_interval), else --interval."""
        fast = self.settings.fast_interval
        if fast is None and (self.haproxy.streaming or self.haproxy.has_ring):
            fast = DEFAULT_FAST_INTERVAL
        if fast is not None and self.moving():
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
        seen = rulefile.signature(self.settings.rules_path)
        try:
            loaded = rulefile.load(self.settings.rules_path, allow_empty=self.settings.allow_empty)
        except (RuleError, RuleFileError) as exc:
            errors = [d.render() for d in exc.diagnostics] if isinstance(exc, RuleError) else [str(exc)]
            self.rule_file.refused(seen, exc)
            self.reload_result = rulefile.ReloadResult(at, rulefile.first_error(exc))
            log.error("rules.reload_failed", errors=errors, kept_rules=len(self.rules.rules))
        else:
            changes = compare(self.rules, loaded.rules)
            rules = loaded.rules
            self.rules, self.rules_loaded, self.origin = rules, now, loaded
            self.haproxy.watch(rules)
            self.states = health.keep(self.states, rules.proxies)
            self.terms = health.keep_terms(self.terms, rules.terms)
            self.rule_file.loaded(loaded)
            self.keep_copy(loaded)
            self.next_sweep = 0.0  # the next cycle polls every proxy: those the reload added too
            self.replan_now(now)  # a route the reload added is named since now
            self.reload_result = rulefile.ReloadResult(at)
            log.info(
                "rules.reloaded",
                rules=len(rules.rules),
                routes=len(rules.routes),
                added=changes.added,
                removed=changes.removed,
                changed=changes.changed,
            )
        self.follow_defaults()
        self.haproxy.check_names(self.rules.lines_of)  # each name HAProxy lacks: one warning, a hint
        self.notifier.status(self.summary())
        self.notifier.send("READY=1")

    def follow_defaults(self) -> None:
        """Apply what the defaults file changed since the start that a reload can apply (the HAProxy
        socket), and say what only a restart applies (RHID_ARGS: options of the unit's ExecStart)."""
        values = settings.read_defaults(self.settings.defaults_files)
        before = self.settings.defaults
        where = " or ".join(self.settings.defaults_files)
        path = values.get(settings.SOCKET_VARIABLE) or settings.DEFAULT_HAPROXY_SOCKET
        if (
            values.get(settings.SOCKET_VARIABLE) != before.get(settings.SOCKET_VARIABLE)
            and self.settings.haproxy_socket_source != "--haproxy-socket"
            and path != self.settings.haproxy_socket
        ):
            self.haproxy.close_stream()
            self.settings = replace(
                self.settings,
                haproxy_socket=path,
                haproxy_socket_source=where,
                defaults={**before, settings.SOCKET_VARIABLE: values.get(settings.SOCKET_VARIABLE, "")},
            )
            self.haproxy = HAProxySide.of(self.settings)
            self.haproxy.watch(self.rules)
            self.streams_seen = -1  # the new side's first stream is a new one
            self.next_sweep = 0.0  # and the new HAProxy is polled whole at once
            log.info("haproxy.socket", path=path, source=f"{where}, re-read by the reload")
        changed = [
            f"{name} ({before.get(name, '')!r} -> {values.get(name, '')!r})"
            for name in settings.RESTART_VARIABLES
            if values.get(name, "") != before.get(name, "")
        ]
        restart = (
            f"{' and '.join(changed)} in {where} changed since rhid started: only systemctl restart "
            "hapee-extras-rhi applies it"
            if changed
            else None
        )
        if restart is not None and restart != self.restart_needed:
            log.warning("settings.restart_needed", reason=restart)
        self.restart_needed = restart

    def keep_copy(self, loaded: rulefile.Loaded) -> None:
        """Keep the rules just read from the file as the last good copy (a restart may need it)."""
        if loaded.copy_loaded_at is not None:
            return
        try:
            rulefile.keep(self.settings.own_dir, loaded, time.time())
        except OSError as exc:
            log.warning(
                "rules.copy_failed", path=str(self.settings.own_dir / rulefile.COPY_NAME), reason=str(exc)
            )

    def notes(self) -> tuple[str, ...]:
        """The daemon's own problems, for `rhid status`: the rule file on disk, the rules in force."""
        found = []
        path = self.settings.rules_path
        copy_loaded_at = self.origin.copy_loaded_at if self.origin is not None else None
        running_on = (
            f"the last good copy of the rules (loaded {copy_loaded_at}, before a restart)"
            if copy_loaded_at is not None
            else "the rules it loaded before"
        )
        if self.rule_file.problem is not None:
            refused = "the last reload failed: " if self.reload_result.failed else ""
            found.append(
                f"{refused}{path} on disk is invalid ({self.rule_file.problem}); in force: {running_on}: "
                "fix the file (rhid check), then systemctl reload hapee-extras-rhi"
            )
        elif copy_loaded_at is not None:
            found.append(f"in force: {running_on}; {path} is valid now: systemctl reload hapee-extras-rhi")
        if self.restart_needed is not None:
            found.append(self.restart_needed)
        if self.drain_problem is not None:
            found.append(self.drain_problem)
        if self.metrics is not None and self.metrics.problem is not None:
            found.append(self.metrics.problem)
        return tuple(found)

    @property
    def stopping(self) -> bool:
        """True once a stop that withdraws has begun."""
        return self.intents.stopping is not None

    def stop_due(self) -> bool:
        """True when a stop that withdraws has nothing left to wait for: its plan announces nothing
        (a graceful shutdown is over, or there was none)."""
        return self.stopping and not self.plan.announced

    def shut_down(self, now: float) -> int | None:
        """A stop signal. The first applies --on-stop (withdraw everything; or hold), except that a
        stop systemd does as half of a restart applies --on-restart (default hold: no flap).

        A withdrawal is planned: with --graceful-shutdown, the plan first keeps the routes
        announced with 65535:0 for that long, and this returns None: the loop goes on cycling
        (polls, rhid status, the watchdog; a route that becomes unhealthy meanwhile is withdrawn at
        once) until the plan announces nothing, then calls `finish_stop`. A second stop signal cuts
        the graceful shutdown short. Without one (or once it is over) the stop finishes here.
        systemd is asked to wait for the graceful shutdown (EXTEND_TIMEOUT_USEC) on top of the
        final withdrawal's own bound, so `systemctl stop` never times out. The exit status:
        0 confirmed (or hold), EXIT_NOT_CONFIRMED, EXIT_NOT_WITHDRAWN."""
        if self.stopping:
            self.intents = replace(self.intents, immediately=True)
            log.info("daemon.stopping", on_stop="withdraw", graceful_shutdown="cut short by a second signal")
        else:
            self.notifier.send("STOPPING=1")
            action = self.settings.on_stop
            if action == "withdraw" and self.settings.on_restart == "hold" and service.restarting():
                action = "hold"
                log.info("daemon.restarting", on_restart="hold")
            if action == "hold":
                log.info("daemon.stopping", on_stop="hold", announced=self.bird.count)
                return 0
            self.intents = replace(self.intents, stopping="rhid stopping (--on-stop withdraw)")
        self.replan_now(now)
        if self.stop_due():
            return self.finish_stop(now)
        seconds = self.settings.graceful_shutdown
        self.extend_stop(seconds)
        log.info(
            "daemon.stopping",
            on_stop="withdraw",
            graceful_shutdown=seconds,
            announced=self.plan.announced,
            withdrawn_in=round(self.plan.wake_at - now, 1),
        )
        self.next_tick = now  # the marked routes go to BIRD at once
        return None

    def finish_stop(self, now: float) -> int:
        """Withdraw every route: the emptied files made durable first (BIRD applies them at its next
        configure or start whatever happens next), then confirmed by BIRD within
        reconcile.STOP_BOUND seconds, well inside systemd's TimeoutStopSec."""
        if self.settings.graceful_shutdown > 0:
            self.extend_stop(0.0)
        outcome = self.bird.stop(self.plan, now)
        return STOP_EXIT[outcome]

    def extend_stop(self, seconds: float) -> None:
        """Ask systemd to wait `seconds` more than the final withdrawal's bound (and a margin)."""
        usec = int((seconds + STOP_BOUND + STOP_MARGIN) * 1e6)
        self.notifier.send(f"EXTEND_TIMEOUT_USEC={usec}")

    def release_guard(self, now: float) -> dict[str, object]:
        """`rhid guard release`: what the blast-radius guard holds is withdrawn now."""
        held = guard.of(self.plan.policies.get(guard.NAME)).held
        self.intents = replace(self.intents, guard_releases=self.intents.guard_releases + 1)
        self.replan_now(now)
        self.next_tick = min(self.next_tick, now)  # the withdrawals go to BIRD at once
        return {"released": len(held), "routes": guard.sample(held)}

    def answer(self, request: bytes) -> bytes | Iterator[bytes]:
        """The reply to one control request line. A status (the overview, every route, or a
        prefix's routes) is an iterator of pieces, made from the facts of this moment as the
        client's turn comes and its socket drains (`rhid.control`); the rest are answered at once."""
        parsed = status.parse_request(request)
        if isinstance(parsed, str):
            return json.dumps({"error": parsed}).encode() + b"\n"
        if isinstance(parsed, status.RouteQuery):  # rhid probe: one route's decision, nothing else
            answered = status.route_answer(self.rules, self.plan, self.states, parsed, self.terms)
            return json.dumps(answered).encode() + b"\n"
        if isinstance(parsed, drain.Request):
            return json.dumps(self.drain(parsed)).encode() + b"\n"
        if isinstance(parsed, status.Release):
            return json.dumps(self.release_guard(time.monotonic())).encode() + b"\n"
        facts = status.Facts(
            version=__version__,
            pid=os.getpid(),
            started=self.started,
            summary=self.summary(),
            rules=self.rules,
            rules_loaded=self.rules_loaded,
            reload_result=self.reload_result,
            plan=self.plan,  # immutable, as are the health maps: holding them is a snapshot
            states=self.states,
            terms=self.terms,
            since=self.plan.since,
            thresholds=self.thresholds,
            haproxy=self.haproxy.report(),
            bird=self.bird.report(),
            now=time.monotonic(),
            wall_now=time.time(),
            notes=self.notes(),
            dialect=self.bird.dialect,
            drained=frozenset(self.intents.drains),
        )
        if parsed is None:
            return status.overview_chunks(facts)
        return status.chunks(facts, None if isinstance(parsed, status.Listing) else parsed)

    def drain(self, request: drain.Request) -> dict[str, Any]:
        """Drain or undrain routes: made durable (the drains file) before the plan changes; the
        routes a rule names only (a typo is an error, not a no-op)."""
        named = set(self.rules.routes)
        targets = sorted(named, key=str) if request.targets is None else list(request.targets)
        unknown = [str(route) for route in targets if route not in named]
        if unknown:
            return {"error": f"no rule names {', '.join(unknown)}: nothing drained or undrained"}
        drains = dict(self.intents.drains)
        if request.drain:
            since = status.wall_time(time.monotonic(), time.monotonic(), time.time())
            drains.update({route: drains.get(route, drain.Drain(request.reason, since)) for route in targets})
        else:
            for route in targets:
                drains.pop(route, None)
        path = self.settings.state_dir / drain.FILE_NAME
        try:
            routefiles.ensure_directory(self.settings.state_dir)
            routefiles.write_atomically(path, drain.render_file(drains).decode())
        except OSError as exc:
            return {"error": f"cannot write {path}: {exc.strerror or exc}; nothing changed"}
        self.intents = replace(self.intents, drains=drains)
        self.replan_now(time.monotonic())
        self.next_tick = time.monotonic()  # hand the plan to BIRD at once
        for route in targets:
            if request.drain:
                log.warning("route.drained", route=str(route), reason=request.reason)
            else:
                log.info("route.undrained", route=str(route))
        proxies = sorted({str(p) for route in targets for p in self.rules.by_route[route].proxies()})
        return {
            "drained" if request.drain else "undrained": [str(route) for route in targets],
            "proxies": proxies,
            "haproxy_socket": self.settings.haproxy_socket,
        }

    def load_drains(self) -> None:
        """The drains the state directory keeps (from before a restart or a reboot)."""
        path = self.settings.state_dir / drain.FILE_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.drain_problem = f"cannot read {path}: {exc.strerror or exc}; no route is drained"
            log.critical("drains.unreadable", path=str(path), reason=str(exc))
            return
        try:
            drains = drain.parse_file(data, str(path))
        except DrainFileError as exc:
            self.drain_problem = f"{exc}; no route is drained until rhid drain rewrites it"
            log.critical("drains.unreadable", path=str(path), reason=exc.reason)
            return
        self.intents = replace(self.intents, drains=drains)
        if drains:
            log.info("drains.loaded", path=str(path), routes=[str(route) for route in drains])

    def take_signals(self, signums: list[int]) -> bool:
        """Note a SIGHUP (coalesced: reloaded once, at the top of the loop); True on SIGTERM/SIGINT."""
        if signal.SIGHUP in signums:
            self.reload_pending = True
        return not service.STOP_SIGNALS.isdisjoint(signums)

    def run(self) -> int:
        """Cycle every interval (faster while a proxy is between states, at once on an HAProxy event
        or when a policy's time comes) until SIGTERM or SIGINT; SIGHUP reloads; answer `rhid status`."""
        with (
            service.signals() as signals,
            control.control_socket(self.settings.own_dir / status.SOCKET_NAME) as server,
            serving(self.metrics),
        ):
            self.bird.watch(signals)  # a stop signal abandons any blocking wait on BIRD
            self.bird.join_loop()  # from now on BIRD's replies are read when select says so
            self.next_tick = self.last_cycle = time.monotonic()
            try:
                while True:
                    now = time.monotonic()
                    if self.reload_pending and self.ready and not self.stopping:
                        # One reload for every SIGHUP that came since the last one, then a cycle before
                        # the next: a burst of signals cannot keep the loop from polling (and from
                        # feeding the watchdog).
                        self.reload_pending = False
                        self.reload(now)
                        self.next_tick = now = time.monotonic()
                    if now >= self.next_tick:
                        self.last_cycle = now
                        self.cycle(now)
                        now = time.monotonic()  # the cycle took time
                        self.next_tick = max(self.last_cycle + self.poll_interval(), now)
                        if self.haproxy.streaming:  # the full poll's own period (poll_targets)
                            self.next_tick = min(self.next_tick, max(self.next_sweep, now))
                    if self.stop_due():
                        return self.finish_stop(time.monotonic())
                    if self.wait(now, signals, server):
                        code = self.shut_down(time.monotonic())
                        if code is not None:
                            return code
            finally:
                self.haproxy.close_stream()

    def wait(self, now: float, signals: socket.socket, server: control.ControlServer | None) -> bool:
        """Wait for the soonest of: the next poll, a signal, a `rhid status` client, HAProxy's event
        stream, BIRD's reply (or its deadline), a policy's `wake_at`; handle what came. True when a
        stop signal came."""
        self.haproxy.ensure_stream(now)
        if self.haproxy.opened != self.streams_seen:  # a new stream: a full poll covers what it missed
            self.next_tick = min(self.next_tick, max(now, self.last_cycle + EVENT_GAP))
        readers: list[Any] = [signals]
        writers: list[Any] = []
        wake = self.next_tick
        if server is not None:
            readers += server.readers()
            writers += server.writers()
            wake = min(wake, server.next_deadline() or wake)
        stream = self.haproxy.waitable(now)
        if stream is not None:
            readers.append(stream)
        elif self.haproxy.streaming:
            wake = min(wake, self.haproxy.paused_until)
        connections = self.bird.waitables()
        readers += connections
        wake = min(wake, self.bird.wake_at(), max(self.plan.wake_at, self.last_cycle + EVENT_GAP))
        if self.reload_pending and self.ready and not self.stopping:
            wake = now
        ready, writable, _ = select.select(readers, writers, [], max(0.0, wake - now))
        now = time.monotonic()  # after the wait
        if any(connection in ready for connection in connections):
            self.bird.on_readable(now)
        self.bird.on_time(now)
        self.announce_ready()
        soon = self.last_cycle + EVENT_GAP
        # Read what the stream says when select says so, and at once when this wait ended a pause
        # after traffic (a busy ring has more by then: reading now saves a second wait per read).
        resumed = stream is None and self.haproxy.waitable(now) is not None
        news = (
            self.haproxy.read_stream(now) if resumed or (stream is not None and stream in ready) else NO_NEWS
        )
        if news:
            self.news = self.news | news  # polled at the next cycle (poll_targets)
        if self.plan.due(now) or news:
            self.next_tick = min(self.next_tick, soon)  # a policy's time came, or HAProxy's news
        if server is not None:
            server.serve(ready, writable, now, self.answer)
        return signals in ready and self.take_signals(service.drain(signals))


def thresholds(settings: Settings) -> health.Thresholds:
    """The health policy's thresholds `rhid run`'s settings ask for."""
    # Counts advance at most once per fast poll (with 10% slack for the clock's rounding), so
    # --fall N lasts at least N-1 fast intervals however many event-woken polls a burst brings.
    spacing = 0.9 * min(settings.fast_interval or DEFAULT_FAST_INTERVAL, settings.interval)
    return health.Thresholds(
        settings.fall, settings.rise, settings.vanished_keep, spacing, settings.unreadable_down_after
    )


def chain(settings: Settings) -> tuple[plan.Policy, ...]:
    """The plan's policies `rhid run`'s settings ask for, in their order: drains, the stop, the blast-radius
    guard (it judges health's withdrawals as they come), flap damping (it counts the withdrawals
    that reach BIRD, not those the guard holds), graceful shutdown (it delays what is planned)."""
    marks = shutdown.Marks(settings.graceful_shutdown_local_pref, settings.graceful_shutdown_med)
    links: list[plan.Policy] = [plan.draining, plan.stopping]
    if settings.guard == "on":
        config = guard.Config(
            settings.guard_share,
            settings.guard_min,
            settings.guard_hold,
            settings.guard_window,
            degraded=settings.guard_degraded == "on",
            marks=marks,
        )
        links.append(guard.policy(config))
    if settings.damping == "on":
        links.append(
            damping.policy(
                damping.Config(
                    settings.damping_half_life,
                    settings.damping_suppress,
                    settings.damping_reuse,
                    settings.damping_max_suppress,
                )
            )
        )
    if settings.graceful_shutdown > 0:
        links.append(shutdown.policy(shutdown.Config(settings.graceful_shutdown, marks)))
    return tuple(links)


def write(lines: Iterable[LogLine]) -> None:
    """Log what a pure module asked to log."""
    for line in lines:
        getattr(log, line.level)(line.name, **line.fields)


def run(settings: Settings) -> int:
    """Validate the rules (exit 1 before touching BIRD if they are wrong), then serve."""
    try:
        loaded = rulefile.load(settings.rules_path, allow_empty=settings.allow_empty)
    except (RuleError, RuleFileError) as exc:
        # Only a restart that held routes needs the copy (they must stay watched); a start after a
        # stop (files emptied) or a boot refuses the broken file, and announces nothing.
        held = any(routefiles.read_announced(settings.bird_dir).announced.values())
        copy = rulefile.recall(settings.own_dir, settings.rules_path, allow_empty=settings.allow_empty)
        if copy is None or not held:
            return _refuse(exc)
        log.critical(
            "rules.invalid_started_on_last_good",
            error=rulefile.first_error(exc),
            copy=copy.rules.path,
            loaded=copy.copy_loaded_at,
            hint=f"fix {settings.rules_path} (rhid check), then systemctl reload hapee-extras-rhi",
        )
        print(
            f"rhid: {settings.rules_path} is invalid ({rulefile.first_error(exc)}); starting on the last "
            f"good copy of the rules, loaded {copy.copy_loaded_at}",
            file=sys.stderr,
        )
        loaded = copy
    try:
        dialect = BIRD2
        if not settings.dry_run:
            dialect = start_bird(settings, loaded.rules)
        try:
            routefiles.ensure_directory(settings.own_dir)
        except OSError as exc:
            raise CannotRunError(
                f"cannot create --bird-dir {settings.own_dir}: {exc.strerror or exc} (running as uid "
                f"{os.getuid()}; it must be a directory rhid may write)"
            ) from None
        with instance_lock(settings.own_dir):
            return Daemon(settings, loaded.rules, origin=loaded, dialect=dialect).run()
    except CannotRunError as exc:
        log.critical("daemon.cannot_run", reason=str(exc))
        print(f"rhid: {exc}", file=sys.stderr)
        return 1


def start_bird(settings: Settings, rules: RuleSet) -> Dialect:
    """Which BIRD rhid speaks to (`birdpair.choose`), that rhid may use its socket(s), and what it
    cannot do well there, said once at start."""
    dialect, why = birdpair.choose(settings)
    log.info("bird.dialect", bird=dialect.name, why=why)
    bird.check_access(settings.bird_socket, settings.bird_timeout)
    if dialect.per_family:
        bird.check_access(settings.bird6_socket, settings.bird_timeout)
    marks = shutdown.Marks(settings.graceful_shutdown_local_pref, settings.graceful_shutdown_med)
    leaving = shutdown.degrade(PLAIN, marks) if settings.graceful_shutdown > 0 else None
    for caution in birdconf.cautions(rules, dialect, settings.gateways, leaving):
        log.warning("bird.caution", bird=dialect.name, caution=caution)
    return dialect


def _refuse(exc: RuleError | RuleFileError) -> int:
    """Say why the rules cannot be loaded at start: exit 1 (invalid) or 3 (unreadable)."""
    if isinstance(exc, RuleError):
        log.error("rules.invalid", errors=[d.render() for d in exc.diagnostics])
        print(exc.render(), file=sys.stderr)
        return 1
    log.error("rules.unreadable", error=str(exc))
    print(f"rhid: cannot read rule file {exc}", file=sys.stderr)
    return 3
