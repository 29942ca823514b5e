"""The allow-lists that guard every name before it reaches HAProxy or BIRD."""

from __future__ import annotations

import pytest

from rhid import names


@pytest.mark.parametrize("name", ["be_app", "a", "a:b", "x.y-z_1", "A" * 255])
def test_valid_proxy_names(name: str) -> None:
    """HAProxy's charset [A-Za-z0-9._:-], 1 to 255 characters, is accepted."""
    assert names.proxy_name_problem(name, "backend") is None
    assert names.is_proxy_name(name)


@pytest.mark.parametrize(
    "name", ["", "a;b", "a\nb", "a b", "'a'", '"a"', "a*", "a\x00", "\u0430", "a\u202e", "A" * 256, "a#b"]
)
def test_hostile_proxy_names(name: str) -> None:
    """Separators, quotes, wildcards, NUL, homoglyphs, bidi and overlong names are refused."""
    assert names.proxy_name_problem(name, "backend") is not None
    assert not names.is_proxy_name(name)


@pytest.mark.parametrize("name", ["vol1", "_", "vol_2", "V" * 64, "up", "DOWN", "g" * 64])
def test_valid_bird_symbols(name: str) -> None:
    """Symbols BIRD accepts as protocol names pass (keywords are case-sensitive)."""
    assert names.bird_symbol_problem(name, "table") is None
    assert names.require_bird_symbol(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("1vol", "must start with"),
        ("vol-1", "invalid character '-'"),
        ("vol;", "invalid character ';'"),
        ("v" * 65, "longer than 64"),
        ("down", "BIRD keyword"),
        ("protocol", "BIRD keyword"),
        ("all", "BIRD keyword"),
        ("a0" * 16, "hex byte string"),
    ],
)
def test_invalid_bird_symbols(name: str, fragment: str) -> None:
    """Names BIRD would refuse are refused here first, with the reason."""
    problem = names.bird_symbol_problem(name, "table")
    assert problem is not None
    assert fragment in problem.message


def test_odd_length_hex_is_a_symbol() -> None:
    """Only an even run of 32+ hex digits is a byte string (measured on BIRD 2.0.12)."""
    assert names.bird_symbol_problem("a" * 33, "table") is None
    assert names.bird_symbol_problem("a" * 31, "table") is None


@pytest.mark.parametrize("name", ["policy", "system", "transit", "net_type", "worker", "a0" * 10])
def test_names_only_newer_birds_refuse_are_kept_with_a_warning(name: str) -> None:
    """A table name BIRD 2.0 takes but BIRD 2.17/3.x refuse stays valid (vendor files keep their
    meaning) and is named by newer_bird_problem, which `rhid check` prints as a warning."""
    assert names.bird_symbol_problem(name, "table") is None
    assert names.newer_bird_problem(name) is not None
    assert names.newer_bird_problem("vol1") is None


def test_require_bird_symbol_is_loud() -> None:
    """An unvalidated symbol reaching a command builder is our bug, so it raises AssertionError."""
    with pytest.raises(AssertionError):
        names.require_bird_symbol("vol1; down")
