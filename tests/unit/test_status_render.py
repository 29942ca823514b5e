"""`rhid status` in operator words: what it says about the peers, and what counts as a problem."""

from __future__ import annotations

from typing import Any

from rhid.status import problems, render


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "0", "pid": 1, "started": "t", "status": "s", "announced": 1, "withdrawn": 0, "routes": [],
        "rules": {"path": "r.cfg", "count": 1, "loaded": "t", "reload": "ok at t"},
        "haproxy": {"socket": "h.sock", "state": "reachable", "last_error": None},
        "bird": {"socket": "b.ctl", "state": "reachable", "in_sync": True, "last_error": None},
    }  # fmt: skip
    for key, value in changes.items():
        base[key] = {**base[key], **value}
    return base


def test_an_unreachable_bird_is_never_called_in_sync() -> None:
    """With BIRD unreachable the line says so and that the files are current, never 'in sync'."""
    text = render(document(bird={"state": "unreachable", "in_sync": True}))
    bird_line = next(line for line in text.splitlines() if line.startswith("bird:"))
    assert "in sync" not in bird_line
    assert "unreachable" in bird_line
    assert "PROBLEM: BIRD is unreachable" in text


def test_problems_are_listed() -> None:
    """A failed reload, an unreachable HAProxy, BIRD out of sync are problems; a healthy daemon has none."""
    assert problems(document()) == []
    found = problems(
        document(
            rules={"reload": "failed at t: x"}, haproxy={"state": "unreachable"}, bird={"in_sync": False}
        )
    )
    assert len(found) == 3


def test_each_route_says_why() -> None:
    """Every route line is followed by the plan's reason for it, held routes included."""
    route = {
        "prefix": "10.0.0.1/32", "table": "vol1", "announced": True, "held": True, "since": "t",
        "rule_line": 1, "rule": "vol1%10.0.0.1/32 = all(b:a)", "targets": [],
        "reason": "not known yet, kept as it was: all: b:a is unknown (HAProxy last said 'never polled')",
    }  # fmt: skip
    text = render({**document(), "routes": [route]})
    assert "      why: not known yet, kept as it was: all: b:a is unknown" in text
