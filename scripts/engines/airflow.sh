#!/usr/bin/env bash
# A real Apache Airflow 3 on 127.0.0.1 for trigger-client's integration test.
#
#   scripts/engines/airflow.sh install        venv with the pinned Airflow (skipped when present)
#   scripts/engines/airflow.sh start          install, migrate, start api-server, scheduler, dag-processor
#   scripts/engines/airflow.sh stop           stop all three (by process group)
#   scripts/engines/airflow.sh run -- CMD...  start, run CMD with the server's env, always stop
#
# After `start`, $AIRFLOW_STATE_DIR/env (default target/engines/airflow/env) exports
# AIRFLOW_API_URL, AIRFLOW_USERNAME, AIRFLOW_PASSWORD and TRIGGER_AIRFLOW_OUTPUT_DIR;
# $AIRFLOW_STATE_DIR/api_url holds the URL alone. Only 127.0.0.1 is bound (the scheduler's
# log server, which would bind 0.0.0.0, is off).
#
# Knobs: AIRFLOW_VENV (default ~/.cache/article-watcher/airflow-<version>), AIRFLOW_STATE_DIR,
# AIRFLOW_PORT (default: a free port), PYTHON (default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
AIRFLOW_VERSION=3.3.2
PYTHON=${PYTHON:-python3}
VENV=${AIRFLOW_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/airflow-$AIRFLOW_VERSION}
STATE=${AIRFLOW_STATE_DIR:-$REPO/target/engines/airflow}
COMPONENTS=(dag-processor scheduler api-server)

ENGINE=airflow
# shellcheck source=scripts/engines/lib.sh
source "$HERE/lib.sh"

installed_version() { "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))'; }

install() { pip_install_pinned "apache-airflow==$AIRFLOW_VERSION" "$HERE/airflow-constraints.txt"; }

stop() {
    local component
    for component in "${COMPONENTS[@]}"; do
        stop_group "$STATE/$component.pid" 15
    done
    log "stopped"
}

start_component() {
    local name=$1; shift
    setsid "$VENV/bin/airflow" "$@" >"$STATE/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
}

start() {
    install
    local component
    for component in "${COMPONENTS[@]}"; do
        if alive "$STATE/$component.pid"; then
            log "a previous airflow is still running; stopping it"
            stop
            break
        fi
    done
    local t0; t0=$(now)
    rm -rf "$STATE"
    mkdir -p "$STATE/home" "$STATE/received"
    local port=${AIRFLOW_PORT:-$(free_port)}
    local password; password=$(random_hex 12)
    printf '{"admin": "%s"}\n' "$password" >"$STATE/home/passwords.json"

    export AIRFLOW_HOME=$STATE/home
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__DAGS_FOLDER=$HERE/airflow_dags
    export AIRFLOW__CORE__PARALLELISM=4
    export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$STATE/home/passwords.json
    export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$port/execution/
    AIRFLOW__API_AUTH__JWT_SECRET=$(random_hex 32)
    AIRFLOW__API__SECRET_KEY=$(random_hex 16)
    export AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW__API__SECRET_KEY
    export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
    export TRIGGER_AIRFLOW_OUTPUT_DIR=$STATE/received
    local url=http://127.0.0.1:$port

    "$VENV/bin/airflow" db migrate >"$STATE/migrate.log" 2>&1 || {
        log "db migrate failed:"; tail -n 40 "$STATE/migrate.log" >&2; return 1
    }
    start_component api-server api-server --host 127.0.0.1 --port "$port" --workers 1
    start_component scheduler scheduler --skip-serve-logs
    start_component dag-processor dag-processor
    wait_for "$url/api/v2/monitor/health" 120 "$STATE/api-server.pid"
    log "api healthy at $url after $(since "$t0")"

    local token
    token=$(curl -sf -H 'Content-Type: application/json' \
        -d "{\"username\": \"admin\", \"password\": \"$password\"}" "$url/auth/token" |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
    wait_for "$url/api/v2/dags/digital_data_etl" 90 "$STATE/dag-processor.pid" -H "Authorization: Bearer $token"
    wait_for "$url/api/v2/dags/fail_dag" 30 "$STATE/dag-processor.pid" -H "Authorization: Bearer $token"

    {
        printf 'export AIRFLOW_API_URL=%q\n' "$url"
        printf 'export AIRFLOW_USERNAME=admin\n'
        printf 'export AIRFLOW_PASSWORD=%q\n' "$password"
        printf 'export TRIGGER_AIRFLOW_OUTPUT_DIR=%q\n' "$TRIGGER_AIRFLOW_OUTPUT_DIR"
    } >"$STATE/env"
    echo "$url" >"$STATE/api_url"
    log "dags registered after $(since "$t0"); env in $STATE/env"
}

engine_main "$@"
