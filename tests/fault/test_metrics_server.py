"""The metrics listener against well-behaved, slow and flooding scrapers: what it serves, and that no
scraper can make the loop wait, grow the threads, or render more than its bounds allow."""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from rhid import health, metrics, plan
from rhid.daemon import Daemon
from rhid.haproxy import HAProxyReport, StreamReport
from rhid.model import BirdState, HAProxyState, Proxy, StreamState
from rhid.reconcile import BirdReport
from rhid.rulefile import NO_RELOAD
from rhid.rules import RuleSet, parse_rules
from rhid.settings import Settings, parse_listen
from rhid.stats import Observation, ProxyStatus
from tests.integration.lab import free_port, wait_for

ROOT = Path(__file__).parents[2]
HAPROXY = HAProxyReport(
    "/h", HAProxyState.REACHABLE, "1", None, (), StreamReport(StreamState.OFF, None, 0, 0)
)
BIRD = BirdReport("/b", BirdState.REACHABLE, "BIRD 2.0.12 ready.", True, (), None, None, ())


def many_rules(count: int) -> RuleSet:
    return parse_rules(
        "".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256} = all(b:be_{i % 50})\n" for i in range(count))
    )


def plans(rules: RuleSet, failing: int = 0) -> tuple[plan.Plan, plan.Plan, Mapping[Proxy, health.ProxyState]]:
    """The rules' plan with every backend up, and with every backend down (or only the `failing`
    first ones, in name order)."""
    thresholds = health.Thresholds(fall=1, rise=1)
    proxies = sorted(rules.proxies, key=str)
    up, _, _ = health.observe({}, dict.fromkeys(proxies, ProxyStatus(Observation.UP, "UP")), 1.0, thresholds)
    down_ones = proxies[:failing] if failing else proxies
    down, _, _ = health.observe(
        up, dict.fromkeys(down_ones, ProxyStatus(Observation.DOWN, "DOWN")), 2.0, thresholds
    )
    first = plan.decide(plan.EMPTY, rules, up, plan.NO_INTENTS, 1.0)
    return first, plan.decide(first, rules, down, plan.NO_INTENTS, 2.0), up


def observe(
    exporter: metrics.Exporter,
    the_plan: plan.Plan,
    states: Mapping[Proxy, health.ProxyState] | None = None,
) -> None:
    exporter.observe(
        the_plan,
        states or {},
        haproxy=HAPROXY,
        bird=BIRD,
        reload_result=NO_RELOAD,
        ready=True,
        duration=0.001,
        now=time.monotonic(),
    )


@pytest.fixture
def exporter() -> Iterator[metrics.Exporter]:
    found = metrics.Exporter(parse_listen(f"127.0.0.1:{free_port()}"), "9.9")
    with found.serving():
        assert found.port is not None
        yield found


