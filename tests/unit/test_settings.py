"""Where the HAProxy socket comes from, the defaults files' shell syntax, and which values are sane."""

from __future__ import annotations

from pathlib import Path

import pytest

from rhid.cli import main
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


@pytest.mark.parametrize(
    "option", ["--interval", "--fast-interval", "--verify-interval", "--unreadable-down-after"]
)
@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-1", "0", "86401", "x"])
def test_absurd_durations_are_usage_errors(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Non-finite, non-positive or longer-than-a-day periods exit 2 with a usage message."""
    with pytest.raises(SystemExit) as exited:
        main(["run", option, value])
    assert exited.value.code == 2
    assert option in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--fall", "--rise"])
@pytest.mark.parametrize("value", ["0", "1001", "1e3", "x"])
def test_absurd_counts_are_usage_errors(option: str, value: str) -> None:
    """--fall and --rise take 1 to 1000."""
    with pytest.raises(SystemExit) as exited:
        main(["run", option, value])
    assert exited.value.code == 2
