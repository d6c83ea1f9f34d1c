#!/usr/bin/env bash
# Fuzzes the readers of untrusted text: scripts/fuzz.sh [SECONDS] [TARGET...]
# runs each target (all of them by default; the list is fuzz/fuzz_targets/) for
# SECONDS (default 60), one after the other, one process at a time. A crash stops the
# script with libFuzzer's report; the input is left in fuzz/artifacts/<target>/.
# Copy it to fuzz/regressions/<target>/ with the fix: the stable test
# (fuzz/harness/tests/replay.rs) replays it from then on.
#
# Needs the nightly toolchain (installed through rustup if missing) and cargo-fuzz
# (installed if missing). New corpus entries go to a scratch directory, not to the
# committed seeds; FUZZ_KEEP_CORPUS=1 keeps them in fuzz/corpus/<target>/ instead.
# CARGO_TARGET_DIR is honoured; FUZZ_RSS_MB (default 1024) caps each run's memory;
# FUZZ_DEV=1 builds without optimisation (below).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi
# One build for every target: they share all their code. FUZZ_DEV=1 builds without
# optimisation (CI's smoke run: minutes less to build, slower to run).
target_dir=${CARGO_TARGET_DIR:-fuzz/target}
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
if [ "${FUZZ_DEV:-}" = 1 ]; then
  cargo +nightly fuzz build --dev
  bin_dir=$target_dir/$triple/debug
else
  cargo +nightly fuzz build
  bin_dir=$target_dir/$triple/release
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  if [ "${FUZZ_KEEP_CORPUS:-}" = 1 ]; then
    dirs=("$corpus")
  else
    mkdir -p "$scratch/$t"
    dirs=("$scratch/$t" "$corpus")
  fi
  mkdir -p "fuzz/artifacts/$t"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb="${FUZZ_RSS_MB:-1024}" \
    -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${dirs[@]}"
  rm -rf "${scratch:?}/$t"
done