def request(port: int, head: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def scrape(port: int, *headers: str) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers and body of GET /metrics."""
    extra = "".join(f"{header}\r\n" for header in headers)
    reply = request(port, f"GET /metrics HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert int(fields["Content-Length"]) == len(body)
    return lines[0], fields, body


def values(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())  # type: ignore[no-untyped-call,unused-ignore]
        for s in family.samples
    }


def test_a_scrape_reads_the_latest_cycle_in_every_format(
    exporter: metrics.Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the first cycle rhid_ready is 0; after it the plan's routes are there, in Prometheus'
    text format, in OpenMetrics when asked, gzipped when accepted; HEAD has the headers only."""
    monkeypatch.setattr(metrics, "RENDER_GAP", 0.0)
    monkeypatch.setattr(metrics, "RENDER_SHARE", 0.0)
    assert exporter.port is not None
    status, fields, body = scrape(exporter.port)
    assert status == "HTTP/1.1 200 OK"
    # Prometheus' text format: version 0.0.4 (Debian 12's client) or 1.0.0 (prometheus-client 0.22+)
    assert re.match(r"text/plain; version=(0\.0\.4|1\.0\.0)", fields["Content-Type"]), fields["Content-Type"]
    assert values(body)[("rhid_ready", frozenset())] == 0.0
    rules = parse_rules("10.0.0.1 = all(b:be_app)\n")
    up, _, states = plans(rules)
    observe(exporter, up, states)
    found = values(scrape(exporter.port)[2])
    assert found[("rhid_ready", frozenset())] == 1.0
    assert (
        found[("rhid_route_announced", frozenset({"table": "vol1", "prefix": "10.0.0.1/32"}.items()))] == 1.0
    )
    assert ("process_resident_memory_bytes", frozenset()) in found
    status, fields, body = scrape(exporter.port, "Accept: application/openmetrics-text; version=1.0.0")
    assert fields["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    status, fields, zipped = scrape(exporter.port, "Accept-Encoding: deflate, gzip;q=0.9")
    assert fields["Content-Encoding"] == "gzip"
    assert values(gzip.decompress(zipped))[("rhid_ready", frozenset())] == 1.0
    head = request(exporter.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 0" not in head


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /other HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed"),
        (b"GET /metrics\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", b"HTTP/1.1 400 Bad Request"),  # TLS
        (b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 9000 + b"\r\n\r\n", b"HTTP/1.1 431 Too Large"),
    ],
)
def test_anything_but_a_scrape_gets_a_short_answer(
    exporter: metrics.Exporter, head: bytes, status: bytes
) -> None:
    """Other paths, methods, garbage and oversized heads are answered with an error, never a page."""
    assert exporter.port is not None
    assert request(exporter.port, head).startswith(status)


def test_pages_are_reused_for_the_render_gap(
    exporter: metrics.Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scrapes within RENDER_GAP share one render (a flood costs one); after it, a new cycle shows."""
    monkeypatch.setattr(metrics, "RENDER_GAP", 0.5)
    assert exporter.port is not None
    rules = parse_rules("10.0.0.1 = all(b:be_app)\n")
    up, down, states = plans(rules)
    observe(exporter, up, states)
    key = ("rhid_route_announced", frozenset({"table": "vol1", "prefix": "10.0.0.1/32"}.items()))
    before = exporter.renders
    assert [values(scrape(exporter.port)[2])[key] for _ in range(5)] == [1.0] * 5
    observe(exporter, down)
    assert values(scrape(exporter.port)[2])[key] == 1.0, "within the gap: the same page"
    assert exporter.renders == before + 1
    time.sleep(0.6)
    assert values(scrape(exporter.port)[2])[key] == 0.0
    assert exporter.renders == before + 2


def test_slow_scrapers_are_cut_off_at_their_deadline_and_one_more_is_turned_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MAX_CONNECTIONS connections that trickle a request are held only until CONNECTION_DEADLINE (a
    total for the exchange, not per read); one more is closed at once; then a scrape succeeds."""
    monkeypatch.setattr(metrics, "CONNECTION_DEADLINE", 0.5)
    exporter = metrics.Exporter(parse_listen(f"127.0.0.1:{free_port()}"), "9.9")
    with exporter.serving():
        assert exporter.port is not None
        port = exporter.port
        slow = [
            socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(metrics.MAX_CONNECTIONS)
        ]
        try:
            for sock in slow:
                sock.sendall(b"G")
            wait_for("every connection taken", lambda: exporter.open == metrics.MAX_CONNECTIONS, 5)
            started = time.monotonic()
            try:
                turned_away = request(port, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
            except ConnectionResetError:  # closed with our request unread
                turned_away = True
            assert turned_away, "closed at once, not queued"
            assert time.monotonic() - started < 0.4
            assert exporter.refused == 1
            for _ in range(15):  # keep trickling, one byte per 0.1 s: the deadline still holds
                for sock in slow:
                    with contextlib.suppress(OSError):  # the server may have closed it
                        sock.sendall(b"E")
                time.sleep(0.1)
            for sock in slow:
                sock.settimeout(0.1)
                with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread: reset
                    assert sock.recv(100) == b"", "closed by the server"
        finally:
            for sock in slow:
                sock.close()
        assert scrape(port)[0] == "HTTP/1.1 200 OK"


def test_a_flood_of_scrapers_never_stalls_the_loop() -> None:
    """While a process of fast and slow scrapers hammers the listener for 4 s, the loop (observe
    every 5 ms, 10,000 routes of which 200 move each time) never waits as long as one render takes,
    the exporter adds one thread whatever the number of scrapers, renders stay within one per
    RENDER_GAP, and fast scrapers are served beside the slow ones."""
    rules = many_rules(10000)
    up, down, states = plans(rules, failing=1)
    exporter = metrics.Exporter(parse_listen(f"127.0.0.1:{free_port()}"), "9.9")
    with exporter.serving():
        assert exporter.port is not None
        observe(exporter, up, states)
        began = time.monotonic()
        exporter.render()
        render_cost = time.monotonic() - began  # what a loop that rendered itself would wait
        baseline = threading.active_count()
        seconds = 4.0
        flood = subprocess.Popen(
            [sys.executable, "-m", "tests.fault.scrapers", str(exporter.port), str(seconds), "16", "40"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        try:
            time.sleep(0.5)  # the flood is under way
            longest_observe = longest_gap = 0.0
            most_threads = iterations = 0
            last = time.monotonic()
            until = last + seconds - 1.0
            while time.monotonic() < until:
                began = time.monotonic()
                observe(exporter, down if iterations % 2 else up, states)
                done = time.monotonic()
                longest_observe = max(longest_observe, done - began)
                longest_gap = max(longest_gap, done - last)
                most_threads = max(most_threads, threading.active_count())
                last = done
                iterations += 1
                time.sleep(0.005)
            out, _ = flood.communicate(timeout=30)
        finally:
            if flood.poll() is None:
                flood.kill()
                flood.wait()
        counts = json.loads(out)
        assert counts.get("ok", 0) >= 20, f"fast scrapers served beside 40 slow ones: {counts}"
        assert most_threads == baseline, most_threads
        assert exporter.renders <= seconds / metrics.RENDER_GAP + 2, exporter.renders
        assert longest_observe < render_cost, f"observe {longest_observe:.3f} s, render {render_cost:.3f} s"
        assert longest_gap < 0.5, f"the loop waited {longest_gap:.3f} s"
        assert iterations >= 10, (
            iterations
        )  # the loop ran all along (how often depends on the machine's load)
        assert scrape(exporter.port)[0] == "HTTP/1.1 200 OK"


def test_a_port_taken_is_said_with_its_fix_and_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener that cannot open logs metrics.unavailable with a hint, once per reason; a later
    cycle after RETRY opens it. Routing never waited on it."""
    monkeypatch.setattr(metrics, "RETRY", 0.0)
    port = free_port()
    occupant = socket.create_server(("127.0.0.1", port))
    exporter = metrics.Exporter(parse_listen(f"127.0.0.1:{port}"), "9.9")
    try:
        with capture_logs() as events, exporter.serving():
            observe(exporter, plan.EMPTY)  # tries again: the same reason is not logged twice
            assert exporter.port is None
            occupant.close()
            observe(exporter, plan.EMPTY)
            assert exporter.port == port
            assert scrape(port)[0] == "HTTP/1.1 200 OK"
    finally:
        occupant.close()
    unavailable = [e for e in events if e["event"] == "metrics.unavailable"]
    assert len(unavailable) == 1, events
    assert "another program listens" in unavailable[0]["hint"]
    assert [e["event"] for e in events].count("metrics.listening") == 1


def test_a_network_namespace_with_only_loopback_is_said(tmp_path: Path) -> None:
    """Listening inside a namespace that has only lo (the unit's PrivateNetwork=yes) warns that no
    scraper outside can reach it, naming the drop-in."""
    if (
        subprocess.run(
            ["/usr/bin/unshare", "--net", "/bin/true"], check=False, capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("unshare --net is not permitted here (the tests run as root on CI)")
    code = (
        "import json, structlog.testing; from rhid import metrics; from rhid.settings import parse_listen\n"
        "with structlog.testing.capture_logs() as events:\n"
        "    e = metrics.Exporter(parse_listen('127.0.0.1:9198'), '9.9'); e.start(0.0); e.close()\n"
        "print(json.dumps([{k: str(v) for k, v in x.items()} for x in events]))\n"
    )
    out = subprocess.run(
        [
            "/usr/bin/unshare",
            "--net",
            "/bin/sh",
            "-c",
            '/usr/sbin/ip link set lo up && exec "$0" -c "$1"',
            sys.executable,
            code,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    events = json.loads(out)
    assert [e["event"] for e in events] == ["metrics.listening", "metrics.isolated"], events
    assert "drop-in" in events[1]["hint"]


def test_the_daemon_reports_each_cycle_and_each_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon with --metrics-listen: every cycle is counted and every reload by its result, even
    two that read alike; the edges' weather shows (here: no HAProxy, no BIRD)."""
    monkeypatch.setattr(metrics, "RENDER_GAP", 0.0)
    monkeypatch.setattr(metrics, "RENDER_SHARE", 0.0)
    rules_path = tmp_path / "r.cfg"
    rules_path.write_text("10.0.0.1 = all(b:a)\n")
    port = free_port()
    settings = Settings(
        str(rules_path), str(tmp_path / "no.sock"), str(tmp_path / "no.ctl"), tmp_path / "rhid",
        metrics_listen=parse_listen(f"127.0.0.1:{port}"),
    )  # fmt: skip
    daemon = Daemon(settings, parse_rules(rules_path.read_text()))
    assert daemon.metrics is not None
    with daemon.metrics.serving():
        daemon.cycle(time.monotonic())
        for text in ("10.0.0.1 = all(b:a)\n", "10.0.0.1 = all(b:a)\n", "10.0.0.1/24 = all(b:a)\n"):
            rules_path.write_text(text)
            daemon.reload(time.monotonic())
            daemon.cycle(time.monotonic())
        found = values(scrape(port)[2])
    assert found[("rhid_cycles_total", frozenset())] == 4.0
    assert found[("rhid_rules_reloads_total", frozenset({("result", "ok")}))] == 2.0
    assert found[("rhid_rules_reloads_total", frozenset({("result", "failed")}))] == 1.0
    assert found[("rhid_rules_last_reload_successful", frozenset())] == 0.0
    assert found[("rhid_haproxy_state", frozenset({("state", "unreachable")}))] == 1.0
    assert found[("rhid_bird_up", frozenset())] == 0.0


def test_metrics_that_cannot_listen_are_a_status_problem(tmp_path: Path) -> None:
    """`rhid status` prints a PROBLEM while the listener cannot open, with the reason and the fix."""
    port = free_port()
    occupant = socket.create_server(("127.0.0.1", port))
    rules = tmp_path / "r.cfg"
    rules.write_text("10.0.0.1 = all(b:a)\n")
    try:
        settings = Settings(
            str(rules), str(tmp_path / "no.sock"), str(tmp_path / "no.ctl"), tmp_path / "rhid",
            metrics_listen=parse_listen(f"127.0.0.1:{port}"),
        )  # fmt: skip
        daemon = Daemon(settings, parse_rules("10.0.0.1 = all(b:a)\n"))
        assert daemon.metrics is not None
        with daemon.metrics.serving():
            daemon.cycle(time.monotonic())
            notes = daemon.notes()
    finally:
        occupant.close()
    assert notes == (
        f"--metrics-listen 127.0.0.1:{port}: cannot listen (Address already in use): another program listens "
        "on this port: choose another; rhid tries again every 30 s",
    )
