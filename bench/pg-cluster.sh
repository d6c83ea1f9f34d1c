# Shared by bench/postgres.sh and bench/postgres-rest.sh (sourced, not run):
# `make_cluster`, a throwaway PostgreSQL cluster on a loopback port with a password over
# TCP, removed on exit; `start`, a collector; `load`, a load generator run. Needs ROOT,
# DIR, BIN and PGBIN set, and `say`.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# make_cluster: the database, a throwaway cluster with a password over TCP, removed on
# exit; sets URL, psql_, PIDS (collectors to kill on exit) and writes DIR/pg.toml.
make_cluster() {
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
    { printf 'store = "%s"\nstore_password_file = "%s"\n' "$URL" "$DIR/db-password"
      cat "$ROOT/bench/loopback.toml"; } >"$DIR/pg.toml"
    grep -v '^store' "$DIR/pg.toml" >"$DIR/sled.toml"
}

# start DATA CONFIG: a collector; prints "PID GRPC REST".
start() {
    local data=$1 cfg=$2 g r pid
    g=$(free_port); r=$(free_port)
    "$BIN/rampart-collector" serve --data "$data" --config "$cfg" \
        --grpc-listen "127.0.0.1:$g" --rest-listen "127.0.0.1:$r" >"$data.out" 2>"$data.log" &
    pid=$!
    for _ in $(seq 1 300); do grep -q '^ready ' "$data.out" 2>/dev/null && break; sleep 0.1; done
    grep -q '^ready ' "$data.out" || { say "collector did not start; see $data.log"; exit 2; }
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

