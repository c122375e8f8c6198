# Sourced by the cluster benchmarks: a throwaway PostgreSQL with pg_stat_statements in $WORK
# (a new temporary folder), removed with every agent started from $WORK at exit.
# Sets WORK, PORT, PGBIN and PSQL ("psql ... -d" follows).
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
