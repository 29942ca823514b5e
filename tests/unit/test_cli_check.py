"""`rhid check`: exit codes, summary, positions and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rhid.cli import main


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "hapee-rhi.cfg"
    path.write_text(text)
    return str(path)


def test_valid_file_prints_one_line_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file exits 0 and prints one summary line with rules, routes, tables and proxies."""
    path = write(tmp_path, "1.1.1.1, 2001:db8::1 = all(b:a,f:b)\nvol2%2.2.2.0/24 = any(b:a)\n")
    assert main(["check", "-c", path]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "2 rules, 3 routes (2 IPv4, 1 IPv6) in 2 tables (vol1, vol2)" in out
    assert "2 proxies referenced (1 backend, 1 frontend)" in out


def test_invalid_file_lists_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid file exits 1 and prints FILE:LINE:COL, the line and a caret for each error."""
    path = write(tmp_path, "1.1.1.1/24 = all(b:a)\nok%2.2.2.2 = any(b:x)\n3.3.3.3 = all(b:a;b)\n")
    assert main(["check", "-c", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:1:1: 1.1.1.1/24 has host bits set" in err
    assert "hint: did you mean 1.1.1.0/24?" in err
    assert f"{path}:3:18: invalid character ';' in backend name" in err
    assert "    3.3.3.3 = all(b:a;b)\n                     ^" in err
    assert err.rstrip().endswith("2 errors")


def test_missing_file_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file is one clear line on stderr and exit status 2."""
    assert main(["check", "-c", str(tmp_path / "nope.cfg")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope.cfg: no such file" in err


def test_json_output_describes_compiled_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the compiled rules: routes with BIRD protocol, condition, proxies."""
    path = write(tmp_path, "vol2%2001:db8::1 = any(b:a,f:b)\n")
    assert main(["check", "-c", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is True
    assert data["rules"][0]["routes"] == [
        {"table": "vol2", "prefix": "2001:db8::1/128", "family": 6, "bird_protocol": "vol2_v6"}
    ]
    assert data["rules"][0]["condition"] == {
        "aggregate": "any",
        "operands": [{"kind": "backend", "name": "a"}, {"kind": "frontend", "name": "b"}],
    }


def test_json_output_of_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json on an invalid file prints the errors as data and still exits 1."""
    path = write(tmp_path, "1.1.1.1 = all(b:a\n")
    assert main(["check", "-c", path, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False
    assert data["errors"][0]["line"] == 1


def test_empty_file_needs_flag(tmp_path: Path) -> None:
    """An empty rule file fails unless --allow-empty is given."""
    path = write(tmp_path, "# nothing yet\n")
    assert main(["check", "-c", path]) == 1
    assert main(["check", "-c", path, "--allow-empty"]) == 0


def test_console_script_runs_as_module(tmp_path: Path) -> None:
    """`python -m rhid check` works as a process, with the same exit status."""
    path = write(tmp_path, "1.1.1.1 = all(b:a)\n")
    result = subprocess.run(
        [sys.executable, "-m", "rhid", "check", "-c", path], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "1 rule," in result.stdout


def test_a_file_without_rules_shows_no_empty_source_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The no-rules error names the file and the fix, with no empty source line and lone caret."""
    path = write(tmp_path, "# 10.0.0.1 = all(b:a)\n")
    assert main(["check", "-c", path]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"{path}:1:1: the rule file has no rules: every route would be withdrawn"
    assert err.splitlines()[1] == "    hint: if that is what you want, pass --allow-empty"
    assert "^" not in err


def test_bird_config_on_a_file_without_rules_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rhid bird-config` on the shipped all-commented file exits 1 and prints no dangling comment lines."""
    path = write(tmp_path, "# 10.0.0.1 = all(b:a)\n")
    assert main(["bird-config", "-c", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "has no rules" in captured.err


def test_a_table_name_newer_birds_refuse_is_valid_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`transit%` (a BIRD 3 keyword BIRD 2.0 takes) passes `rhid check` (exit 0) with a warning naming it."""
    path = write(tmp_path, "transit%10.0.0.1 = all(b:a)\n")
    assert main(["check", "-c", path]) == 0
    captured = capsys.readouterr()
    assert "OK: 1 rule" in captured.out
    assert "warning: table 'transit' is a keyword of newer BIRDs" in captured.err
