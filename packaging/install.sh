#!/bin/sh
# Installs, enrolls and starts the Rampart agent from a collector, which serves this
# script at /download/install.sh. POSIX sh; run as root.
#
#   sh install.sh --rest https://COLLECTOR:REST_PORT --collector https://COLLECTOR:GRPC_PORT \
#     --ca-fingerprint SHA256 --token-file /run/rampart-bootstrap/token [--label k=v ...]
#
# Every option can come from the environment instead: RAMPART_REST, RAMPART_COLLECTOR,
# RAMPART_CA_FINGERPRINT, RAMPART_TOKEN_FILE, RAMPART_LABELS ("k=v,k=v"), and
# RAMPART_METHOD (--method: auto, deb, rpm or binary; auto picks dpkg, then rpm, then
# the static binary).
#
# Trust: /ca.pem is fetched once without verification and accepted only if its SHA-256
# (of the DER certificate) equals the pinned fingerprint; every later download is
# verified against that CA (curl --cacert), and each file against its .sha256.
# The token file is deleted whatever happens; the token is never printed.
set -eu
umask 077

VERSION='@VERSION@'
# Tests install into a scratch tree; on a host this is empty.
DEST=${RAMPART_DEST:-}
TRIES=${RAMPART_TRIES:-60}
DELAY=${RAMPART_RETRY_DELAY:-10}

REST=${RAMPART_REST:-}
COLLECTOR=${RAMPART_COLLECTOR:-}
FINGERPRINT=${RAMPART_CA_FINGERPRINT:-}
TOKEN_FILE=${RAMPART_TOKEN_FILE:-}
LABELS=${RAMPART_LABELS:-}
METHOD=${RAMPART_METHOD:-auto}

say() { echo "rampart-install: $*" >&2; }
fail() { say "$*"; exit 1; }
usage() {
  sed -n '2,12s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

WORK=$(mktemp -d)
cleanup() {
  if [ -n "$TOKEN_FILE" ]; then rm -f "$TOKEN_FILE"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

while [ $# -gt 0 ]; do
  case $1 in
    --rest) REST=${2:?--rest needs a value}; shift ;;
    --collector) COLLECTOR=${2:?--collector needs a value}; shift ;;
    --ca-fingerprint) FINGERPRINT=${2:?--ca-fingerprint needs a value}; shift ;;
    --token-file) TOKEN_FILE=${2:?--token-file needs a value}; shift ;;
    --label) LABELS="$LABELS${LABELS:+,}${2:?--label needs a value}"; shift ;;
    --method) METHOD=${2:?--method needs a value}; shift ;;
    -h|--help) usage ;;
    *) say "unknown argument: $1"; usage ;;
  esac
  shift
done

[ "$VERSION" != '@''VERSION@' ] || fail "this is the unbuilt install.sh: use the one the collector serves"
case $REST in https://?*) ;; *) fail "--rest must be https://HOST:PORT (got '$REST')" ;; esac
REST=${REST%/}
case $COLLECTOR in https://?*) ;; *) fail "--collector must be https://HOST:PORT (got '$COLLECTOR')" ;; esac
PIN=$(printf '%s' "$FINGERPRINT" | tr -d ':' | tr 'A-F' 'a-f')
printf '%s' "$PIN" | grep -Eq '^[0-9a-f]{64}$' \
  || fail "--ca-fingerprint must be a SHA-256 (64 hex digits, colons allowed)"
[ -n "$TOKEN_FILE" ] || fail "--token-file is required"
case $METHOD in auto|deb|rpm|binary) ;; *) fail "--method must be auto, deb, rpm or binary" ;; esac
case $LABELS in *"'"*|*'"'*) fail "labels must not contain quotes" ;; esac

# fetch URL FILE [insecure]: bounded retries while the collector is unreachable.
fetch() {
  n=0
  while :; do
    if command -v curl >/dev/null 2>&1; then
      if [ "${3:-}" = insecure ]; then
        curl -fsS --proto '=https' -k --connect-timeout 10 --max-time 300 -o "$2" "$1" && return 0
      else
        curl -fsS --proto '=https' --cacert "$WORK/ca.pem" --connect-timeout 10 --max-time 300 \
          -o "$2" "$1" && return 0
      fi
    elif command -v wget >/dev/null 2>&1; then
      if [ "${3:-}" = insecure ]; then
        wget -q --https-only --no-check-certificate --timeout=10 -O "$2" "$1" && return 0
      else
        wget -q --https-only --ca-certificate="$WORK/ca.pem" --timeout=10 -O "$2" "$1" && return 0
      fi
    else
      fail "neither curl nor wget is installed"
    fi
    n=$((n + 1))
    [ "$n" -lt "$TRIES" ] || return 1
    say "cannot fetch $1 (attempt $n of $TRIES); retrying in ${DELAY}s"
    sleep "$DELAY"
  done
}

# SHA-256 of the first certificate of a PEM file, over its DER bytes.
pem_fingerprint() {
  awk '/-----BEGIN CERTIFICATE-----/ { f = 1; next } /-----END CERTIFICATE-----/ { if (f) exit } f' "$1" \
    | tr -d '\r' | base64 -d 2>/dev/null | sha256sum | awk '{ print $1 }'
}

