"""The include files rhid owns: rendering, reading back, atomic replacement."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from rhid import plan
from rhid.bird import BirdClient
from rhid.model import Channel
from rhid.reconcile import BirdSide
from rhid.routefiles import (
    FILE_MODE,
    OnDisk,
    channel_of,
    file_name,
    parse_routes,
    read_announced,
    render_routes,
    rewrite_in_place,
    write_atomically,
)
from rhid.rules import parse_rules

N = ipaddress.ip_network


def test_render_is_sorted_blackhole_lines() -> None:
    """Routes are written sorted, one `route P blackhole;` per line, under a header."""
    text = render_routes([N("10.0.0.2/32"), N("10.0.0.1/32"), N("10.0.0.0/24")])
    assert text.splitlines()[1:] == [
        "route 10.0.0.0/24 blackhole;",
        "route 10.0.0.1/32 blackhole;",
        "route 10.0.0.2/32 blackhole;",
    ]


def test_parse_reads_back_what_render_writes() -> None:
    """parse_routes(render_routes(x)) == x, for both families."""
    for family, prefixes in [(4, {N("10.0.0.1/32")}), (6, {N("2001:db8::/48"), N("::1/128")})]:
        assert parse_routes(render_routes(prefixes), family) == (frozenset(prefixes), [])


def test_foreign_lines_are_reported_not_trusted() -> None:
    """Lines rhid did not write (other family, other syntax) are returned as strange."""
    prefixes, strange = parse_routes(
        "route 10.0.0.1/32 blackhole;\nroute ::1/128 blackhole;\nprotocol x\n", 4
    )
    assert prefixes == {N("10.0.0.1/32")}
    assert strange == ["route ::1/128 blackhole;", "protocol x"]


def test_file_names_map_to_channels() -> None:
    """`<table>.ipv4.conf` and `<table>.ipv6.conf` name channels; other files are ignored."""
    assert file_name(Channel("vol1", 6)) == "vol1.ipv6.conf"
    assert channel_of("vol2.ipv4.conf") == Channel("vol2", 4)
    for other in [
        "vol1.ipv4.conf.tmp",
        ".vol1.ipv4.conf.x.tmp",
        "down.ipv4.conf",
        "vol1.ipv5.conf",
        "x.conf",
    ]:
        assert channel_of(other) is None


def test_read_announced(tmp_path: Path) -> None:
    """Files in the directory come back as the announced state; a missing directory is empty."""
    assert read_announced(tmp_path / "absent") == OnDisk()
    (tmp_path / "vol1.ipv4.conf").write_text(render_routes([N("10.0.0.1/32")]))
    (tmp_path / "vol1.ipv6.conf").write_text("garbage\n")
    on_disk = read_announced(tmp_path)
    assert on_disk.announced == {Channel("vol1", 4): {N("10.0.0.1/32")}, Channel("vol1", 6): frozenset()}
    assert on_disk.foreign == {Channel("vol1", 6)}
    assert len(on_disk.warnings) == 1


def test_atomic_write_leaves_no_temp_and_is_readable_by_bird(tmp_path: Path) -> None:
    """The file is replaced whole, mode 0644 for BIRD's user, and no temp file remains."""
    path = tmp_path / "vol1.ipv4.conf"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == FILE_MODE
    assert os.listdir(tmp_path) == ["vol1.ipv4.conf"]


def test_a_smaller_file_is_rewritten_in_place_and_a_larger_one_is_not(tmp_path: Path) -> None:
    """rewrite_in_place overwrites the same inode, cut to size; it refuses text longer than the file."""
    path = tmp_path / "vol1.ipv4.conf"
    path.write_text(render_routes([N("10.0.0.1/32"), N("10.0.0.2/32")]))
    inode = path.stat().st_ino
    smaller = render_routes([N("10.0.0.2/32")])
    assert rewrite_in_place(path, smaller)
    assert path.read_text() == smaller
    assert path.stat().st_ino == inode, "no new file: no new block needed"
    assert path.stat().st_mode & 0o777 == FILE_MODE
    assert not rewrite_in_place(path, render_routes([N("10.0.0.1/32"), N("10.0.0.3/32")]))
    assert path.read_text() == smaller, "untouched"
    assert not rewrite_in_place(tmp_path / "absent.ipv4.conf", smaller)


def test_a_mass_withdrawal_logs_100_route_lines_then_one_count(tmp_path: Path) -> None:
    """150 routes withdrawn in one plan: 100 route.withdrawn lines with their prefix, then one count=50."""
    rules = parse_rules("".join(f"10.0.{i // 250}.{i % 250 + 1} = always\n" for i in range(150)))
    side = BirdSide(tmp_path / "rhid", BirdClient(str(tmp_path / "none.ctl"), 0.1))
    first = plan.decide(plan.initial(set(), frozenset(), 0.0), rules, {}, plan.NO_INTENTS, 0.0)
    side.write(first, 0.0)
    empty = parse_rules("", allow_empty=True)
    emptied = plan.decide(first, empty, {}, plan.NO_INTENTS, 1.0)
    side.write(emptied, 1.0)
    lines = [line.fields for line in plan.transition_lines(emptied) if line.name == "route.withdrawn"]
    assert len(lines) == 101
    assert all("prefix" in line and "bird" not in line for line in lines[:100])
    assert lines[100]["count"] == 50
    assert side.count == 0
