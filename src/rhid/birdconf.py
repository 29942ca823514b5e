"""The BIRD 2 configuration rhid's files need: one static protocol per table and family. Pure."""

from __future__ import annotations

import re

from rhid.rules import RuleSet

SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")


def bird_snippet(rules: RuleSet, bird_dir: str) -> str:
    """The BIRD 2 configuration that reads rhid's files, one static protocol per table and family."""
    if not SAFE_PATH.match(bird_dir):
        raise AssertionError(f"refusing to paste unvalidated directory {bird_dir!r} into BIRD's config")
    lines = [
        "# rhid: paste into bird.conf (BIRD 2). rhid writes the files; the wildcard lets BIRD start",
        f"# before rhid has written anything, but {bird_dir} itself must exist before BIRD starts.",
    ]
    protocols = sorted(rules.channels)
    for channel in protocols:
        pattern = f"{bird_dir.rstrip('/')}/{channel.table}.ipv{channel.family}*.conf"
        lines += [
            f"protocol static {channel.protocol} {{",
            f"  ipv{channel.family};",
            f'  include "{pattern}";',
            "}",
        ]
    v4 = " || ".join(f'proto = "{c.protocol}"' for c in protocols if c.family == 4)
    v6 = " || ".join(f'proto = "{c.protocol}"' for c in protocols if c.family == 6)
    lines.append("# and in each BGP session towards your routers, export them:")
    if v4:
        lines.append(f"#   ipv4 {{ import none; export where {v4}; next hop self; }};")
    if v6:
        lines.append(f"#   ipv6 {{ import none; export where {v6}; next hop self; }};")
    lines += [
        "# and keep them out of the host's own routing table: in each kernel protocol's channel,",
        "#   export where source != RTS_STATIC;   (Debian's stock bird.conf says: export all)",
    ]
    return "\n".join(lines) + "\n"
