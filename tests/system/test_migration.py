"""docs/MIGRATION.md walked on a node that runs stand-ins of the vendor's packages: section 3's
cutover, from hapee-extras-rhi + hapee-extras-route/-route6 to rhid + Debian's bird2 (or bird, BIRD
1.6), with no route missing at the router at any look, 20 a second.

The vendor's packages are not available here, so the test builds stand-ins with `dpkg-deb --build`
(see `standin_debs`): `hapee-extras-route` ships BIRD 1.6.8 as /opt/hapee-extras/sbin/hapee-route
and hapee-route6 with the services hapee-extras-route and hapee-extras-route6, their conffiles
/etc/hapee-extras/hapee-route.cfg and hapee-route6.cfg, /run/hapee-extras and group `hapee`; its
`protocol volatile` is a static protocol reading a file the stand-in RHI writes. `hapee-extras-rhi`
ships hapee-extras-rhi.service, /etc/hapee-extras/hapee-rhi.cfg and /etc/default/hapee-extras-rhi
as conffiles, and a script that puts every rule's routes into that file (health is not its
subject) and empties it when it stops, as the vendor's routes vanish with its process. Both stop
their services when removed, as Debian packages do.

The node is Debian 12's minimal base, systemd, Debian's haproxy (its socket the vendor's, group
hapee) and the stand-ins, booted with systemd-nspawn; the router is a BIRD 2 on the host's loopback
(a graceful-restart helper, BIRD's default), with one session per family to the node. The rhid
package is built as tests/system/test_package.py builds it, or taken from $RHID_DEB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from rhid import birdwire
from rhid.bird import BirdClient
from rhid.birdconf import bird_snippets
from rhid.dialect import BIRD2, BIRD16
from rhid.errors import BirdProtocolError, BirdUnavailableError
from rhid.rules import parse_rules
from tests.integration.lab import (
    BIRD,
    PEER_ADDRESS,
    SPEAKER_ADDRESS,
    Lab,
    bird16_programs,
    free_port,
    wait_for,
)
from tests.system.container import (
    Container,
    build_in_root,
    in_root,
    minimal_root,
    remove_root,
    run_logged,
    tool,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(2400)]

ROOT = Path(__file__).parents[2]
UNIT = "hapee-extras-rhi"
SOCKET = "/var/run/hapee-extras/hapee-lb.sock"
# The operator's rules (an edited vendor file): both families, two tables.
RULES = "10.80.0.1, 2001:db8:80::1 = all(b:be_app)\nvol2%10.80.0.2 = all(b:be_app)\n"
ROUTES = {"10.80.0.1/32", "2001:db8:80::1/128", "10.80.0.2/32"}
VENDOR_RULES = """\
# Inject the 10.200.200.200/32 address into the route daemon if
# all the backends "be_static" and "be_app" are up.
10.200.200.200/32 = all(b:be_static,b:be_app)
"""
VENDOR_DEFAULTS = '# HAPEE_LB_SOCKET="/var/run/hapee-2.9/hapee-lb.sock"\n'
V6_NEXT_HOP = "2001:db8:ffff::1"  # the router drops a next hop of ::1
ENVVARS = "BIRD_RUN_USER=bird\nBIRD_RUN_GROUP=bird\nBIRD_ARGS=-R\n"  # Debian's, with -R

# ---- the stand-ins of the vendor's packages -------------------------------------------------------

ROUTE_UNIT = """\
[Unit]
Description=stand-in of HAProxy Enterprise's route daemon ({family})
After=network.target
[Service]
ExecStart=/opt/hapee-extras/sbin/{binary} -f -c /etc/hapee-extras/{config} \\
    -s /var/run/hapee-extras/{binary}.ctl
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""
RHI_UNIT = """\
[Unit]
Description=stand-in of HAProxy Enterprise's route health injection
After=hapee-extras-route.service hapee-extras-route6.service
[Service]
EnvironmentFile=-/etc/default/hapee-extras-rhi
ExecStart=/opt/hapee-extras/bin/hapee-rhi
[Install]
WantedBy=multi-user.target
"""
# Every rule's routes into the volatile stand-in's files; emptied when it stops (SIGTERM).
RHI_SCRIPT = r"""#!/bin/sh
dir=/var/lib/hapee-extras
write() {
    : > $dir/vol.ipv4.tmp; : > $dir/vol.ipv6.tmp
    if [ "$1" = announce ]; then
        sed -e 's/#.*//' /etc/hapee-extras/hapee-rhi.cfg | grep = | cut -d= -f1 | tr ',' '\n' |
        while read -r net; do
            [ -n "$net" ] || continue
            net=${net#*%}
            case $net in
                *:*) case $net in */*) ;; *) net=$net/128 ;; esac
                     echo "route $net blackhole;" >> $dir/vol.ipv6.tmp ;;
                *) case $net in */*) ;; *) net=$net/32 ;; esac
                   echo "route $net blackhole;" >> $dir/vol.ipv4.tmp ;;
            esac
        done
    fi
    mv $dir/vol.ipv4.tmp $dir/vol.ipv4.conf; mv $dir/vol.ipv6.tmp $dir/vol.ipv6.conf
    for ctl in hapee-route hapee-route6; do
        /opt/hapee-extras/bin/hapee-route-cli -s /var/run/hapee-extras/$ctl.ctl configure >/dev/null 2>&1
    done
}
trap 'write withdraw; exit 0' TERM INT
write announce
while :; do sleep 1 & wait $!; done
"""


