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
# the static binary). Each --label reaches the agent verbatim, as one argument.
#
# Trust: /ca.pem is fetched once without verification and accepted only if it is
# exactly one PEM certificate (nothing else but whitespace) whose DER has the pinned
# SHA-256. The only trust anchor from then on is a PEM rebuilt from that DER alone:
# curl --cacert (and an empty --capath) or wget --ca-certificate (and an empty
# --ca-directory), never the system store. Each file is checked against its .sha256.
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
METHOD=${RAMPART_METHOD:-auto}

say() { printf 'rampart-install: %s\n' "$*" >&2; }
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
NL='
'
# The labels, one a line: RAMPART_LABELS split on commas, then each --label as given.
: > "$WORK/labels"
add_label() {
  case $1 in *"$NL"*) fail "a label cannot contain a newline" ;; esac
  printf '%s\n' "$1" >> "$WORK/labels"
}
case ${RAMPART_LABELS:-} in *"$NL"*) fail "RAMPART_LABELS cannot contain a newline" ;; esac
printf '%s' "${RAMPART_LABELS:-}" | tr ',' '\n' >> "$WORK/labels"
echo >> "$WORK/labels"

while [ $# -gt 0 ]; do
  case $1 in
    --rest) REST=${2:?--rest needs a value}; shift ;;
    --collector) COLLECTOR=${2:?--collector needs a value}; shift ;;
    --ca-fingerprint) FINGERPRINT=${2:?--ca-fingerprint needs a value}; shift ;;
    --token-file) TOKEN_FILE=${2:?--token-file needs a value}; shift ;;
    --label) add_label "${2?--label needs a value}"; shift ;;
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

# The only trust anchor for every verified download: the rebuilt CA (see pin_ca), and an
# empty directory in place of the system's CA directory. The environment variables
# cover TLS libraries that would otherwise load their default store as well.
mkdir "$WORK/no-other-ca"
CA_MAX_BYTES=65536

# fetch URL FILE [insecure]: bounded retries while the collector is unreachable.
fetch() {
  n=0
  while :; do
    if command -v curl >/dev/null 2>&1; then
      if [ "${3:-}" = insecure ]; then
        curl -fsSg --proto '=https' -k --max-filesize "$CA_MAX_BYTES" --connect-timeout 10 \
          --max-time 300 -o "$2" "$1" && return 0
      else
        SSL_CERT_FILE="$WORK/ca.pem" SSL_CERT_DIR="$WORK/no-other-ca" \
          curl -fsSg --proto '=https' --cacert "$WORK/ca.pem" --capath "$WORK/no-other-ca" \
          --connect-timeout 10 --max-time 300 -o "$2" "$1" && return 0
      fi
    elif command -v wget >/dev/null 2>&1; then
      if [ "${3:-}" = insecure ]; then
        wget -q --https-only --no-check-certificate --timeout=10 -O "$2" "$1" && return 0
      else
        SSL_CERT_FILE="$WORK/ca.pem" SSL_CERT_DIR="$WORK/no-other-ca" \
          wget -q --https-only --ca-certificate="$WORK/ca.pem" \
          --ca-directory="$WORK/no-other-ca" --timeout=10 -O "$2" "$1" && return 0
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

# pin_ca FETCHED: accepts the file fetched from /ca.pem only if it is exactly one PEM
# certificate (whitespace aside: no second certificate, no other block, no trailing
# data) whose DER has the pinned SHA-256, and writes $WORK/ca.pem afresh from that DER
# alone. Needs only awk, tr, base64, fold and sha256sum.
pin_ca() {
  what="the CA served at $REST/ca.pem"
  [ "$(wc -c < "$1")" -le "$CA_MAX_BYTES" ] || fail "$what is larger than $CA_MAX_BYTES bytes"
  [ "$(tr -d 'A-Za-z0-9+/= \t\r\n-' < "$1" | wc -c)" -eq 0 ] \
    || fail "$what holds bytes that cannot be part of a PEM certificate"
  awk '
    { sub(/\r$/, ""); sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
    $0 == "" { next }
    $0 == "-----BEGIN CERTIFICATE-----" { if (inside || n) bad = 1; inside = 1; n++; next }
    $0 == "-----END CERTIFICATE-----" { if (!inside) bad = 1; inside = 0; next }
    inside && /^[A-Za-z0-9+\/=]+$/ { print; next }
    { bad = 1 }
    END { exit (bad || inside || n != 1) }
  ' "$1" > "$WORK/ca.b64" \
    || fail "$what is not exactly one PEM certificate (a second certificate or trailing data is refused)"
  base64 -d < "$WORK/ca.b64" > "$WORK/ca.der" 2>/dev/null && [ -s "$WORK/ca.der" ] \
    || fail "$what is not valid base64"
  got=$(sha256sum "$WORK/ca.der" | awk '{ print $1 }')
  [ "$got" = "$PIN" ] || fail "$what has fingerprint $got, not the pinned $PIN"
  {
    echo '-----BEGIN CERTIFICATE-----'
    base64 < "$WORK/ca.der" | tr -d '\n' | fold -w 64
    echo
    echo '-----END CERTIFICATE-----'
  } > "$WORK/ca.pem"
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

# 1. Trust the collector's CA, pinned by its fingerprint, and nothing else.
fetch "$REST/ca.pem" "$WORK/ca.fetched" insecure || fail "cannot fetch $REST/ca.pem"
pin_ca "$WORK/ca.fetched"

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
  # Each label is one argument, exactly as given: never split again, globbed or evaluated.
  set --
  while IFS= read -r l; do
    if [ -n "$l" ]; then set -- "$@" --label "$l"; fi
  done < "$WORK/labels"
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
