"""Where the HAProxy socket comes from, the defaults files' shell syntax, which values are sane, and
that each setting is declared once: its option, default and bounds come from the one field."""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import pytest

from rhid import gateway, settings
from rhid.cli import build_parser, main, run_settings
from rhid.errors import SettingError
from rhid.haproxy import HAProxySide
from rhid.manpage import subcommands
from rhid.settings import (
    DEFAULT_HAPROXY_SOCKET,
    Listen,
    Settings,
    find_haproxy_socket,
    parse_environment_file,
    parse_listen,
)


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


def run_parser() -> argparse.ArgumentParser:
    """`rhid run`'s parser."""
    return subcommands(build_parser())["run"]


def help_entries(text: str) -> dict[str, str]:
    """Each option's entry of a --help text, whitespace squeezed, by every flag it starts with."""
    entries: list[str] = []
    for line in text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        if line.startswith("  -"):
            entries.append(line)
        else:
            entries[-1] += " " + line
    found: dict[str, str] = {}
    for entry in entries:
        words = " ".join(entry.split())
        for flag in re.findall(r"(?:^|, )(--?[a-z][a-z0-9-]*)", words):
            found[flag] = words
    return found


def test_every_setting_with_a_flag_is_in_run_help_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rhid run --help` lists each declared option of Settings, and its entry says the default."""
    monkeypatch.setenv("COLUMNS", "100")
    entries = help_entries(run_parser().format_help())
    assert len(settings.OPTIONS) >= 16  # the declarations are found (16 when this test was written)
    for name, option in settings.OPTIONS.items():
        entry = entries[option.flag]
        default = getattr(settings.DEFAULTS, name)
        if option.form == "switch":
            assert default is False
            continue
        assert "default" in entry, entry
        shown = [] if default is None else list(default) if isinstance(default, tuple) else [str(default)]
        for text in shown:
            assert text in entry, (option.flag, text, entry)
    assert entries["-c"] == entries["--config"]


def test_the_help_says_the_defaults_settings_hold() -> None:
    """The defaults the help shows are the values Settings() holds (the vendor's timing, auto events)."""
    defaults = settings.Settings()
    assert (defaults.interval, defaults.fall, defaults.rise) == (1.0, 3, 1)
    assert (defaults.events, defaults.on_stop, defaults.on_restart) == ("auto", "withdraw", "hold")
    assert (defaults.rules_path, defaults.bird_dir) == ("/etc/hapee-extras/hapee-rhi.cfg", Path("/run/rhid"))
    for name in settings.OPTIONS:
        action = next(a for a in run_parser()._actions if a.dest == settings.OPTIONS[name].dest)
        if action.default is not None:
            assert action.default == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--interval", "0"], "argument --interval: must be more than 0 and at most 86400 seconds, not 0"),
        (["--verify-interval", "86401"], "argument --verify-interval: must be more than 0 and at most 86400"),
        (["--fast-interval", "nan"], "argument --fast-interval: must be more than 0 and at most 86400"),
        (["--vanished-keep", "-1"], "argument --vanished-keep: must be more than 0 and at most 86400"),
        (["--interval", "x"], "argument --interval: not a number of seconds: 'x'"),
        (["--fall", "0"], "argument --fall: must be from 1 to 1000, not 0"),
        (["--rise", "1001"], "argument --rise: must be from 1 to 1000, not 1001"),
        (["--rise", "x"], "argument --rise: not a whole number: 'x'"),
        (["--haproxy-events", "a;b"], "argument --haproxy-events: 'a;b' is not an HAProxy ring name"),
        (["--bird-dir", "run/rhid"], "argument --bird-dir: 'run/rhid' must be an absolute path"),
        (
            ["--on-stop", "drop"],
            "argument --on-stop: invalid choice: 'drop' (choose from 'withdraw', 'hold')",
        ),
    ],
)
def test_a_value_out_of_bounds_names_the_flag_and_the_bounds(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused `rhid run` value is a usage error (exit 2) naming the flag and what it may be."""
    with pytest.raises(SystemExit) as exited:
        main(["run", *argv])
    assert exited.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("interval", 0.0, "--interval: must be more than 0 and at most 86400 seconds, not 0.0"),
        (
            "unreadable_down_after",
            math.inf,
            "--unreadable-down-after: must be more than 0 and at most 86400 seconds, not inf",
        ),
        ("fall", 0, "--fall: must be from 1 to 1000, not 0"),
        ("events", "a b", "--haproxy-events: 'a b' is not an HAProxy ring name (nor auto or none)"),
        ("bird_dir", Path("run"), "--bird-dir: 'run' must be an absolute path of [A-Za-z0-9._/-]"),
        ("on_restart", "drop", "--on-restart: must be one of withdraw, hold, not 'drop'"),
    ],
)
def test_settings_built_in_code_are_bounded_by_the_same_declarations(
    field: str, value: Any, words: str
) -> None:
    """Settings built without the command line refuse the same values, naming the option."""
    with pytest.raises(SettingError) as refused:
        settings.Settings(**{field: value})
    assert str(refused.value) == words
    assert settings.Settings(fast_interval=None).fast_interval is None  # None: the derived default


def old_start_settings(args: argparse.Namespace) -> settings.Settings:
    """What `cli.start` built before the declarations: every field copied by hand (the reference)."""
    files = tuple(args.defaults_file or settings.ENVIRONMENT_FILES)
    haproxy_socket, source = settings.find_haproxy_socket(args.haproxy_socket, settings.environment(), files)
    return settings.Settings(
        rules_path=args.config,
        haproxy_socket=haproxy_socket,
        bird_socket=args.bird_socket,
        bird_dir=Path(args.bird_dir),
        interval=args.interval,
        fall=args.fall,
        rise=args.rise,
        on_stop=args.on_stop,
        allow_empty=args.allow_empty,
        verify_every=args.verify_interval,
        events=args.haproxy_events,
        fast_interval=args.fast_interval,
        on_restart=args.on_restart,
        unreadable_down_after=args.unreadable_down_after,
        haproxy_socket_source=source,
        defaults=settings.read_defaults(files),
        defaults_files=files,
        vanished_keep=args.vanished_keep,
    )


def test_run_settings_for_no_options_are_todays_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rhid run` alone builds the Settings today's hand copy built: the vendor's timing, auto events."""
    monkeypatch.setattr(settings, "environment", dict)
    args = build_parser().parse_args(["run"])
    built = run_settings(args)
    assert built == old_start_settings(args)
    found = find_haproxy_socket(None, {}, settings.ENVIRONMENT_FILES)
    assert (built.haproxy_socket, built.haproxy_socket_source) == found
    expected = settings.Settings(
        "/etc/hapee-extras/hapee-rhi.cfg", found[0], "/run/bird/bird.ctl", Path("/run/rhid"), 1.0, 3, 1,
        haproxy_socket_source=found[1], defaults=settings.read_defaults(),
    )  # fmt: skip
    assert built == expected
    assert (built.events, built.fast_interval, built.on_stop, built.on_restart) == (
        "auto",
        None,
        "withdraw",
        "hold",
    )
    assert built.defaults_files == settings.ENVIRONMENT_FILES


def test_run_settings_for_every_option_are_what_the_hand_copy_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `rhid run` option given lands in its field exactly as the hand copy put it there."""
    monkeypatch.setattr(settings, "environment", dict)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text('HAPEE_LB_SOCKET="/from/first.sock"\nRHID_ARGS="--fall 2"\n')
    second.write_text('RHID_RULES="/etc/r.cfg"\n')
    argv = ["run", "-c", "/etc/x.cfg", "--haproxy-socket", "/h.sock", "--defaults-file", str(first),
            "--defaults-file", str(second), "--bird-socket", "/b.ctl", "--bird-dir", "/var/rhid",
            "--interval", "0.5", "--fast-interval", "0.05", "--haproxy-events", "rhid", "--fall", "5",
            "--rise", "2", "--unreadable-down-after", "12", "--vanished-keep", "7", "--on-stop", "hold",
            "--on-restart", "withdraw", "--allow-empty", "--verify-interval", "9", "--log-level", "debug",
            "--log-format", "json"]  # fmt: skip
    args = build_parser().parse_args(argv)
    built = run_settings(args)
    assert built == old_start_settings(args)
    assert built == settings.Settings(
        "/etc/x.cfg", "/h.sock", "/b.ctl", Path("/var/rhid"), 0.5, 5, 2, fast_interval=0.05, events="rhid",
        unreadable_down_after=12.0, vanished_keep=7.0, on_stop="hold", on_restart="withdraw",
        allow_empty=True, verify_every=9.0, defaults_files=(str(first), str(second)),
        haproxy_socket_source="--haproxy-socket",
        defaults={"HAPEE_LB_SOCKET": "/from/first.sock", "RHID_ARGS": "--fall 2", "RHID_RULES": "/etc/r.cfg"},
    )  # fmt: skip
    assert (args.log_level, args.log_format) == ("debug", "json")
    without = build_parser().parse_args([arg for arg in argv if arg not in {"--haproxy-socket", "/h.sock"}])
    assert (run_settings(without).haproxy_socket, run_settings(without).haproxy_socket_source) == (
        "/from/first.sock",
        str(first),
    )
    monkeypatch.setattr(settings, "environment", lambda: {"HAPEE_LB_SOCKET": "/env.sock"})
    assert run_settings(without).haproxy_socket_source == "$HAPEE_LB_SOCKET"
    assert run_settings(without) == old_start_settings(without)


