#!/usr/bin/env bash
# The whole test suite: install what it needs, then lint, type-check and run every test, with the
# branch coverage of the pure core measured and printed. This is the README's test command and
# what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --tests
echo "== ruff"; .venv/bin/ruff check .; .venv/bin/ruff format --check .
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"; .venv/bin/coverage run -m pytest "$@"
echo "== branch coverage of the pure core"; .venv/bin/coverage report
echo "== integration suite on Debian 13 (HAProxy 3.0 + bird3 3.1, + bird2 2.17)"; bash scripts/stacks.sh
