#!/usr/bin/env bash
# qagent beside its peers on this machine, in one run (issue: performance against the peers).
#
#   Benchmarks/peers.sh                 # 3 rounds, 10 s floods
#   FLOOD=5 ROUNDS=1 Benchmarks/peers.sh
#
# The throughput figures are taken in ROUNDS rounds, each running qagent (a fresh agent and
# data_dir) and then its peers back to back, so a slow moment of this shared machine falls on
# both sides of a ratio rather than on one. The table gives each figure's median over the
# rounds, and every round's pair below it.
#
# What is measured, each beside its peer:
#   - no-op task round trip: wrk floods POST /api2/tasks.do (2 threads, 64 connections) for
#     FLOOD seconds at a no-op Swift handler, then the agent is left to finish; tasks finished
#     per second, from the first dispatch until idle. The journal stays durable (fsync per
#     group commit). Peer: Celery 5, prefork x2, Redis as broker and result backend; its
#     producer sends noop.delay() for the same time, then waits until every result is stored.
#   - /bin/true command tasks: the same flood at a command job (peer: none here;
#     Benchmarks/execution.sh compares the agent with a plain spawn-and-wait loop).
#   - /api/check: wrk, 2 threads, 64 connections, 10 s, requests/s and p99. Peer: nginx
#     (2 workers) serving the same JSON answer as a static file.
#   - idle memory: RSS and anonymous RSS after start. Peer: Celery's master and its 2 children.
#   - 10,000 jobs in the config: RSS once ready.
#   - with STATIC_BINARY=path (a qagent from scripts/release.sh, linked statically): its idle RSS
#     and anonymous RSS, for the static binary's goal.
#   - start to ready: from exec to the first answer of /healthz, median of 10, polled every
#     0.5 ms by Benchmarks/peers/ready.py (a curl-and-sleep loop added 10-15 ms of its own).
# Installs what it lacks: redis-server, nginx-light, wrk (apt); celery[redis] (PyPI, in a venv
# under .build/peers-venv). Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FLOOD=${FLOOD:-10}
WORK=$(mktemp -d /tmp/qagent-peers.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

missing=()
for tool in redis-server:redis-server nginx:nginx-light wrk:wrk; do
  command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
VENV=$ROOT/.build/peers-venv
[ -x "$VENV/bin/celery" ] || { /usr/bin/python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "celery[redis]==5.*"; }
swift build -c release --product qagent-bench >/dev/null
BENCH=$ROOT/.build/release/qagent-bench
TOKEN=peers-token-0123456789
PORT=20710
BASE=http://127.0.0.1:$PORT

# --- helpers -----------------------------------------------------------------------------
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else print "-"}'; }
wait_ready() { for _ in $(seq 2000); do curl -sf -o /dev/null "$1" && return 0; sleep 0.005; done; echo "not ready: $1" >&2; return 1; }
finished() { curl -s "$BASE/metrics" | awk '/^qagent_tasks_finished_total/ {s += $2} END {printf "%d", s}'; }
idle() { curl -s -H "Q-Server-Token: $TOKEN" "$BASE/api2/agent/status.do" | grep -q '"queued":0,"running":0'; }
# wrk_check URL -> "requests/s p99_ms"
wrk_check() {
  wrk -t2 -c64 -d10s --latency "$1" | awk '
    /Requests\/sec/ {rps = $2}
    /^ +99%/ {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; p99 = v}
    END {printf "%.0f %.2f", rps, p99}'
}
# idle_memory COMMAND... -> sets idle_rss and idle_anon (kB): COMMAND's memory 2 s after it
# answers /healthz; then it is stopped.
idle_memory() {
  "$@" >/dev/null 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_ready "$BASE/healthz"
  sleep 2
  idle_rss=$(rss_kb "$pid"); idle_anon=$(anon_kb "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
agent_conf() { # $1 = data dir, $2 = extra jobs file (optional)
  cat <<EOF
[agent]
listen = "127.0.0.1:$PORT"
token = "$TOKEN"
data_dir = "$1"
max_queued = 1000000

[[job]]
name = "bench.noop"
overlap = "concurrent"
max_concurrency = 64
max_queued = 1000000

[[job]]
name = "bench.true"
command = ["/bin/true"]
overlap = "concurrent"
max_concurrency = 4
max_queued = 1000000
EOF
  [ -z "${2:-}" ] || cat "$2"
}
# flood JOB -> "finished seconds refused"
flood() {
  local before after start end
  before=$(finished)
  start=$(date +%s%N)
  JOB=$1 TOKEN=$TOKEN wrk -t2 -c64 -d"${FLOOD}s" -s "$ROOT/Benchmarks/peers/post.lua" "$BASE/api2/tasks.do" >"$WORK/wrk-$1.txt"
  until idle; do sleep 0.02; done
  end=$(date +%s%N)
  after=$(finished)
  refused=$(curl -s "$BASE/metrics" | awk '/^qagent_dispatch_refusals_total/ {s += $2} END {printf "%d", s}')
  echo "$((after - before)) $(awk -v n="$((end - start))" 'BEGIN {printf "%.3f", n / 1e9}') $refused"
}

# --- qagent --------------------------------------------------------------------------------
echo "qagent: release build, durable journal; peers: Celery $("$VENV/bin/celery" --version | cut -d' ' -f1), Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///')"

# Start to ready (median of 10), each on a fresh data_dir.
starts=()
for i in $(seq 10); do
  agent_conf "$WORK/start-$i" >"$WORK/start.conf"
  starts+=("$(/usr/bin/python3 "$ROOT/Benchmarks/peers/ready.py" 127.0.0.1 "$PORT" "$BENCH" agent run --config "$WORK/start.conf")")
done
start_ms=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 5p)

# Idle memory, once ready.
agent_conf "$WORK/idle" >"$WORK/idle.conf"
idle_memory "$BENCH" agent run --config "$WORK/idle.conf"
agent_rss=$idle_rss; agent_anon=$idle_anon

# 10,000 jobs (a daily cron each).
for i in $(seq 10000); do printf '\n[[job]]\nname = "many.%d"\ncron = "0 %d 3 * * ?"\ncommand = ["/bin/true"]\n' "$i" $((i % 60)); done >"$WORK/many.toml"
agent_conf "$WORK/many" "$WORK/many.toml" >"$WORK/many.conf"
idle_memory "$BENCH" agent run --config "$WORK/many.conf"
many_rss=$idle_rss

# The static release binary, when given: idle memory with one command job.
if [ -n "${STATIC_BINARY:-}" ]; then
  printf '[agent]\nlisten = "127.0.0.1:%s"\ntoken = "%s"\ndata_dir = "%s"\n\n[[job]]\nname = "bench.true"\ncommand = ["/bin/true"]\n' \
    "$PORT" "$TOKEN" "$WORK/static" >"$WORK/static.conf"
  idle_memory "$STATIC_BINARY" run --config "$WORK/static.conf"
  static_rss=$idle_rss; static_anon=$idle_anon
fi

# --- nginx: the same /api/check answer as a static file --------------------------------------
mkdir -p "$WORK/www/api/check" "$WORK/nginx"
chmod 755 "$WORK"  # nginx's workers run as nobody when started by root
printf '{"data":[],"ret":true}' >"$WORK/www/api/check/127.0.0.1.do"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:20711;
    root $WORK/www;
    location / { default_type application/json; }
  }
}
EOF
/usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX=$!
PIDS+=("$NGINX")
wait_ready "http://127.0.0.1:20711/api/check/127.0.0.1.do"

