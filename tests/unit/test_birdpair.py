"""BIRD 1.6's two daemons as one BIRD edge (rhid.birdpair), against scripted BIRD 1.6 daemons that
read rhid's files as bird and bird6 do: each family's files, each daemon's configure, reachability
and problems; the stop; gateways; attributes a BIRD cannot carry; a BIRD replaced under rhid."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from rhid import birdwire, routefiles, status
from rhid.birdpair import BirdPair, choose, edge
from rhid.dialect import BIRD2, BIRD3, BIRD16, of_greeting
from rhid.errors import BirdUnavailableError, CannotRunError, FatalError
from rhid.gateway import parse
from rhid.model import Attributes, BirdState, Channel, Route
from rhid.plan import Decision, Plan, RouteState
from rhid.reconcile import BirdSide, Withdrawal
from rhid.settings import Settings
from tests.fault.fakes import FakeServer, bird

N = ipaddress.ip_network


class Daemon16:
    """A BIRD 1.6 daemon of one family: greets as 1.6, reads only its family's files at configure,
    answers `9001 X is not a protocol` for a protocol bird.conf lacks; `down` makes it unreachable."""

    def __init__(self, directory: Path, family: int, greeting: str = "BIRD 1.6.8 ready.") -> None:
        self.directory = directory
        self.family = family
        self.path = f"bird{'6' if family == 6 else ''}.ctl"
        self.greeting = greeting
        self.connections = 1
        self.commands: list[str] = []
        self.protocols: set[str] | None = None  # None: every table rhid writes is declared
        self.routes: dict[str, list[str]] = {}
        self.configured = 0
        self.down = False
        self.dormant: set[str] = set()  # gateways on no network of the daemon's: their routes stay out

    def connect(self) -> str:
        return self.greeting

    def request(self, command: str, timeout: float | None = None) -> birdwire.Reply:
        if self.down:
            raise BirdUnavailableError(self.path, "connection refused", "refused")
        self.commands.append(command)
        if command == birdwire.CONFIGURE:
            self.configured += 1
            self.routes = {}
            for path in sorted(self.directory.glob(f"*.ipv{self.family}.conf")):
                channel = routefiles.channel_of(path.name)
                assert channel is not None
                routes, _ = routefiles.read_routes(path.read_text(), channel.family)
                self.routes[channel.table] = sorted(
                    str(prefix)
                    for prefix, attributes in routes.items()
                    if str(attributes.via) not in self.dormant
                )
            return birdwire.Reply(3, ((3, "Reconfigured"),))
        if command == birdwire.SHOW_STATUS:
            lines = (
                (1000, "BIRD 1.6.8"),
                (1011, "Last reboot on 1"),
                (1011, f"Last reconfiguration on {self.configured}"),
            )
            return birdwire.Reply(13, (*lines, (13, "Daemon is up and running")))
        words = command.split()  # show route [PREFIX] protocol P
        protocol, only = words[-1], words[2] if len(words) == 5 else None
        if self.protocols is not None and protocol not in self.protocols:
            return birdwire.Reply(9001, ((9001, f"{protocol} is not a protocol"),))
        listed = [prefix for prefix in self.routes.get(protocol, []) if only in {None, prefix}]
        if only is not None and not listed:
            return birdwire.Reply(8001, ((8001, "Network not in table"),))
        listing = tuple((1007, f"{prefix}      blackhole [{protocol} 12:46:35] * (200)") for prefix in listed)
        return birdwire.Reply(0, (*listing, (0, "")))

    def close(self) -> None:
        pass


def plan_of(announced: dict[Route, Attributes], withdrawn: tuple[Route, ...] = ()) -> Plan:
    """A plan announcing `announced` (with their attributes) and withdrawing `withdrawn`."""
    decisions = {route: Decision(RouteState.ANNOUNCED, None, attributes=a) for route, a in announced.items()}
    decisions.update({route: Decision(RouteState.WITHDRAWN, None) for route in withdrawn})
    return Plan(decisions, frozenset(route.channel for route in decisions))


V4 = Route("vol1", N("192.0.2.10/32"))
V6 = Route("vol1", N("2001:db8::10/128"))
PLAIN = Attributes()


def rendered(bird_document: dict[str, object]) -> str:
    """`rhid status`'s text of a document whose BIRD part is `bird_document`."""
    return status.render(
        {
            "version": "x",
            "pid": 1,
            "started": "t",
            "status": "s",
            "announced": 1,
            "withdrawn": 0,
            "rules": {"path": "p", "count": 1, "loaded": "t", "reload": "r"},
            "haproxy": {"state": "reachable", "socket": "h"},
            "bird": bird_document,
            "problems": [],
            "routes": [],
        }
    )


