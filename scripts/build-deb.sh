#!/usr/bin/env bash
# Build rhid's Debian package the Debian way (debhelper, pybuild, dpkg-buildpackage) on Debian 12 or
# 13, as root: installs the build dependencies debian/control declares (with build-essential, which
# dpkg-buildpackage always requires), builds from a clean copy of this tree, checks the result with
# lintian, and leaves dist/rhid_<version>_all.deb. Usage: bash scripts/build-deb.sh
# Build once, on any such machine, and copy the .deb to the nodes: they need none of this.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/apt.sh
# dpkg-dev for dpkg-checkbuilddeps and dpkg-buildpackage, lintian to check the result.
apt_ensure build-deb.sh dpkg-dev lintian
if ! dpkg-checkbuilddeps 2>/dev/null; then
    # apt reads Build-Depends from ./debian/control and adds build-essential, as dpkg-checkbuilddeps
    # asks. Nothing is started: apt_quietly forbids service starts while it installs.
    echo "build-deb.sh: apt-get build-dep ./ (the Build-Depends of debian/control, and build-essential)"
    apt_quietly build-deb.sh build-dep ./
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree as committed plus uncommitted edits, without what the build must not see (.venv, caches).
mkdir "$work/rhid"
if command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -P -t "$work/rhid"
else  # an unpacked release tarball, or a clone on a machine that has no git
    tar -c --exclude=./.git --exclude=./.venv --exclude=./dist --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.mypy_cache --exclude=.pytest_cache --exclude=.ruff_cache . |
        tar -x -C "$work/rhid"
fi
# Debian's own python3 builds the package, whatever else is first on PATH (a pyenv, a venv).
(cd "$work/rhid" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b)
mkdir -p dist
cp "$work"/rhid_*_all.deb dist/
deb=$(ls -t dist/rhid_*_all.deb | head -1)
echo "== lintian $deb (fails on any error or warning; README: 'The Debian package' explains the rest)"
lintian --info --fail-on error,warning "$deb"
echo "build-deb.sh: built $deb"
