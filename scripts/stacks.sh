#!/usr/bin/env bash
# The integration suite on the stacks operators run besides Debian 12's: Debian 13's HAProxy 3.0 with
# bird3 3.1 (the HAProxy- and BIRD-facing files of tests/integration, and tests/stacks) and with bird2
# 2.17 (the BIRD-facing files), and with `forky` Debian forky's HAProxy 3.2 and BIRD 3.4 (as trixie;
# not in CI). --all: every file of tests/integration and tests/stacks on each stack named.
#
# Usage: scripts/stacks.sh [--all] [trixie] [trixie-bird2] [forky] [-- PYTEST-ARGS...]
#        (no stack named: trixie and trixie-bird2, what CI runs)
#
# Each suite's programs come from a root made by `debootstrap --variant=minbase` into
# $RHID_STACKS_CACHE (default /var/tmp/rhid-stacks), made once and reused while complete (a root is
# complete once its `.complete` file exists; a half-made one is made again). bird2 conflicts with
# bird3, so it is fetched alone with apt-get's own lists and cache there (the system's apt set-up and
# cache are never touched) and unpacked beside the root with `dpkg -x`.
#
# HAProxy 3.x needs glibc 2.38, newer than this Debian 12 host's, so each program runs through its
# root's own dynamic loader and libraries, by a two-line wrapper in $RHID_STACKS_CACHE/bin/STACK.
# Not chroot: the tests give the programs absolute paths in their temp dirs (configs, sockets, pid
# files), and the programs must meet the host's Python web servers and rhid on the host's loopback;
# through the loader they see the host's file system as it is, with no bind mount to make and undo,
# and the PID a test started is the program's own. `--argv0` names the wrapper, so HAProxy's
# master re-executes the wrapper (not the bare binary, which cannot start here) on a reload.
# tests/integration/lab.py takes the wrappers from RHID_HAPROXY, RHID_BIRD and RHID_BIRDC.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${RHID_STACKS_CACHE:-/var/tmp/rhid-stacks}
MIRROR=http://deb.debian.org/debian
PYTEST=(.venv/bin/pytest -p no:cacheprovider -q)
# The tests whose subject is BIRD (its names, its configs, its replies and faults, its peer's view);
# the whole of tests/integration runs on the default stack of each suite.
BIRD_FACING=(tests/integration/test_bird_names.py tests/integration/test_examples.py
             tests/integration/test_faults.py tests/integration/test_run.py)
# On a newer stack, the files whose subject is what HAProxy or BIRD say or do. Left out, because a
# newer stack changes nothing they prove: test_bird16 (its own BIRD 1.6 binaries), test_keepalived
# (keepalived and `rhid probe` over rhid's own socket), test_metrics (rhid's own HTTP), test_soak
# (the long random run; the BIRD-facing faults are in test_faults), test_drain (rhid's state file
# and HAProxy's scur, which test_haproxy_edge reads too), test_lossy_stream (a soak through a relay
# of rhid's own; test_targeted covers HAProxy's side of it), test_status_burst (rhid's own socket).
# `scripts/stacks.sh --all` runs them all.
STACK_FACING=("${BIRD_FACING[@]}" tests/integration/test_degraded.py tests/integration/test_events.py
              tests/integration/test_gateway.py tests/integration/test_haproxy_edge.py
              tests/integration/test_live_names.py tests/integration/test_policies.py
              tests/integration/test_probe.py tests/integration/test_rule_language.py
              tests/integration/test_service.py tests/integration/test_targeted.py
              tests/integration/test_withdraw.py tests/stacks)

stacks=()
all=0
while (($#)); do
    case $1 in
        --) shift; break ;;
        --all) all=1; shift ;;
        trixie | trixie-bird2 | forky) stacks+=("$1"); shift ;;
        *) echo "stacks.sh: unknown stack '$1' (trixie, trixie-bird2, forky; or --all)" >&2; exit 2 ;;
    esac