def pair(tmp_path: Path, **kwargs: object) -> tuple[BirdPair, Daemon16, Daemon16]:
    directory = tmp_path / "rhid"
    bird4, bird6 = Daemon16(directory, 4), Daemon16(directory, 6)
    sides = (
        BirdSide(directory, daemon, dialect=BIRD16, family=family, **kwargs)  # type: ignore[arg-type]
        for daemon, family in ((bird4, 4), (bird6, 6))
    )
    return BirdPair(*sides), bird4, bird6


def test_each_daemon_gets_its_familys_files_and_configures_only_when_they_change(tmp_path: Path) -> None:
    """bird reads the IPv4 files and bird6 the IPv6 ones, both as protocol vol1; a change of IPv4
    routes alone configures bird only."""
    edge_, bird4, bird6 = pair(tmp_path)
    assert edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    assert bird4.routes == {"vol1": ["192.0.2.10/32"]}
    assert bird6.routes == {"vol1": ["2001:db8::10/128"]}
    assert "show route protocol vol1_v6" not in bird6.commands  # no _v6 on BIRD 1.6
    report = edge_.report()
    assert report.in_sync
    assert report.state is BirdState.REACHABLE
    assert [d.name for d in report.daemons] == ["bird", "bird6"]
    configured = bird6.configured
    edge_.apply(plan_of({V6: PLAIN}, (V4,)), 2.0)
    assert bird4.routes == {"vol1": []}
    assert bird6.configured == configured, "bird6's files did not change"
    assert edge_.count == 1
    assert edge_.announced() == {V6: PLAIN}


def test_an_unreachable_bird6_is_its_own_problem_and_bird_goes_on(tmp_path: Path) -> None:
    """bird6 refusing connections: the report names bird6 and its socket, the state is the worse,
    the STATUS= words say which, and bird still takes its routes."""
    edge_, bird4, bird6 = pair(tmp_path)
    bird6.down = True
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    assert bird4.routes == {"vol1": ["192.0.2.10/32"]}
    report = edge_.report()
    assert report.state is BirdState.UNREACHABLE
    assert not report.in_sync
    assert report.words == "bird reachable, bird6 unreachable"
    assert report.problems
    assert all(problem.startswith("bird6 (bird6.ctl): BIRD is unreachable") for problem in report.problems)
    assert "bird6: bird6.ctl: connection refused" in (report.last_error or "")
    document = json.loads(json.dumps(report.document()))
    assert [d["state"] for d in document["daemons"]] == ["reachable", "unreachable"]
    assert "bird6:   unreachable" in rendered(document)


def test_a_family_without_routes_leaves_its_daemon_alone(tmp_path: Path) -> None:
    """An IPv4-only node may run no bird6: it is never asked, and its silence is no problem."""
    edge_, _, bird6 = pair(tmp_path)
    bird6.down = True
    edge_.apply(plan_of({V4: PLAIN}), 1.0)
    assert bird6.commands == []
    report = edge_.report()
    assert report.in_sync
    assert report.problems == ()
    assert report.state is BirdState.REACHABLE
    assert [d.unused for d in report.daemons] == [False, True]
    document = json.loads(json.dumps(report.document()))
    text = rendered(document)
    assert "bird6:   not used: no rule has a route of its family (bird6.ctl)" in text
    assert edge_.stop(plan_of({}, (V4,)), 2.0) is Withdrawal.CONFIRMED
    assert bird6.commands == []


