#!/usr/bin/env bash
# The scale benchmark (issue 12): N static RSS feeds (default 10,000 x 20 items) served by nginx
# on 50 loopback addresses, `watcher once --all` delivering to a webhook receiver (nginx too),
# in three rounds, each run R times (default 5):
#
#   cold       every source new (a fresh store each run): the baseline of N x 20 items
#   all-304    nothing changed: every poll is a conditional GET answered 304
#   10%        every tenth feed has one new item (5 authors: 5 batches, N/10 items delivered)
#
# and prints per round the median wall time and CPU time (user + system of the watcher process
# alone, measured by GNU time), the peak RSS, then the store's bytes per known item on disk and
# logical (keys + values). With --growth, it then grows the store to TOTAL known items (default
# 1,000,000) with synthetic items through the watcher's own commit path (`bench seed`) and runs
# the all-304 and 10% rounds again, printing each against its figure at N x 20 items.
#
#   scripts/bench-scale.sh                 # 10,000 feeds, 5 runs per round
#   scripts/bench-scale.sh --growth        # ... then the store grown to 1,000,000 items
#   scripts/bench-scale.sh --quick         # 500 feeds, 3 runs: checks the script works
#   scripts/bench-scale.sh --smoke         # 100 feeds, 1 run, grown to 5,000 items (CI)
#   scripts/bench-scale.sh --feeds 2000 --runs 7 --growth 300000
#
# Release build (BENCH_PROFILE=debug: the debug build, for a smoke run; BENCH_WATCHER=PATH: measure
# that watcher binary instead, e.g. one built from another commit). Installs nginx-light and GNU
# time when missing (Debian packages). Works in target/bench-scale (BENCH_DIR overrides), removed
# and rebuilt on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh

FEEDS=10000 ITEMS=20 RUNS=5 HOSTS=50 GROWTH=0 TOTAL=1000000
usage() {
    echo "usage: scripts/bench-scale.sh [--quick|--smoke] [--feeds N] [--items M] [--runs R] [--growth [TOTAL]]" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --quick) FEEDS=500 RUNS=3 TOTAL=50000 ;;
    --smoke) FEEDS=100 RUNS=1 TOTAL=5000 GROWTH=1 ;;
    --feeds) FEEDS=${2:?}; shift ;;
    --items) ITEMS=${2:?}; shift ;;
    --runs) RUNS=${2:?}; shift ;;
    --growth)
        GROWTH=1
        if [[ ${2:-} =~ ^[0-9]+$ ]]; then TOTAL=$2; shift; fi
        ;;
    *) usage ;;
    esac
    shift
done
for v in "$FEEDS" "$ITEMS" "$RUNS"; do [[ $v =~ ^[1-9][0-9]*$ ]] || usage; done

bench_install
bench_build
DIR=${BENCH_DIR:-$PWD/target/bench-scale}
rm -rf "$DIR"
mkdir -p "$DIR/runs"
PORT=$(bench_free_port) HOOK=$(bench_free_port)
trap bench_nginx_stop EXIT
WORLD=(--dir "$DIR" --feeds "$FEEDS" --items "$ITEMS" --hosts "$HOSTS")
"$BENCH" feeds "${WORLD[@]}" --port "$PORT" --hook-port "$HOOK"
bench_nginx_start "$DIR" "$PORT" "$HOOK" "$HOSTS"
bench_machine
echo "rounds: $RUNS runs each, \`watcher once --all\` over $FEEDS sources (${BENCH_PROFILE:-release} build)"

# hooks: webhook deliveries nginx has logged so far (its log is flushed every second).
hooks() {
    sleep 1.2
    grep -c '^POST /hook 200' "$DIR/nginx/access.log" || true
}

# once FILE: one timed `watcher once --all`, its figures appended to FILE.
once() {
    if ! bench_timed "$1" "$WATCHER" --config "$DIR/watcher.toml" --quiet once --all >"$DIR/once.log" 2>&1; then
        echo "bench: \`watcher once --all\` failed; its output:" >&2
        tail -20 "$DIR/once.log" >&2
        exit 1
    fi
}

# report LABEL FILE: the round's medians.
report() {
    printf '%-34s wall %7.2f s   CPU %7.2f s   peak RSS %6.1f MB   (runs: %s)\n' "$1" \
        "$(bench_median "$2" 1)" "$(bench_median "$2" 2)" "$(bench_max "$2" 3)" \
        "$(awk '{ printf "%s%.2f/%.2f", (NR > 1 ? " " : ""), $1, $2 }' "$2")"
}

GEN=0
# rounds TAG LABEL: the all-304 and 10%-changed rounds, RUNS times each, figures in runs/*-TAG.
rounds() {
    local tag=$1 label=$2 r before after
    for ((r = 0; r < RUNS; r++)); do once "$DIR/runs/304-$tag"; done
    report "all 304 ($label)" "$DIR/runs/304-$tag"
    before=$(hooks)
    for ((r = 0; r < RUNS; r++)); do
        GEN=$((GEN + 1))
        "$BENCH" change "${WORLD[@]}" --round "$GEN" >/dev/null
        once "$DIR/runs/changed-$tag"
    done
    after=$(hooks)
    report "10% changed ($label)" "$DIR/runs/changed-$tag"
    echo "    webhook deliveries in the 10% rounds: $((after - before)) ($(((after - before) / RUNS)) per run)"
}

CHANGED=$(((FEEDS + 9) / 10))
for ((r = 0; r < RUNS; r++)); do
    rm -rf "$DIR/state" "$DIR/out"
    once "$DIR/runs/cold"
done
report "cold ($((FEEDS * ITEMS)) items)" "$DIR/runs/cold"
KNOWN=$((FEEDS * ITEMS))
rounds base "$KNOWN items known"
KNOWN=$((KNOWN + RUNS * CHANGED))
"$BENCH" store-bytes --state-dir "$DIR/state" --items "$KNOWN"

if ((GROWTH)); then
    PER=$(((TOTAL - KNOWN) / FEEDS))
    if ((PER > 0)); then
        "$BENCH" seed --config "$DIR/watcher.toml" --per-source "$PER"
        KNOWN=$((KNOWN + PER * FEEDS))
    fi
    rounds grown "$KNOWN items known"
    ratio() {
        awk -v a="$(bench_median "$DIR/runs/$1-base" 2)" -v b="$(bench_median "$DIR/runs/$1-grown" 2)" \
            'BEGIN { printf "%.2f", b / a }'
    }
    echo "CPU grown / base: all 304 $(ratio 304), 10% changed $(ratio changed)"
    KNOWN=$((KNOWN + RUNS * CHANGED))
    "$BENCH" store-bytes --state-dir "$DIR/state" --items "$KNOWN"
fi
