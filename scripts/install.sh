#!/usr/bin/env bash
# Install everything rhid's demo and tests need on a fresh Debian 12 machine, as root:
# Debian's haproxy and bird2 (the real programs the tests start), the build deps of
# systemd-python, debootstrap and systemd-nspawn (the package test), and a virtualenv in .venv
# with rhid and its test tools. scripts/build-deb.sh installs the package's build dependencies.
# Idempotent: safe to run again. Source it or run it; it does not start anything.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(haproxy bird2 systemd libsystemd-dev pkg-config gcc python3 python3-venv python3-dev
              debootstrap systemd-container  # tests/system boots the .deb under systemd
              man-db)                        # systemd-analyze verify checks Documentation=man:rhid(8)

source scripts/apt.sh
apt_ensure install.sh "${APT_PACKAGES[@]}"
# The demo and the tests start their own haproxy and bird on loopback, with their own configs and
# sockets in a temp directory. They never stop, disable or reconfigure the system's services.

if [ ! -x .venv/bin/python ]; then
    echo "install.sh: python3 -m venv .venv"
    python3 -m venv .venv
fi
echo "install.sh: pip install -e '.[test]' into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q --progress-bar off -e '.[test]'
echo "install.sh: ready ($(.venv/bin/rhid --version), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(bird --version 2>&1))"