def test_a_missing_protocol_says_which_daemons_config_lacks_it(tmp_path: Path) -> None:
    """bird6.conf without protocol vol1 (BIRD 1.6 answers `9001 vol1 is not a protocol`)."""
    edge_, _, bird6 = pair(tmp_path)
    bird6.protocols = set()
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    report = edge_.report()
    assert report.missing_protocols == ("bird6: vol1",)
    assert any(p.startswith("bird6 (bird6.ctl): BIRD has no protocol vol1") for p in report.problems)


def test_a_stop_empties_both_and_reports_the_worse(tmp_path: Path) -> None:
    """Both daemons' files are emptied; a bird6 that does not answer makes the stop unconfirmed,
    while bird confirms its own."""
    edge_, bird4, bird6 = pair(tmp_path)
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    bird6.down = True
    with capture_logs() as logs:
        outcome = edge_.stop(plan_of({}, (V4, V6)), 2.0, bound=1.0)
    assert outcome is Withdrawal.UNCONFIRMED
    assert bird4.routes == {"vol1": []}
    assert all("route " not in path.read_text() for path in (tmp_path / "rhid").glob("*.conf"))
    confirmed = {
        e.get("socket") for e in logs if e["event"] == "daemon.stopping" and e.get("bird") == "confirmed"
    }
    assert confirmed == {"bird.ctl"}
    bird6.down = False
    edge_, bird4, bird6 = pair(tmp_path)
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 3.0)
    assert edge_.stop(plan_of({}, (V4, V6)), 4.0) is Withdrawal.CONFIRMED


def test_a_gateway_leads_its_tables_routes_of_its_family(tmp_path: Path) -> None:
    """--gateway vol1=198.18.0.99 makes vol1's IPv4 routes `via` it; IPv6 stays a blackhole; the
    report names the gateway."""
    edge_, _, _ = pair(tmp_path, gateways=(parse("vol1=198.18.0.99"),))
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    directory = tmp_path / "rhid"
    assert "route 192.0.2.10/32 via 198.18.0.99;" in (directory / "vol1.ipv4.conf").read_text()
    assert "route 2001:db8::10/128 blackhole;" in (directory / "vol1.ipv6.conf").read_text()
    assert edge_.report().gateways == ("vol1=198.18.0.99",)
    # read back at a restart: the same routes, nothing to rewrite
    again = BirdSide(
        directory, Daemon16(directory, 4), dialect=BIRD16, family=4, gateways=(parse("vol1=198.18.0.99"),)
    )
    assert again.written == {Channel("vol1", 4): {V4.prefix: Attributes(ipaddress.ip_address("198.18.0.99"))}}


def test_a_gateway_that_bird_never_announces_is_explained(tmp_path: Path) -> None:
    """A route via a gateway BIRD leaves dormant is missing from BIRD: the problem says why."""
    directory = tmp_path / "rhid"
    daemon = Daemon16(directory, 4)
    side = BirdSide(directory, daemon, dialect=BIRD16, family=4, gateways=(parse("vol1=203.0.113.9"),))
    daemon.dormant = {"203.0.113.9"}  # BIRD keeps the route dormant: not in show route
    for now in (1.0, 40.0, 80.0):
        side.apply(plan_of({V4: PLAIN}), now)
    assert any("lead via 203.0.113.9 (--gateway)" in p and "(dormant)" in p for p in side.problems())


def test_attributes_a_bird_cannot_carry_are_left_out_and_said(tmp_path: Path) -> None:
    """A BIRD 1.6.2 (no large communities) gets the route with its MED and without the large
    community, logged once and reported; 1.6.8 gets both."""
    directory = tmp_path / "rhid"
    daemon = Daemon16(directory, 4, "BIRD 1.6.2 ready.")
    side = BirdSide(directory, daemon, dialect=of_greeting(daemon.greeting), family=4)
    degraded = Attributes(med=200, large_communities=((65000, 1, 2),))
    with capture_logs() as logs:
        side.apply(plan_of({V4: degraded}), 1.0)
        side.apply(plan_of({V4: degraded}, ()), 2.0)
    text = (directory / "vol1.ipv4.conf").read_text()
    assert "route 192.0.2.10/32 blackhole { bgp_med = 200; };" in text
    dropped = [e for e in logs if e["event"] == "bird.attributes_uncarried"]
    assert len(dropped) == 1
    assert dropped[0]["left_out"] == ["large communities"]
    assert any("announced without its large communities" in p for p in side.problems())
    full = BirdSide(tmp_path / "other", Daemon16(tmp_path / "other", 4), dialect=BIRD16, family=4)
    full.apply(plan_of({V4: degraded}), 1.0)
    assert "bgp_large_community.add((65000,1,2));" in (tmp_path / "other" / "vol1.ipv4.conf").read_text()
    assert full.problems() == []


