#!/usr/bin/env bash
# JSON benchmark (hardening issue): CPU per MB of the most expensive request bodies we could
# build under max_request_bytes, qagent's parser beside JSONSerialization and the previous path.
#   Benchmarks/json.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product qagent-bench >/dev/null
.build/release/qagent-bench json --bytes "${BYTES:-1000000}"
