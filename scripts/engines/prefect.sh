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

log() { printf 'prefect.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

install() {
    if [[ -x $VENV/bin/prefect ]] &&
        [[ $("$VENV/bin/python" -c 'import prefect; print(prefect.__version__)' 2>/dev/null) == "$PREFECT_VERSION" ]]; then
        log "prefect $PREFECT_VERSION already installed in $VENV"
        return
    fi
    local t0; t0=$(now)
    log "installing prefect $PREFECT_VERSION into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -U pip
    # The constraints file pins every transitive dependency (pip freeze of a working install).
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -c "$HERE/prefect-constraints.txt" "prefect==$PREFECT_VERSION"
    log "installed in $(since "$t0")"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process group whose leader's pid is in $1: TERM, up to $2 seconds, then KILL.
stop_group() {
    local pidfile=$1 grace=$2 pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq $((grace * 4))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM for ${grace}s; killing its group"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

stop() {
    # serve() first: with the server gone it retries forever and ignores SIGTERM.
    stop_group "$STATE/serve.pid" 15
    stop_group "$STATE/server.pid" 15
    log "stopped"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until curl succeeds on $1 (extra curl args in $3...), failing after $2 seconds or when
# the process in pidfile $pidfile_for_wait dies.
wait_for() {
    local url=$1 timeout=$2 pidfile=$3; shift 3
    local deadline=$((SECONDS + timeout))
    until curl -sf -o /dev/null "$@" "$url"; do
        if ! alive "$pidfile"; then
            log "process of $pidfile died; its log:"; tail -n 40 "${pidfile%.pid}.log" >&2; return 1
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${timeout}s waiting for $url; log:"; tail -n 40 "${pidfile%.pid}.log" >&2; return 1
        fi
        sleep 0.25
    done
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
    local auth; auth="ci:$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

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

run() {
    start
    trap stop EXIT
    # shellcheck disable=SC1091
    source "$STATE/env"
    "$@"
}

case ${1:-} in
    install) install ;;
    start) start ;;
    stop) stop ;;
    run)
        shift
        [[ ${1:-} == -- ]] && shift
        (($# > 0)) || { log "usage: prefect.sh run -- CMD..."; exit 2; }
        run "$@"
        ;;
    *)
        sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