def test_a_bird_replaced_under_rhid_stops_it_without_touching_the_routes(tmp_path: Path) -> None:
    """The socket rhid speaks BIRD 1.6 to greets as BIRD 2 (bird2 installed in place of bird):
    rhid exits (FatalError: systemd restarts it), the files as they were."""
    edge_, bird4, _ = pair(tmp_path)
    edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 1.0)
    before = (tmp_path / "rhid" / "vol1.ipv4.conf").read_text()
    bird4.greeting = "BIRD 2.0.12 ready."
    with pytest.raises(
        FatalError, match=r"greets 'BIRD 2\.0\.12 ready\.', but rhid started speaking BIRD 1\.6"
    ):
        edge_.apply(plan_of({V4: PLAIN, V6: PLAIN}), 2.0)
    assert (tmp_path / "rhid" / "vol1.ipv4.conf").read_text() == before


def test_a_pair_is_an_ipv4_side_and_an_ipv6_side(tmp_path: Path) -> None:
    """Two sides of the same family are a bug."""
    directory = tmp_path / "rhid"
    side = BirdSide(directory, Daemon16(directory, 4), dialect=BIRD16, family=4)
    with pytest.raises(AssertionError):
        BirdPair(side, side)


def greeting_server(path: Path, greeting: bytes) -> FakeServer:
    return FakeServer(path, bird({}, greeting))


def test_which_bird_is_chosen(tmp_path: Path) -> None:
    """auto: the greeting on --bird-socket, else bird6's, else BIRD 1.6 when its socket exists,
    else BIRD 2; an explicit --bird-version the greeting contradicts is refused, naming both."""
    ctl, ctl6 = tmp_path / "bird.ctl", tmp_path / "bird6.ctl"
    settings = Settings(
        bird_socket=str(ctl), bird6_socket=str(ctl6), bird_dir=tmp_path / "rhid", bird_timeout=0.5
    )
    assert choose(settings)[0] is BIRD2  # nothing answers, no bird6 socket
    server6 = greeting_server(ctl6, b"0001 BIRD 1.6.8 ready.\n")
    try:
        dialect, why = choose(settings)
        assert dialect is BIRD16
        assert "bird6.ctl greets 'BIRD 1.6.8 ready.'" in why
        server = greeting_server(ctl, b"0001 BIRD 1.6.3 ready.\n")
        try:
            assert choose(settings) == (BIRD16, f"{ctl} greets 'BIRD 1.6.3 ready.'")
            with pytest.raises(
                CannotRunError, match=r"--bird-version 2, but .* greets 'BIRD 1\.6\.3 ready\.'"
            ):
                choose(Settings(bird_socket=str(ctl), bird_version="2"))
            assert choose(Settings(bird_socket=str(ctl), bird_version="1.6")) == (
                BIRD16,
                f"--bird-version 1.6; {ctl} greets 'BIRD 1.6.3 ready.'",
            )
        finally:
            server.close()
    finally:
        server6.close()
    ctl6.unlink(missing_ok=True)
    ctl6.write_text("")  # a socket file left by a stopped bird6
    assert choose(settings)[0] is BIRD16
    assert choose(Settings(bird_socket=str(ctl), bird_version="3")) == (
        BIRD3,
        f"--bird-version 3 (no BIRD answers on {ctl} yet)",
    )
    assert isinstance(edge(settings, BIRD16, None, None), BirdPair)
    assert isinstance(edge(settings, BIRD2, None, None), BirdSide)
