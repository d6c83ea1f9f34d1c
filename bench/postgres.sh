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

if [ "$BUILD" = 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build --locked "${flag[@]}" -p rampart-collector -p rampart-loadgen)
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE
rm -rf "$DIR"
mkdir -p "$DIR"

# The database (a throwaway cluster, password over TCP) and `start`.
# shellcheck source=bench/pg-cluster.sh
. "$ROOT/bench/pg-cluster.sh"
make_cluster

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
