"""The command line told about BIRD 1.6 and gateways: `rhid check --bird-version`, `rhid check
--gateway`, `rhid bird-config` for the BIRD it is told about (or finds), `rhid run`'s gateways that
cannot hold together."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rhid.cli import main
from tests.fault.fakes import FakeServer, bird


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hapee-rhi.cfg"
    path.write_text(text)
    return str(path)


def many(count: int, table: str = "vol1") -> str:
    return "".join(f"{table}%10.{i // 65536}.{(i // 256) % 256}.{i % 256} = always\n" for i in range(count))


def test_check_told_bird_1_6_warns_about_a_table_too_large_for_its_configure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """10,001 routes in vol1: a warning naming the protocol and the way out with --bird-version 1.6;
    none without it, and none with BIRD 2; still valid (exit 0)."""
    path = write(tmp_path, many(10_001) + "vol2%10.200.0.1 = always\n")
    assert main(["check", "-c", path, "--bird-version", "1.6"]) == 0
    err = capsys.readouterr().err
    assert f"{path}: warning: protocol vol1 (IPv4): 10001 routes in one static protocol" in err
    assert "protocol vol2" not in err
    assert main(["check", "-c", path, "--bird-version", "2"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["check", "-c", path]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_json_names_the_protocols_of_the_bird_it_is_told_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An IPv6 route's protocol is vol1_v6 for BIRD 2 and vol1 for BIRD 1.6."""
    path = write(tmp_path, "2001:db8::1 = always\n")
    for version, protocol in (("2", "vol1_v6"), ("1.6", "vol1")):
        assert main(["check", "-c", path, "--json", "--bird-version", version]) == 0
        described = json.loads(capsys.readouterr().out)
        assert described["rules"][0]["routes"][0]["bird_protocol"] == protocol


def test_check_warns_about_a_gateway_that_leads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--gateway vol2=... with no vol2 route: a warning; a bad address: a usage error naming it."""
    path = write(tmp_path, "10.0.0.1 = always\n")
    assert main(["check", "-c", path, "--gateway", "vol1=192.0.2.1", "--gateway", "vol2=192.0.2.1"]) == 0
    err = capsys.readouterr().err
    assert "warning: --gateway vol2=192.0.2.1: no rule puts an IPv4 route in table vol2" in err
    assert "vol1=192.0.2.1" not in err
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "-c", path, "--gateway", "vol1=127.0.0.1"])
    assert exit_info.value.code == 2
    assert "argument --gateway: 127.0.0.1 is a loopback address" in capsys.readouterr().err


def test_run_refuses_two_gateways_for_one_table_and_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each value is fine alone; together they are a usage error (exit 2) naming --gateway."""
    code = main(
        ["run", "-c", str(tmp_path / "none"), "--gateway", "vol1=192.0.2.1", "--gateway", "vol1=192.0.2.2"]
    )
    assert code == 2
    assert "rhid run: error: argument --gateway: two gateways for table vol1's IPv4 routes" in (
        capsys.readouterr().err
    )


def test_bird_config_prints_each_daemons_snippet_for_bird_1_6(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--bird-version 1.6: bird.conf's and bird6.conf's snippets, said on stderr; with a gateway
    the table's export has no next hop self."""
    path = write(tmp_path, "10.0.0.1, 2001:db8::1 = always\n")
    args = ["bird-config", "-c", path, "--bird-version", "1.6", "--gateway", "vol1=198.18.0.99"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "paste into bird.conf (BIRD 1.6's bird: IPv4)" in captured.out
    assert "paste into bird6.conf (BIRD 1.6's bird6: IPv6)" in captured.out
    assert "vol1's routes lead via 198.18.0.99" in captured.out
    assert "rhid: the snippet for BIRD 1.6 (--bird-version 1.6 (no BIRD answers on" in captured.err


def test_bird_config_finds_the_bird_that_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """auto: the BIRD greeting on --bird-socket decides; nothing there: BIRD 2, said so; a
    --bird-version the greeting contradicts: exit 1 naming both."""
    path = write(tmp_path, "2001:db8::1 = always\n")
    ctl = tmp_path / "bird.ctl"
    sockets = ["--bird-socket", str(ctl), "--bird6-socket", str(tmp_path / "bird6.ctl")]
    assert main(["bird-config", "-c", path, *sockets]) == 0
    captured = capsys.readouterr()
    assert "protocol static vol1_v6" in captured.out
    assert "BIRD 2 assumed" in captured.err
    server = FakeServer(ctl, bird({}, b"0001 BIRD 1.6.8 ready.\n"))
    try:
        assert main(["bird-config", "-c", path, *sockets]) == 0
        captured = capsys.readouterr()
        assert "protocol static vol1 {" in captured.out
        assert "greets 'BIRD 1.6.8 ready.'" in captured.err
        assert main(["bird-config", "-c", path, *sockets, "--bird-version", "3"]) == 1
        assert "--bird-version 3, but" in capsys.readouterr().err
    finally:
        server.close()
