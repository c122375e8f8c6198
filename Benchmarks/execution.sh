#!/usr/bin/env bash
# Execution benchmark: /bin/true tasks through the agent beside a plain spawn-and-wait loop,
# same parallelism, one run; then the agent again with its journal unsynced, to show the
# share of the fsync that makes each start durable before its spawn (comparison only).
#   Benchmarks/execution.sh            # 2000 tasks, parallelism 2
#   TASKS=5000 PARALLEL=4 Benchmarks/execution.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qagent-bench >/dev/null
.build/release/qagent-bench exec --tasks "${TASKS:-2000}" --parallel "${PARALLEL:-2}"