def volatile(family: int) -> str:
    """The stand-in's `protocol volatile`: a static protocol per table on the stand-in RHI's file
    (every table's routes in both: the stand-in ignores tables)."""
    return "".join(
        f'protocol static {table} {{\n  include "/var/lib/hapee-extras/vol.ipv{family}*.conf";\n}}\n'
        for table in (("vol1", "vol2") if family == 4 else ("vol1",))
    )


def package(  # noqa: PLR0917 -- one call per stand-in, each part named where it is called
    work: Path,
    name: str,
    depends: str,
    files: dict[str, tuple[str | Path, int]],
    scripts: dict[str, str],
    conffiles: list[str],
) -> Path:
    """A .deb built with dpkg-deb from `files` (path: text or a file to copy, mode)."""
    tree = work / f"{name}-tree"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0-standin\nArchitecture: amd64\n"
        "Maintainer: rhid tests <rhid@example.org>\n"
        f"Depends: {depends}\nDescription: stand-in of HAProxy Enterprise's {name} (rhid's migration test)\n"
    )
    (tree / "DEBIAN/conffiles").write_text("".join(f"{path}\n" for path in conffiles))
    for script, text in scripts.items():
        (tree / "DEBIAN" / script).write_text("#!/bin/sh\nset -e\n" + text)
        (tree / "DEBIAN" / script).chmod(0o755)
    for path, (content, mode) in files.items():
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_text(content)
        target.chmod(mode)
    deb = work / f"{name}_1.0-standin_amd64.deb"
    run_logged(
        f"dpkg-deb --build {name}",
        [tool("dpkg-deb"), "--root-owner-group", "--build", str(tree), str(deb)],
        work / "standins.log",
        60,
    )
    return deb