# --- Celery + Redis ---------------------------------------------------------------------------
redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
until redis-cli -p 6390 ping >/dev/null 2>&1; do sleep 0.05; done
(cd "$ROOT/Benchmarks/peers" && exec "$VENV/bin/celery" -A celery_bench worker -c 2 -P prefork --loglevel=WARNING) >"$WORK/celery.log" 2>&1 &
CELERY=$!
PIDS+=("$CELERY")
sleep 8
celery_pids="$CELERY $(pgrep -P "$CELERY" | tr '\n' ' ')"
celery_rss=0; celery_anon=0
for pid in $celery_pids; do celery_rss=$((celery_rss + $(rss_kb "$pid"))); celery_anon=$((celery_anon + $(anon_kb "$pid"))); done

# --- the rounds: qagent, then its peers, ROUNDS times ----------------------------------------
ROUNDS=${ROUNDS:-3}
rows=()
for round in $(seq "$ROUNDS"); do
  agent_conf "$WORK/data-$round" >"$WORK/agent.conf"
  "$BENCH" agent run --config "$WORK/agent.conf" >"$WORK/agent.log" 2>&1 &
  AGENT=$!
  PIDS+=("$AGENT")
  wait_ready "$BASE/healthz"
  sleep 2  # past start-up, as for the idle memory
  read -r check_rps check_p99 <<<"$(wrk_check "$BASE/api/check/127.0.0.1.do")"
  read -r nginx_rps nginx_p99 <<<"$(wrk_check "http://127.0.0.1:20711/api/check/127.0.0.1.do")"
  read -r noop_done noop_s noop_refused <<<"$(flood bench.noop)"
  read -r celery_sent celery_done celery_s <<<"$(cd "$ROOT/Benchmarks/peers" && "$VENV/bin/python" celery_bench.py flood "$FLOOD")"
  read -r true_done true_s true_refused <<<"$(flood bench.true)"
  kill "$AGENT"; wait "$AGENT" 2>/dev/null || true
  rm -rf "$WORK/data-$round"
  noop_rate=$(awk -v n="$noop_done" -v s="$noop_s" 'BEGIN {printf "%.0f", n / s}')
  true_rate=$(awk -v n="$true_done" -v s="$true_s" 'BEGIN {printf "%.0f", n / s}')
  celery_rate=$(awk -v n="$celery_done" -v s="$celery_s" 'BEGIN {printf "%.0f", n / s}')
  rows+=("$noop_rate $celery_rate $true_rate $check_rps $nginx_rps $check_p99 $nginx_p99 $true_refused")
