#!/usr/bin/env bash
# bench-lib.sh: what the benchmark scripts share (sourced, not run): installing nginx-light and
# GNU time (Debian packages; cached: nothing is installed twice), one nginx serving the feeds on
# loopback addresses plus the webhook receiver, timing a command (wall, user+sys CPU, peak RSS of
# that process alone) and medians.

# Installs what is missing: nginx-light (serves the feeds and receives the webhooks) and GNU time.
bench_install() {
    local missing=()
    [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    [[ -x /usr/bin/time ]] || missing+=(time)
    ((${#missing[@]} == 0)) && return 0
    echo "bench: installing ${missing[*]} (Debian packages)"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    if ! "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# bench_build: builds the watcher and the bench tool (release; BENCH_PROFILE=debug for a smoke
# run) and sets WATCHER and BENCH to them (under CARGO_TARGET_DIR when set). BENCH_WATCHER=PATH
# measures that watcher binary instead; with BENCH_TOOL=PATH (a bench binary) too, nothing is built.
bench_build() {
    local profile=${BENCH_PROFILE:-release} flags=(--release) target=${CARGO_TARGET_DIR:-$PWD/target}
    [[ $profile == debug ]] && flags=()
    if [[ -n ${BENCH_WATCHER:-} && -n ${BENCH_TOOL:-} ]]; then
        WATCHER=$BENCH_WATCHER BENCH=$BENCH_TOOL
        echo "bench: measuring $WATCHER (with $BENCH; nothing built)"
        return
    elif [[ -n ${BENCH_WATCHER:-} ]]; then
        cargo build "${flags[@]}" -q -p bench --bin bench
        WATCHER=$BENCH_WATCHER
    else
        cargo build "${flags[@]}" -q -p watcher --bin watcher -p bench --bin bench
        WATCHER=$target/$profile/watcher
    fi
    BENCH=$target/$profile/bench
    echo "bench: measuring $WATCHER ($profile build)"
}

# A TCP port free on every address (a wildcard bind fails where any address has it bound).
bench_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'
}

# bench_nginx_start DIR PORT HOOK_PORT HOSTS: serves DIR/www on 127.0.0.11.. (HOSTS addresses)
# at PORT and answers POST /hook on 127.0.0.1:HOOK_PORT with 200; logs each request's status to
# DIR/nginx/access.log. Stopped by bench_nginx_stop (the scripts trap EXIT).
bench_nginx_start() {
    local dir=$1 port=$2 hook=$3 hosts=$4 listen="" i
    mkdir -p "$dir/nginx/tmp"
    for ((i = 0; i < hosts; i++)); do
        listen+="        listen 127.0.0.$((11 + i)):$port;"$'\n'
    done
    cat >"$dir/nginx/nginx.conf" <<CONF
# written by scripts/bench-lib.sh
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
$( ((EUID == 0)) && echo "user root;")
events { worker_connections 4096; }
http {
    log_format status '\$request_method \$uri \$status';
    access_log $dir/nginx/access.log status buffer=64k flush=1s;
    client_body_temp_path $dir/nginx/tmp;
    types { application/rss+xml xml; }
    keepalive_requests 100000;
    server {
$listen        root $dir/www;
    }
    server {
        listen 127.0.0.1:$hook;
        location = /hook { default_type application/json; return 200 '{}'; }
    }
}
CONF
    : >"$dir/nginx/access.log"
    /usr/sbin/nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' &
    BENCH_NGINX_PID=$!
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        if ! kill -0 "$BENCH_NGINX_PID" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.$((10 + hosts))/$port") 2>/dev/null &&
            (exec 3<>"/dev/tcp/127.0.0.1/$hook") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench: nginx did not start; see $dir/nginx/error.log" >&2
    return 1
}

bench_nginx_stop() {
    if [[ -n ${BENCH_NGINX_PID:-} ]]; then
        kill "$BENCH_NGINX_PID" 2>/dev/null || true
        wait "$BENCH_NGINX_PID" 2>/dev/null || true
        BENCH_NGINX_PID=
    fi
}

# bench_timed OUT CMD...: runs CMD under GNU time; appends "wall cpu rss_mb" to OUT (CPU is
# user + system of that process alone, RSS its peak). Fails when CMD fails.
bench_timed() {
    local out=$1 t
    shift
    t=$(mktemp)
    if ! /usr/bin/time -f '%e %U %S %M' -o "$t" "$@"; then
        echo "bench: failed: $*" >&2
        cat "$t" >&2
        rm -f "$t"
        return 1
    fi
    tail -1 "$t" | awk '{ printf "%.3f %.3f %.1f\n", $1, $2 + $3, $4 / 1024 }' >>"$out"
    rm -f "$t"
}

# bench_median FILE COLUMN: the median of that column (1-based).
bench_median() {
    sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}

# bench_max FILE COLUMN
bench_max() {
    awk -v c="$2" 'NR == 1 || $c > m { m = $c } END { print m }' "$1"
}

# The machine, for the figures: cores and CPU model.
bench_machine() {
    echo "machine: $(nproc) cores, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ { print $2 }') GiB"
}
