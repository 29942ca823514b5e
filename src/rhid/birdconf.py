"""The BIRD configuration rhid's files need: one static protocol per table and family, in the
file each goes in (BIRD 1.6: bird.conf and bird6.conf), with the export each BGP session needs.
Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from rhid import gateway
from rhid.dialect import BIRD2, Dialect
from rhid.gateway import Gateway
from rhid.model import Attributes, Channel
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


def bird_snippets(
    rules: RuleSet, bird_dir: str, dialect: Dialect = BIRD2, gateways: Collection[Gateway] = ()
) -> dict[str, str]:
    """The configuration that reads rhid's files, by the file it goes in: ``bird.conf`` (BIRD 2
    and 3: one static protocol per table and family), or ``bird.conf`` and ``bird6.conf`` (BIRD
    1.6: one daemon per family, each with a protocol per table, named as the table in both)."""
    if not SAFE_PATH.match(bird_dir):
        raise AssertionError(f"refusing to paste unvalidated directory {bird_dir!r} into BIRD's config")
    channels = sorted(rules.channels)
    degraded = any(rule.degraded is not None for rule in rules.rules)
    if not dialect.per_family:
        return {
            "bird.conf": _snippet(channels, bird_dir, dialect, gateways, "bird.conf (BIRD 2 or 3)", degraded)
        }
    return {
        "bird.conf": _snippet(
            [c for c in channels if c.family == 4],
            bird_dir,
            dialect,
            gateways,
            "bird.conf (BIRD 1.6's bird: IPv4)",
            degraded,
        ),
        "bird6.conf": _snippet(
            [c for c in channels if c.family == 6],
            bird_dir,
            dialect,
            gateways,
            "bird6.conf (BIRD 1.6's bird6: IPv6)",
            degraded,
        ),
    }


def bird_snippet(
    rules: RuleSet, bird_dir: str, dialect: Dialect = BIRD2, gateways: Collection[Gateway] = ()
) -> str:
    """`bird_snippets` as one text, each file's part after the other."""
    return "\n".join(bird_snippets(rules, bird_dir, dialect, gateways).values())


def _snippet(  # noqa: PLR0917 -- one private call site, each argument a part of the snippet
    channels: list[Channel],
    bird_dir: str,
    dialect: Dialect,
    gateways: Collection[Gateway],
    where: str,
    degraded: bool,
) -> str:
    """One BIRD's part: its static protocols, the export each BGP session needs, the kernel's."""
    directory = include_directory(bird_dir)
    lines = [
        f"# rhid: paste into {where}. rhid writes the files; BIRD starts and",
        f"# configures before they, or {bird_dir.rstrip('/') or '/'} itself, exist (the [ ] makes a missing",
        "# directory an empty include instead of an error).",
    ]
    if not channels:
        lines.append("# (no rule has a route of this family yet: nothing to declare here)")
    for channel in channels:
        pattern = f"{directory}/{channel.table}.ipv{channel.family}*.conf"
        lines += [
            f"protocol static {dialect.protocol(channel)} {{",
            *([f"  ipv{channel.family};"] if dialect.channel_statement else []),
            f'  include "{pattern}";',
            "}",
        ]
    if channels and degraded:
        lines.append("# and in each BGP session towards your routers, export them (this filter also carries")
        lines.append("# a degraded route's MED over eBGP, which BIRD drops otherwise):")
    elif channels:
        lines.append("# and in each BGP session towards your routers, export them:")
    via = {g.channel: g.address for g in gateways}
    for family in (4, 6):
        mine = [c for c in channels if c.family == family]
        if not mine:
            continue
        names = [dialect.protocol(c) for c in mine]
        led = [f"{c.table}'s routes lead via {via[c]}" for c in mine if c in via]
        hop = "" if led else " next hop self;"
        export = (
            export_filter(names)
            if degraded
            else "export where " + " || ".join(f'proto = "{n}"' for n in names) + ";"
        )
        clause = f"import none; {export}{hop}"
        lines.append(f"#   ipv{family} {{ {clause} }};" if dialect.channel_statement else f"#   {clause}")
        if led:
            lines += [
                f"#   (no `next hop self`: {', '.join(led)} (--gateway); a router on that network, over",
                "#   a direct eBGP session, sees the gateway as their next hop; with `next hop self` it",
                "#   sees this node, as it does for blackhole routes)",
            ]
            if dialect.per_family and family == 6:
                lines.append(
                    "#   (measured on 1.6.8: bird6 announces itself as the next hop of every route, "
                    "gateway or not;\n#   BIRD 2 and 3 send the gateway)"
                )
    lines += [
        "# and keep them out of the host's own routing table: in each kernel protocol"
        + ("'s channel," if dialect.channel_statement else ","),
        "#   export where source != RTS_STATIC;   (Debian's stock bird.conf says: export all)",
    ]
    return "\n".join(lines) + "\n"


def cautions(
    rules: RuleSet,
    dialect: Dialect,
    gateways: Collection[Gateway] = (),
    shutdown: Attributes | None = None,
) -> list[str]:
    """What will not work as the rules ask with `dialect`'s BIRD, each in a sentence that says why
    and what to do (`rhid check --bird-version`, and `rhid run` at start, say them): a table too
    large for BIRD 1.6's configure, a degraded clause's attributes this BIRD cannot carry (the route
    is then announced without them), the marks of a graceful shutdown (`shutdown`: what it adds to a
    leaving route) it cannot carry, a gateway no route leads to."""
    found = []
    counts = Counter(route.channel for route in rules.routes)
    for channel, count in sorted(counts.items()):
        problem = dialect.size_problem(count)
        if problem is not None:
            found.append(f"protocol {dialect.protocol(channel)} (IPv{channel.family}): {problem}")
    for rule in rules.rules:
        left_out = dialect.uncarried(rule.degraded.attributes) if rule.degraded is not None else ()
        if left_out:
            found.append(
                f"line {rule.line}: {dialect.name} cannot set {' and '.join(left_out)} on a static route: "
                "the degraded routes are announced without them (BIRD 1.6.3 and later, 2 and 3 can)"
            )
    left_out = dialect.uncarried(shutdown) if shutdown is not None else ()
    if left_out:
        found.append(
            f"{dialect.name} cannot set {' and '.join(left_out)} on a static route: a graceful shutdown "
            "keeps a leaving route announced without its marks, which routers cannot tell from any "
            "other; --graceful-shutdown 0 withdraws at once instead"
        )
    found.extend(gateway.unused(gateways, rules.channels))
    return found
