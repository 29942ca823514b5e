"""Telling a restart from a stop: systemd's job for the unit, read from `systemctl list-jobs`."""

from __future__ import annotations

from rhid.service import is_restart_job, unit_of_cgroup

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
