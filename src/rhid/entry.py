"""The `rhid` command: `rhid probe` without the rest of rhid, every other command through rhid.cli.

keepalived runs `rhid probe` every second, so it must not pay for the rule compiler, the daemon
and logging set-up that rhid.cli imports (about 200 ms): the probe's module is loaded alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rhid` console script and of `python -m rhid`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["probe"]:
        from rhid import probe  # noqa: PLC0415 -- the point: nothing else is imported for a probe

        return probe.main(args[1:])
    from rhid import cli  # noqa: PLC0415

    return cli.main(args)
