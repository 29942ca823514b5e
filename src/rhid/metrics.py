"""Prometheus metrics (`--metrics-listen`): the latest cycle's facts, served over HTTP, never in
the loop's way.

    exporter = Exporter(listen, version)
    with exporter.serving():            # binds, and stops serving at exit
        exporter.planned(plan)          # for every plan made: its transitions are counted
        exporter.observe(plan, states, haproxy=..., bird=..., reload_result=..., ready=..., ...)
                                        # after every cycle

`planned` and `observe` run in the loop: the first counts a new plan's transitions, the second,
after every cycle, builds a `series.Frame` (immutable values) and swaps it in, a reference
assignment. Everything else happens on one thread of the exporter's own, which reads the latest
Frame through a private prometheus_client registry (with the process, platform and GC collectors
beside it) and shares no lock with the loop. That thread serves every connection with
non-blocking sockets and `select`, so a slow scraper holds a buffer, never a thread; its bounds,
against a slow scraper or a flood of them:

- at most MAX_CONNECTIONS connections at once; one more is closed at once, never queued;
- one answer every ANSWER_GAP seconds at most (100 a second), however many scrapers ask;
- each connection has CONNECTION_DEADLINE seconds for its whole exchange, however slowly it sends
  its request or reads the reply, and a request head of at most MAX_REQUEST bytes;
- a rendered page is reused for at least RENDER_GAP seconds, and for RENDER_SHARE times as long as
  it took to render, so a flood renders at most once a second and never more than a fifth of the
  time: a scrape shows the state of at most about a second ago (a few seconds with 10,000 routes,
  whose page takes about a second to render).

A listener that cannot be opened (the port is taken, the unit's sandbox forbids IP sockets) is
logged with what to do and tried again every RETRY seconds; routing goes on meanwhile: metrics
never stop rhid from announcing or withdrawing.
"""

from __future__ import annotations

import collections
import errno
import gzip
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from rhid import health, series
from rhid.model import Proxy
from rhid.plan import Plan
from rhid.rulefile import ReloadResult
from rhid.settings import Listen, Settings

log = structlog.get_logger("rhid")

MAX_CONNECTIONS = 64  # connections open at once
CONNECTION_DEADLINE = 10.0  # seconds for one whole exchange
MAX_REQUEST = 8192  # bytes of request line and headers
RENDER_GAP = 1.0  # seconds a rendered page is reused, at least
RENDER_SHARE = 4.0  # ... and this many times as long as it took to render
RETRY = 30.0  # seconds between attempts to open a listener that failed
WAKE = 0.25  # the serving thread looks at `close` at least this often
SEND_CHUNK = 256 * 1024  # bytes handed to one send()
ANSWER_GAP = 0.01  # seconds between two answers, at least
HINTS = {
    errno.EAFNOSUPPORT: "the service's sandbox forbids IP sockets: install the metrics drop-in "
    "(README, 'Metrics')",
    errno.EADDRINUSE: "another program listens on this port: choose another",
    errno.EADDRNOTAVAIL: "no interface of this host has this address",
    errno.EACCES: "a port below 1024 needs a privilege rhid does not have: choose a port from 1024",
}


