#!/usr/bin/env bash
# Idle cost of 1, 2 and 4 `mikro-sync worker` processes on one web database: CPU per worker and
# web sessions opened during a window, with nothing to post (issue 16: idle workers used to tear
# down and re-open their LISTEN connection in a loop).
#
#   benches/idle_workers.sh <mikro-sync binary> <mikro-emulator binary> [label] [counts …]
#
# A throwaway PostgreSQL (log_connections on: closed sessions are counted too, which
# pg_stat_activity alone would miss) and the emulator (the Mikro seed) are started and removed
# again; each binary runs its own `setup` and `setup --erp`. IDLE_WINDOW (default 30 s) is the
# measured window, after IDLE_WARMUP (default 10 s) of start-up. Prints one line per count.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(realpath "$1")"
emu="$(realpath "$2")"
label="${3:-$(basename "$bin")}"
shift 3 || true
counts=("$@")
[ "${#counts[@]}" -gt 0 ] || counts=(1 2 4)
window="${IDLE_WINDOW:-30}"
warmup="${IDLE_WARMUP:-10}"
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

root="$(mktemp -d /tmp/idle-workers.XXXXXX)"
pids=()
pg_started=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "$pg_started" ]; then as_pg "$pgbin/pg_ctl" -D "$root/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$root"
}
trap cleanup EXIT
chmod 0777 "$root"
mkdir -p "$root/pg"
[ "$(id -u)" -ne 0 ] || chown postgres:postgres "$root/pg"
pgport="$(free_port)"
as_pg "$pgbin/initdb" -D "$root/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$root/pg" -l "$root/pg/server.log" -w -o \
    "-p $pgport -k $root -c listen_addresses=127.0.0.1 -c log_connections=on -c fsync=off -c max_connections=300" \
    start >/dev/null
pg_started=1
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE web" -c "CREATE DATABASE erp"
psql -d web -f sql/web-reference/schema.sql >/dev/null
psql -d web -f sql/web-reference/seed.sql >/dev/null

erpport="$(free_port)"
"$emu" --listen "127.0.0.1:$erpport" --pg "postgres://postgres@127.0.0.1:$pgport/erp" \
    --password 'Idle.Bench-1' --tls off --log-level warn --schema sql/mikro/*.sql \
    >"$root/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$erpport") 2>/dev/null && break; sleep 0.2; done

export MIKRO_SYNC_PG_URL="postgres://postgres@127.0.0.1:$pgport/web"
export MIKRO_SYNC_MSSQL_ADO="server=tcp:127.0.0.1,$erpport;database=MikroDB;user=sa;password={Idle.Bench-1};encrypt=DANGER_PLAINTEXT"
export MIKRO_SYNC_ERP_SYNC_INTERVAL=off LOG_LEVEL=warn
"$bin" setup >"$root/setup.log" 2>&1
"$bin" setup --erp >>"$root/setup.log" 2>&1

ticks="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
connections() { grep -c "connection authorized: user=postgres database=web" "$root/pg/server.log" || true; }
for n in "${counts[@]}"; do
    workers=()
    for i in $(seq 1 "$n"); do
        "$bin" worker >"$root/worker-$n-$i.log" 2>&1 &
        workers+=($!)
        pids+=($!)
    done
    sleep "$warmup"
    c0="$(connections)"
    t0=()
    for p in "${workers[@]}"; do t0+=("$(cpu_ticks "$p")"); done
    sleep "$window"
    c1="$(connections)"
    total=0
    for i in "${!workers[@]}"; do total=$((total + $(cpu_ticks "${workers[$i]}") - t0[i])); done
    warns=0
    for i in $(seq 1 "$n"); do warns=$((warns + $(grep -c WARN "$root/worker-$n-$i.log" || true))); done
    awk -v l="$label" -v n="$n" -v w="$window" -v t="$total" -v hz="$ticks" -v s="$((c1 - c0))" -v warn="$warns" \
        'BEGIN { printf "%-10s workers %d: CPU %5.2f %% of a core per worker, %5d new web sessions in %d s, %d WARN lines\n", l, n, 100 * t / hz / w / n, s, w, warn }'
    grep -h WARN "$root"/worker-"$n"-*.log | cut -c1-240 | sort | uniq -c | sort -rn | head -n 3 || true
    for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
done
