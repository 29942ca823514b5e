#!/usr/bin/env bash
# Install everything, then run the live demo: real HAProxy, BIRD and a BIRD peer router on loopback,
# with rhid announcing and withdrawing as backends go down and up (vendor timing, then event wake-up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python scripts/demo.py
