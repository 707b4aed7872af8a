#!/usr/bin/env bash
# The dashboards' browser test: Debian's Chromium (+ chromium-driver) headless, driven by
# playwright-core from npm (no browser download: it uses /usr/bin/chromium).
#
#   scripts/browser.sh install        apt chromium chromium-driver (skipped when present) and
#                                     playwright-core into a cache dir (skipped when present)
#   scripts/browser.sh run -- CMD...  install, then run CMD with PLAYWRIGHT_CORE (the module's
#                                     directory) and CHROMIUM (the browser) exported
#
# Knobs: BROWSER_CACHE (default ~/.cache/article-watcher/playwright-core-<version>).
set -euo pipefail

PLAYWRIGHT_VERSION=1.64.1
CACHE=${BROWSER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/playwright-core-$PLAYWRIGHT_VERSION}
CHROMIUM=/usr/bin/chromium

log() { printf 'browser.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

install_chromium() {
    if [[ -x $CHROMIUM ]] && command -v chromedriver >/dev/null; then
        log "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
        return
    fi
    local t0; t0=$(now)
    log "installing Debian's chromium and chromium-driver"
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
    log "chromium installed in $(since "$t0")"
}

install_playwright() {
    local module=$CACHE/node_modules/playwright-core
    if [[ -f $module/package.json ]] &&
        [[ $(node -p "require('$module/package.json').version") == "$PLAYWRIGHT_VERSION" ]]; then
        log "playwright-core $PLAYWRIGHT_VERSION already in $CACHE"
        return
    fi
    local t0; t0=$(now)
    log "installing playwright-core $PLAYWRIGHT_VERSION into $CACHE"
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$CACHE" --no-save --no-audit \
        --no-fund --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null
    log "playwright-core installed in $(since "$t0")"
}

install_node() {
    command -v node >/dev/null && command -v npm >/dev/null && return
    log "installing Debian's nodejs and npm"
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        nodejs npm >/dev/null
}

install() {
    install_node
    install_chromium
    install_playwright
}

case ${1:-} in
install) install ;;
run)
    shift
    [[ ${1:-} == -- ]] && shift
    install
    export PLAYWRIGHT_CORE=$CACHE/node_modules/playwright-core CHROMIUM
    "$@"
    ;;
*)
    echo "usage: $0 install | run -- CMD..." >&2
    exit 2
    ;;
esac