def standin_debs(work: Path, ports: dict[str, int]) -> list[Path]:
    """The stand-ins of hapee-extras-route (with -route6's daemon) and hapee-extras-rhi."""
    programs = bird16_programs()
    assert programs is not None, "BIRD 1.6 is missing: bash scripts/bird16.sh"
    units = "hapee-extras-route.service hapee-extras-route6.service"
    on_systemd = "[ -d /run/systemd/system ] && "
    route = package(
        work,
        "hapee-extras-route",
        "libreadline8, passwd",
        {
            "/opt/hapee-extras/sbin/hapee-route": (programs.bird, 0o755),
            "/opt/hapee-extras/sbin/hapee-route6": (programs.bird6, 0o755),
            "/opt/hapee-extras/bin/hapee-route-cli": (programs.birdc, 0o755),
            "/lib/systemd/system/hapee-extras-route.service": (
                ROUTE_UNIT.format(family="IPv4", binary="hapee-route", config="hapee-route.cfg"),
                0o644,
            ),
            "/lib/systemd/system/hapee-extras-route6.service": (
                ROUTE_UNIT.format(family="IPv6", binary="hapee-route6", config="hapee-route6.cfg"),
                0o644,
            ),
            "/usr/lib/tmpfiles.d/hapee-extras.conf": ("d /run/hapee-extras 0775 root hapee -\n", 0o644),
            "/etc/hapee-extras/hapee-route.cfg": (route_config(4, ports), 0o644),
            "/etc/hapee-extras/hapee-route6.cfg": (route_config(6, ports), 0o644),
        },
        {
            "postinst": "getent group hapee >/dev/null || groupadd --system hapee\n"
            "mkdir -p /var/lib/hapee-extras\nsystemd-tmpfiles --create hapee-extras.conf || true\n"
            f"systemctl enable {units} || true\n{on_systemd}systemctl start {units} || true\n",
            "prerm": f'if [ "$1" = remove ]; then {on_systemd}systemctl stop {units} || true\n'
            f"systemctl disable {units} || true; fi\n",
        },
        ["/etc/hapee-extras/hapee-route.cfg", "/etc/hapee-extras/hapee-route6.cfg"],
    )
    rhi = package(
        work,
        "hapee-extras-rhi",
        "hapee-extras-route",
        {
            "/opt/hapee-extras/bin/hapee-rhi": (RHI_SCRIPT, 0o755),
            "/lib/systemd/system/hapee-extras-rhi.service": (RHI_UNIT, 0o644),
            "/etc/hapee-extras/hapee-rhi.cfg": (VENDOR_RULES, 0o644),
            "/etc/default/hapee-extras-rhi": (VENDOR_DEFAULTS, 0o644),
        },
        {
            "postinst": f"systemctl enable {UNIT} || true\n{on_systemd}systemctl start {UNIT} || true\n",
            "prerm": f'if [ "$1" = remove ]; then {on_systemd}systemctl stop {UNIT} || true\n'
            f"systemctl disable {UNIT} || true; fi\n",
        },
        ["/etc/hapee-extras/hapee-rhi.cfg", "/etc/default/hapee-extras-rhi"],
    )
    return [route, rhi]


def route_config(family: int, ports: dict[str, int]) -> str:
    """The vendor daemon's configuration as an operator wrote it: the volatile tables and a BGP
    session to the router with graceful restart on, as the vendor's example has it."""
    local = SPEAKER_ADDRESS if family == 4 else "::1"
    neighbor = PEER_ADDRESS if family == 4 else "::1"
    export = (
        'export where proto = "vol1" || proto = "vol2"; next hop self;'
        if family == 4
        else f'export filter {{ if proto = "vol1" then {{ bgp_next_hop = {V6_NEXT_HOP}; accept; }} '
        "reject; };"
    )
    return (
        f"router id {SPEAKER_ADDRESS};\nlisten bgp address {local} port {ports[f'node{family}']};\n"
        f"protocol device {{}}\n{volatile(family)}"
        f"protocol bgp r1 {{\n  local {local} as 65001;\n"
        f"  neighbor {neighbor} port {ports[f'router{family}']} as 65002;\n"
        "  multihop;\n  graceful restart on;\n  connect delay time 1; connect retry time 1;\n"
        f"  import none;\n  {export}\n}}\n"
    )


