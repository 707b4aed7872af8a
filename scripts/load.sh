#!/usr/bin/env bash
# The load tests (issue 17), N times each (default 1), stopping at the first failure:
#
#   scripts/load.sh [N]
#
# Each iteration runs the run-request storm against `pipelines serve` (pipelines/tests/it/load.rs)
# and the watcher daemon with hundreds of sources (tests/it/load.rs); both are `#[ignore]`d, so
# plain `cargo test` skips them. Each prints its latencies (p50/p99/max); a hang fails the test
# (every wait in it has a deadline), and an outer timeout backs that up so CI never waits forever.
#
# Debug build, on purpose: .ci/run has just built it for `cargo test --workspace`, so this costs
# no second compile of every dependency in release; and slower code holds sled's locks longer,
# which widens the window a transaction and a flush need to deadlock (the runner before the fix
# hung in each debug run we tried). The 1 s latency budgets leave room for debug code on a busy
# 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-1}
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/load.sh [N]   (N: how many times to run each load test, default 1)" >&2
    exit 2
fi
# One test binary run, at most this long (each test's own deadline is shorter).
LIMIT=${LOAD_TEST_TIMEOUT:-900}

# Build first, so a build error reads as one and no iteration pays for compiling. The end-to-end
# harness starts target/debug/watcher if it exists, so it must be this checkout's.
cargo build -p watcher --bin watcher
cargo test -p pipelines --test it --no-run
cargo test -p e2e-tests --test it --no-run

run_load_test() {
    local name=$1 i=$2
    shift 2
    local started=$SECONDS
    echo "load.sh: iteration $i of $N: $name"
    if ! timeout --kill-after=30 "$LIMIT" cargo test "$@" --test it -- --ignored --nocapture load::; then
        echo "load.sh: FAILED: $name in iteration $i of $N (after $((SECONDS - started))s)" >&2
        exit 1
    fi
    echo "load.sh: iteration $i of $N: $name passed in $((SECONDS - started))s"
}

for ((i = 1; i <= N; i++)); do
    run_load_test "run-request storm (pipelines serve)" "$i" -p pipelines
    run_load_test "watcher daemon with hundreds of sources" "$i" -p e2e-tests
done
echo "load.sh: all $N iteration(s) of both load tests passed"
