#!/usr/bin/env bash
# Installs what qagent builds and tests against, when it is missing: SQLite (GRDB) and
# libcurl (Foundation's URLSession on Linux); for the tests, Quartz 2.3.2 and a Java runtime
# (the cron engine is compared with Quartz itself), PostgreSQL (cluster tests start their
# own throwaway server), faketime (one cluster agent runs with a skewed clock) and
# Prometheus's own Python client, whose parser checks `GET /metrics`, and binutils
# (objcopy, strip, readelf: scripts/release.sh, whose package a test installs). Safe to
# run again.
set -euo pipefail
packages=(libsqlite3-dev libcurl4-openssl-dev libquartz2-java postgresql faketime python3-prometheus-client binutils openssl curl)
command -v java >/dev/null 2>&1 || packages+=(default-jre-headless)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
