#!/usr/bin/env bash
# Build rhid's Debian package the Debian way (debhelper, pybuild, dpkg-buildpackage) on Debian 12,
# as root: installs the build dependencies, builds from a clean copy of this tree, checks the
# result with lintian, and leaves dist/rhid_<version>_all.deb. Usage: bash scripts/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DEPS=(debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools dpkg-dev fakeroot lintian)
source scripts/apt.sh
apt_ensure build-deb.sh "${BUILD_DEPS[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tree as committed plus uncommitted edits, without what the build must not see (.venv, caches).
mkdir "$work/rhid"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -P -t "$work/rhid"
# Debian's own python3 builds the package, whatever else is first on PATH (a pyenv, a venv).
(cd "$work/rhid" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b)
mkdir -p dist
cp "$work"/rhid_*_all.deb dist/
deb=$(ls -t dist/rhid_*_all.deb | head -1)
echo "== lintian $deb (fails on any error or warning; README: 'The Debian package' explains the rest)"
lintian --info --fail-on error,warning "$deb"
echo "build-deb.sh: built $deb"
