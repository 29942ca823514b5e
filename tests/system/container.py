"""Debian roots holding only Debian's minimal base: a Debian 12 one builds the .deb with
scripts/build-deb.sh; a Debian 12 and a Debian 13 one are booted under real systemd with
systemd-nspawn to test the package.

The base is made with `debootstrap --variant=minbase` from the Debian archive this machine's apt
already uses (read from its sources, never named here). The containers share the host's network,
so a BIRD peer on the host's loopback sees what the container's BIRD announces. Everything is
started by the test and stopped by PID; the roots live in a temp directory removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

# What an operator's node has before rhid: systemd, Debian's haproxy and bird2. Nothing else (no
# dbus, no python3 libraries): `apt install ./rhid_*.deb` must bring whatever rhid needs.
PACKAGES = ["systemd", "systemd-sysv", "haproxy"]
# The nodes: Debian 12 and 13 with bird2, and Debian 13 with bird3 (the package recommends
# `bird2 | bird3`); the .deb built on Debian 12 installs on each.
NODES = {
    "bookworm": ("bookworm", "bird2"),
    "trixie": ("trixie", "bird2"),
    "trixie-bird3": ("trixie", "bird3"),
}
SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
POLICY = "usr/sbin/policy-rc.d"


def tool(name: str) -> str:
    """The absolute path of a host program the test needs (scripts/install.sh installs them)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise AssertionError(f"{name} is missing: scripts/install.sh --tests installs it")
    return path


