#!/usr/bin/env bash
# The daemon's CPU benchmark (issue 12): `watcher run` over N sources (default 1,000) whose feeds
# (nginx on 50 loopback addresses) never change, so every poll is a conditional GET answered 304.
# After a baseline (`once --all`) the daemon runs for the warm-up plus MINUTES (default 12); the
# figure is the CPU time (user + system, from /proc/<pid>/stat) the daemon process alone used
# during the window, as a share of one core, and per poll (polls counted in nginx's log).
#
#   scripts/bench-daemon.sh                              # 1,000 sources, every 5m, 12 minutes
#   scripts/bench-daemon.sh --interval 30s --minutes 10  # 10x the polls: the per-poll cost
#   scripts/bench-daemon.sh --quick                      # 200 sources, every 10s, 1 minute
#
# Release build (BENCH_PROFILE=debug: the debug build, for a smoke run; BENCH_WATCHER=PATH: measure
# that watcher binary instead, e.g. one built from another commit). Installs nginx-light when
# missing. Works in target/bench-daemon (BENCH_DIR overrides), removed and rebuilt on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

SOURCES=1000 INTERVAL=5m MINUTES=12 HOSTS=50 WARMUP=20
usage() {
    echo "usage: scripts/bench-daemon.sh [--quick] [--sources N] [--interval DURATION] [--minutes M]" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --quick) SOURCES=200 INTERVAL=10s MINUTES=1 WARMUP=5 ;;
    --sources) SOURCES=${2:?}; shift ;;
    --interval) INTERVAL=${2:?}; shift ;;
    --minutes) MINUTES=${2:?}; shift ;;
    *) usage ;;
    esac
    shift
done
[[ $SOURCES =~ ^[1-9][0-9]*$ && $MINUTES =~ ^[1-9][0-9]*$ ]] || usage

bench_install
bench_build
DIR=${BENCH_DIR:-$PWD/target/bench-daemon}
rm -rf "$DIR"
mkdir -p "$DIR"
PORT=$(bench_free_port) HOOK=$(bench_free_port) LISTEN=$(bench_free_port)
DAEMON=
stop() {
    if [[ -n $DAEMON ]]; then
        kill -TERM "$DAEMON" 2>/dev/null || true
        wait "$DAEMON" 2>/dev/null || true
    fi
    bench_nginx_stop
}
trap stop EXIT
"$BENCH" feeds --dir "$DIR" --feeds "$SOURCES" --items 20 --hosts "$HOSTS" \
    --port "$PORT" --hook-port "$HOOK" --listen-port "$LISTEN" --interval "$INTERVAL" >/dev/null
bench_nginx_start "$DIR" "$PORT" "$HOOK" "$HOSTS"
bench_machine
if ! "$WATCHER" --config "$DIR/watcher.toml" --quiet once --all >"$DIR/once.log" 2>&1; then
    echo "bench: the baseline (\`watcher once --all\`) failed; its output:" >&2
    tail -20 "$DIR/once.log" >&2
    exit 1
fi
echo "daemon: $SOURCES sources, all 304, interval $INTERVAL; warm-up ${WARMUP}s, then a ${MINUTES}-minute window"

"$WATCHER" --config "$DIR/watcher.toml" --quiet run >"$DIR/run.log" 2>&1 &
DAEMON=$!
# cpu: the daemon's user + system time so far, in clock ticks.
cpu() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$DAEMON/stat"; }
# polls: feed requests nginx has logged so far (flushed every second).
polls() { grep -c '^GET /f/' "$DIR/nginx/access.log" || true; }
sleep "$WARMUP"
c0=$(cpu) p0=$(polls) t0=$(date +%s.%N)
sleep $((MINUTES * 60))
sleep 1.2
c1=$(cpu) p1=$(polls) t1=$(date +%s.%N)
kill -0 "$DAEMON" 2>/dev/null || { echo "bench: the daemon died; see $DIR/run.log" >&2; exit 1; }
HZ=$(getconf CLK_TCK)
awk -v c="$((c1 - c0))" -v hz="$HZ" -v p="$((p1 - p0))" -v t0="$t0" -v t1="$t1" -v n="$SOURCES" 'BEGIN {
    cpu = c / hz; wall = t1 - t0
    printf "window %.0f s: %d polls (%.2f/s), daemon CPU %.2f s = %.3f%% of one core, %.3f ms per poll\n",
        wall, p, p / wall, cpu, 100 * cpu / wall, (p > 0 ? 1000 * cpu / p : 0)
}'
non304=$(awk -v skip="$p0" '/^GET \/f\// && ++n > skip && $3 != 304' "$DIR/nginx/access.log" | wc -l)
echo "polls not answered 304 in the window: $non304"
