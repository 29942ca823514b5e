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
        ("a0" * 10, "hex byte string"),  # BIRD 3.4.0's bound
        ("policy", "BIRD keyword"),  # BIRD 3's keywords, not BIRD 2.0's
        ("system", "BIRD keyword"),
        ("net_type", "BIRD keyword"),  # BIRD 2.17's too
        ("worker", "BIRD keyword"),  # BIRD 3.4's
    ],
)
def test_invalid_bird_symbols(name: str, fragment: str) -> None:
    """Names BIRD would refuse are refused here first, with the reason."""
    problem = names.bird_symbol_problem(name, "table")
    assert problem is not None
    assert fragment in problem.message


def test_odd_length_hex_is_a_symbol() -> None:
    """Only an even run of 20+ hex digits is a byte string (measured on BIRD 2.0.12 to 3.4.0)."""
    assert names.bird_symbol_problem("a" * 33, "table") is None
    assert names.bird_symbol_problem("a" * 31, "table") is None
    assert names.bird_symbol_problem("a0" * 9, "table") is None


def test_require_bird_symbol_is_loud() -> None:
    """An unvalidated symbol reaching a command builder is our bug, so it raises AssertionError."""
    with pytest.raises(AssertionError):
        names.require_bird_symbol("vol1; down")