# get NAME: downloads /download/NAME and checks it against /download/NAME.sha256.
get() {
  fetch "$REST/download/$1" "$WORK/$1" || fail "cannot download $REST/download/$1"
  fetch "$REST/download/$1.sha256" "$WORK/$1.sha256" || fail "cannot download $REST/download/$1.sha256"
  want=$(awk 'NR == 1 { print tolower($1) }' "$WORK/$1.sha256")
  printf '%s' "$want" | grep -Eq '^[0-9a-f]{64}$' || fail "$1.sha256 holds no SHA-256"
  got=$(sha256sum "$WORK/$1" | awk '{ print $1 }')
  [ "$got" = "$want" ] || fail "SHA-256 mismatch for $1: got $got, want $want"
}

# retry DESCRIPTION COMMAND...: the package manager may be busy at first boot
# (unattended-upgrades, cloud-init's own package installs).
retry() {
  what=$1
  shift
  n=0
  until "$@" >&2; do
    n=$((n + 1))
    [ "$n" -lt "$TRIES" ] || fail "$what failed $n times; giving up"
    say "$what failed (attempt $n of $TRIES; is another package manager running?); retrying in ${DELAY}s"
    sleep "$DELAY"
  done
}

# 1. Trust the collector's CA, pinned by its fingerprint.
fetch "$REST/ca.pem" "$WORK/ca.pem" insecure || fail "cannot fetch $REST/ca.pem"
got=$(pem_fingerprint "$WORK/ca.pem")
[ "$got" = "$PIN" ] || fail "the CA served at $REST/ca.pem has fingerprint $got, not the pinned $PIN"

# 2. Download, verify and install the agent.
case $(uname -m) in
  x86_64|amd64) ;;
  *) fail "only x86_64 agents are built (this host is $(uname -m))" ;;
esac
if [ "$METHOD" = auto ]; then
  if command -v dpkg >/dev/null 2>&1 && [ -f "$DEST/var/lib/dpkg/status" ]; then
    METHOD=deb
  elif command -v rpm >/dev/null 2>&1 && { [ -d "$DEST/var/lib/rpm" ] || [ -d "$DEST/usr/lib/sysimage/rpm" ]; }; then
    METHOD=rpm
  else
    METHOD=binary
  fi
fi
case $METHOD in
  deb)
    pkg=rampart-agent_${VERSION}_amd64.deb
    get "$pkg"
    DEBIAN_FRONTEND=noninteractive
    export DEBIAN_FRONTEND
    retry "dpkg -i $pkg" dpkg -i "$WORK/$pkg"
    AGENT=/usr/bin/rampart-agent
    ;;
  rpm)
    pkg=rampart-agent-${VERSION}-1.x86_64.rpm
    get "$pkg"
    retry "rpm -U $pkg" rpm -U --replacepkgs "$WORK/$pkg"
    AGENT=/usr/bin/rampart-agent
    ;;
  binary)
    get rampart-agent
    get rampart-agent.service
    mkdir -p "$DEST/usr/local/bin" "$DEST/etc/systemd/system"
    install -m 0755 "$WORK/rampart-agent" "$DEST/usr/local/bin/rampart-agent"
    sed 's#^ExecStart=/usr/bin/rampart-agent #ExecStart=/usr/local/bin/rampart-agent #' \
      "$WORK/rampart-agent.service" > "$WORK/unit"
    install -m 0644 "$WORK/unit" "$DEST/etc/systemd/system/rampart-agent.service"
    AGENT=/usr/local/bin/rampart-agent
    ;;
esac
say "installed rampart-agent $VERSION ($METHOD)"

# 3. Enroll, unless this host already is.
if [ -s "$DEST/etc/rampart/agent.toml" ]; then
  say "already enrolled ($DEST/etc/rampart/agent.toml exists); not enrolling again"
else
  [ -s "$TOKEN_FILE" ] || fail "no enrollment token in $TOKEN_FILE"
  set --
  old_ifs=$IFS
  IFS=,
  for l in $LABELS; do
    if [ -n "$l" ]; then set -- "$@" --label "$l"; fi
  done
  IFS=$old_ifs
  n=0
  # The collector may come up after the VM: bounded retries.
  until "$DEST$AGENT" enroll --collector "$COLLECTOR" --ca-fingerprint "$PIN" \
    --token-file "$TOKEN_FILE" "$@"; do
    n=$((n + 1))
    [ "$n" -lt "$TRIES" ] || fail "enrollment failed $n times; giving up"
    say "enrollment failed (attempt $n of $TRIES); retrying in ${DELAY}s"
    sleep "$DELAY"
  done
fi
rm -f "$TOKEN_FILE"

# 4. Start. --no-block: from cloud-final a synchronous start would wait on
# network-online.target, which waits on cloud-final.
systemctl daemon-reload
systemctl enable rampart-agent.service
systemctl start --no-block rampart-agent.service
say "rampart-agent enabled and starting; its first scan follows"
