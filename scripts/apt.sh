# Sourced by the install and build scripts: install Debian packages without leaving a daemon behind.
#
#   apt_ensure WHO PACKAGE...   install the packages named that are missing
#   apt_quietly WHO ARGS...     apt-get -y --no-install-recommends ARGS (install, build-dep ...)
#
# (WHO names the calling script in what it prints.) Debian's haproxy, bird2, keepalived and prometheus
# start and enable their services, with stock configs, as they are installed; these scripts install
# them only as programs for the demo and the tests to start on loopback or in namespaces. So while apt
# runs, a policy-rc.d forbids their start (no other service's), and afterwards the service units that
# they enabled, if *this call* installed them, are disabled again. Packages that were installed before are left exactly as
# they were.
# Undo: `systemctl enable --now haproxy bird` (and keepalived) if you do want Debian's services.

APT_POLICY=/usr/sbin/policy-rc.d
# Packages whose installation starts and enables a daemon with a stock config, which the demo and
# the tests need only as programs (prometheus: the tests use only its promtool). (Other packages'
# units, systemd's own for one, are left alone.)
APT_DAEMONS=(haproxy bird2 bird3 keepalived prometheus)

apt_ensure() {
    local who=$1 package
    shift
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "$who: apt-get install ${missing[*]} (a minute or two on a fresh machine)"
        apt_quietly "$who" install "${missing[@]}"
    fi
}

apt_quietly() {
    local who=$1
    shift
    local before after policy_added=
    before=$(_apt_installed)
    if [ ! -e "$APT_POLICY" ]; then
        printf '#!/bin/sh\n# %s: haproxy, bird, keepalived and prometheus do not start while it installs packages\n%s\n' "$who" \
            'case "$1" in haproxy | haproxy.service | bird | bird.service | keepalived | keepalived.service | prometheus | prometheus.service) exit 101 ;; esac; exit 0' >"$APT_POLICY"
        chmod 755 "$APT_POLICY"
        policy_added=1
        trap 'rm -f "$APT_POLICY"' EXIT  # also if apt is interrupted
    fi
    local status=0
    apt-get update -q || status=$?
    if ((status == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get "$@" -y --no-install-recommends || status=$?
    fi
    if [ -n "$policy_added" ]; then rm -f "$APT_POLICY" && trap - EXIT; fi
    after=$(_apt_installed)
    _apt_disable_new_services "$who" "$(comm -12 <(comm -13 <(echo "$before") <(echo "$after")) \
        <(printf '%s\n' "${APT_DAEMONS[@]}" | sort))"
    return "$status"
}

_apt_installed() {
    dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort
}

# Disable the service units of newly installed packages that their postinst enabled.
_apt_disable_new_services() {
    local who=$1 new=$2 package unit
    [ -n "$new" ] || return 0
    for package in $new; do
        for unit in $(dpkg-query -L "$package" 2>/dev/null | grep -E '^(/usr)?/lib/systemd/system/[^/@]+\.service$' | xargs -r -n1 basename); do
            if [ "$(systemctl is-enabled "$unit" 2>/dev/null)" = enabled ]; then
                echo "$who: systemctl disable $unit (installed by $package as a program only: the demo and tests start their own, or use only its tools)"
                systemctl disable --quiet "$unit" 2>/dev/null || true
            fi
        done
    done
}
