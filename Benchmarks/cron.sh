#!/usr/bin/env bash
# Cron benchmarks (issue: standalone scheduling). Prints each figure beside its baseline.
#   Benchmarks/cron.sh                 # defaults: 200k next() calls, 10k jobs idle 10 s, lateness 120 s
#   LATENESS_SECONDS=300 Benchmarks/cron.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qagent-bench >/dev/null
bench=.build/release/qagent-bench
$bench cron-next --iterations "${ITERATIONS:-200000}"
echo
$bench idle-cpu --jobs "${IDLE_JOBS:-10000}" --seconds "${IDLE_SECONDS:-10}"
echo
$bench lateness --jobs "${LATENESS_JOBS:-20}" --seconds "${LATENESS_SECONDS:-120}"
