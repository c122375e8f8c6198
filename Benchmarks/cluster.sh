#!/usr/bin/env bash
# Cluster benchmark (cluster-mode issue), in one run against a throwaway PostgreSQL:
#   - fires sustained by 3 and by 6 agents sharing 20 jobs that fire every second, with
#     duplicates and missed fires counted (must be 0 and 0),
#   - database statements per fire (pg_stat_statements: the calls that create, admit and
#     finish tasks, with their BEGIN/COMMIT, / fires) with 3 vs 6 agents (must not grow with
#     the agent count), and the background statements (heartbeats, view refreshes, sweeps,
#     claim polls) per agent and second,
#   - dispatch -> child-started latency p50/p99: 100 POST /api2/tasks.do, 100 ms apart, each
#     task's command writing its start time (LISTEN/NOTIFY wake-up in the cluster),
#   - beside the single-host baseline: one standalone agent firing the same 20 jobs.
#   Benchmarks/cluster.sh                 # 30 s per configuration
#   SECONDS_PER_RUN=60 Benchmarks/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-30}
JOBS=20
swift build -c release --product qagent >/dev/null
BIN=$PWD/.build/release/qagent
source Benchmarks/lib/postgres.sh

jobs_toml() {
  for j in $(seq 1 $JOBS); do
    printf '[[job]]\nname = "bench.tick%s"\ncron = "* * * * * ?"\ncommand = ["/bin/true"]\noverlap = "concurrent"\nmax_concurrency = 8\n\n' "$j"
  done
  printf '[[job]]\nname = "bench.latency"\ncommand = ["/bin/sh", "-c", "date +%%s%%N > %s/$QSCHEDULE_TASK_ID"]\noverlap = "concurrent"\nmax_concurrency = 8\n\n' "$1"
}

# latency NAME: dispatches 100 tasks to the first agent, 100 ms apart; prints "p50 p99" in ms.
latency() {
  local dir=$WORK/$1-lat
  for i in $(seq 1 100); do
    local t0=$(date +%s%N)
    curl -s -o /dev/null -H "Q-Server-Token: bench-token-0123456789" -d "{\"job\":\"bench.latency\",\"taskId\":\"lat-$i\"}" http://127.0.0.2:20010/api2/tasks.do
    echo "lat-$i $t0" >> "$dir.sent"
    sleep 0.1
  done
  sleep 2
  while read -r id t0; do
    [ -f "$dir/$id" ] && echo $(( ($(cat "$dir/$id") - t0) / 1000 ))
  done < "$dir.sent" | sort -n | awk '{ v[NR] = $1 } END { if (NR < 100) { printf "%d-of-100-ran -", NR; exit } printf "%.1f %.1f", v[50] / 1000, v[99] / 1000 }'
}

# run NAME AGENTS CLUSTER(0/1): prints "fires/s duplicates missed statements-per-fire rss-kB"
run() {
  local name=$1 agents=$2 cluster=$3 db=bench_$1
  $PSQL -d postgres -c "CREATE DATABASE $db" >/dev/null
  $PSQL -d $db -c "CREATE EXTENSION pg_stat_statements" >/dev/null
  local pids=()
  mkdir -p "$WORK/$name-lat"
  for i in $(seq 1 "$agents"); do
    local dir=$WORK/$name-$i
    mkdir -p "$dir"
    {
      printf '[agent]\nlisten = "127.0.0.%s:20010"\ndata_dir = "%s/data"\ntoken = "bench-token-0123456789"\nmax_running = 256\n\n' $((i + 1)) "$dir"
      [ "$cluster" = 1 ] && printf '[cluster]\ndatabase = "postgresql://qagent@127.0.0.1:%s/%s"\nheartbeat_interval = 1\ndead_after = 3\n\n' $PORT $db
      jobs_toml "$WORK/$name-lat"
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
  local expected=$(( ( (end - 2000 + 999) / 1000 - (start + 2000 + 999) / 1000 ) * JOBS ))
  local rate dups missed perfire background
  if [ "$cluster" = 1 ]; then
    local counts
    counts=$($PSQL -d $db -F ' ' -c "
      WITH w AS (SELECT job, scheduled_at FROM qagent_task WHERE scheduled_at >= $start + 2000 AND scheduled_at < $end - 2000)
      SELECT (SELECT count(*) FROM w), (SELECT count(*) - count(DISTINCT (job, scheduled_at)) FROM w)")
    read -r fired dups <<<"$counts"
    local allfires=$($PSQL -d $db -c "SELECT count(*) FROM qagent_task WHERE scheduled_at >= $start AND scheduled_at < $end")
    # Task work: statements that create, admit and finish tasks (and the transactions around
    # them); background: heartbeats, view refreshes, sweeps and the claim polls (one per agent
    # and second when idle, one per wake-up otherwise).
    local stats
    stats=$($PSQL -d $db -F ' ' -c "
      WITH c AS (SELECT calls, query ~ 'SET heartbeat_at|SELECT j.job, m.address|SELECT DISTINCT job|SET status = \\$[0-9]+, claimed_at' AS bg
                 FROM pg_stat_statements WHERE query ~ 'qagent_' OR query ~* '^(BEGIN|COMMIT)')
      SELECT coalesce(sum(calls) FILTER (WHERE NOT bg), 0), coalesce(sum(calls) FILTER (WHERE bg), 0) FROM c")
    read -r taskcalls bgcalls <<<"$stats"
    [ -n "${STATEMENTS_DUMP:-}" ] && $PSQL -d $db -F ' | ' -c "SELECT calls, left(regexp_replace(query, '\s+', ' ', 'g'), 150) FROM pg_stat_statements ORDER BY calls DESC LIMIT 25" > "$STATEMENTS_DUMP.$name"
    rate=$(echo "$fired / (($end - $start - 4000) / 1000)" | bc -l)
    missed=$((expected - fired))
    perfire=$(printf '%.2f' "$(echo "$taskcalls / $allfires" | bc -l)")
    background=$(printf '%.2f' "$(echo "$bgcalls / $agents / (($end - $start) / 1000)" | bc -l)")
  else
    local fired=0
    for i in $(seq 1 "$agents"); do
      fired=$((fired + $(sqlite3 "$WORK/$name-$i/data/qagent.sqlite" "SELECT count(*) FROM task WHERE scheduled_at >= $start + 2000 AND scheduled_at < $end - 2000")))
    done
    rate=$(echo "$fired / (($end - $start - 4000) / 1000)" | bc -l)
    dups=-; missed=$((expected - fired)); perfire=-; background=-
  fi
  local lat
  lat=$(latency "$name")
  printf '%-22s %8.1f %6s %6s %11s %11s %9s %9s %9s\n' "$name ($agents)" "$rate" "$dups" "$missed" "$perfire" "$background" ${lat} "$rss"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}

command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)"; exit 2; }
echo "$JOBS jobs firing every second, $RUN s per configuration"
printf '%-22s %8s %6s %6s %11s %11s %9s %9s %9s\n' "" "fires/s" "twice" "missed" "stmts/fire" "bg/agent/s" "p50 ms" "p99 ms" "RSS kB"
for config in ${CONFIGS:-standalone:1:0 cluster3:3:1 cluster6:6:1}; do
  IFS=: read -r name agents cluster <<<"$config"
  run "$name" "$agents" "$cluster"
done
