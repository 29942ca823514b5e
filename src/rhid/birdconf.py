"""The BIRD 2 configuration rhid's files need: one static protocol per table and family. Pure."""

from __future__ import annotations

from rhid.dialect import BIRD2, Dialect
from rhid.names import SAFE_PATH
from rhid.rules import RuleSet


def include_directory(bird_dir: str) -> str:
    """`bird_dir` with its last component written as a one-character glob (``/run/rhi[d]``).

    BIRD expands an ``include`` pattern with glob(3) and GLOB_ERR: a directory named literally that
    does not exist aborts the whole configuration ("Unable to match pattern ...: No such file or
    directory"), at BIRD's start and at every ``configure``. A directory component that is itself a
    pattern makes glob list its parent instead, and an absent directory is then merely no match,
    which BIRD accepts as an empty include. So BIRD starts with the snippet whether or not rhid's
    directory exists yet (at boot, after a purge); only the parent (``/run``) must exist."""
    path = bird_dir.rstrip("/")
    parent, _, name = path.rpartition("/")
    if not name:
        return path
    return f"{parent}/{name[:-1]}[{name[-1]}]"


def export_filter(protocols: list[str]) -> str:
    """The BGP channel's export clause for rhid's `protocols` that also carries a degraded route's
    MED over eBGP (BIRD drops a static route's MED on eBGP export unless the filter sets it;
    communities pass either way: notes, bird-control-socket §9)."""
    wanted = " || ".join(f'proto = "{protocol}"' for protocol in protocols) or "false"
    return (
        f"export filter {{ if {wanted} then {{ if defined(bgp_med) then bgp_med = bgp_med; accept; }} "
        "reject; };"
    )


def bird_snippet(rules: RuleSet, bird_dir: str, dialect: Dialect = BIRD2) -> str:
    """The BIRD 2 configuration that reads rhid's files, one static protocol per table and family."""
    if not SAFE_PATH.match(bird_dir):
        raise AssertionError(f"refusing to paste unvalidated directory {bird_dir!r} into BIRD's config")
    directory = include_directory(bird_dir)
    lines = [
        "# rhid: paste into bird.conf (BIRD 2 or 3). rhid writes the files; BIRD starts and",
        f"# configures before they, or {bird_dir.rstrip('/') or '/'} itself, exist (the [ ] makes a missing",
        "# directory an empty include instead of an error).",
    ]
    protocols = sorted(rules.channels)
    for channel in protocols:
        pattern = f"{directory}/{channel.table}.ipv{channel.family}*.conf"
        lines += [
            f"protocol static {dialect.protocol(channel)} {{",
            f"  ipv{channel.family};",
            f'  include "{pattern}";',
            "}",
        ]
    v4 = [dialect.protocol(c) for c in protocols if c.family == 4]
    v6 = [dialect.protocol(c) for c in protocols if c.family == 6]
    degraded = any(rule.degraded is not None for rule in rules.rules)
    if degraded:
        lines.append("# and in each BGP session towards your routers, export them (this filter also carries")
        lines.append("# a degraded route's MED over eBGP, which BIRD drops otherwise):")
    else:
        lines.append("# and in each BGP session towards your routers, export them:")
    for family, names in ((4, v4), (6, v6)):
        if not names:
            continue
        clause = (
            export_filter(names)
            if degraded
            else "export where " + " || ".join(f'proto = "{n}"' for n in names) + ";"
        )
        lines.append(f"#   ipv{family} {{ import none; {clause} next hop self; }};")
    lines += [
        "# and keep them out of the host's own routing table: in each kernel protocol's channel,",
        "#   export where source != RTS_STATIC;   (Debian's stock bird.conf says: export all)",
    ]
    return "\n".join(lines) + "\n"
