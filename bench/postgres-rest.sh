#!/usr/bin/env bash
# REST on PostgreSQL at fleet scale (issue 14): a throwaway PostgreSQL is seeded with a
# fleet's history through the store (`rampart-loadgen seed --store`), a collector is
# started on it, and every list, filter, page, overview, audit, handover and console
# call is timed with the load generator. Prints a table and appends it to $BENCH_OUT.
#
# Usage: bench/postgres-rest.sh   (as root: the server runs as the postgres user)
#   BENCH_SEED_AGENTS     agents [10000]
#   BENCH_SEED_SCANS      completed scans [1000000]
#   BENCH_SEED_RESULTS    results stored on each agent's latest scan [300]
#   BENCH_SEED_THREADS    seeding writers [8]
#   BENCH_REST_REQUESTS   requests per path [400]
#   BENCH_REST_CONCURRENCY requests in flight [8]
#   BENCH_PROFILE, BENCH_BUILD, BENCH_DIR, BENCH_OUT as in bench/postgres.sh
#   BENCH_STORE           a database seeded before (by this script's seeding command):
#                         its URL; then BENCH_STORE_PASSWORD_FILE and BENCH_TOKEN_FILE
#                         (the seeded admin token) too, and no cluster is made
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEED_AGENTS=${BENCH_SEED_AGENTS:-10000}
SEED_SCANS=${BENCH_SEED_SCANS:-1000000}
SEED_RESULTS=${BENCH_SEED_RESULTS:-300}
SEED_THREADS=${BENCH_SEED_THREADS:-8}
REST_REQUESTS=${BENCH_REST_REQUESTS:-400}
REST_CONCURRENCY=${BENCH_REST_CONCURRENCY:-8}
PROFILE=${BENCH_PROFILE:-release}
BUILD=${BENCH_BUILD:-1}
DIR=${BENCH_DIR:-$ROOT/target/bench-postgres-rest}
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

# shellcheck source=bench/pg-cluster.sh
. "$ROOT/bench/pg-cluster.sh"
if [ -z "${BENCH_STORE:-}" ]; then
    make_cluster
    say "seeding $SEED_AGENTS agents and $SEED_SCANS scans into PostgreSQL"
    "$BIN/rampart-loadgen" seed --data "$DIR/seeded" --store "$URL" \
        --store-password-file "$DIR/db-password" --agents "$SEED_AGENTS" --scans "$SEED_SCANS" \
        --results "$SEED_RESULTS" --threads "$SEED_THREADS" \
        --admin-token-file "$DIR/seeded.token" >"$DIR/seed.json"
    psql_ -d rampart -c "VACUUM ANALYZE" >/dev/null
    psql_ -d rampart -c "SELECT pg_size_pretty(pg_database_size('rampart'))" >"$DIR/db-size"
else
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
    printf 'store = "%s"\nstore_password_file = "%s"\n' "$BENCH_STORE" "$BENCH_STORE_PASSWORD_FILE" >"$DIR/pg.toml"
    cp "$BENCH_TOKEN_FILE" "$DIR/seeded.token"
    seed_json="$(dirname "$BENCH_TOKEN_FILE")/seed.json"
    if [ -f "$seed_json" ]; then cp "$seed_json" "$DIR/seed.json"; else
        echo '{"agents": "?", "scans": "?", "audit_entries": "?", "seconds": 0}' >"$DIR/seed.json"; fi
    echo "?" >"$DIR/db-size"
fi

read -r pid g r < <(start "$DIR/seeded" "$DIR/pg.toml"); PIDS+=("$pid")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
rss >"$DIR/rss_before_kib"
say "REST: $REST_REQUESTS requests per path, $REST_CONCURRENCY in flight"
# --path PATH for each line of bench/rest-paths.
REST_PATHS=()
while read -r p; do
    case $p in "" | "#"*) ;; *) REST_PATHS+=(--path "$p") ;; esac
done <"$ROOT/bench/rest-paths"
"$BIN/rampart-loadgen" rest --rest "http://127.0.0.1:$r" --admin-token-file "$DIR/seeded.token" \
    --requests "$REST_REQUESTS" --concurrency "$REST_CONCURRENCY" --agents "$SEED_AGENTS" \
    --collector-pid "$pid" \
    "${REST_PATHS[@]}" >"$DIR/rest.json"
rss >"$DIR/rss_after_kib"
kill "$pid"; wait "$pid" 2>/dev/null || true

python3 - "$DIR" "$OUT" "$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')" <<'PY'
import json, sys, time
d, out, rev = sys.argv[1:4]
seed = json.load(open(f"{d}/seed.json"))
rest = json.load(open(f"{d}/rest.json"))
before = int(open(f"{d}/rss_before_kib").read()) / 1024
after = int(open(f"{d}/rss_after_kib").read()) / 1024
size = open(f"{d}/db-size").read().strip()
lines = [
    "",
    f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {rev}: REST on PostgreSQL (bench/postgres-rest.sh)",
    "",
    f"Seeded through the store: {seed['agents']} agents, {seed['scans']} scans, "
    f"{seed['audit_entries']} audit entries, seeded in {float(seed['seconds']):.0f} s; database {size}. "
    "The collector, PostgreSQL 15 and the load generator share the same 2 CPUs.",
    "",
    "| path | target p99 ms | p50 ms | p99 ms | |",
    "|---|---|---|---|---|",
]
for p in rest["paths"]:
    target = 100 if p["path"].startswith("/ui/") else (5 if "/handover/" in p["path"] else 50)
    ok = "ok" if p["p99_ms"] <= target else "MISSED"
    lines.append(f"| `{p['path']}` | {target} | {p.get('p50_ms', float('nan')):.1f} | {p['p99_ms']:.1f} | {ok} |")
lines += ["", f"Collector RSS over the run: {before:.0f} → {after:.0f} MB."]
text = "\n".join(lines) + "\n"
print(text)
open(out, "a").write(text)
PY
