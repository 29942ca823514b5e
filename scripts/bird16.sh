#!/usr/bin/env bash
# BIRD 1.6 for the tests (tests/integration/test_bird16.py) and bench/bird16_configure.py: Debian 12's
# `bird` 1.6.8, unpacked with `dpkg -x` into $RHID_STACKS_CACHE/bookworm-bird (default
# /var/tmp/rhid-stacks/bookworm-bird), once; scripts/install.sh --tests runs it.
#
# It is never installed: Debian's `bird` (1.6) and `bird2` conflict as packages (the same
# /usr/sbin/bird). It is fetched alone with apt-get's own sources, lists and cache under
# $RHID_STACKS_CACHE/bookworm-apt, as scripts/stacks.sh fetches Debian 13's bird2, so the system's apt
# set-up and cache are never touched, and the same works on a Debian 13 machine (which has no BIRD
# 1.6 of its own). The binaries are root/usr/sbin/bird, bird6 and birdc; they run on the host's
# libraries (glibc 2.34, readline 8).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RHID_STACKS_CACHE:-/var/tmp/rhid-stacks}
MIRROR=${RHID_BIRD16_MIRROR:-http://deb.debian.org/debian}
dir=$CACHE/bookworm-bird apt=$CACHE/bookworm-apt

if [ -e "$dir/.complete" ]; then
    echo "bird16.sh: reusing $dir ($("$dir/usr/sbin/bird" --version 2>&1))"
    exit 0
fi
echo "bird16.sh: fetching Debian 12's bird (BIRD 1.6) alone (apt lists and cache in $apt)"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
echo "deb $MIRROR bookworm main" >"$apt/sources.list"
o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
apt-get "${o[@]}" -qq update
rm -f "$apt/debs"/bird_*.deb
(cd "$apt/debs" && apt-get "${o[@]}" -qq download bird)
rm -rf "$dir"
dpkg -x "$apt/debs"/bird_*.deb "$dir"
"$dir/usr/sbin/bird" --version  # it runs here
touch "$dir/.complete"
echo "bird16.sh: ready: $dir/usr/sbin/bird, bird6 and birdc ($("$dir/usr/sbin/bird" --version 2>&1))"
