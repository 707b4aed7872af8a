#!/usr/bin/env bash
# A real ZenML server on 127.0.0.1 that accepts REST-triggered runs, offline, for trigger-client's
# integration test (and the venv the `zenml` chain's end-to-end test runs its pipelines with).
#
#   scripts/engines/zenml.sh install        venv with the pinned zenml[server] (skipped when present)
#   scripts/engines/zenml.sh start          install, start two servers, make the account and snapshots
#   scripts/engines/zenml.sh stop           stop both servers
#   scripts/engines/zenml.sh run -- CMD...  start, run CMD with the servers' env, always stop
#
# Two uvicorn servers share one SQLite store: the first has the workload manager that ZenML Pro
# uses to start snapshot runs (ZenML's own in-memory one), the second has none, like every
# open-source server (its run routes answer 405). zenml_setup.py then makes a service account
# and API key, a snapshot of the chain's digital_data_etl on the local stack (which the server
# refuses to run), and a runnable copy of it on a registered but never contacted remote stack
# (kubernetes orchestrator, s3 artifact store, a fake image). A run of that copy gets its own
# snapshot with the run's parameters, then fails with "Failed to start run.": nothing is
# launched. See ../../../shared/reference/zenml-real-server.md for the facts behind this.
#
# After `start`, $ZENML_STATE_DIR/env (default target/engines/zenml/env) exports TRIGGER_ZENML_URL,
# TRIGGER_ZENML_PLAIN_URL (the server without run routes), TRIGGER_ZENML_API_KEY,
# TRIGGER_ZENML_SNAPSHOT (runnable), TRIGGER_ZENML_LOCAL_SNAPSHOT and TRIGGER_ZENML_PYTHON (the
# venv's python, with which tests read runs through ZenML's own client). Nothing listens beyond
# 127.0.0.1; analytics are off.
#
# Knobs: ZENML_VENV (default ~/.cache/article-watcher/zenml-<version>), ZENML_STATE_DIR,
# ZENML_PORT (default: a free port; the second server takes another free one), PYTHON (default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ZENML_VERSION=0.98.0
PYTHON=${PYTHON:-python3}
VENV=${ZENML_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/zenml-$ZENML_VERSION}
STATE=${ZENML_STATE_DIR:-$REPO/target/engines/zenml}
SERVERS=(server plain)

ENGINE=zenml
# shellcheck source=scripts/engines/lib.sh
source "$HERE/lib.sh"

installed_version() { "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("zenml"))'; }

install() { pip_install_pinned "zenml[server]==$ZENML_VERSION" "$HERE/zenml-constraints.txt"; }

stop() {
    local server
    for server in "${SERVERS[@]}"; do
        stop_group "$STATE/$server.pid" 15
    done
    log "stopped"
}

# start_server NAME PORT [VAR=VALUE...]: uvicorn with the shared store, plus the extra env.
start_server() {
    local name=$1 port=$2; shift 2
    env "${SERVER_ENV[@]}" "$@" ZENML_SERVER_SERVER_URL="http://127.0.0.1:$port" \
        setsid "$VENV/bin/python" -m uvicorn zenml.zen_server.zen_server_api:app \
        --host 127.0.0.1 --port "$port" --log-level warning \
        >"$STATE/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
}

start() {
    install
    local server
    for server in "${SERVERS[@]}"; do
        if alive "$STATE/$server.pid"; then
            log "a previous server is still running; stopping it"
            stop
            break
        fi
    done
    local t0; t0=$(now)
    rm -rf "$STATE"
    mkdir -p "$STATE/server" "$STATE/client"
    local port=${ZENML_PORT:-$(free_port)}
    local plain_port; plain_port=$(free_port)
    while [[ $plain_port == "$port" ]]; do plain_port=$(free_port); done
    local password; password=$(random_hex 12)
    local url=http://127.0.0.1:$port plain_url=http://127.0.0.1:$plain_port

    # Only the servers get these (the command `run` starts must not inherit a server's store).
    SERVER_ENV=(
        ZENML_ANALYTICS_OPT_IN=false ZENML_AUTO_OPEN_DASHBOARD=false DO_NOT_TRACK=1
        ZENML_SERVER=true ZENML_CONFIG_PATH="$STATE/server"
        ZENML_STORE_URL="sqlite:///$STATE/server/zenml.db"
        ZENML_SERVER_DEPLOYMENT_TYPE=other ZENML_SERVER_AUTH_SCHEME=OAUTH2_PASSWORD_BEARER
        ZENML_SERVER_JWT_SECRET_KEY="$(random_hex 32)" ZENML_SERVER_AUTO_ACTIVATE=True
        ZENML_DEFAULT_USER_NAME=admin ZENML_DEFAULT_USER_PASSWORD="$password"
    )

    # The first server creates the store; the second starts once it is there.
    start_server server "$port" \
        ZENML_SERVER_WORKLOAD_MANAGER_IMPLEMENTATION_SOURCE=zenml.zen_server.pipeline_execution.in_memory_workload_manager.InMemoryWorkloadManager
    wait_for "$url/health" 120 "$STATE/server.pid"
    log "server healthy at $url after $(since "$t0")"
    start_server plain "$plain_port"

    # The setup is a client of the first server, with its own config dir.
    (
        cd "$REPO/pipelines/chains/zenml"
        ZENML_ANALYTICS_OPT_IN=false ZENML_CONFIG_PATH=$STATE/client ZENML_SETUP_PASSWORD=$password \
            ZENML_LOGGING_COLORS_DISABLED=true ZENML_ENABLE_RICH_TRACEBACK=false \
            exec "$VENV/bin/python" "$HERE/zenml_setup.py" "$url" "$STATE/setup.json"
    ) >"$STATE/setup.log" 2>&1 || {
        log "setup failed:"; tail -n 40 "$STATE/setup.log" >&2; return 1
    }
    wait_for "$plain_url/health" 120 "$STATE/plain.pid"
    log "open-source server healthy at $plain_url after $(since "$t0")"

    local key snapshot local_snapshot
    read -r key snapshot local_snapshot < <("$PYTHON" -c '
import json, sys
setup = json.load(open(sys.argv[1]))
print(setup["api_key"], setup["snapshot"], setup["local_snapshot"])' "$STATE/setup.json")
    {
        printf 'export TRIGGER_ZENML_URL=%q\n' "$url"
        printf 'export TRIGGER_ZENML_PLAIN_URL=%q\n' "$plain_url"
        printf 'export TRIGGER_ZENML_API_KEY=%q\n' "$key"
        printf 'export TRIGGER_ZENML_SNAPSHOT=%q\n' "$snapshot"
        printf 'export TRIGGER_ZENML_LOCAL_SNAPSHOT=%q\n' "$local_snapshot"
        printf 'export TRIGGER_ZENML_PYTHON=%q\n' "$VENV/bin/python"
    } >"$STATE/env"
    chmod 600 "$STATE/env" "$STATE/setup.json"
    echo "$url" >"$STATE/api_url"
    log "account and snapshots ready after $(since "$t0"); env in $STATE/env"
}

engine_main "$@"
