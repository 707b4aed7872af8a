#!/usr/bin/env bash
# A real WebSub hub (Flask-WebSub 0.4.1) on 127.0.0.1 for the watcher's push test.
#
#   scripts/engines/websub.sh install        venv with the pinned Flask-WebSub (skipped when present)
#   scripts/engines/websub.sh start          install, then start the hub
#   scripts/engines/websub.sh stop           stop it
#   scripts/engines/websub.sh run -- CMD...  start, run CMD with the hub's env, always stop
#
# After `start`, $WEBSUB_STATE_DIR/env (default target/engines/websub/env) exports WEBSUB_HUB_URL
# (the hub endpoint, e.g. http://127.0.0.1:PORT/hub). Nothing listens beyond 127.0.0.1.
#
# Knobs: WEBSUB_VENV (default ~/.cache/article-watcher/websub-<version>), WEBSUB_STATE_DIR,
# WEBSUB_PORT (default: a free port), PYTHON (default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WEBSUB_VERSION=0.4.1
PYTHON=${PYTHON:-python3}
VENV=${WEBSUB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/websub-$WEBSUB_VERSION}
STATE=${WEBSUB_STATE_DIR:-$REPO/target/engines/websub}

ENGINE=websub
# shellcheck source=scripts/engines/lib.sh
source "$HERE/lib.sh"

installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("Flask-WebSub"))'
}

install() {
    pip_install_pinned "flask-websub[celery]==$WEBSUB_VERSION" "$HERE/websub-constraints.txt"
}

stop() {
    # It can take over a second to exit after SIGTERM.
    stop_group "$STATE/hub.pid" 10
    log "stopped"
}

start() {
    install
    if alive "$STATE/hub.pid"; then
        log "a previous hub is still running; stopping it"
        stop
    fi
    local t0; t0=$(now)
    rm -rf "$STATE"
    mkdir -p "$STATE"
    local port=${WEBSUB_PORT:-$(free_port)}
    (cd "$HERE" && exec setsid "$VENV/bin/python" websub_hub.py "$port" "$STATE/hub.sqlite3") \
        >"$STATE/hub.log" 2>&1 </dev/null &
    echo $! >"$STATE/hub.pid"
    wait_for "http://127.0.0.1:$port/health" 60 "$STATE/hub.pid"
    printf 'export WEBSUB_HUB_URL=%q\n' "http://127.0.0.1:$port/hub" >"$STATE/env"
    log "hub ready at http://127.0.0.1:$port/hub after $(since "$t0"); env in $STATE/env"
}

engine_main "$@"
