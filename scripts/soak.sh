#!/usr/bin/env bash
# The soak: the load tests 20 times in a row (a deadlock is a matter of timing); stops at the
# first failure and says which iteration. Run it before closing anything that touches the stores.
#
#   scripts/soak.sh
set -euo pipefail
exec bash "$(dirname "$0")/load.sh" 20
