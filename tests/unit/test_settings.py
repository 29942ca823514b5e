"""Where the HAProxy socket comes from, and the defaults files' shell syntax."""

from __future__ import annotations

from pathlib import Path

from rhid.settings import DEFAULT_HAPROXY_SOCKET, Settings, find_haproxy_socket, parse_environment_file


def test_environment_file_syntax() -> None:
    """KEY="v", KEY='v', KEY=v and `export KEY=v` are read; comments and junk are skipped."""
    text = "A=\"x y\"\nB='z'\nexport C=/run/s.sock  # comment\n# D=no\nnot an assignment\nE=$(evil)\n"
    assert parse_environment_file(text) == {"A": "x y", "B": "z", "C": "/run/s.sock"}


def test_socket_precedence(tmp_path: Path) -> None:
    """--haproxy-socket beats $HAPEE_LB_SOCKET, which beats the Debian file, then RHEL's, then the default."""
    debian = tmp_path / "default"
    rhel = tmp_path / "sysconfig"
    rhel.write_text('HAPEE_LB_SOCKET="/rhel.sock"\n')
    files = [str(debian), str(rhel)]
    assert find_haproxy_socket(None, {}, files) == ("/rhel.sock", str(rhel))
    debian.write_text('HAPEE_LB_SOCKET="/var/run/hapee-2.9/hapee-lb.sock"\n')
    assert find_haproxy_socket(None, {}, files)[0] == "/var/run/hapee-2.9/hapee-lb.sock"
    assert find_haproxy_socket(None, {"HAPEE_LB_SOCKET": "/env.sock"}, files) == (
        "/env.sock",
        "$HAPEE_LB_SOCKET",
    )
    assert find_haproxy_socket("/arg.sock", {"HAPEE_LB_SOCKET": "/env.sock"}, files)[0] == "/arg.sock"
    assert find_haproxy_socket(None, {}, [str(tmp_path / "none")]) == (DEFAULT_HAPROXY_SOCKET, "default")


def test_poll_timeout_stays_below_the_interval() -> None:
    """The HAProxy deadline is 80 % of the interval, at least 0.25 s and at most 2 s."""

    def make(interval: float) -> float:
        return Settings("r", "h", "b", Path("/run/rhid"), interval=interval).poll_timeout

    assert make(1.0) == 0.8
    assert make(0.1) == 0.25
    assert make(10) == 2.0
