#!/usr/bin/env bash
# Backup and restore at fleet scale (issue 17): on a store seeded with a fleet's
# history, a backup through the running collector while simulated agents ingest. How
# long writes were held for the cut, how long reading and writing every record takes
# (what a gate held over the whole backup would have cost), the backup's time and
# size, the restore's time, and the ingest's acknowledgement latency without and with
# a backup running. Prints the figures and appends them to $BENCH_OUT.
#
# Usage: bench/backup.sh                                   (full scale)
#        BENCH_SEED_SCANS=20000 BENCH_SEED_AGENTS=200 BENCH_PROFILE=debug BENCH_BUILD=0 \
#        bench/backup.sh                                   (a smoke run)
#
# Every size is an environment variable (default in brackets):
#   BENCH_SEED_AGENTS      agents of the seeded store [10000]
#   BENCH_SEED_SCANS       completed scans of the seeded store [1000000]
#   BENCH_SEED_RESULTS     results stored on each agent's latest seeded scan [300]
#   BENCH_INGEST_AGENTS    simulated agents ingesting during the runs [50]
#   BENCH_INGEST_SECONDS   length of each ingest run [60]
#   BENCH_BACKUP_AFTER     seconds into the second run the backup starts [10]
#   BENCH_PROFILE          cargo profile of the binaries: release or debug [release]
#   BENCH_BUILD            1 builds the binaries first, 0 uses what the target dir holds [1]
#   BENCH_DIR              scratch directory [target/bench-backup]; the seeded store in
#                          it is kept and reused while its sizes match (seeding 1M scans
#                          takes minutes), everything else is made afresh
#   BENCH_OUT              file the figures are appended to [bench/collector-figures.md]
#   CARGO_TARGET_DIR       where the binaries are [target]
#   CARGO                  the cargo command [cargo]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SEED_AGENTS=${BENCH_SEED_AGENTS:-10000}
SEED_SCANS=${BENCH_SEED_SCANS:-1000000}
SEED_RESULTS=${BENCH_SEED_RESULTS:-300}
INGEST_AGENTS=${BENCH_INGEST_AGENTS:-50}
INGEST_SECONDS=${BENCH_INGEST_SECONDS:-60}
BACKUP_AFTER=${BENCH_BACKUP_AFTER:-10}
PROFILE=${BENCH_PROFILE:-release}
BUILD=${BENCH_BUILD:-1}
DIR=${BENCH_DIR:-$ROOT/target/bench-backup}
OUT=${BENCH_OUT:-$ROOT/bench/collector-figures.md}
CARGO=${CARGO:-cargo}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE

say() { echo "bench: $*" >&2; }

if [ "$BUILD" = 1 ]; then
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    say "building $PROFILE binaries"
    (cd "$ROOT" && $CARGO build --locked "${flag[@]}" -p rampart-collector -p rampart-loadgen)
fi
for b in rampart-collector rampart-loadgen; do
    [ -x "$BIN/$b" ] || { say "$BIN/$b is missing (BENCH_BUILD=1 builds it)"; exit 2; }
done

mkdir -p "$DIR"
seed="$DIR/seeded-$SEED_AGENTS-$SEED_SCANS-$SEED_RESULTS"
if [ ! -f "$seed.json" ]; then
    rm -rf "$seed" "$seed.token"
    say "seeding $SEED_AGENTS agents and $SEED_SCANS scans (once; kept in $seed)"
    "$BIN/rampart-loadgen" seed --data "$seed" --agents "$SEED_AGENTS" --scans "$SEED_SCANS" \
        --results "$SEED_RESULTS" --admin-token-file "$seed.token" >"$seed.json.tmp"
    mv "$seed.json.tmp" "$seed.json"