SAMPLES: dict[type, tuple[str, object]] = {
    settings.Duration: ("7.5", 7.5),
    settings.Count: ("7", 7),
    settings.Amount: ("1.5", 1.5),  # between the default reuse (1) and suppress (2.5) penalties
    settings.Ring: ("myring", "myring"),
    settings.IncludeDirectory: ("/srv/rhid", Path("/srv/rhid")),
    settings.Gateways: ("vol1=192.0.2.1", gateway.parse("vol1=192.0.2.1")),
    settings.ListenAddress: ("127.0.0.1:9198", settings.parse_listen("127.0.0.1:9198")),
    type(None): ("/some/path", "/some/path"),
}


# a value the other settings' defaults allow (the penalty must be able to decay from suppress to reuse)
SAMPLES_BY_NAME: dict[str, tuple[str, object]] = {"damping_max_suppress": ("300", 300.0)}


@pytest.mark.parametrize("name", list(settings.OPTIONS))
def test_each_declared_option_reaches_its_field(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the option, `rhid run FLAG VALUE` sets the field that declares it, and no other."""
    monkeypatch.setattr(settings, "environment", dict)
    option = settings.OPTIONS[name]
    default = getattr(settings.DEFAULTS, name)
    value: object
    if option.form == "switch":
        given, value = [option.flag], True
    elif isinstance(option.kind, settings.Choice):
        word = next(word for word in option.kind.words if word != default)
        given, value = [option.flag, word], word
    else:
        text, value = SAMPLES_BY_NAME.get(name) or SAMPLES[type(option.kind)]
        given = [option.flag, text]
        if option.form == "repeated":
            value = (value,)
    built = run_settings(build_parser().parse_args(["run", *given]))
    assert getattr(built, name) == value
    unchanged = settings.from_options({}, {})
    for other in settings.OPTIONS:
        if other != name and not (name == "defaults_files" and other == "haproxy_socket"):
            assert getattr(built, other) == getattr(unchanged, other), other


@pytest.mark.parametrize("command", ["run", "status", "withdraw", "bird-config"])
def test_every_command_reads_bird_dir_as_the_setting_declares(command: str) -> None:
    """--bird-dir (and withdraw's --bird-socket) mean one thing: the same default and the same reading."""
    parser = build_parser()
    assert parser.parse_args([command]).bird_dir == settings.DEFAULTS.bird_dir
    assert parser.parse_args([command, "--bird-dir", "/srv/x/"]).bird_dir == Path("/srv/x")
    if command in {"run", "withdraw"}:
        assert parser.parse_args([command]).bird_socket == settings.DEFAULTS.bird_socket


def test_haproxy_side_defaults_are_the_settings_defaults() -> None:
    """An HAProxySide built without settings uses Settings' defaults (auto events), not its own."""
    side = HAProxySide("/none", 1.0)
    assert side.events_setting == settings.DEFAULTS.events == "auto"
    assert side.unreadable_down_after == settings.DEFAULTS.unreadable_down_after
    assert HAProxySide.of(settings.Settings(events="none")).events_setting == "none"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("127.0.0.1:9198", "127.0.0.1:9198"),
        ("127.3.2.1:80", "127.3.2.1:80"),
        ("localhost:65535", "127.0.0.1:65535"),
        ("[::1]:9198", "[::1]:9198"),
        ("exposed:0.0.0.0:9198", "exposed:0.0.0.0:9198"),
        ("exposed:192.0.2.5:1", "exposed:192.0.2.5:1"),
        ("exposed:[::]:9198", "exposed:[::]:9198"),
        ("exposed:[2001:db8::5]:9198", "exposed:[2001:db8::5]:9198"),
    ],
)
def test_metrics_listen_takes_loopback_or_an_address_said_to_be_exposed(text: str, shown: str) -> None:
    """Loopback addresses are taken as they are; any other only after exposed:."""
    listen = parse_listen(text)
    assert str(listen) == shown
    assert listen.exposed == text.startswith("exposed:")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0.0.0.0:9198", "is not a loopback address"),
        ("192.0.2.5:9198", "say so: exposed:192.0.2.5:9198"),
        ("[::]:9198", "is not a loopback address"),
        ("[::ffff:127.0.0.1]:9198", "is not a loopback address"),  # mapped: not loopback to the kernel
        ("exposed:127.0.0.1:9198", "drop 'exposed:'"),
        ("exposed:[::1]:9198", "drop 'exposed:'"),
        ("127.0.0.1", "must be HOST:PORT"),
        (":9198", "must be HOST:PORT"),
        ("127.0.0.1:", "the port must be a number from 1 to 65535, not ''"),
        ("127.0.0.1:0", "not '0'"),
        ("127.0.0.1:65536", "not '65536'"),
        ("127.0.0.1:09198", "not '09198'"),
        ("127.0.0.1:+80", "not '+80'"),
        ("::1:9198", "in brackets"),
        ("[::1", "must be HOST:PORT"),
        ("[::1]", "must be HOST:PORT"),
        ("[::1]9198", "must be HOST:PORT"),
        ("[127.0.0.1]:9198", "is not an IPv6 address"),
        ("[fe80::1%lo]:9198", "a scope (%lo) is not supported"),
        ("127.0.0.01:9198", "without leading zeros"),
        ("256.0.0.1:9198", "four numbers from 0 to 255"),
        ("metrics.example:9198", "rhid resolves no names"),
        ("127.0.0.1:9198\n", "without spaces or control characters"),
        (" 127.0.0.1:9198", "without spaces"),
        ("127.0.0.1:९१", "without spaces or control characters"),  # Devanagari digits are not ASCII
        ("", "must be HOST:PORT"),
    ],
)
def test_metrics_listen_refuses_anything_else_saying_what_to_write(text: str, says: str) -> None:
    """Names, wildcards and other hosts' addresses without exposed:, bad ports, unbracketed IPv6,
    scopes and stray characters are refused with a message that says what is wrong."""
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_listen(text)


def test_metrics_listen_errors_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """`rhid run --metrics-listen 0.0.0.0:9198` exits 2 naming the option and the fix."""
    with pytest.raises(SystemExit) as exited:
        main(["run", "--metrics-listen", "0.0.0.0:9198"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--metrics-listen" in err
    assert "exposed:0.0.0.0:9198" in err


def test_a_metrics_address_built_without_its_option_is_checked_too() -> None:
    """Settings refuses a Listen whose exposed flag contradicts its address, however it was built."""
    with pytest.raises(SettingError, match=re.escape("write exposed: before the address 192.0.2.5")):
        Settings(metrics_listen=Listen(parse_listen("exposed:192.0.2.5:9198").address, 9198))
    with pytest.raises(SettingError, match=re.escape("drop exposed: for the loopback address 127.0.0.1")):
        Settings(metrics_listen=Listen(parse_listen("127.0.0.1:9198").address, 9198, exposed=True))
    assert Settings(metrics_listen=parse_listen("[::1]:9198")).metrics_listen == parse_listen("[::1]:9198")
