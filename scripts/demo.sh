#!/usr/bin/env bash
# The main job on an embedded default: a collector on sled in ./rampart-demo, this
# machine's agent enrolled to it over mutual TLS, a real scan of this machine, and
# where to look. Run as root (the agent reads /etc/shadow and friends).
# Re-running restarts the demo collector on the same data; `scripts/demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${RAMPART_DEMO_DIR:-$PWD/rampart-demo}
grpc=${RAMPART_DEMO_GRPC:-127.0.0.1:8443}
rest=${RAMPART_DEMO_REST:-127.0.0.1:8080}
mkdir -p "$demo"

stop() {
  for p in agent collector; do
    if [ -f "$demo/$p.pid" ] && kill -0 "$(cat "$demo/$p.pid")" 2>/dev/null; then
      pid=$(cat "$demo/$p.pid"); kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$demo/$p.pid"
  done
}
if [ "${1:-}" = stop ]; then stop; echo "demo stopped"; exit 0; fi
stop

command -v curl >/dev/null || { echo "demo.sh needs curl (apt-get install curl)" >&2; exit 2; }
cargo build --release --locked -p rampart-collector -p rampart-agent
bin=$PWD/target/release

: >"$demo/collector.out"
setsid "$bin/rampart-collector" serve --data "$demo/collector" --grpc-listen "$grpc" --rest-listen "$rest" \
  >"$demo/collector.out" 2>"$demo/collector.log" < /dev/null &
echo $! >"$demo/collector.pid"
for _ in $(seq 100); do grep -q '^ready ' "$demo/collector.out" && break; sleep 0.1; done
grep -q '^ready ' "$demo/collector.out" || { echo "collector did not start; see $demo/collector.log" >&2; exit 1; }
if grep -q '^admin token' "$demo/collector.out"; then
  (umask 077; sed -n 's/^admin token (shown once): //p' "$demo/collector.out" >"$demo/admin-token")
fi
admin=$(cat "$demo/admin-token")
fp=$(sed -n 's/^ready .*"ca_fingerprint":"\([^"]*\)".*/\1/p' "$demo/collector.out")
api="http://$rest/api/v1"
json() { sed -n "s/.*\"$1\": *\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }

# A console admin with a random password, made once.
if [ ! -f "$demo/console-password" ]; then
  pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
  curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"name\":\"demo-admin\",\"role\":\"admin\",\"password\":\"$pw\"}" "$api/users" >/dev/null
  (umask 077; echo "$pw" >"$demo/console-password")
fi

if [ ! -f "$demo/agent/state/agent.json" ]; then
  token=$(curl -sf -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d '{"project":"demo","max_uses":1,"ttl_seconds":600}' "$api/enrollment-tokens" | json token)
  "$bin/rampart-agent" enroll --collector "https://$grpc" --token "$token" --ca-fingerprint "$fp" \
    --label project=demo --config "$demo/agent/agent.toml" --state-dir "$demo/agent/state" --root /
fi
agent_id=$(json agent_id <"$demo/agent/state/agent.json" | head -1)
setsid "$bin/rampart-agent" run --config "$demo/agent/agent.toml" >/dev/null 2>"$demo/agent.log" < /dev/null &
echo $! >"$demo/agent.pid"

# A scan on provision was created at enrollment; on a re-run, ask for a new one.
if [ "$(curl -sf -H "Authorization: Bearer $admin" "$api/scans?agent_id=$agent_id&status=completed" | json total)" != 0 ]; then
  curl -sf -X POST -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
    -d "{\"agent_id\":\"$agent_id\"}" "$api/scans" >/dev/null
fi
for _ in $(seq 600); do
  scan=$(curl -sf -H "Authorization: Bearer $admin" "$api/scans?agent_id=$agent_id&per_page=1")
  case "$scan" in *'"status":"completed"'*|*'"status":"failed"'*) break ;; esac
  sleep 0.2
done
scan_id=$(echo "$scan" | json id | head -1)
cat <<EOF2

Rampart demo is running (data in $demo).
  web console         http://$rest/   sign in as demo-admin, password $(cat "$demo/console-password")
                      (also in $demo/console-password)
  collector REST API  $api      (documented at $api/docs)
  agent gRPC port     https://$grpc   CA fingerprint $fp
  admin token         $admin   (also in $demo/admin-token)
  agent               $agent_id, scanning / of this machine

Scan $scan_id: status $(echo "$scan" | json status | head -1), score $(echo "$scan" | json score | head -1)%, \
failed $(echo "$scan" | json failed | head -1), blocked $(echo "$scan" | json blocked | head -1)

Look at:
  curl -s -H "Authorization: Bearer $admin" $api/scans/$scan_id
  curl -s -H "Authorization: Bearer $admin" $api/handover/$agent_id
  curl -s -H "Authorization: Bearer $admin" $api/settings
Reports of this scan (HTML, SCAP ARF 1.1, JSON):
  curl -s -H "Authorization: Bearer $admin" -o report.html $api/scans/$scan_id/report.html
  curl -s -H "Authorization: Bearer $admin" -o report.arf.xml $api/scans/$scan_id/report.arf.xml
  curl -s -H "Authorization: Bearer $admin" -o report.json $api/scans/$scan_id/report.json
Logs: $demo/collector.log, $demo/agent.log.  Stop: scripts/demo.sh stop
EOF2
