"""What one `configure` costs BIRD 1.6 and BIRD 2 with large include files (issue 25).

    python bench/bird16_configure.py [--sizes 1000,10000,30000,100000] [--repeat 5] [--json FILE]

For each BIRD and each size N it starts a BIRD (no BGP: the cost is BIRD's own) with N routes in
one static protocol's include file, then times, on the control socket as rhid sends them:
`configure` after one route was added (the common change), `configure` with nothing changed,
`show route protocol vol1` (rhid's full verify), and `configure` after the file was emptied (a
stop). With --split K it also puts the same N routes in K protocols of N/K routes each and times
one change. BIRD 1.6 comes from scripts/bird16.sh. Prints a table and writes JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.integration.lab import BIRD, bird16_programs

from rhid.bird import BirdClient

TIMEOUT = 120.0


def route(i: int) -> str:
    return f"route 10.{64 + i // 65536}.{(i // 256) % 256}.{i % 256}/32 blackhole;\n"


def timed(client: BirdClient, command: str) -> float:
    started = time.perf_counter()
    reply = client.request(command, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    if reply.code >= 8000:
        raise SystemExit(f"{command}: {reply.code} {reply.text}")
    return elapsed * 1000


def measure(binary: str, version: str, size: int, protocols: int, repeat: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rhid-b16-") as tmp:
        root = Path(tmp)
        files = [root / f"vol1_{k}.conf" for k in range(protocols)]
        per = size // protocols
        for k, path in enumerate(files):
            path.write_text("".join(route(k * per + i) for i in range(per)))
        body = "".join(
            f"protocol static {'vol1' if k == 0 else f'vol1_{k}'} {{\n"
            + ("  ipv4;\n" if version == "2" else "")
            + f'include "{files[k]}";\n}}\n'
            for k in range(protocols)
        )
        config = root / "bird.conf"
        config.write_text("router id 127.0.0.1;\nprotocol device {}\n" + body)
        ctl = root / "bird.ctl"
        proc = subprocess.Popen([binary, "-f", "-c", str(config), "-s", str(ctl)], cwd=root)
        try:
            deadline = time.monotonic() + 60
            while not ctl.exists():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{binary} did not start")
                time.sleep(0.05)
            client = BirdClient(str(ctl), TIMEOUT)
            time.sleep(0.5)
            change, same, listing = [], [], []
            extra = files[0]
            base = extra.read_text()
            for n in range(repeat):
                extra.write_text(base + route(size + 1 + n))
                change.append(timed(client, "configure"))
                same.append(timed(client, "configure"))
                listing.append(timed(client, "show route protocol vol1"))
                extra.write_text(base)
                timed(client, "configure")
            for path in files:
                path.write_text("")
            withdraw = timed(client, "configure")
            client.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return {
        "bird": version,
        "routes": size,
        "protocols": protocols,
        "one_change_ms": statistics.median(change),
        "no_change_ms": statistics.median(same),
        "show_route_ms": statistics.median(listing),
        "withdraw_all_ms": withdraw,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,30000,100000")
    parser.add_argument("--split", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--birds", default="1.6,2", help="which BIRDs: 1.6, 2 or both")
    parser.add_argument("--json", default="bench/results/bird16_configure.json")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    bird16 = bird16_programs()
    if bird16 is None:
        raise SystemExit("BIRD 1.6 is missing: bash scripts/bird16.sh")
    wanted = args.birds.split(",")
    birds = [(b, v) for b, v in ((str(bird16.bird), "1.6"), (BIRD, "2")) if v in wanted]
    rows = []
    for binary, version in birds:
        for size in sizes:
            rows.append(measure(binary, version, size, 1, args.repeat))
            print(rows[-1], flush=True)
        if args.split > 1:
            rows.append(measure(binary, version, sizes[-1], args.split, args.repeat))
            print(rows[-1], flush=True)
    print()
    print(
        "| BIRD | routes | protocols | configure, one change | configure, no change | show route protocol "
        "| configure, all withdrawn |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['bird']} | {row['routes']:,} | {row['protocols']} | {row['one_change_ms']:.1f} ms | "
            f"{row['no_change_ms']:.1f} ms | {row['show_route_ms']:.1f} ms | "
            f"{row['withdraw_all_ms']:.1f} ms |"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(
        ["/usr/bin/git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    out.write_text(json.dumps({"commit": commit, "when": time.strftime("%F"), "rows": rows}, indent=1) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
