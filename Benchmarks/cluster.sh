#!/usr/bin/env bash
# Cluster benchmark (cluster-mode issue), in one run against a throwaway PostgreSQL:
#   - fires sustained by 3 and by 6 agents sharing 20 jobs that fire every second, with
#     duplicates and missed fires counted (must be 0 and 0),
#   - database statements per fire (pg_stat_statements: the fire INSERT's calls / fires) with
#     3 vs 6 agents (must not grow with the agent count),
#   - beside the single-host baseline: one standalone agent firing the same 20 jobs.
#   Benchmarks/cluster.sh                 # 30 s per configuration
#   SECONDS_PER_RUN=60 Benchmarks/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-30}
JOBS=20
swift build -c release --product qagent >/dev/null
BIN=$PWD/.build/release/qagent
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d)
trap 'pkill -f "qagent run --config $WORK" 2>/dev/null || true; [ -f $WORK/pg/postmaster.pid ] && kill -INT $(head -1 $WORK/pg/postmaster.pid) 2>/dev/null || true; sleep 1; rm -rf $WORK' EXIT
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U qagent --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
PORT=$((30000 + RANDOM % 9000))
as_pg "$PGBIN/postgres" -D "$WORK/pg" -p $PORT -k "$WORK" -c listen_addresses=127.0.0.1 \
  -c shared_preload_libraries=pg_stat_statements -c max_connections=200 >"$WORK/pg.log" 2>&1 &
for _ in $(seq 100); do psql -h "$WORK" -p $PORT -U qagent -d postgres -Atqc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
PSQL="psql -h $WORK -p $PORT -U qagent -Atq"

jobs_toml() {
  for j in $(seq 1 $JOBS); do
    printf '[[job]]\nname = "bench.tick%s"\ncron = "* * * * * ?"\ncommand = ["/bin/true"]\noverlap = "concurrent"\nmax_concurrency = 8\n\n' "$j"
  done
}

# run NAME AGENTS CLUSTER(0/1): prints "fires/s duplicates missed statements-per-fire rss-kB"
run() {
  local name=$1 agents=$2 cluster=$3 db=bench_$1
  $PSQL -d postgres -c "CREATE DATABASE $db" >/dev/null
  $PSQL -d $db -c "CREATE EXTENSION pg_stat_statements" >/dev/null
  local pids=()
  for i in $(seq 1 "$agents"); do
    local dir=$WORK/$name-$i
    mkdir -p "$dir"
    {
      printf '[agent]\nlisten = "127.0.0.%s:20010"\ndata_dir = "%s/data"\ntoken = "bench-token-0123456789"\nmax_running = 256\n\n' $((i + 1)) "$dir"
      [ "$cluster" = 1 ] && printf '[cluster]\ndatabase = "postgresql://qagent@127.0.0.1:%s/%s"\nheartbeat_interval = 1\ndead_after = 3\n\n' $PORT $db
      jobs_toml
    } > "$dir/agent.conf"
    "$BIN" run --config "$dir/agent.conf" > "$dir/log" 2>&1 &
    pids+=($!)
  done
  sleep 3
  $PSQL -d $db -c "SELECT pg_stat_statements_reset()" >/dev/null 2>&1 || true
  local start=$(date +%s%3N)
  sleep "$RUN"
  local end=$(date +%s%3N)
  local rss=0
  for pid in "${pids[@]}"; do rss=$((rss + $(awk '/VmRSS/ {print $2}' /proc/$pid/status))); done
  rss=$((rss / agents))
  if [ "$cluster" = 1 ]; then
    local counts
    counts=$($PSQL -d $db -F ' ' -c "
      WITH w AS (SELECT job, scheduled_at FROM qagent_task WHERE scheduled_at >= $start + 2000 AND scheduled_at < $end - 2000)
      SELECT (SELECT count(*) FROM w),
             (SELECT count(*) - count(DISTINCT (job, scheduled_at)) FROM w),
             (SELECT (sum(calls))::bigint FROM pg_stat_statements WHERE query LIKE '%INSERT INTO qagent_task%scheduled_at%')")
    read -r fired dups calls <<<"$counts"
    local expected=$(( ( (end - 2000 + 999) / 1000 - (start + 2000 + 999) / 1000 ) * JOBS ))
    local allfires=$($PSQL -d $db -c "SELECT count(*) FROM qagent_task WHERE scheduled_at >= $start AND scheduled_at < $end")
    printf '%-34s %8.1f %6s %6s %12.2f %9s\n' "$name ($agents agents)" "$(echo "$fired / (($end - $start - 4000) / 1000)" | bc -l)" \
      "$dups" "$((expected - fired))" "$(echo "${calls:-0} / $allfires" | bc -l)" "$rss"
  else
    local fired=0
    for i in $(seq 1 "$agents"); do
      fired=$((fired + $(sqlite3 "$WORK/$name-$i/data/qagent.sqlite" "SELECT count(*) FROM task WHERE scheduled_at >= $start + 2000 AND scheduled_at < $end - 2000")))
    done
    local expected=$(( ( (end - 2000 + 999) / 1000 - (start + 2000 + 999) / 1000 ) * JOBS ))
    printf '%-34s %8.1f %6s %6s %12s %9s\n' "$name ($agents agent)" "$(echo "$fired / (($end - $start - 4000) / 1000)" | bc -l)" "-" "$((expected - fired))" "-" "$rss"
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}

command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)"; exit 2; }
echo "$JOBS jobs firing every second, $RUN s per configuration"
printf '%-34s %8s %6s %6s %12s %9s\n' "" "fires/s" "twice" "missed" "stmts/fire" "RSS kB"
run standalone 1 0
run cluster3 3 1
run cluster6 6 1
