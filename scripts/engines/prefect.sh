#!/usr/bin/env bash
# A real Prefect 3 server on 127.0.0.1 for trigger-client's integration test.
#
#   scripts/engines/prefect.sh install        venv with the pinned Prefect (skipped when present)
#   scripts/engines/prefect.sh start          install, then start the server and a serve() process
#   scripts/engines/prefect.sh stop           stop both (serve() first, then the server)
#   scripts/engines/prefect.sh run -- CMD...  start, run CMD with the server's env, always stop
#
# After `start`, $PREFECT_STATE_DIR/env (default target/engines/prefect/env) exports
# PREFECT_API_URL, PREFECT_API_AUTH_STRING (basic auth is on) and TRIGGER_PREFECT_OUTPUT_DIR;
# $PREFECT_STATE_DIR/api_url holds the URL alone. Nothing listens beyond 127.0.0.1.
#
# Knobs: PREFECT_VENV (default ~/.cache/article-watcher/prefect-<version>), PREFECT_STATE_DIR,
# PREFECT_PORT (default: a free port), PYTHON (default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PREFECT_VERSION=3.9.1
PYTHON=${PYTHON:-python3}
VENV=${PREFECT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/prefect-$PREFECT_VERSION}
STATE=${PREFECT_STATE_DIR:-$REPO/target/engines/prefect}

ENGINE=prefect
# shellcheck source=scripts/engines/lib.sh
source "$HERE/lib.sh"

installed_version() { "$VENV/bin/python" -c 'import prefect; print(prefect.__version__)'; }

install() { pip_install_pinned "prefect==$PREFECT_VERSION" "$HERE/prefect-constraints.txt"; }

stop() {
    # serve() first: with the server gone it retries forever and ignores SIGTERM.
    stop_group "$STATE/serve.pid" 15
    stop_group "$STATE/server.pid" 15
    log "stopped"
}

start() {
    install
    if alive "$STATE/server.pid" || alive "$STATE/serve.pid"; then
        log "a previous server is still running; stopping it"
        stop
    fi
    local t0; t0=$(now)
    rm -rf "$STATE"
    mkdir -p "$STATE/home" "$STATE/received"
    local port=${PREFECT_PORT:-$(free_port)}
    local auth; auth="ci:$(random_hex 12)"

    export PREFECT_HOME=$STATE/home
    export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 PREFECT_SERVER_UI_ENABLED=false
    export PREFECT_API_URL=http://127.0.0.1:$port/api
    export PREFECT_RUNNER_POLL_FREQUENCY=1
    export PREFECT_SERVER_API_AUTH_STRING=$auth PREFECT_API_AUTH_STRING=$auth
    export TRIGGER_PREFECT_OUTPUT_DIR=$STATE/received

    setsid "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$port" \
        >"$STATE/server.log" 2>&1 </dev/null &
    echo $! >"$STATE/server.pid"
    wait_for "$PREFECT_API_URL/health" 90 "$STATE/server.pid"
    log "server healthy at $PREFECT_API_URL after $(since "$t0")"

    (cd "$HERE" && exec setsid "$VENV/bin/python" prefect_flows.py) \
        >"$STATE/serve.log" 2>&1 </dev/null &
    echo $! >"$STATE/serve.pid"
    wait_for "$PREFECT_API_URL/deployments/name/digital_data_etl/ci" 60 "$STATE/serve.pid" -u "$auth"
    wait_for "$PREFECT_API_URL/deployments/name/slow-flow/ci" 30 "$STATE/serve.pid" -u "$auth"

    {
        printf 'export PREFECT_API_URL=%q\n' "$PREFECT_API_URL"
        printf 'export PREFECT_API_AUTH_STRING=%q\n' "$auth"
        printf 'export TRIGGER_PREFECT_OUTPUT_DIR=%q\n' "$TRIGGER_PREFECT_OUTPUT_DIR"
    } >"$STATE/env"
    echo "$PREFECT_API_URL" >"$STATE/api_url"
    log "deployments served after $(since "$t0"); env in $STATE/env"
}

engine_main "$@"