def run_logged(what: str, argv: list[str], log: Path, timeout: float, cwd: Path | None = None) -> None:
    """Run a set-up step with its output in `log`; if it fails, fail with the log's last lines (the
    step's own words), not with a traceback that ends in CalledProcessError."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd, check=False
            )
        except subprocess.TimeoutExpired:
            returncode: int | str = f"timeout after {timeout:.0f} s"
        else:
            returncode = result.returncode
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        pytest.fail(f"{what} failed ({returncode}); the last lines of {log.name}:\n{tail}", pytrace=False)


def debian_mirror() -> str:
    """The URI this machine's apt uses for Debian's main archive (deb822 or one-line sources), found
    by its bookworm entry; the same archive serves trixie."""
    for path in SOURCES:
        if not path.exists():
            continue
        text = path.read_text()
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
        line = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M)
        if line:
            return line.group(1)
    raise AssertionError("no Debian bookworm archive in this machine's apt sources")


def minimal_root(root: Path, suite: str, log: Path) -> None:
    """Debian's minimal base (debootstrap --variant=minbase SUITE) at `root`, nothing else.

    For a developer's repeated runs, $RHID_SYSTEM_ROOT (Debian 12) and $RHID_SYSTEM_ROOT_TRIXIE
    (Debian 13) name such roots made earlier (copied, never used in place); CI always makes fresh ones."""
    cached = os.environ.get(
        "RHID_SYSTEM_ROOT" if suite == "bookworm" else f"RHID_SYSTEM_ROOT_{suite.upper()}"
    )
    if cached:
        run_logged(f"copying {cached}", [tool("cp"), "-a", cached, str(root)], log, 300)
    else:
        run_logged(
            f"debootstrap --variant=minbase {suite}",
            [tool("debootstrap"), "--variant=minbase", suite, str(root), debian_mirror()],
            log, 900,
        )  # fmt: skip


def in_root(root: Path, what: str, argv: list[str], log: Path, *, timeout: float, chdir: str = "/") -> None:
    """Run a command in `root` (not booted: systemd-nspawn as a chroot with /proc, /dev, resolv.conf)."""
    run_logged(
        what,
        [tool("systemd-nspawn"), "--quiet", "--register=no", "--keep-unit", "--pipe", "-D", str(root),
         f"--chdir={chdir}", *argv],
        log, timeout,
    )  # fmt: skip


def build_in_root(repo: Path, root: Path, log: Path) -> Path:
    """The README's build on a root holding only the minimal base: a clone of the repository (its
    committed tree), then `bash scripts/build-deb.sh` there, which must install everything the build
    needs. Returns the .deb."""
    run_logged(
        "git clone",
        [tool("git"), "clone", "--quiet", "--no-hardlinks", str(repo), str(root / "root/rhid")],
        log,
        120,
    )
    in_root(
        root,
        "scripts/build-deb.sh in the minimal root",
        ["bash", "scripts/build-deb.sh"],
        log,
        timeout=1200,
        chdir="/root/rhid",
    )
    debs = sorted((root / "root/rhid/dist").glob("rhid_*_all.deb"))
    if not debs:
        pytest.fail(f"build-deb.sh left no dist/rhid_*_all.deb; see {log}", pytrace=False)
    return debs[-1]


def node_root(root: Path, bird: str, log: Path) -> None:
    """The minimal base plus PACKAGES and `bird`, as an operator's node has them before rhid, installed by
    scripts/apt.sh (the README's commands install with it): it must leave haproxy and bird disabled
    (and, since it forbids starts while it installs, not running: the booted tests check that)."""
    shutil.copy(Path(__file__).parents[2] / "scripts" / "apt.sh", root / "var/tmp" / "apt.sh")
    in_root(
        root, f"apt_ensure {' '.join(PACKAGES)} {bird}",
        ["bash", "-c", 'source /var/tmp/apt.sh && apt_ensure node "$@"', "node", *PACKAGES, bird],
        log, timeout=900,
    )  # fmt: skip
    wants = root / "etc/systemd/system/multi-user.target.wants"
    left = [unit for unit in ("haproxy.service", "bird.service") if (wants / unit).exists()]
    if left or (root / POLICY).exists():
        pytest.fail(f"scripts/apt.sh left {left} enabled or {POLICY} behind; see {log}", pytrace=False)
    # nspawn keeps no CAP_NET_ADMIN on the host's network, which BIRD asks to keep when it drops to
    # user bird; inside the container it runs as root (it cannot change the host's routes without
    # that capability either) and hands its socket to group bird as Debian's does.
    dropin = root / "etc/systemd/system/bird.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "container.conf").write_text(
        "[Service]\nExecStart=\nExecStart=/usr/sbin/bird -f $BIRD_ARGS\n"
        'ExecStartPost=/bin/sh -c "until [ -S /run/bird/bird.ctl ]; do sleep 0.1; done; '
        'chgrp bird /run/bird/bird.ctl"\n'
    )


class Container:
    """One booted container: its nspawn process and its systemd's PID, for nsenter."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.pid = 0

    def boot(self, timeout: float = 120) -> None:
        """Boot the root and wait until its systemd says running (or degraded)."""
        with self.log.open("ab") as out:
            self.nspawn = subprocess.Popen(
                [tool("systemd-nspawn"), "--register=no", "--keep-unit", "--console=pipe",
                 "-D", str(self.root), "-b"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise AssertionError(
                    f"systemd-nspawn exited {self.nspawn.returncode}: {self.log.read_text()[-2000:]}"
                )
            self.pid = self.pid or _container_init(self.nspawn.pid)
            if self.pid:
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in {"running", "degraded"}:
                    return
            time.sleep(0.5)
        raise AssertionError(f"the container did not boot in {timeout} s: {self.log.read_text()[-2000:]}")

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (all its namespaces), as root."""
        result = subprocess.run(
            [tool("nsenter"), "-t", str(self.pid), "-a", *argv],
            capture_output=True, text=True, timeout=timeout, check=False, input=input_text,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}: {result.stdout}{result.stderr}"
            )
        return result

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        """Start a command inside the container without waiting for it (its output is dropped);
        shut_down reaps it if the test did not."""
        process = subprocess.Popen(
            [tool("nsenter"), "-t", str(self.pid), "-a", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.spawned.append(process)
        return process

    def write(self, path: str, text: str) -> None:
        """Write a file inside the container."""
        self.run("sh", "-c", f"cat > {path}", input_text=text)

    def shut_down(self, timeout: float = 60) -> None:
        """Power the container off (SIGTERM to nspawn asks its systemd to), killing it if it hangs."""
        for process in self.spawned:
            if process.poll() is None:
                process.kill()
            process.wait()
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        self.nspawn.send_signal(signal.SIGTERM)
        try:
            self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait()


def _container_init(nspawn_pid: int) -> int:
    """The PID (on the host) of the container's systemd: a descendant of nspawn that is PID 1 inside."""
    children = {nspawn_pid}
    for _ in range(3):
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                fields = dict(
                    line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
                )
            except OSError:
                continue
            if int(fields.get("PPid", "0")) in children:
                pid = int(status.parent.name)
                children.add(pid)
                if (
                    fields.get("NSpid", "").split()[-1:] == ["1"]
                    and fields.get("Name", "").strip() == "systemd"
                ):
                    return pid
    return 0


def remove_root(root: Path) -> None:
    """Remove a root (after shut_down)."""
    shutil.rmtree(root, ignore_errors=True)
