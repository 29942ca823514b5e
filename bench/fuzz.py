"""Long fuzzing run: at least 1,000,000 inputs across rhid's three parsers (tests/fuzz/driver.py).

    python bench/fuzz.py [--inputs 1000000] [--seed 2026]

Prints one JSON line per parser (inputs, seconds, inputs per second, findings) and a total; exits
1 if any input raised an exception other than the project's own parse errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz import driver


def main() -> int:
    parser = argparse.ArgumentParser(description="mutation-fuzz rhid's parsers")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="total, split across the parsers")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    share = {"rules": 0.4, "haproxy": 0.3, "bird": 0.3}
    total = {"inputs": 0, "seconds": 0.0, "findings": 0}
    for target, part in share.items():
        result = driver.run(target, int(args.inputs * part), args.seed)
        total["inputs"] += result.inputs
        total["seconds"] += result.seconds
        total["findings"] += len(result.findings)
        print(json.dumps({
            "target": target, "inputs": result.inputs, "seconds": round(result.seconds, 1),
            "inputs_per_second": round(result.inputs / result.seconds), "findings": len(result.findings),
        }))  # fmt: skip
        for finding in result.findings:
            print(finding, file=sys.stderr)
    print(json.dumps({"target": "total", **total, "seconds": round(float(total["seconds"]), 1)}))
    return 1 if total["findings"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
