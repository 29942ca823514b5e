#!/usr/bin/env bash
# Install everything, then show what rhid makes of the example rule file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
echo; echo "== rhid check -c etc/hapee-rhi.cfg"
.venv/bin/rhid check -c etc/hapee-rhi.cfg
echo; echo "== a broken rule file is refused with positions and hints"
broken=$(mktemp --suffix=.cfg); trap 'rm -f "$broken"' EXIT
printf '10.0.0.1/24 = all(b:be_app)\n192.0.2.1 = all(b:be_a;x)\n' > "$broken"
.venv/bin/rhid check -c "$broken" || echo "(exit status $?)"
