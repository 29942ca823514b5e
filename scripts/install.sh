#!/usr/bin/env bash
# Install everything rhid's demo and tests need on a fresh Debian 12 machine, as root:
# Debian's haproxy and bird2 (the real programs the tests start), the build deps of
# systemd-python, and a virtualenv in .venv with rhid and its test tools.
# Idempotent: safe to run again. Source it or run it; it does not start anything.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(haproxy bird2 systemd libsystemd-dev pkg-config gcc python3 python3-venv python3-dev)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "install.sh: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packages start haproxy and bird as system services; rhid's demo and tests start their own
# instances on loopback and never use the system ones. Stop those so nothing listens that we did not start.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now haproxy.service bird.service >/dev/null 2>&1 || true
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "install.sh: ready ($(.venv/bin/rhid --version), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(bird --version 2>&1))"
