#!/usr/bin/env bash
# Cluster scale, in simulation (cluster failure issue): 10 vs 1,000 members and 10,000 jobs on
# one PostgreSQL on this machine. The members are rows, not processes: pgbench plays their
# background work at the rate N agents with heartbeat_interval = 3 would cause — per agent
# every 3 s a heartbeat, a view refresh of its 10 jobs and an idle claim poll (the
# statements the agent sends, copied here) — while 3 real agents (release build)
# fire 20 jobs every second among them. Printed per configuration: background statements/s
# sustained (heartbeat writes/s among them), the database's CPU (% of one core, all its
# processes), fire latency (task created − scheduled time) and claim latency (claimed −
# created), p50 and p99.
#   Benchmarks/cluster-scale.sh                 # 30 s per configuration
#   SECONDS_PER_RUN=60 Benchmarks/cluster-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_PER_RUN:-30}
swift build -c release --product qagent >/dev/null
BIN=$PWD/.build/release/qagent
source Benchmarks/lib/postgres.sh

cpu_ticks() { # utime + stime of every postgres process
  local total=0
  for pid in $(pgrep -u postgres -f "postgres|postmaster"); do
    [ -r /proc/$pid/stat ] && total=$((total + $(awk '{print $14 + $15}' /proc/$pid/stat 2>/dev/null || echo 0)))
  done
  echo $total
}

run() {
  local members=$1 db=scale_$1
  $PSQL -d postgres -c "CREATE DATABASE $db" >/dev/null
  local pids=()
  for i in 1 2 3; do
    local dir=$WORK/$db-$i
    mkdir -p "$dir"
    {
      printf '[agent]\nlisten = "127.0.0.%s:20010"\ndata_dir = "%s/data"\ntoken = "bench-token-0123456789"\nmax_running = 256\n\n' $((i + 1)) "$dir"
      printf '[cluster]\ndatabase = "postgresql://qagent@127.0.0.1:%s/%s"\n\n' $PORT $db
      for j in $(seq 1 20); do
        printf '[[job]]\nname = "real.tick%s"\ncron = "* * * * * ?"\ncommand = ["/bin/true"]\noverlap = "concurrent"\nmax_concurrency = 8\n\n' "$j"
      done
    } > "$dir/agent.conf"
    "$BIN" run --config "$dir/agent.conf" > "$dir/log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 100); do [ "$($PSQL -d $db -c "SELECT count(*) FROM qagent_member" 2>/dev/null)" = 3 ] && break; sleep 0.2; done
  # The simulated fleet: N members, 10,000 jobs, each member serving 10 of them.
  $PSQL -d $db -c "
    INSERT INTO qagent_member (address, instance, hostname, version, app_name, app_id, started_at, heartbeat_at)
      SELECT 'sim-' || n, 'i', 'sim', 'sim', 'qagent', 0, now(), now() FROM generate_series(1, $members) n;
    INSERT INTO qagent_job (job, enabled, definition, app_name, app_id)
      SELECT 'sim.job' || n, true, '{}', 'qagent', 0 FROM generate_series(1, 10000) n;
    INSERT INTO qagent_member_job (address, job, definition)
      SELECT 'sim-' || m, 'sim.job' || ((m * 10 + k) % 10000 + 1), '{}' FROM generate_series(1, $members) m, generate_series(0, 9) k
      ON CONFLICT DO NOTHING;
    ANALYZE;" >/dev/null
  cat > "$WORK/every3s.sql" <<SQL
\set n random(1, $members)
UPDATE qagent_member SET heartbeat_at = now(), draining = false WHERE address = 'sim-' || :n AND instance = 'i' RETURNING address;
SELECT j.job, m.address FROM qagent_member_job j JOIN qagent_member m ON m.address = j.address
  WHERE j.job = ANY(ARRAY(SELECT job FROM qagent_member_job WHERE address = 'sim-' || :n)) AND m.heartbeat_at > now() - make_interval(secs => 15);
SQL
  cat >> "$WORK/every3s.sql" <<SQL
UPDATE qagent_task SET status = 'claimed', claimed_at = now() WHERE id IN (
  SELECT id FROM qagent_task WHERE worker = 'sim-' || :n AND status = 'assigned' ORDER BY created_at LIMIT 16 FOR UPDATE SKIP LOCKED)
  RETURNING id, job, param, scheduled_at, attempt;
SQL
  sleep 3
  local start=$(date +%s%3N) cpu0=$(cpu_ticks)
  local rate3=$(( (members + 2) / 3 ))
  PGHOST=$WORK PGPORT=$PORT PGUSER=qagent "$PGBIN/pgbench" -n -c 8 -j 2 -T "$RUN" -R "$rate3" -f "$WORK/every3s.sql" "$db" > "$WORK/pgb3.$members" 2>&1 &
  local b3=$!
  # CPU read while pgbench's connections still exist (an ended backend's CPU is gone from /proc).
  sleep $((RUN - 1))
  local end=$(date +%s%3N) cpu1=$(cpu_ticks)
  wait $b3 || true
  local hz=$(getconf CLK_TCK)
  local cpu=$(echo "($cpu1 - $cpu0) * 100 / $hz / (($end - $start) / 1000)" | bc -l)
  local tps3=$(awk '/^tps/ {print $3; exit}' "$WORK/pgb3.$members")
  local lat
  lat=$($PSQL -d $db -F ' ' -c "
    WITH t AS (SELECT extract(epoch FROM created_at) * 1000 - scheduled_at AS fire, extract(epoch FROM claimed_at - created_at) * 1000 AS claim
               FROM qagent_task WHERE scheduled_at BETWEEN $start AND $end - 2000 AND claimed_at IS NOT NULL)
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY fire)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY fire)::numeric, 1),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY claim)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY claim)::numeric, 1),
           count(*) FROM t")
  read -r f50 f99 c50 c99 fires <<<"$lat"
  printf '%-14s %10.0f %12.0f %8.1f %9s %9s %9s %9s %7s\n' "$members members" \
    "$(echo "${tps3:-0} * 3" | bc -l)" "${tps3:-0}" "$cpu" "$f50" "$f99" "$c50" "$c99" "$fires"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
}

echo "10,000 jobs; 3 real agents firing 20 jobs every second; $RUN s per configuration"
printf '%-14s %10s %12s %8s %9s %9s %9s %9s %7s\n' "" "bg stmt/s" "heartbeats/s" "db CPU%" "fire p50" "fire p99" "claim p50" "claim p99" "fires"
run 10
run 1000
