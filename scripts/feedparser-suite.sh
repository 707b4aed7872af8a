#!/usr/bin/env bash
# The feedparser test suite (issue 19): Python feedparser's own well-formed and ill-formed feeds,
# from its PyPI sdist (feedparser 6.0.14, BSD-2-Clause, never vendored), read through the
# watcher's parse path by `watcher/tests/feedparser_suite.rs`, which prints the files rejected and
# the link/id/title expectations met and fails below the issue's targets.
#
#   scripts/feedparser-suite.sh install   download and unpack the sdist (skipped when cached)
#   scripts/feedparser-suite.sh run       install, then run the suite test (the default)
#
# Knobs: FEEDPARSER_CACHE (default ~/.cache/article-watcher/feedparser-<version>), PIP (default
# `python3 -m pip`).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
VERSION=6.0.14
SHA256=088679b0c4b543ee211a820dd544698c76a402122eae7473c04a43425f283d06
CACHE=${FEEDPARSER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/feedparser-$VERSION}
SUITE=$CACHE/feedparser-$VERSION

log() { printf 'feedparser-suite.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

install() {
    if [[ -f $SUITE/.unpacked ]]; then
        log "feedparser $VERSION already unpacked in $SUITE"
        return
    fi
    local t0 tmp; t0=$(now)
    log "downloading the feedparser $VERSION sdist into $CACHE"
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/download.XXXXXX")
    # shellcheck disable=SC2086
    ${PIP:-python3 -m pip} download -q --disable-pip-version-check "feedparser==$VERSION" \
        --no-binary :all: --no-deps -d "$tmp"
    local archive=$tmp/feedparser-$VERSION.tar.gz
    if ! echo "$SHA256  $archive" | sha256sum -c --quiet -; then
        log "the downloaded sdist does not have the pinned sha256; refusing it"
        rm -rf "$tmp"
        exit 1
    fi
    rm -rf "$SUITE"
    tar -xzf "$archive" -C "$CACHE"
    mv "$archive" "$CACHE/"
    rm -rf "$tmp"
    # Written last: a download cut short is redone on the next run.
    touch "$SUITE/.unpacked"
    log "unpacked in $(since "$t0") (licence: $SUITE/LICENSE)"
}

run() {
    install
    local t0; t0=$(now)
    cd "$REPO"
    FEEDPARSER_SUITE=$SUITE/tests cargo test -q -p watcher --test feedparser_suite -- \
        --ignored --nocapture
    log "suite ran in $(since "$t0")"
}

case ${1:-run} in
    install) install ;;
    run) run ;;
    *) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
