"""A fast mutation fuzzer for rhid's three parsers: rule files, HAProxy replies, BIRD replies.

Each target takes bytes and must either return a value or raise the project's own error for that
input (RuleError, HAProxyProtocolError, BirdProtocolError); any other exception is a finding.
Inputs are real seeds (a reply captured from HAProxy 2.6, a BIRD 2 transcript, rule files) mutated
by flips, insertions of structural tokens, deletions, duplications, truncations and splices.
Hypothesis covers the same ground in tests/fuzz with shrinking; this driver covers volume.
"""

from __future__ import annotations

import contextlib
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rhid import birdwire
from rhid.errors import BirdProtocolError, HAProxyProtocolError, RuleError
from rhid.model import Proxy, ProxyKind
from rhid.rules import parse_rules
from rhid.stats import parse_poll

HAPROXY_SEED = (Path(__file__).parents[1] / "unit" / "data" / "haproxy_reply.txt").read_bytes()
BIRD_SEED = (
    b"0001 BIRD 2.0.12 ready.\n1007-Table master4:\n 10.9.9.9/32 blackhole [vol1 07:01] * (200)\n0000 \n"
    b"+Reconfiguring\n0002-Reading configuration from b.conf\n0003 Reconfigured\n1000-BIRD 2.0.12\n"
    b" Last reboot on 2026-11-21 07:01:45.925\n Last reconfiguration on 2026-11-21 07:01:55.072\n"
    b"0013 Daemon is up and running\n8002 b.conf:1:16 Invalid prefix length 33\n9001 syntax error\n"
)
RULE_SEED = (
    b"# comment\nvol1%192.168.1.10/32 = all(b:be_static,b:be_app)\nvol2%192.168.1.11 = any(b:k8s)  # x\n"
    b"10.0.0.0/24, 2001:db8::10 = all(f:fe_www)\n1.1.1.1 = never\n2.2.2.2=always( f:a , b:c )\n"
)
TOKENS = [b"\n", b"\n\n", b",", b"=", b"(", b")", b"%", b"/", b":", b"#", b";", b" ", b"\t", b"\x00", b"\xff",
          b"\"", b"0000 ", b"1007-", b"+", b"# pxname,", b"UP", b"DOWN", b"INI", b"BACKEND", b"FRONTEND",
          b"all", b"any", b"b:", b"f:", b"vol1%", b"::", b"/128", b"\xe2\x80\xae", b"9" * 40]  # fmt: skip
WANTED = [
    Proxy(kind, name) for kind in ProxyKind for name in ("fe_www", "be_up", "be_down", "be_maint", "li_app")
]


def fuzz_rules(data: bytes) -> None:
    with contextlib.suppress(RuleError):
        parse_rules(data.decode("utf-8", errors="surrogateescape"), allow_empty=True)


def fuzz_haproxy(data: bytes) -> None:
    with contextlib.suppress(HAProxyProtocolError):
        parse_poll(data, WANTED)


def fuzz_bird(data: bytes) -> None:
    reader = birdwire.ReplyReader(max_reply_bytes=1 << 20)
    try:
        for reply in reader.feed(data):
            if reply.code == 0:
                birdwire.parse_route_listing(reply)
            elif reply.code == 13:
                birdwire.parse_status(reply)
            birdwire.is_unknown_protocol(reply)
    except BirdProtocolError:
        pass


TARGETS: dict[str, tuple[Callable[[bytes], None], bytes]] = {
    "rules": (fuzz_rules, RULE_SEED),
    "haproxy": (fuzz_haproxy, HAPROXY_SEED),
    "bird": (fuzz_bird, BIRD_SEED),
}


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        at = rng.randint(0, len(data))
        if choice < 0.25 and data:
            data[min(at, len(data) - 1)] = rng.randint(0, 255)
        elif choice < 0.5:
            data[at:at] = rng.choice(TOKENS)
        elif choice < 0.65:
            del data[at : at + rng.randint(1, 40)]
        elif choice < 0.75:
            data[at:at] = data[at : at + rng.randint(1, 80)]
        elif choice < 0.85:
            del data[at:]
        else:
            other = rng.randint(0, len(seed))
            data[at:] = seed[other : other + rng.randint(0, 400)]
    return bytes(data)


@dataclass
class Result:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)


def run(target: str, count: int, seed: int = 2026) -> Result:
    """Feed `count` mutated inputs to one target; collect any exception that is not ours."""
    function, base = TARGETS[target]
    rng = random.Random(seed)
    result = Result(target)
    started = time.perf_counter()
    for index in range(count):
        data = mutate(rng, base) if index % 8 else base[: rng.randint(0, len(base))]  # 1 in 8: a prefix
        try:
            function(data)
        except Exception:  # exactly what the fuzzer hunts
            if len(result.findings) < 10:
                result.findings.append(f"{data[:200]!r}\n{traceback.format_exc(limit=3)}")
        result.inputs += 1
    result.seconds = time.perf_counter() - started
    return result
