#!/usr/bin/env bash
# The push latency benchmark (issue 14): the real WebSub hub (Flask-WebSub, scripts/engines/
# websub.sh) on loopback, `watcher run` with `batch_window = "0s"` and a 1-hour poll interval,
# and PUBLISHES (default 100) publishes SPACING (default 1.5) seconds apart, each a new item in the
# feed. Prints publish → trigger sent p50/p95/p99 and the watcher's own share (a delivery
# received → the trigger sent) p95 from its `watcher_push_to_trigger_seconds` histogram, against
# the targets (p95 <= 1 s, own share p95 <= 50 ms). The driver is scripts/bench_push.py.
#
#   scripts/bench-push.sh                          # 100 publishes, 1.5 s apart (about 2.5 minutes)
#   scripts/bench-push.sh --publishes 10           # a quick look
#
# Release build (BENCH_PROFILE=debug: the debug build; BENCH_WATCHER=PATH: that watcher binary).
# Works in target/bench-push (BENCH_DIR overrides), removed and rebuilt on every run.
set -euo pipefail
cd "$(dirname "$0")/.."

PUBLISHES=100 SPACING=1.5
usage() {
    echo "usage: scripts/bench-push.sh [--publishes N] [--spacing SECONDS]" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --publishes) PUBLISHES=${2:?}; shift ;;
    --spacing) SPACING=${2:?}; shift ;;
    *) usage ;;
    esac
    shift
done
[[ $PUBLISHES =~ ^[1-9][0-9]*$ && $SPACING =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage

profile=${BENCH_PROFILE:-release}
if [[ -n ${BENCH_WATCHER:-} ]]; then
    WATCHER=$BENCH_WATCHER
else
    flags=(--release)
    [[ $profile == debug ]] && flags=()
    cargo build "${flags[@]}" -q -p watcher --bin watcher
    WATCHER=$PWD/target/$profile/watcher
fi
echo "bench: measuring $WATCHER ($profile build)"

DIR=${BENCH_DIR:-$PWD/target/bench-push}
rm -rf "$DIR"
mkdir -p "$DIR"
export WEBSUB_STATE_DIR=$DIR/hub
trap 'bash scripts/engines/websub.sh stop >/dev/null 2>&1 || true' EXIT
bash scripts/engines/websub.sh start
# shellcheck source=/dev/null
source "$WEBSUB_STATE_DIR/env"
# The hub's venv has Python; the driver needs only its standard library.
VENV=${WEBSUB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/article-watcher/websub-0.4.1}
"$VENV/bin/python" scripts/bench_push.py --watcher "$WATCHER" --hub "$WEBSUB_HUB_URL" \
    --dir "$DIR/run" --publishes "$PUBLISHES" --spacing "$SPACING"
