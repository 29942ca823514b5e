#!/usr/bin/env bash
# Install what rhid's demo (bash scripts/install.sh) or its tests (bash scripts/install.sh --tests)
# need on a Debian 12 or 13 machine, as root, and a virtualenv in .venv with rhid (and, for the
# tests, its test tools) from the Python package index.
#   demo:    Debian's haproxy and bird2 (or an installed bird3) as programs (the demo starts its own, on loopback), python3
#            with venv, and the build deps of systemd-python (gcc, libsystemd-dev, pkg-config).
#   --tests: also debootstrap and systemd-nspawn (tests/system boots the .deb under systemd),
#            man-db (systemd-analyze verify checks Documentation=man:rhid(8)), keepalived (the
#            keepalived test runs `rhid probe` as a track_script in two network namespaces) and
#            prometheus (its promtool checks and unit-tests the alerting rules; its service is
#            neither started nor left enabled), and BIRD 1.6 unpacked (never installed: it conflicts with
#            bird2) into /var/tmp/rhid-stacks/bookworm-bird for tests/integration/test_bird16.py
#            (scripts/bird16.sh: apt's own lists and cache there).
# Nothing is left running or enabled: apt.sh forbids service starts while it installs, and disables
# the haproxy and bird services of packages it newly installed (`systemctl enable --now haproxy
# bird` undoes that). Packages that were already installed are left as they were.
# scripts/build-deb.sh installs the package's build dependencies. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=
case "${1:-}" in
    --tests) tests=1 ;;
    "") ;;
    *) echo "usage: bash scripts/install.sh [--tests]" >&2; exit 2 ;;
esac

# BIRD 2 (Debian 12 and 13), or the BIRD 3 a Debian 13 machine may already have: the two conflict,
# and installing bird2 would remove it.
bird=bird2
if dpkg-query -W -f='${Status}' bird3 2>/dev/null | grep -q "install ok installed"; then bird=bird3; fi
APT_PACKAGES=(haproxy "$bird" systemd libsystemd-dev pkg-config gcc python3 python3-venv python3-dev)
if [ -n "$tests" ]; then
    APT_PACKAGES+=(debootstrap systemd-container  # tests/system boots the .deb under systemd
                   git                            # ... after building it from a clone in a minimal root
                   man-db                         # systemd-analyze verify checks Documentation=man:rhid(8)
                   keepalived                     # tests/integration/test_keepalived.py: VRRP driven by rhid probe
                   prometheus)                    # promtool checks and tests packaging/prometheus/*.yml
fi

source scripts/apt.sh
apt_ensure install.sh "${APT_PACKAGES[@]}"
[ -z "$tests" ] || bash scripts/bird16.sh
# The demo and the tests start their own haproxy and bird on loopback, with their own configs and
# sockets in a temp directory. They never stop, disable or reconfigure the system's services.

if [ ! -x .venv/bin/python ]; then
    echo "install.sh: python3 -m venv .venv"
    python3 -m venv .venv
fi
extras=
[ -z "$tests" ] || extras='[test]'
echo "install.sh: pip install -e '.$extras' into .venv (from the Python package index)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q --progress-bar off -e ".$extras"
echo "install.sh: ready ($(.venv/bin/rhid --version), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(bird --version 2>&1))"
