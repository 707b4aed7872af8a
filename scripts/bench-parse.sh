#!/usr/bin/env bash
# The parse benchmark (issue 12): our parse path (`watcher::parse::parse_feed`: charset choice,
# the repair pre-pass, feed-rs with our id rule, item extraction) against raw feed-rs, side by side
# in one run, over the files of watcher/testdata/corpus/public that both accept (never the holdout
# set). Prints each side's throughput and the ratio; `--per-file` adds a line per file.
#
#   scripts/bench-parse.sh                 # 30 interleaved rounds over the corpus
#   scripts/bench-parse.sh --rounds 5 --per-file
#
# Release build (BENCH_PROFILE=debug: the debug build, for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
PROFILE=${BENCH_PROFILE:-release}
if [[ $PROFILE == debug ]]; then cargo build -q -p bench --bin bench; else cargo build --release -q -p bench --bin bench; fi
bench_machine
exec "target/$PROFILE/bench" parse "$@"
