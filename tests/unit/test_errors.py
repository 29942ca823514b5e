"""How rule diagnostics are shown to an operator."""

from __future__ import annotations

from rhid.errors import Diagnostic, RuleError


def test_render_has_position_line_caret_and_hint() -> None:
    """FILE:LINE:COL, the line, a caret under the column, then the hint."""
    text = Diagnostic("r.cfg", 3, 5, "bad thing", "abc defg", "do this").render()
    assert text.splitlines() == ["r.cfg:3:5: bad thing", "    abc defg", "        ^", "    hint: do this"]


def test_caret_follows_tabs() -> None:
    """A tab before the column is copied into the caret line so the caret lines up."""
    lines = Diagnostic("r.cfg", 1, 3, "m", "\tab").render().splitlines()
    assert lines[2] == "    \t ^"


def test_control_and_bidi_characters_are_escaped() -> None:
    """Hostile characters are shown escaped, and the caret still points at the right one."""
    lines = Diagnostic("r.cfg", 1, 4, "m", "a\x1b[\u202ex").render().splitlines()
    assert lines[1] == "    a\\x1b[\\u202ex"
    assert lines[2] == "    " + " " * len("a\\x1b[") + "^"


def test_caret_past_the_end() -> None:
    """A column one past the end of the line puts the caret after the last character."""
    assert Diagnostic("r.cfg", 1, 4, "m", "abc").render().splitlines()[2] == "       ^"


def test_rule_error_renders_every_diagnostic() -> None:
    """str(RuleError) contains each diagnostic in order."""
    error = RuleError((Diagnostic("f", 1, 1, "one", "x"), Diagnostic("f", 2, 1, "two", "y")))
    assert str(error).index("one") < str(error).index("two")