class Exporter:
    """rhid's metrics: the latest Frame, a private registry over it, and the HTTP listener."""

    def __init__(self, listen: Listen, version: str) -> None:
        self.listen = listen
        self.version = version
        self.started = time.time()
        self.frame: series.Frame | None = None  # replaced whole by observe; the serving thread reads it
        self.tally = series.Tally()
        self.reload_result: ReloadResult | None = None
        self._counted: Plan | None = None  # the last plan whose transitions are in the tally
        self.registry = CollectorRegistry()
        self.registry.register(_Latest(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.renders = 0  # pages rendered (the tests count them)
        self.refused = 0  # connections closed at once: MAX_CONNECTIONS were open
        self.open = 0  # connections open now
        self._pages: dict[bool, tuple[float, bytes, bytes | None]] = {}  # openmetrics? -> page
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self._server: threading.Thread | None = None
        self._retry_at = 0.0
        self._failure: str | None = None  # why the listener cannot open, until it does
        self._hint = ""

    @classmethod
    def of(cls, settings: Settings, version: str) -> Exporter | None:
        """The exporter `rhid run`'s settings ask for; None without --metrics-listen."""
        return None if settings.metrics_listen is None else cls(settings.metrics_listen, version)

    # ---- the loop's side ---------------------------------------------------------------------

    def observe(
        self,
        plan: Plan,
        states: Mapping[Proxy, health.ProxyState],
        *,
        haproxy: series.HAProxyFacts,
        bird: series.BirdFacts,
        reload_result: ReloadResult,
        ready: bool,
        duration: float,
        now: float,
    ) -> None:
        """Take one completed cycle's facts (`now`: monotonic, when it started; `duration`: how long
        it took). Never blocks: the serving thread reads the Frame this builds."""
        if plan is not self._counted:  # a plan made without `planned` (the first, say) is counted now
            self.planned(plan)
        wall_now = time.time()
        reloaded = None
        # Each reload makes a new ReloadResult: a new object is a new reload, even one that reads
        # exactly as the last (two in the same second, say).
        if self.reload_result is not None and reload_result is not self.reload_result:
            reloaded = "failed" if reload_result.failed else "ok"
        self.reload_result = reload_result
        self.tally = series.advance(self.tally, reloaded=reloaded, duration=duration, wall_now=wall_now)
        self.frame = series.Frame(
            self.version,
            plan,
            states,
            haproxy,
            bird,
            self.tally,
            ready,
            self.started,
            time.monotonic(),
            wall_now,
        )
        if self._listener is None and now >= self._retry_at:
            self.start(now)

    def planned(self, plan: Plan) -> None:
        """Count a plan's transitions: the daemon calls this for every plan it makes (a cycle after a
        reload may make two), so that no route's change goes uncounted."""
        self.tally = series.count(self.tally, plan)
        self._counted = plan

    # ---- the listener --------------------------------------------------------------------------

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Serve from now until the block ends."""
        self.start(time.monotonic())
        try:
            yield
        finally:
            self.close()

    def start(self, now: float) -> None:
        """Open the listener and its serving thread; on failure say why and what to do, once per
        reason, and try again after RETRY seconds."""
        family = socket.AF_INET6 if self.listen.address.version == 6 else socket.AF_INET
        try:
            listener = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            self._failed(exc, now)
            return
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((str(self.listen.address), self.listen.port))
            listener.listen(64)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            self._failed(exc, now)
            return
        self._listener = listener
        self._closing.clear()
        self._server = threading.Thread(
            target=self._serve, args=(listener,), name="rhid-metrics", daemon=True
        )
        self._server.start()
        self._failure = None
        log.info("metrics.listening", address=str(self.listen), path="/metrics")
        if _only_loopback():
            log.warning(
                "metrics.isolated",
                address=str(self.listen),
                hint="this process's network namespace has only a loopback interface (the service's "
                "PrivateNetwork=yes?): nothing outside it can scrape; install the metrics drop-in "
                "(README, 'Metrics')",
            )

    def _failed(self, exc: OSError, now: float) -> None:
        reason = exc.strerror or str(exc)
        if reason != self._failure:
            self._hint = HINTS.get(exc.errno or 0, "see README, 'Metrics'")
            log.error(
                "metrics.unavailable",
                address=str(self.listen),
                reason=reason,
                hint=self._hint,
                retry_in=RETRY,
            )
            self._failure = reason
        self._retry_at = now + RETRY

    def close(self) -> None:
        """Stop serving: the serving thread closes every connection and the listener, within WAKE
        seconds (or at the end of a render under way)."""
        self._closing.set()
        if self._server is not None:
            self._server.join(2 * WAKE)
            self._server = None
        self._listener = None

    @property
    def problem(self) -> str | None:
        """Why metrics are not served, in operator words (`rhid status` prints it); None while they are."""
        if self._failure is None:
            return None
        return (
            f"--metrics-listen {self.listen}: cannot listen ({self._failure}): {self._hint}; rhid tries "
            f"again every {RETRY:g} s"
        )

    @property
    def port(self) -> int | None:
        """The port listened on (None while not listening)."""
        return None if self._listener is None else int(self._listener.getsockname()[1])

    # ---- the serving thread ------------------------------------------------------------------

    def _serve(self, listener: socket.socket) -> None:
        """The serving thread: every connection, non-blocking, until `close`."""
        server = _Server(self, listener)
        try:
            while not self._closing.is_set():
                server.step()
        finally:
            server.close()

    def respond(self, head: bytes) -> bytes:
        """The whole HTTP response to one request head."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _response(400, b"bad request\n")
        method, target, _ = parts
        if method not in {"GET", "HEAD"}:
            return _response(405, b"only GET and HEAD\n", ("Allow", "GET, HEAD"))
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        extra: tuple[tuple[str, str], ...] = ()
        if path == "/":
            body = b"rhid: metrics at /metrics\n"
        elif path == "/metrics":
            wanted = _accepts(headers.get("accept", ""), "application/openmetrics-text")
            zipped = _accepts(headers.get("accept-encoding", ""), "gzip")
            body, kind = self.render(openmetrics=wanted, zipped=zipped)
            extra = (("Content-Type", kind), *((("Content-Encoding", "gzip"),) if zipped else ()))
        else:
            return _response(404, b"not found: metrics are at /metrics\n")
        return _response(200, body, *extra, head_only=method == "HEAD")

    def render(self, *, openmetrics: bool = False, zipped: bool = False) -> tuple[bytes, str]:
        """The page and its content type, rendered again only when the last one is stale (see the
        module's bounds)."""
        fresh_until, page, packed = self._pages.get(openmetrics, (0.0, b"", None))
        if time.monotonic() >= fresh_until:
            began = time.monotonic()
            page, packed = _encoder(openmetrics)(self.registry), None
            cost = time.monotonic() - began
            fresh_until = time.monotonic() + max(RENDER_GAP, RENDER_SHARE * cost)
            self.renders += 1
        if zipped and packed is None:
            packed = gzip.compress(page, compresslevel=6)
        self._pages[openmetrics] = (fresh_until, page, packed)
        kind = OPENMETRICS_TYPE if openmetrics else CONTENT_TYPE_LATEST
        return (packed if zipped and packed is not None else page), kind


def serving(exporter: Exporter | None) -> AbstractContextManager[None]:
    """`exporter.serving()`, or nothing without one (no --metrics-listen)."""
    return nullcontext() if exporter is None else exporter.serving()


class _Exchange:
    """One connection: its deadline, the request read so far, and the reply still to send."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self.connection = connection
        self.deadline = deadline
        self.request = b""
        self.head: bytes | None = None  # the complete request head, waiting for its answer
        self.reply: memoryview | None = None
        self.watched = True  # registered with the selector (not while waiting for its answer)


class _Server:
    """The serving thread's state: the listener, each open exchange, and the requests waiting for
    their answer (one every ANSWER_GAP seconds: a flood of scrapers costs at most 100 answers a
    second, whatever its size)."""

    def __init__(self, exporter: Exporter, listener: socket.socket) -> None:
        self.exporter = exporter
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.exchanges: dict[socket.socket, _Exchange] = {}
        self.waiting: collections.deque[_Exchange] = collections.deque()
        self.next_answer = 0.0

    def step(self) -> None:
        """Wait for the sockets (at most WAKE seconds), move every exchange on, answer the next
        request when its turn has come, and end the exchanges past their deadline."""
        now = time.monotonic()
        wake = min((exchange.deadline for exchange in self.exchanges.values()), default=now + WAKE)
        if self.waiting:
            wake = min(wake, self.next_answer)
        for key, _ in self.selector.select(min(max(0.0, wake - now), WAKE)):
            if key.data is None:
                self.accept()
            else:
                self.advance(key.data)
        while self.waiting and time.monotonic() >= self.next_answer:
            exchange = self.waiting.popleft()
            if exchange.connection in self.exchanges and exchange.head is not None:
                self.reply(exchange, self.exporter.respond(exchange.head))
                self.next_answer = time.monotonic() + ANSWER_GAP
        now = time.monotonic()
        for exchange in [e for e in self.exchanges.values() if now >= e.deadline]:
            self.end(exchange)

    def accept(self) -> None:
        """Take every pending connection; beyond MAX_CONNECTIONS, close each at once."""
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # none left (BlockingIOError), or out of descriptors: look again later
                return
            if len(self.exchanges) >= MAX_CONNECTIONS:
                self.exporter.refused += 1
                connection.close()
                continue
            connection.setblocking(False)
            exchange = _Exchange(connection, time.monotonic() + CONNECTION_DEADLINE)
            self.exchanges[connection] = exchange
            self.selector.register(connection, selectors.EVENT_READ, exchange)
            self.exporter.open = len(self.exchanges)

    def advance(self, exchange: _Exchange) -> None:
        """Read more of the request, or send more of the reply, as far as the socket allows now."""
        connection = exchange.connection
        try:
            if exchange.reply is None:
                chunk = connection.recv(4096)
                if not chunk:
                    self.end(exchange)
                    return
                exchange.request += chunk
                head, found, _ = exchange.request.partition(b"\r\n\r\n")
                if len(head) > MAX_REQUEST:
                    self.reply(exchange, _response(431, b"request head too large\n"))
                elif found:  # its turn comes in `step`; meanwhile nothing more is read
                    exchange.head = head
                    self.selector.unregister(connection)
                    exchange.watched = False
                    self.waiting.append(exchange)
                return
            exchange.reply = exchange.reply[connection.send(exchange.reply[:SEND_CHUNK]) :]
        except BlockingIOError:
            return
        except OSError:  # reset, or gone: nothing to tell anyone
            self.end(exchange)
            return
        if not exchange.reply:
            self.end(exchange)

    def reply(self, exchange: _Exchange, response: bytes) -> None:
        """Send `response` from now on, as the socket takes it."""
        exchange.reply = memoryview(response)
        if exchange.watched:
            self.selector.modify(exchange.connection, selectors.EVENT_WRITE, exchange)
        else:
            self.selector.register(exchange.connection, selectors.EVENT_WRITE, exchange)
            exchange.watched = True

    def end(self, exchange: _Exchange) -> None:
        """Close the exchange's connection (a waiting one is skipped when its turn comes)."""
        if exchange.watched:
            self.selector.unregister(exchange.connection)
        exchange.connection.close()
        del self.exchanges[exchange.connection]
        self.exporter.open = len(self.exchanges)

    def close(self) -> None:
        """End every exchange and stop listening."""
        for exchange in list(self.exchanges.values()):
            self.end(exchange)
        self.selector.close()
        self.listener.close()


class _Latest(Collector):
    """The registry's view of the exporter's latest Frame."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterable[Metric]:
        frame = self.exporter.frame  # one read: the loop may swap in the next meanwhile
        found = series.starting(self.exporter.version) if frame is None else series.families(frame)
        for family in found:
            metric = Metric(family.name, family.help, family.kind)
            for name, labels, value in family.samples:
                metric.add_sample(name, labels, value)
            yield metric


OPENMETRICS_TYPE: str = openmetrics.CONTENT_TYPE_LATEST


def _encoder(wanted: bool) -> Callable[[CollectorRegistry], bytes]:
    if wanted:
        encode: Callable[[CollectorRegistry], bytes] = openmetrics.generate_latest
        return encode
    return generate_latest


def _accepts(header: str, wanted: str) -> bool:
    """True when an Accept or Accept-Encoding header lists `wanted` (parameters aside)."""
    return any(item.split(";", 1)[0].strip().lower() == wanted for item in header.split(","))


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Too Large"}


def _response(status: int, body: bytes, *headers: tuple[str, str], head_only: bool = False) -> bytes:
    fields = dict(headers)
    fields.setdefault("Content-Type", "text/plain; charset=utf-8")
    lines = [f"HTTP/1.1 {status} {REASONS[status]}", *(f"{k}: {v}" for k, v in fields.items())]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + (b"" if head_only else body)


def _only_loopback() -> bool:
    """True when this process's network namespace has no interface but loopback."""
    try:
        return {name for _, name in socket.if_nameindex()} <= {"lo"}
    except OSError:
        return False
