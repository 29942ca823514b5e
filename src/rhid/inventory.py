"""What HAProxy has, against what the rules name: every proxy `show stat` lists, and each name a rule
uses that HAProxy lacks, with the closest one it has. Pure: bytes and names in, values out.

    inventory = parse_proxies(reply)            # every frontend and backend HAProxy has, by name
    found = missing(rules.lines_of, inventory)  # (Missing(b:be_sttic, (3,), "be_static"), ...)
    found[0].sentence()                         # "b:be_sttic: no such backend; did you mean be_static?"

A rule that names a proxy HAProxy lacks is valid (HAProxy may define it later, and the vendor's
files keep their meaning), so `rhid check` alone cannot see a typo: `rhid check --haproxy-socket`
and the daemon (at start and after a reload) ask HAProxy. Only names of HAProxy's own characters
are read from its reply (anything else could not be named by a rule, and is never echoed), and the
closest name is looked for among at most SUGGESTED names that are missing (difflib's comparison of
one name with 10,000 costs milliseconds).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from rhid.errors import HAProxyProtocolError
from rhid.model import Proxy, ProxyKind
from rhid.names import is_proxy_name

LIST_COMMAND = b"show stat -1 3 -1\n"  # every FRONTEND and BACKEND row, no servers
SUGGESTED = 100  # missing names for which a closest name is looked for; the rest are only listed
CLOSE_ENOUGH = 0.6  # difflib's ratio: be_sttic ~ be_static (0.94), be_app ~ be_api (0.83)


@dataclass(frozen=True, slots=True)
class Inventory:
    """The names of HAProxy's frontends and backends (a `listen` section is both)."""

    frontends: frozenset[str]
    backends: frozenset[str]

    def names(self, kind: ProxyKind) -> frozenset[str]:
        """The names of one kind."""
        return self.frontends if kind is ProxyKind.FRONTEND else self.backends

    def has(self, proxy: Proxy) -> bool:
        """True when HAProxy has this proxy, of this kind."""
        return proxy.name in self.names(proxy.kind)


def parse_proxies(data: bytes) -> Inventory:
    """The reply to LIST_COMMAND: the CSV header, one row per frontend and backend, an empty line."""
    text = data.decode("latin-1")  # lossless; only checked names are kept
    if not text.endswith("\n\n"):
        raise HAProxyProtocolError("show stat: reply truncated: it does not end with an empty line")
    header, _, body = text[:-1].partition("\n")
    if not header.startswith("# pxname,svname,"):
        raise HAProxyProtocolError(f"show stat: expected a '# pxname,svname,' header, got {header[:80]!r}")
    found: dict[str, set[str]] = {"FRONTEND": set(), "BACKEND": set()}
    for line in body.split("\n"):
        name, _, rest = line.partition(",")
        row = rest.partition(",")[0]
        if row in found and is_proxy_name(name):
            found[row].add(name)
    return Inventory(frozenset(found["FRONTEND"]), frozenset(found["BACKEND"]))


def parse_sessions(data: bytes) -> dict[Proxy, int]:
    """The current sessions (``scur``) of each frontend and backend in the reply to LIST_COMMAND:
    what `rhid drain --wait` watches fall to zero."""
    text = data.decode("latin-1")
    if not text.endswith("\n\n"):
        raise HAProxyProtocolError("show stat: reply truncated: it does not end with an empty line")
    header, _, body = text[:-1].partition("\n")
    columns = header.removeprefix("# ").split(",")
    if not header.startswith("# pxname,svname,") or "scur" not in columns:
        raise HAProxyProtocolError(f"show stat: expected a header with scur, got {header[:80]!r}")
    at = columns.index("scur")
    found: dict[Proxy, int] = {}
    for line in filter(None, body.split("\n")):
        fields = line.split(",")
        kind = {"FRONTEND": ProxyKind.FRONTEND, "BACKEND": ProxyKind.BACKEND}.get(
            fields[1] if len(fields) > 1 else ""
        )
        if kind is None or len(fields) <= at or not is_proxy_name(fields[0]):
            continue
        if not fields[at].isdigit():
            raise HAProxyProtocolError(f"show stat: scur of {fields[0]} is {fields[at][:20]!r}")
        found[Proxy(kind, fields[0])] = int(fields[at])
    return found


@dataclass(frozen=True, slots=True)
class Missing:
    """A proxy the rules name that HAProxy lacks: the lines naming it, the closest name of the same
    kind HAProxy has (if any is close), and whether HAProxy has this very name as the other kind."""

    proxy: Proxy
    lines: tuple[int, ...]
    suggestion: str | None = None
    other_kind: bool = False

    @property
    def advice(self) -> str | None:
        """What to write instead, in operator words, or None."""
        if self.other_kind:
            other = _other(self.proxy.kind)
            name = self.proxy.name
            return f"HAProxy has a {other.word} {name}: did you mean {other.value}:{name}?"
        if self.suggestion is not None:
            return f"did you mean {self.suggestion}?"
        return None

    def sentence(self) -> str:
        """``b:be_sttic: no such backend; did you mean be_static?``"""
        text = f"{self.proxy}: no such {self.proxy.kind.word}"
        advice = self.advice
        return f"{text}; {advice}" if advice is not None else text


def missing(named: Mapping[Proxy, tuple[int, ...]], inventory: Inventory) -> tuple[Missing, ...]:
    """Each proxy of `named` (proxy -> the lines naming it) that `inventory` lacks, in `named`'s order."""
    found: list[Missing] = []
    for proxy, lines in named.items():
        if inventory.has(proxy):
            continue
        other = _other(proxy.kind)
        close = (
            # (difflib breaks a tie by the name itself: the same suggestion in every process)
            difflib.get_close_matches(proxy.name, inventory.names(proxy.kind), n=1, cutoff=CLOSE_ENOUGH)
            if len(found) < SUGGESTED
            else []
        )
        found.append(Missing(proxy, lines, close[0] if close else None, proxy.name in inventory.names(other)))
    return tuple(found)


def _other(kind: ProxyKind) -> ProxyKind:
    return ProxyKind.BACKEND if kind is ProxyKind.FRONTEND else ProxyKind.FRONTEND
