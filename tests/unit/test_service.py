"""Telling a restart from a stop: systemd's job for the unit, read from `systemctl list-jobs`."""

from __future__ import annotations

from pathlib import Path

from rhid.service import is_restart_job, saved_jobs, unit_of_cgroup

LISTING = """\
 4117 hapee-extras-rhi.service restart running
 4120 haproxy.service          start   waiting
"""


def test_unit_is_read_from_the_cgroup() -> None:
    """/proc/self/cgroup's v2 and v1 lines name the service unit; a session scope names none."""
    assert unit_of_cgroup("0::/system.slice/hapee-extras-rhi.service\n") == "hapee-extras-rhi.service"
    assert unit_of_cgroup("12:pids:/system.slice/rhid@x.service\n1:name=systemd:/\n") == "rhid@x.service"
    assert unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n") is None


def test_restart_job_is_recognised_only_for_our_unit() -> None:
    """A restart job of this unit is a restart; a stop job, or another unit's restart, is not."""
    assert is_restart_job(LISTING, "hapee-extras-rhi.service")
    assert not is_restart_job(LISTING.replace("restart", "stop"), "hapee-extras-rhi.service")
    assert not is_restart_job(LISTING, "haproxy.service")
    assert not is_restart_job("No jobs running.\n", "hapee-extras-rhi.service")


def test_the_job_list_saved_by_execstop_is_read_only_while_fresh(tmp_path: Path) -> None:
    """The list ExecStop saved is this stop's for a minute; older, or missing, it says nothing."""
    saved = tmp_path / "hapee-extras-rhi.service.stop-jobs"
    saved.write_text(LISTING)
    now = saved.stat().st_mtime
    listing = saved_jobs(str(saved), now + 1)
    assert listing is not None
    assert is_restart_job(listing, "hapee-extras-rhi.service")
    assert saved_jobs(str(saved), now + 61) is None
    assert saved_jobs(str(tmp_path / "missing"), now) is None
