#!/usr/bin/env bash
# Restart benchmark (hardening issue): time from start to listening after a crash that left
# 10,000 unfinished tasks of 10 earlier agent instances, beside a clean start.
#   Benchmarks/restart.sh
#   LEFTOVERS=1000 INSTANCES=9 Benchmarks/restart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qagent-bench >/dev/null
.build/release/qagent-bench restart --leftovers "${LEFTOVERS:-10000}" --instances "${INSTANCES:-10}" --repeats "${REPEATS:-3}"