fi
work=$DIR/run
rm -rf "$work" "$work".* "$DIR/fleet.backup" "$DIR/restored" "$DIR"/*.json.run
say "copying the seeded store"
cp -a "$seed" "$work"
cp "$seed.token" "$work.token"

cp "$ROOT/bench/loopback.toml" "$DIR/collector.toml"

COLLECTOR_PID=
LOADGEN_PID=
cleanup() {
    [ -z "$LOADGEN_PID" ] || kill "$LOADGEN_PID" 2>/dev/null || true
    if [ -n "$COLLECTOR_PID" ]; then
        kill "$COLLECTOR_PID" 2>/dev/null || true
        wait "$COLLECTOR_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

g=$(free_port)
r=$(free_port)
REST=http://127.0.0.1:$r
"$BIN/rampart-collector" serve --data "$work" --config "$DIR/collector.toml" \
    --grpc-listen "127.0.0.1:$g" --rest-listen "127.0.0.1:$r" >"$work.out" 2>"$work.log" &
COLLECTOR_PID=$!
for _ in $(seq 1 3000); do
    grep -q '^ready ' "$work.out" 2>/dev/null && break
    kill -0 "$COLLECTOR_PID" 2>/dev/null || { say "collector exited; see $work.log"; exit 2; }
    sleep 0.1
done
grep -q '^ready ' "$work.out" || { say "collector did not start; see $work.log"; exit 2; }

ingest() { # ingest NAME: one timed run of the simulated agents
    "$BIN/rampart-loadgen" --collector "https://127.0.0.1:$g" --rest "$REST" \
        --admin-token-file "$work.token" --agents "$INGEST_AGENTS" --scans-per-agent 100000 \
        --results 300 --duration "$INGEST_SECONDS" --project "bench-$1" >"$DIR/$1.json.run" 2>"$DIR/$1.err"
}

say "ingest without a backup: $INGEST_AGENTS agents, $INGEST_SECONDS s"
ingest baseline
say "ingest with a backup $BACKUP_AFTER s in"
ingest during &
LOADGEN_PID=$!
sleep "$BACKUP_AFTER"
start=$(date +%s%N)
"$BIN/rampart-collector" backup --data "$work" --to "$DIR/fleet.backup" \
    --token-file "$work.token" --url "$REST" >"$DIR/backup.out" 2>"$DIR/backup.err"
backup_ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$LOADGEN_PID"
LOADGEN_PID=
kill "$COLLECTOR_PID"
wait "$COLLECTOR_PID" 2>/dev/null || true
COLLECTOR_PID=

say "restoring"
start=$(date +%s%N)
"$BIN/rampart-collector" restore --from "$DIR/fleet.backup" --data "$DIR/restored" >"$DIR/restore.out" 2>"$DIR/restore.err"
restore_ms=$(( ($(date +%s%N) - start) / 1000000 ))

python3 - "$ROOT" "$DIR" "$work" "$backup_ms" "$restore_ms" "$OUT" "$seed.json" <<'EOF'
import json, re, subprocess, sys, datetime
root, d, work, backup_ms, restore_ms, out, seedj = sys.argv[1:]
backup_secs, restore_secs = int(backup_ms) / 1000, int(restore_ms) / 1000
base = json.load(open(f"{d}/baseline.json.run"))
during = json.load(open(f"{d}/during.json.run"))
seed = json.load(open(seedj))
said = open(f"{d}/backup.out").read()
# The collector's log, without its colours.
log = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in open(f"{work}.log")]
written = [l for l in log if "backup written" in l][-1]
pause_us = re.search(r"pause_us=(\d+)", [l for l in log if "backup cut taken" in l][-1]).group(1)
field = lambda k: re.search(k + r"=([0-9.]+)", written).group(1)
size = int(re.search(r"\((\d+) bytes", said).group(1))
parts = re.search(r"\(([0-9.]+) s to write it, ([0-9.]+) s to rebuild", open(f"{d}/restore.out").read())
du = lambda p: int(subprocess.run(["du", "-sb", p], capture_output=True, text=True).stdout.split()[0])
rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
lines = [
    f"## Backup and restore ({datetime.date.today()}, {rev})",
    "",
    f"Seeded store: {seed['agents']} agents, {seed['scans']} scans; data directory {du(work) / 1e6:.0f} MB when backed up. "
    f"`bench/backup.sh`, {during['agents']} simulated agents ingesting on the same 2 CPUs.",
    "",
    "| figure | value |",
    "|---|---|",
    f"| writes held for the cut | {int(pause_us) / 1000:.3f} ms |",
    f"| reading and writing every record (what a gate held over the backup would hold writes for) | {float(field('records_secs')):.1f} s ({field('records')} records) |",
    f"| backup through the API, during ingest | {backup_secs:.1f} s, {size / 1e6:.0f} MB |",
    f"| restore: writing the store, then rebuilding its indexes and checking counts and chain | {restore_secs:.1f} s ({parts.group(1)} + {parts.group(2)} s) |",
    f"| ingest without a backup: scans/s, ack p50 / p99 / max | {base['scans_per_second']}, {base['ack_p50_ms']} / {base['ack_p99_ms']} / {base['ack_max_ms']} ms |",
    f"| ingest with a backup running: scans/s, ack p50 / p99 / max | {during['scans_per_second']}, {during['ack_p50_ms']} / {during['ack_p99_ms']} / {during['ack_max_ms']} ms |",
    "",
]
text = "\n".join(lines)
print(text)
with open(out, "a") as f:
    f.write("\n" + text)
EOF