def bird2_config(snippet: str, ports: dict[str, int]) -> str:
    """The same sessions in BIRD 2's words, around rhid's snippet: guide section 2."""
    sessions = ""
    for family, local, neighbor, export in (
        (4, SPEAKER_ADDRESS, PEER_ADDRESS, 'export where proto = "vol1" || proto = "vol2"; next hop self;'),
        (6, "::1", "::1", f'export where proto = "vol1_v6"; next hop address {V6_NEXT_HOP};'),
    ):
        sessions += (
            f"protocol bgp r{family} {{\n  local {local} port {ports[f'node{family}']} as 65001;\n"
            f"  neighbor {neighbor} port {ports[f'router{family}']} as 65002;\n  multihop; strict bind yes;\n"
            "  graceful restart on;\n  connect delay time 1; connect retry time 1;\n"
            f"  ipv{family} {{ import none; {export} }};\n}}\n"
        )
    return f"router id {SPEAKER_ADDRESS};\nprotocol device {{}}\n{snippet}{sessions}"


def bird16_config(snippet: str, family: int, ports: dict[str, int]) -> str:
    """BIRD 1.6's bird.conf or bird6.conf: the vendor's file with rhid's protocols for volatile."""
    vendor = route_config(family, ports)
    return vendor.replace(volatile(family), snippet)


# ---- the router and its watch ----------------------------------------------------------------------


