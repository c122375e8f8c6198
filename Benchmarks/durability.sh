#!/usr/bin/env bash
# Durability benchmark (issue: drain, shutdown, recovery): acknowledged dispatches per second
# with the durable journal beside the same run without fsync, and acknowledgement latency.
#   Benchmarks/durability.sh                      # 5000 dispatches, 64 concurrent callers
#   DISPATCHES=20000 CONCURRENCY=128 Benchmarks/durability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qagent-bench >/dev/null
.build/release/qagent-bench dispatch --dispatches "${DISPATCHES:-5000}" --concurrency "${CONCURRENCY:-64}"
