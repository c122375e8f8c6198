#!/usr/bin/env bash
# Installs the system libraries qagent builds against, when they are missing:
# SQLite (GRDB) and libcurl (Foundation's URLSession on Linux). Safe to run again.
set -euo pipefail
packages=(libsqlite3-dev libcurl4-openssl-dev)
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
