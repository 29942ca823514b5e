#!/usr/bin/env bash
# Install everything, then run the live demo: real HAProxy, BIRD and a BIRD peer router on loopback,
# with rhid announcing and withdrawing as backends go down and up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/rhid check -c etc/hapee-rhi.cfg
exec .venv/bin/python scripts/demo.py
