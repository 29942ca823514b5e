"""A Debian 12 root booted under real systemd with systemd-nspawn, for testing the package.

The root is made with `debootstrap` from the Debian archive this machine's apt already uses (read
from its sources, never named here). The container shares the host's network, so a BIRD peer on
the host's loopback sees what the container's BIRD announces. Everything is started by the test
and stopped by PID; the root lives in a temp directory removed afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "haproxy", "bird2",
    "python3", "python3-pyparsing", "python3-structlog", "python3-systemd",
]  # fmt: skip
SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]


def tool(name: str) -> str:
    """The absolute path of a host program the test needs (scripts/install.sh installs them)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise AssertionError(f"{name} is missing: scripts/install.sh installs it")
    return path


def debian_mirror() -> str:
    """The URI this machine's apt uses for Debian's main archive (deb822 or one-line sources)."""
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


def debootstrap(root: Path, log: Path) -> None:
    """A minimal Debian 12 with systemd, Debian's haproxy, bird2 and the Python libraries rhid uses.

    For a developer's repeated runs, $RHID_SYSTEM_ROOT names a root made earlier by this function
    (copied, never used in place); CI always makes a fresh one."""
    cached = os.environ.get("RHID_SYSTEM_ROOT")
    if cached:
        subprocess.run([tool("cp"), "-a", cached, str(root)], check=True, timeout=300)
    else:
        _debootstrap(root, log)
    # The system's own haproxy and bird must not start with Debian's stock configs (bird's would
    # program the shared network's kernel table): the test writes theirs, then starts them.
    for unit in ("haproxy.service", "bird.service"):
        (root / "etc/systemd/system/multi-user.target.wants" / unit).unlink(missing_ok=True)
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


def _debootstrap(root: Path, log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run(
            [tool("debootstrap"), "--variant=minbase", f"--include={','.join(PACKAGES)}", "bookworm",
             str(root), debian_mirror()],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=900,
        )  # fmt: skip


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
        """Start a command inside the container without waiting for it (its output is dropped)."""
        return subprocess.Popen(
            [tool("nsenter"), "-t", str(self.pid), "-a", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

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
    """Remove the container's root (after shut_down)."""
    shutil.rmtree(root, ignore_errors=True)