done
# median COLUMN (1-based) of the rounds
median() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{print $c}' | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# median_ratio A B: the median over the rounds of column A / column B (each round's own pair)
median_ratio() { printf '%s\n' "${rows[@]}" | awk -v a="$1" -v b="$2" '{if ($b > 0) print $a / $b}' | sort -g | awk '{v[NR] = $1} END {printf "%.2fx", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
noop_rate=$(median 1); celery_rate=$(median 2); true_rate=$(median 3)
check_rps=$(median 4); nginx_rps=$(median 5); check_p99=$(median 6); nginx_p99=$(median 7)
refused=$(printf '%s\n' "${rows[@]}" | awk '{s += $8} END {print s}')

# --- the table --------------------------------------------------------------------------------
echo
printf '%-38s %14s %22s %8s %s\n' "" "qagent" "peer" "ratio" "goal"
printf '%-38s %14s %22s %8s %s\n' "no-op task round trip, tasks/s" "$noop_rate" "$celery_rate Celery" "$(median_ratio 1 2)" ">= 10x"
printf '%-38s %14s %22s %8s %s\n' "/bin/true command tasks, tasks/s" "$true_rate" "-" "" "Benchmarks/execution.sh"
printf '%-38s %14s %22s %8s %s\n' "/api/check, requests/s" "$check_rps" "$nginx_rps nginx" "$(median_ratio 4 5)" ">= 0.7x"
printf '%-38s %14s %22s %8s %s\n' "/api/check p99, ms" "$check_p99" "$nginx_p99 nginx" "$(median_ratio 6 7)" "<= 1x"
printf '%-38s %14s %22s %8s %s\n' "idle RSS, MB" "$(mb "$agent_rss")" "$(mb "$celery_rss") Celery" "$(ratio "$agent_rss" "$celery_rss")" ""
printf '%-38s %14s %22s %8s %s\n' "idle anonymous RSS, MB" "$(mb "$agent_anon")" "$(mb "$celery_anon") Celery" "$(ratio "$agent_anon" "$celery_anon")" "<= 8 MB"
printf '%-38s %14s %22s %8s %s\n' "10,000 jobs in the config, RSS MB" "$(mb "$many_rss")" "-" "" "<= 60 MB"
if [ -n "${STATIC_BINARY:-}" ]; then
  printf '%-38s %14s %22s %8s %s\n' "static binary idle RSS / anon, MB" "$(mb "$static_rss") / $(mb "$static_anon")" "-" "" "RSS <= 25 MB"
fi
printf '%-38s %14s %22s %8s %s\n' "start to ready, ms (median of 10)" "$start_ms" "-" "" "<= 50 ms"
echo
echo "Throughput and latency above: each figure's median over $ROUNDS rounds, and the median of the rounds' own"
echo "ratios (${FLOOD} s floods, $refused dispatches refused in all). Each round:"
printf '  %-6s %22s %12s %26s %26s\n' "round" "no-op qagent/Celery" "/bin/true" "check qagent/nginx" "p99 ms qagent/nginx"
for i in "${!rows[@]}"; do
  read -r a b t c d e f _ <<<"${rows[$i]}"
  printf '  %-6s %22s %12s %26s %26s\n' "$((i + 1))" "$a/$b $(ratio "$a" "$b")" "$t" "$c/$d $(ratio "$c" "$d")" "$e/$f $(ratio "$e" "$f")"
done
