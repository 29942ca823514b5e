"""Every event rhid logs: its name (a literal an operator can grep for, in the code and the journal),
its level, and what it means. Pure data.

Each emitter spells the name as a literal (``log.error("haproxy.unreachable", ...)``), never an
f-string, so that ``grep -rn haproxy.unreachable src/`` finds the line that logs it;
tests/unit/test_catalogue.py checks that every such literal is here, at the level it is logged at,
and that every entry is emitted; the README's table of events is `table()`'s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """One event: the level it is logged at (the worst, where it depends), and what it means."""

    level: str
    meaning: str


EVENTS: dict[str, Event] = {
    # ---- the daemon
    "daemon.started": Event("info", "rhid run started: its rules, routes, sockets and directory"),
    "daemon.ready": Event("info", "the first cycle and its exchange with BIRD are done: READY=1 sent"),
    "daemon.restarting": Event("info", "a stop that is half of a restart: --on-restart applies (hold)"),
    "daemon.stopping": Event("critical", "a stop: routes held, or withdrawn and confirmed by BIRD (or not)"),
    "daemon.cannot_run": Event("critical", "rhid cannot run until the operator acts; the reason says how"),
    "settings.restart_needed": Event("warning", "a setting changed that only a restart applies"),
    # ---- the rules
    "rules.reloaded": Event("info", "a reload read valid rules: counts of added, removed, changed"),
    "rules.reload_failed": Event("error", "a reload found the file invalid: nothing changed"),
    "rules.invalid": Event("error", "the rule file is invalid at start: rhid exits 1"),
    "rules.unreadable": Event("error", "the rule file cannot be read at start: rhid exits 3"),
    "rules.invalid_started_on_last_good": Event(
        "critical", "the rule file is invalid at a restart that held routes: started on the last good copy"
    ),
    "rules.copy_failed": Event("warning", "the last good copy of the rules could not be kept"),
    "rules.no_such_proxy": Event(
        "warning", "a proxy the rules name is not in HAProxy (after a reload): its lines, the closest name"
    ),
    "rules.names_not_checked": Event("debug", "HAProxy's list of proxies could not be read: not compared"),
    # ---- routes: the plan's transitions
    "route.announced": Event("info", "a route became announced: prefix, table, rule line, reason"),
    "route.withdrawn": Event("info", "a route became withdrawn: prefix, table, rule line, reason"),
    "route.graceful_shutdown": Event(
        "info", "a planned withdrawal: the route stays announced with 65535:0 for --graceful-shutdown"
    ),
    "route.damped": Event(
        "warning", "a route withdrawn by health too often: suppressed until its penalty decays"
    ),
    "route.reused": Event("info", "a damped route's penalty decayed: it follows its rule again"),
    # ---- the blast-radius guard
    "guard.holding": Event(
        "critical", "health would withdraw most routes at once while HAProxy answers: held; routes, reasons"
    ),
    "guard.released": Event(
        "warning", "the guard's hold ended: health returned, it outlasted --guard-hold, or released"
    ),
    "route.drained": Event("warning", "rhid drain took the route out of service: its reason"),
    "route.undrained": Event("info", "rhid undrain put the route back: its rule decides again"),
    "drains.loaded": Event("info", "the drains kept in the state directory, read at start"),
    "drains.unreadable": Event(
        "critical", "the drains file cannot be read: no route is drained until rewritten"
    ),
    "route.degraded": Event("info", "a route became degraded: announced with its rule's BGP attributes"),
    "route.would_announce": Event("info", "--dry-run: the files would announce this route now, and why"),
    "route.would_withdraw": Event("info", "--dry-run: the files would withdraw this route now, and why"),
    # ---- proxies: the health policy
    "proxy.up": Event("info", "proxies became up (fall/rise applied); count and a sample"),
    "proxy.down": Event("warning", "proxies became down; count and a sample, HAProxy's status"),
    "proxy.vanished": Event("warning", "a proxy seen before is missing (a reload?): it keeps its health"),
    "proxy.vanished_too_long": Event("warning", "a vanished proxy stayed missing: it counts as down"),
    "proxy.never_seen": Event("warning", "a proxy the rules name is not in HAProxy: it counts as down"),
    # ---- the HAProxy side
    "haproxy.reachable": Event("info", "HAProxy answers (again)"),
    "haproxy.unreachable": Event("error", "HAProxy's socket cannot be used: every proxy counts as down"),
    "haproxy.garbled": Event("error", "HAProxy's replies are unreadable: nothing known, routes hold"),
    "haproxy.forbidden": Event("critical", "HAProxy's socket refuses rhid (permissions): nothing known"),
    "haproxy.reloaded": Event("info", "HAProxy's worker changed (a reload): old and new pid"),
    "haproxy.unknown_status": Event(
        "warning", "HAProxy printed a status rhid does not know: it counts as down"
    ),
    "haproxy.socket": Event("info", "the HAProxy socket rhid uses, and where its path came from"),
    "haproxy.events_streaming": Event("info", "the event wake-up streams HAProxy's ring"),
    "haproxy.events_unavailable": Event("warning", "no event wake-up (no ring, an error): polling only"),
    "haproxy.events_noisy": Event("warning", "the ring carries traffic logs: give rhid a ring of its own"),
    # ---- the BIRD side
    "bird.reachable": Event("info", "BIRD's control socket answers (again): its greeting"),
    "bird.unreachable": Event("error", "BIRD's control socket cannot be used: files stay current"),
    "bird.garbled": Event("error", "BIRD's control socket answered garbage: reconnect, back off"),
    "bird.configured": Event("debug", "BIRD accepted a configure: its code and why it was sent"),
    "bird.confirmed": Event("info", "BIRD's routes show the routes announced and withdrawn since"),
    "bird.reconfiguring": Event("info", "BIRD is applying a configuration: no configure until it is done"),
    "bird.refused": Event("error", "BIRD refused configure (its config is wrong): retried with backoff"),
    "bird.bug": Event("critical", "BIRD did not understand a command rhid sent: a bug in rhid"),
    "bird.mismatch": Event("warning", "BIRD's routes differ from rhid's file: missing and unexpected"),
    "bird.not_converged": Event(
        "error", "BIRD still differs after a configure: is bird.conf including rhid's files?"
    ),
    "bird.protocol_missing": Event(
        "error", "BIRD has no protocol of rhid's: add `rhid bird-config` to bird.conf"
    ),
    "bird.interrupted": Event("info", "a stop signal abandoned a wait on BIRD"),
    "bird.dialect": Event("info", "which BIRD rhid speaks to (1.6: bird and bird6; 2; 3), and how it knows"),
    "bird.caution": Event(
        "warning", "at start: what will not work as the rules ask with this BIRD (a large table on 1.6, ...)"
    ),
    "bird.attributes_uncarried": Event(
        "error", "a route is announced without attributes this BIRD cannot set on a static route"
    ),
    # ---- the include files
    "files.written": Event("warning", "a file was written in place (the atomic replacement failed)"),
    "files.rewritten": Event("info", "a file was rewritten from the plan (BIRD differed, or it was edited)"),
    "files.write_failed": Event("error", "a file cannot be written: BIRD keeps what it said; retried"),
    "files.write_recovered": Event("info", "a file that could not be written is written again"),
    "files.strange": Event("warning", "a file in rhid's directory holds lines rhid did not write"),
    # ---- metrics (--metrics-listen)
    "metrics.listening": Event("info", "metrics are served at /metrics on this address"),
    "metrics.unavailable": Event(
        "error", "metrics cannot listen (port taken, the sandbox): routing goes on; retried every 30 s"
    ),
    "metrics.isolated": Event(
        "warning", "metrics listen in a network namespace with only loopback: no scraper outside sees them"
    ),
    # ---- rhid status, systemd, the log
    "status.unavailable": Event("error", "the rhid status socket cannot be served: routing goes on"),
    "status.client_failed": Event("debug", "a rhid status client failed mid-exchange"),
    "status.client_too_slow": Event("debug", "a rhid status client was dropped: too slow"),
    "notify.failed": Event("error", "a message to systemd could not be sent"),
    "notify.recovered": Event("info", "messages to systemd go through again"),
    "service.job_unknown": Event("warning", "systemd's job list could not be read: a stop counts as a stop"),
    "log.dropped": Event("warning", "log lines were dropped because the journal did not take them"),
}


def table() -> str:
    """The catalogue as a Markdown table (the README's)."""
    rows = [f"| `{name}` | {event.level} | {event.meaning} |" for name, event in EVENTS.items()]
    return "\n".join(["| event | level | meaning |", "|---|---|---|", *rows]) + "\n"
