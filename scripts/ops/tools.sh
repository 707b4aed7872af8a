#!/usr/bin/env bash
# tools.sh: installs what the operations checks need (issue 13), each only when missing, so a
# second run costs nothing:
#
#   scripts/ops/tools.sh prometheus   Debian's prometheus (prometheus + promtool)
#   scripts/ops/tools.sh analyze      systemd-analyze (Debian's systemd package), for the unit's
#                                     security score; most machines have it already
#   scripts/ops/tools.sh cargo-deb    cargo-deb, pinned, from crates.io (cargo install --locked)
#
# Debian's service scripts never start what is installed here (policy-rc.d on these machines,
# and PID 1 is not systemd); nothing listens until a test starts it.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0

log() { printf 'tools.sh: %s\n' "$*" >&2; }

apt_updated=
apt_install() {
    if [[ -z $apt_updated ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

prometheus() {
    if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
        return
    fi
    log "installing Debian's prometheus"
    apt_install prometheus
}

analyze() {
    command -v systemd-analyze >/dev/null && return
    log "installing Debian's systemd (for systemd-analyze)"
    apt_install systemd
}

cargo_deb() {
    if [[ $(cargo deb --version 2>/dev/null) == *"$CARGO_DEB_VERSION"* ]]; then
        return
    fi
    log "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install --locked --quiet --version "$CARGO_DEB_VERSION" cargo-deb
}

(($# > 0)) || { sed -n '2,12p' "$0" >&2; exit 2; }
for tool in "$@"; do
    case $tool in
        prometheus) prometheus ;;
        analyze) analyze ;;
        cargo-deb) cargo_deb ;;
        *) log "unknown tool \`$tool\`"; exit 2 ;;
    esac
done
