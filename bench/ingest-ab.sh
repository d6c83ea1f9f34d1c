#!/usr/bin/env bash
# Ingest A/B (issue 11): two collector binaries, run in turn on the same load, so a
# change is judged against its base on the same machine minutes apart (this 2-core VM
# moves ±30% between runs; interleaving keeps that out of the comparison). Each run:
# a fresh sled store, rampart-loadgen with AGENTS agents completing SCANS scans each
# (300 results, batches of 500), then one line per run:
#   TAG scans/s cpu_ms/scan ack_p99_ms ctxsw/scan pwrite/scan fsync/scan rss_mib
# (context switches and syscalls from `perf stat` when perf is installed, else "-").
#
# Usage: bench/ingest-ab.sh BASE_COLLECTOR NEW_COLLECTOR [AGENTS] [SCANS] [ROUNDS]
#   e.g. bench/ingest-ab.sh /tmp/base/rampart-collector target/release/rampart-collector 1000 2 3
# The load generator is target/release/rampart-loadgen (BENCH_LOADGEN overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?base collector binary}; new=${2:?new collector binary}
agents=${3:-100}; scans=${4:-10}; rounds=${5:-3}
loadgen=${BENCH_LOADGEN:-target/release/rampart-loadgen}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)"
cp "$(dirname "$0")/loopback.toml" "$work/collector.toml"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
events=context-switches,task-clock,syscalls:sys_enter_pwrite64,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync

run() { # TAG BINARY
    local d="$work/$1" g r pid stat=""
    rm -rf "$d"; mkdir -p "$d"
    g=$(port); r=$(port)
    "$2" serve --data "$d/data" --config "$work/collector.toml" \
        --grpc-listen "127.0.0.1:$g" --rest-listen "127.0.0.1:$r" >"$d/out" 2>"$d/log" &
    pid=$!
    for _ in $(seq 1 300); do grep -q '^ready ' "$d/out" && break; sleep 0.1; done
    awk '/^admin token/ {print $NF}' "$d/out" >"$d/token"
    if command -v perf >/dev/null; then
        perf stat -e "$events" -p "$pid" -o "$d/stat" 2>/dev/null &
        stat=$!
    fi
    "$loadgen" --collector "https://127.0.0.1:$g" --rest "http://127.0.0.1:$r" \
        --admin-token-file "$d/token" --agents "$agents" --scans-per-agent "$scans" \
        --results 300 --batch 500 --enroll-concurrency 32 --collector-pid "$pid" \
        >"$d/result.json" 2>"$d/loadgen.err" || { cat "$d/loadgen.err" >&2; kill "$pid"; return 1; }
    if [ -n "$stat" ]; then kill -INT "$stat"; wait "$stat" || true; fi
    kill "$pid"; wait "$pid" || true
    python3 - "$1" "$d/result.json" "$d/stat" <<'PY'
import json, os, re, sys
tag, result, stat = sys.argv[1:]
v = json.load(open(result))
n = v["scans_completed"]
t = open(stat).read() if os.path.exists(stat) else ""
def per_scan(event, fmt="%.1f"):
    m = re.search(r"([\d,.]+)\s+(?:msec\s+)?(?:syscalls:)?" + re.escape(event), t)
    return fmt % (float(m.group(1).replace(",", "")) / n) if m else "-"
cpu = per_scan("task-clock", "%.2f")
if cpu == "-" and v.get("collector_cpu_ms_per_scan") is not None:
    cpu = "%.2f" % v["collector_cpu_ms_per_scan"]
fsyncs = "-"
if t:
    f = [per_scan("sys_enter_fsync"), per_scan("sys_enter_fdatasync")]
    fsyncs = "%.1f" % sum(float(x) for x in f if x != "-")
print("%-6s scans/s %5.0f  cpu_ms/scan %s  ack_p99_ms %5.0f  ctxsw/scan %s  pwrite/scan %s  fsync/scan %s  rss_mib %.0f" % (
    tag, v["scans_per_second"], cpu, v["ack_p99_ms"], per_scan("context-switches"),
    per_scan("sys_enter_pwrite64"), fsyncs, v.get("collector_rss_kib", 0) / 1024))
PY
}

echo "ingest A/B: $agents agents x $scans scans, $rounds rounds; base=$base new=$new ($(nproc) CPUs)"
for i in $(seq 1 "$rounds"); do
    run base "$base"
    run new "$new"
done
