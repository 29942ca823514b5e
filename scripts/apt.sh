# Sourced by the install and build scripts: install the Debian packages named that are missing.
# Usage: apt_ensure WHO PACKAGE...   (WHO names the calling script in what it prints)
apt_ensure() {
    local who=$1 package
    shift
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "$who: apt-get install ${missing[*]} (a minute or two on a fresh machine)"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}