done
((${#stacks[@]})) || stacks=(trixie trixie-bird2)

[ -x .venv/bin/pytest ] || { echo "stacks.sh: run scripts/install.sh first" >&2; exit 2; }
for tool in debootstrap apt-get dpkg; do
    command -v "$tool" >/dev/null || { echo "stacks.sh: $tool is missing (scripts/install.sh)" >&2; exit 2; }
done

# ensure_root SUITE PACKAGE,...: a minbase root of SUITE with the packages, made once.
ensure_root() {
    local suite=$1 packages=$2 root=$CACHE/$1
    if [ -e "$root/.complete" ]; then
        echo "stacks.sh: reusing $root"
        return
    fi
    echo "stacks.sh: debootstrap $suite with $packages into $root (a few minutes, once)"
    mkdir -p "$CACHE"
    rm -rf "$root.partial"
    # Debian 12's debootstrap knows no script for forky: sid's (which trixie's is too) fits both.
    debootstrap --variant=minbase --include="$packages" "$suite" "$root.partial" "$MIRROR" \
        /usr/share/debootstrap/scripts/sid \
        >"$CACHE/$suite.log" 2>&1 || { tail -20 "$CACHE/$suite.log" >&2; exit 1; }
    rm -rf "$root"
    mv "$root.partial" "$root"
    touch "$root/.complete"
}

# ensure_unpacked SUITE PACKAGE: PACKAGE from SUITE unpacked in $CACHE/SUITE-PACKAGE, made once.
ensure_unpacked() {
    local suite=$1 package=$2 dir=$CACHE/$1-$2 apt=$CACHE/$1-apt
    if [ -e "$dir/.complete" ]; then
        echo "stacks.sh: reusing $dir"
        return
    fi
    echo "stacks.sh: fetching $package from $suite alone (apt lists and cache in $apt)"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
    echo "deb $MIRROR $suite main" >"$apt/sources.list"
    local o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
             -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    apt-get "${o[@]}" -qq update
    rm -f "$apt/debs/${package}"_*.deb
    (cd "$apt/debs" && apt-get "${o[@]}" -qq download "$package")
    rm -rf "$dir"
    dpkg -x "$apt/debs/${package}"_*.deb "$dir"
    touch "$dir/.complete"
}

# wrap STACK ROOT HAPROXY-DIR BIRD-DIR: wrappers that run ROOT's loader on each program
# (bird2's unpacked tree has no libraries of its own: it runs on trixie's).
wrap() {
    local bin=$CACHE/bin/$1 root=$2 program dir
    mkdir -p "$bin"
    for program in haproxy bird birdc; do
        case $program in haproxy) dir=$3 ;; *) dir=$4 ;; esac
        printf '#!/bin/sh\nexec %s --library-path %s --argv0 "$0" %s "$@"\n' \
            "$root/usr/lib64/ld-linux-x86-64.so.2" "$root/usr/lib/x86_64-linux-gnu" \
            "$dir/usr/sbin/$program" >"$bin/$program"
        chmod 755 "$bin/$program"
    done
    bird_executable=$4/usr/sbin/bird  # test_bird_names reads BIRD's keywords from the executable
}

failed=()
report=()
for stack in "${stacks[@]}"; do
    case $stack in
        trixie)
            ensure_root trixie haproxy,bird3
            wrap "$stack" "$CACHE/trixie" "$CACHE/trixie" "$CACHE/trixie"
            tests=("${STACK_FACING[@]}") ;;
        trixie-bird2)
            ensure_root trixie haproxy,bird3
            ensure_unpacked trixie bird2
            wrap "$stack" "$CACHE/trixie" "$CACHE/trixie" "$CACHE/trixie-bird2"
            tests=("${BIRD_FACING[@]}") ;;
        forky)
            ensure_root forky haproxy,bird3
            wrap "$stack" "$CACHE/forky" "$CACHE/forky" "$CACHE/forky"
            tests=("${STACK_FACING[@]}") ;;
    esac
    ((all)) && tests=(tests/integration tests/stacks)
    bin=$CACHE/bin/$stack
    versions="$("$bin/haproxy" -v | head -1 | cut -d' ' -f1-3), $("$bin/bird" --version 2>&1)"
    echo "== stacks.sh: $stack: $versions: ${tests[*]}"
    start=$SECONDS
    status=0
    RHID_HAPROXY=$bin/haproxy RHID_BIRD=$bin/bird RHID_BIRDC=$bin/birdc RHID_BIRD_EXECUTABLE=$bird_executable \
        "${PYTEST[@]}" "${tests[@]}" "$@" || status=$?
    if ((status == 0)); then
        report+=("$stack ($versions): passed in $((SECONDS - start)) s")
    else
        report+=("$stack ($versions): FAILED (pytest exit $status) in $((SECONDS - start)) s")
        failed+=("$stack")
    fi
done

echo "== stacks.sh: which versions ran"
printf '  %s\n' "${report[@]}"
((${#failed[@]} == 0)) || { echo "stacks.sh: failed on ${failed[*]}" >&2; exit 1; }
