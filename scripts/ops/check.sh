#!/usr/bin/env bash
# check.sh: the operations checks of issue 13, each a step of .ci/run (installs what it needs
# through scripts/ops/tools.sh, cached):
#
#   scripts/ops/check.sh unit        systemd-analyze security --offline=yes deploy/watcher.service
#                                    scores at most $MAX_EXPOSURE (2.5)
#   scripts/ops/check.sh prometheus  a real Prometheus scrapes the watcher (the ignored test
#                                    real_prometheus_scrapes_the_poll_counter, which also runs
#                                    `promtool check metrics` on the watcher's and the embedded
#                                    runner's text)
#   scripts/ops/check.sh deb         builds the release binaries once, packages them with
#                                    cargo-deb, installs the .deb (dpkg -i), runs
#                                    `watcher --config /etc/watcher/watcher.toml check` and
#                                    `watcher demo` from another directory, and purges the package
#                                    again, also when a step fails
#   scripts/ops/check.sh all         the three
#
# The deb step changes the machine (root, dpkg): it is meant for CI and throwaway VMs.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.5}
PACKAGE=article-watcher

log() { printf 'check.sh: %s\n' "$*" >&2; }
now() { date +%s; }

unit() {
    bash scripts/ops/tools.sh analyze
    local report score
    report=$(systemd-analyze security --offline=yes deploy/watcher.service 2>&1) || {
        printf '%s\n' "$report" >&2
        log "systemd-analyze failed on deploy/watcher.service"
        return 1
    }
    score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for watcher.service: \([0-9.]*\).*/\1/p')
    if [[ -z $score ]]; then
        printf '%s\n' "$report" >&2
        log "no exposure level in systemd-analyze's report"
        return 1
    fi
    if ! awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s <= max) }'; then
        printf '%s\n' "$report" | grep -v '✓' >&2
        log "deploy/watcher.service: exposure $score, above $MAX_EXPOSURE"
        return 1
    fi
    log "deploy/watcher.service: exposure $score (at most $MAX_EXPOSURE)"
}

prometheus() {
    bash scripts/ops/tools.sh prometheus
    cargo test -p watcher --test it real_prometheus -- --ignored
}

purge() {
    if dpkg -s "$PACKAGE" >/dev/null 2>&1; then
        dpkg --purge "$PACKAGE" >/dev/null
        log "purged $PACKAGE"
    fi
}

deb() {
    bash scripts/ops/tools.sh cargo-deb
    [[ $(id -u) == 0 ]] || { log "the deb step installs a package: run it as root (CI does)"; return 1; }
    cargo build --release -p watcher -p pipelines -p trigger-client
    local deb
    deb=$(cargo deb -p watcher --no-build --fast 2>/dev/null | tail -n 1)
    [[ -f $deb ]] || { log "cargo deb made no package (it printed \`$deb\`)"; return 1; }
    log "built $deb ($(du -h "$deb" | cut -f1))"
    # Purged again however this ends (a failed step exits the script under set -e).
    trap purge EXIT
    purge
    # Dependencies (adduser, python3) are on these machines; dpkg says which one is not.
    dpkg -i "$deb"
    dpkg -L "$PACKAGE" | grep -qx /usr/share/watcher/chains/demo.toml
    [[ $(stat -c '%U:%G %a' /var/lib/watcher) == "watcher:watcher 750" ]] || {
        log "/var/lib/watcher is $(stat -c '%U:%G %a' /var/lib/watcher), not watcher:watcher 750"
        return 1
    }
    grep -qx /etc/watcher/watcher.toml "/var/lib/dpkg/info/$PACKAGE.conffiles"
    watcher --config /etc/watcher/watcher.toml check
    local away
    away=$(mktemp -d)
    (cd "$away" && watcher demo --dir "$away/demo")
    rm -rf "$away"
    log "the package installs, checks its config and runs the demo"
}

run_step() {
    local t0; t0=$(now)
    "$1"
    log "$1: ok in $(($(now) - t0))s"
}

case ${1:-} in
    unit | prometheus | deb) run_step "$1" ;;
    all) run_step unit; run_step prometheus; run_step deb ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