class Watch:
    """Looks at the router's table every 5 ms (one connection kept open) in a thread; every look
    that lacks a route counts. (A router that drops a node's stale routes as the new session opens
    and learns them again from its first update lacks them for about 40 ms: measured.)"""

    def __init__(self, router: Lab, expected: set[str]) -> None:
        self.client = BirdClient(str(router.ctl("peer")), 2.0)
        self.expected = expected
        self.looks = 0
        self.misses: list[tuple[float, set[str]]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                reply = self.client.request("show route")
            except (BirdUnavailableError, BirdProtocolError):
                continue  # the router itself is never restarted: a look that failed is no look
            self.looks += 1
            seen = {str(prefix) for prefix in birdwire.parse_route_listing(reply)}
            if not self.expected <= seen:
                self.misses.append((time.monotonic(), self.expected - seen))
            time.sleep(0.005)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.client.close()


def established(router: Lab, family: int) -> bool:
    """The router's session of `family` to the node is up."""
    return "Established" in (router.birdc("peer", f"show protocols down{family}") or "")


def start_router(router: Lab, ports: dict[str, int]) -> None:
    """The upstream router: BIRD 2 with a session per family to the node (graceful restart: its
    default, `aware`, makes it a helper), at BIRD's default timers: the node connects first. (With
    both sides retrying every second, the router's reconnection collided with the node's in 2 of 9
    tries, and BIRD 2 then dropped the stale routes for 3 to 4 s: measured on loopback.)"""
    sessions = ""
    for family, local, neighbor in ((4, PEER_ADDRESS, SPEAKER_ADDRESS), (6, "::1", "::1")):
        sessions += (
            f"protocol bgp down{family} {{\n  local {local} port {ports[f'router{family}']} as 65002;\n"
            f"  neighbor {neighbor} port {ports[f'node{family}']} as 65001;\n  multihop; strict bind yes;\n"
            f"  ipv{family} {{ import all; export none; }};\n}}\n"
        )
    config = router.root / "peer.conf"
    config.write_text(
        f'log "{router.root / "router.log"}" all;\ndebug protocols {{ states, events }};\n'
        f"router id {PEER_ADDRESS};\nprotocol device {{}}\n{sessions}"
    )
    router.spawn("peer", [BIRD, "-f", "-c", str(config), "-s", str(router.ctl("peer")), "-P", "peer.pid"])
    router.wait_answers("peer")


# ---- the node ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rhid-migration-", dir="/var/tmp") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def deb(work: Path) -> Path:
    """rhid's .deb: $RHID_DEB, or built as test_package.py builds it."""
    given = os.environ.get("RHID_DEB")
    if given:
        return Path(given)
    base = work / "build-root"
    try:
        minimal_root(base, "bookworm", work / "build.log")
        built = build_in_root(ROOT, base, work / "build.log")
        return Path(shutil.copy(built, work / built.name))
    finally:
        remove_root(base)


HAPROXY = f"""global
    stats socket {SOCKET} mode 660 level admin group hapee
    user haproxy
    group haproxy
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend be_app
    server s1 127.0.0.1:{{port}}
backend be_static
    server s1 127.0.0.1:{{port}}
"""


def run(container: Container, *argv: str) -> subprocess.CompletedProcess[str]:
    return container.run(*argv, timeout=600)


# The third trial (the vendor's rule file unedited: dpkg replaces that conffile silently) takes
# about two minutes more and proves dpkg's own conffile rule: by hand, RHID_MIGRATION_ALL=1.
ALL_TRIALS = bool(os.environ.get("RHID_MIGRATION_ALL"))


@pytest.mark.parametrize(
    ("target", "rules"),
    [
        ("bird2", "edited"),
        ("bird", "edited"),
        pytest.param(
            "bird2",
            "unedited",
            marks=pytest.mark.skipif(not ALL_TRIALS, reason="about 2 min: set RHID_MIGRATION_ALL=1"),
        ),
    ],
)
def test_the_guides_cutover_keeps_every_route_at_the_router(
    target: str, rules: str, work: Path, deb: Path
) -> None:
    """On a node running the vendor's stand-ins, the guide's steps (BIRD's daemon killed without
    notification, the vendor's RHI stopped, rhid installed non-interactively and started, the
    vendor's daemon removed, stock BIRD installed) never leave the router without a route; rhid
    then speaks to the BIRD it finds (2, or 1.6's two daemons), keeps the operator's rule file and
    the unedited vendor defaults file (with its own beside them), joins group hapee, and routes
    follow health at the router."""
    if bird16_programs() is None:
        pytest.skip("BIRD 1.6 is missing: bash scripts/bird16.sh")
    here = work / f"{target}-{rules}"
    here.mkdir()
    # the operator's rules, or the vendor's example rule file as its package installed it
    rule_text, routes = (RULES, ROUTES) if rules == "edited" else (VENDOR_RULES, {"10.200.200.200/32"})
    root, log = here / "root", here / "node.log"
    container = Container(root, here / "nspawn.log")
    router = Lab(here)
    ports = {
        "node4": free_port(SPEAKER_ADDRESS),
        "node6": free_port("::1"),
        "router4": free_port(PEER_ADDRESS),
        "router6": free_port("::1"),
    }
    try:
        minimal_root(root, "bookworm", log)
        debs = standin_debs(here, ports)
        for path in [*debs, deb]:
            shutil.copy(path, root / "var/tmp" / path.name)
        # The container's limit, not the guide's: nspawn keeps no CAP_NET_ADMIN on the host's network,
        # which Debian's BIRD asks for when it drops to user bird; it runs as root here (test_package.py).
        for unit, binary in (("bird", "bird"), ("bird6", "bird6")):
            dropin = root / f"etc/systemd/system/{unit}.service.d"
            dropin.mkdir(parents=True)
            (dropin / "container.conf").write_text(
                f"[Service]\nExecStart=\nExecStart=/usr/sbin/{binary} -f $BIRD_ARGS\n"
                f'ExecStartPost=/bin/sh -c "until [ -S /run/bird/{unit}.ctl ]; do sleep 0.1; done; '
                f'chgrp bird /run/bird/{unit}.ctl"\n'
            )
        in_root(root, "the node's packages and the vendor's stand-ins", [
            "bash", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y "
            "--no-install-recommends "
            f"systemd systemd-sysv haproxy {' '.join(f'/var/tmp/{d.name}' for d in debs)}",
        ], log, timeout=900)  # fmt: skip
        router.start_web("web1")
        (root / "etc/haproxy/haproxy.cfg").write_text(HAPROXY.format(port=router.ports["web1"]))
        if rules == "edited":
            (root / "etc/hapee-extras/hapee-rhi.cfg").write_text(RULES)
        container.boot()
        start_router(router, ports)
        run(container, "systemctl", "enable", "--now", "haproxy")
        run(container, "systemctl", "restart", "hapee-extras-route", "hapee-extras-route6", UNIT)
        for family in (4, 6):
            wait_for(f"the router's session {family}", partial(established, router, family), 60, every=0.2)
        router.wait_peer_routes(routes, timeout=30)

        # guide 3, step 0: prepared while the vendor runs
        snippet_rules = rule_text
        run(container, "mkdir", "-p", "/etc/bird")
        if target == "bird2":
            snippets = bird_snippets(parse_rules(snippet_rules), "/run/rhid", BIRD2)
            container.write("/etc/bird/bird.conf", bird2_config(snippets["bird.conf"], ports))
        else:
            snippets = bird_snippets(parse_rules(snippet_rules), "/run/rhid", BIRD16)
            container.write("/etc/bird/bird.conf", bird16_config(snippets["bird.conf"], 4, ports))
            container.write("/etc/bird/bird6.conf", bird16_config(snippets["bird6.conf"], 6, ports))
            # guide 3, step 0: BIRD 1.6 is not running yet when rhid starts: say which BIRD it is
            container.write(
                "/etc/default/hapee-extras-rhi", VENDOR_DEFAULTS + 'RHID_ARGS="--bird-version 1.6"\n'
            )
        # guide 3, step 0: BIRD's first start recovers gracefully (-R): the router keeps the stale
        # routes until BIRD's first update, instead of dropping them as the session opens
        container.write("/etc/bird/envvars", ENVVARS)
        run(container, "apt-get", "install", "--download-only", "-y", "--no-install-recommends", target)
        confold = ["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
        env = ["env", "DEBIAN_FRONTEND=noninteractive", "UCF_FORCE_CONFFOLD=1"]
        steps: list[tuple[str, float]] = []
        with Watch(router, routes) as watch:
            time.sleep(1)
            started = time.monotonic()
            run(container, "systemctl", "mask", "--runtime", "hapee-extras-route", "hapee-extras-route6")
            run(container, "systemctl", "kill", "-s", "KILL", "hapee-extras-route", "hapee-extras-route6")
            steps.append(("1 killed", time.monotonic() - started))
            run(container, "systemctl", "stop", UNIT)
            steps.append(("2 vendor RHI stopped", time.monotonic() - started))
            run(
                container,
                "cp",
                "-a",
                "/etc/hapee-extras/hapee-rhi.cfg",
                "/etc/default/hapee-extras-rhi",
                "/root/",
            )
            # no recommends: bird2 now would start BIRD before rhid has written its files
            installed = run(
                container,
                *env,
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                *confold,
                f"/var/tmp/{deb.name}",
            )
            steps.append(("3 rhid installed", time.monotonic() - started))
            after_dpkg = {
                conffile: run(container, "cat", conffile).stdout
                for conffile in ("/etc/hapee-extras/hapee-rhi.cfg", "/etc/default/hapee-extras-rhi")
            }
            run(container, "cp", "-a", "/root/hapee-rhi.cfg", "/etc/hapee-extras/")
            run(container, "cp", "-a", "/root/hapee-extras-rhi", "/etc/default/")
            run(container, "systemctl", "enable", "--now", UNIT)
            steps.append(("4 rhid started", time.monotonic() - started))
            run(container, "apt-get", "remove", "-y", "hapee-extras-route")
            run(container, "systemctl", "unmask", "--runtime", "hapee-extras-route", "hapee-extras-route6")
            run(container, *env, "apt-get", "install", "-y", "--no-install-recommends", *confold, target)
            steps.append(("5 BIRD installed", time.monotonic() - started))
            for family in (4, 6):
                wait_for(
                    f"the router's session {family} to the new BIRD", partial(established, router, family), 60
                )
            steps.append(("sessions up", time.monotonic() - started))
            # 6. group bird exists only now: a restart (which holds the routes) lets rhid join it
            run(container, "systemctl", "restart", UNIT)
            steps.append(("6 rhid restarted", time.monotonic() - started))
            wait_for(
                "rhid to reach BIRD", lambda: container.run("rhid", "status", check=False).returncode == 0, 30
            )
            time.sleep(2)
        print("steps (seconds since step 1):", steps, "looks:", watch.looks)
        missing = [(round(when - started, 3), sorted(routes)) for when, routes in watch.misses]
        assert missing == [], (
            f"routes missing at the router (seconds since step 1): {missing[:5]}; steps: {steps}"
        )
        assert watch.looks > 20 * steps[-1][1] * 0.5, "the router was looked at 20 times a second"
        assert steps[-1][1] < 120, "within BIRD's default graceful restart time"
        assert "Removing hapee-extras-rhi" in installed.stdout, installed.stdout

        # what stays: the rule file and the unedited defaults file, rhid's versions beside them
        # what dpkg did with the vendor's conffiles: an edited one kept (rhid's beside it), an
        # unedited one replaced by rhid's, silently (it knows the replaced package's version of it)
        print(run(container, "ls", "-la", "/etc/default", "/etc/hapee-extras").stdout)
        vendor_defaults = VENDOR_DEFAULTS + ('RHID_ARGS="--bird-version 1.6"\n' if target == "bird" else "")
        for conffile, before, edited in (
            ("/etc/hapee-extras/hapee-rhi.cfg", rule_text, rules == "edited"),
            ("/etc/default/hapee-extras-rhi", vendor_defaults, target == "bird"),
        ):
            if edited:
                assert after_dpkg[conffile] == before, conffile
                run(container, "test", "-f", f"{conffile}.dpkg-dist")
            else:
                assert after_dpkg[conffile].startswith("# "), after_dpkg[conffile]
                assert after_dpkg[conffile] != before, conffile
                run(container, "test", "!", "-e", f"{conffile}.dpkg-dist")
            assert run(container, "cat", conffile).stdout == before, f"{conffile}: put back after step 3"
        assert run(container, "cat", "/etc/bird/envvars").stdout == ENVVARS
        states = run(container, "dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n").stdout
        assert re.search(r"^rc\s+hapee-extras-rhi$", states, re.M), states
        assert re.search(r"^rc\s+hapee-extras-route$", states, re.M), states
        # rhid speaks to what it found, joined the vendor's group, and has no problem
        chosen = run(
            container, "journalctl", "-u", UNIT, "RHID_EVENT=bird.dialect", "-o", "json", "--no-pager"
        ).stdout
        dialect = "BIRD 1.6" if target == "bird" else "BIRD 2"
        last = json.loads(chosen.splitlines()[-1])  # the restart's: BIRD greeted it
        assert last["RHID_BIRD"] == dialect, chosen
        assert "greets 'BIRD " in last["RHID_WHY"], chosen
        restarts = run(
            container, "journalctl", "-u", UNIT, "RHID_EVENT=daemon.cannot_run", "--no-pager", "-q"
        ).stdout
        assert restarts.strip() == "", restarts
        assert "hapee" in run(container, "id", "-nG", "rhid").stdout.split()
        status = container.run("rhid", "status", check=False)
        assert status.returncode == 0, status.stdout
        # routes follow health at the router
        run(
            container,
            "python3",
            "-c",
            f"from rhid.haproxy import fetch; fetch('{SOCKET}', b'disable server be_app/s1\\n', 5)",
        )
        router.wait_peer_routes(set(), timeout=20)
        run(
            container,
            "python3",
            "-c",
            f"from rhid.haproxy import fetch; fetch('{SOCKET}', b'enable server be_app/s1\\n', 5)",
        )
        router.wait_peer_routes(routes, timeout=20)
    finally:
        container.shut_down()
        router.close()
        remove_root(root)
