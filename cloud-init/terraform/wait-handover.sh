#!/bin/sh
# Waits until the Rampart collector's handover gate allows a VM to be handed over.
#
#   RAMPART_API        the collector's REST base URL, e.g. https://collector.example:8443
#   RAMPART_TOKEN      an API token with the provisioner (or admin) role
#   RAMPART_VM         the VM's instance ID (or agent ID), as the agent reports it
#   RAMPART_TIMEOUT    seconds to wait (default 1800)
#   RAMPART_INTERVAL   seconds between polls (default 10)
#   RAMPART_CACERT     optional CA bundle for the REST endpoint's certificate
#
# Exit 0: allowed (passed, released, exempt, or scanning disabled). Exit 1: still not
# allowed at the deadline (pending scan, blocked, ...). Exit 2: bad configuration, the
# token is refused, or the answer is about another VM than RAMPART_VM. The token is read from the environment and given to curl in a file,
# never on a command line, and never printed.
set -eu
: "${RAMPART_API:?RAMPART_API is not set}"
: "${RAMPART_TOKEN:?RAMPART_TOKEN is not set}"
: "${RAMPART_VM:?RAMPART_VM is not set}"
timeout=${RAMPART_TIMEOUT:-1800}
interval=${RAMPART_INTERVAL:-10}
# Plain http only to this machine (localhost, 127.x.x.x, [::1]): the token crosses it.
api_host=${RAMPART_API#http://}
api_host=${api_host%%/*}
case "$RAMPART_API" in
  https://?*) ;;
  http://*)
    case "$api_host" in
      localhost|localhost:[0-9]*|\[::1\]|\[::1\]:[0-9]*) ;;
      127.*) case "${api_host%:[0-9]*}" in *[!0-9.]*) api_host= ;; esac ;;
      *) api_host= ;;
    esac
    ;;
  *) api_host= ;;
esac
[ -n "$api_host" ] || {
  echo "wait-handover: RAMPART_API must be https://, or http:// to loopback only" >&2
  exit 2
}
case "$RAMPART_VM" in
  *[!A-Za-z0-9._:-]*) echo "wait-handover: RAMPART_VM has unexpected characters" >&2; exit 2 ;;
esac
command -v curl >/dev/null 2>&1 || { echo "wait-handover: curl is required" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP
( umask 077; printf 'Authorization: Bearer %s\n' "$RAMPART_TOKEN" > "$work/header" )
set -- -sSg --connect-timeout 10 --max-time 30 -H "@$work/header" -o "$work/body" -w '%{http_code}'
if [ -n "${RAMPART_CACERT:-}" ]; then set -- "$@" --cacert "$RAMPART_CACERT"; fi
url="${RAMPART_API%/}/api/v1/handover/$RAMPART_VM"

start=$(date +%s)
last="no answer yet"
while :; do
  code=$(curl "$@" "$url" 2>"$work/err") || code=000
  body=$(cat "$work/body" 2>/dev/null || true)
  case "$code" in
    200)
      # The answer must be about the VM asked for: its agent ID or the instance ID
      # it enrolled with (fixed at enrollment). Anything else is not trusted.
      if ! printf '%s' "$body" | grep -Fq "\"agent_id\":\"$RAMPART_VM\"" &&
         ! printf '%s' "$body" | grep -Fq "\"instance_id\":\"$RAMPART_VM\""; then
        echo "wait-handover: the collector answered for another VM than $RAMPART_VM; refusing" >&2
        exit 2
      fi
      state=$(printf '%s' "$body" | sed -n 's/.*"state":"\([^"]*\)".*/\1/p')
      reasons=$(printf '%s' "$body" | sed -n 's/.*"reasons":\[\([^]]*\)\].*/\1/p')
      if printf '%s' "$body" | grep -q '"allowed":true'; then
        echo "wait-handover: $RAMPART_VM may be handed over ($state): $reasons"
        exit 0
      fi
      last="$state: $reasons"
      ;;
    401|403)
      echo "wait-handover: the collector refused the token (HTTP $code)" >&2
      exit 2
      ;;
    404) last="not enrolled yet" ;;
    409) last="the instance ID is claimed by more than one agent; an admin must revoke the impostor" ;;
    000) last="collector unreachable: $(head -c 200 "$work/err")" ;;
    *) last="HTTP $code" ;;
  esac
  now=$(date +%s)
  if [ $((now - start)) -ge "$timeout" ]; then
    echo "wait-handover: timed out after $timeout s; $RAMPART_VM is not handed over ($last)" >&2
    exit 1
  fi
  echo "wait-handover: waiting for $RAMPART_VM ($last)"
  sleep "$interval"
done
