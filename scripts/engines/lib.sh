# lib.sh: what the engine scripts share (sourced, not run): logging, a pinned venv install,
# process groups started with setsid and stopped TERM → grace → KILL, readiness polling, and the
# `install | start | stop | run -- CMD` dispatch. A script sets ENGINE, VENV, STATE, PYTHON and
# HERE, defines installed_version, start and stop, then calls engine_main "$@".

log() { printf '%s.sh: %s\n' "$ENGINE" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Installs $1 (`name==version`) into $VENV with every transitive dependency pinned by the
# constraints file $2 (a pip freeze of a working install); skipped when installed_version prints
# the wanted version.
pip_install_pinned() {
    local requirement=$1 constraints=$2 wanted=${1##*==}
    if [[ -x $VENV/bin/python ]] && [[ $(installed_version 2>/dev/null) == "$wanted" ]]; then
        log "$requirement already installed in $VENV"
        return
    fi
    local t0; t0=$(now)
    log "installing $requirement into $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -U pip
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$constraints" "$requirement"
    log "installed in $(since "$t0")"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops the process group whose leader's pid is in $1: TERM, up to $2 seconds, then KILL; members
# forked into the group may outlive their leader, so the group gets a KILL at the end either way.
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
        fi
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until curl succeeds on $1 (extra curl args after $3), failing after $2 seconds or when
# the process of pidfile $3 dies (its log, <pidfile without .pid>.log, is shown).
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

# `install | start | stop | run -- CMD...`; anything else prints the calling script's header.
engine_main() {
    case ${1:-} in
        install) install ;;
        start) start ;;
        stop) stop ;;
        run)
            shift
            [[ ${1:-} == -- ]] && shift
            (($# > 0)) || { log "usage: $ENGINE.sh run -- CMD..."; exit 2; }
            start
            trap stop EXIT
            # shellcheck disable=SC1091
            source "$STATE/env"
            "$@"
            ;;
        *)
            sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
            exit 2
            ;;
    esac
}
