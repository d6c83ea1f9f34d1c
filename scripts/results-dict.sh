#!/usr/bin/env bash
# Trains the zstd dictionary that result chunks are compressed with
# (collector/src/store/results.dict): real scans by this build's agent, of the
# Debian 12 test root and of this machine's own root, for every benchmark and
# profile, cut into samples of 25 results in the stored JSON form. The dictionary's
# ID is fixed (codec::RESULTS_DICT_ID): a new one needs a new ID, and the codec must
# keep the old dictionary to read chunks written with it.
#
#   bash scripts/results-dict.sh [OUT]        (default: collector/src/store/results.dict)
#
# Needs: zstd (Debian's package), python3, RAMPART_DEBIAN_ROOT or the cached root.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-collector/src/store/results.dict}
root=${RAMPART_DEBIAN_ROOT:-$(bash tests/fixtures/build-debian-root.sh)}
cargo build --locked -q -p rampart-agent
agent=$PWD/target/debug/rampart-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in "$root" /; do
  for b in debian-12 ubuntu-22.04 ubuntu-24.04; do
    for p in level1-server level2-server level1-workstation level2-workstation; do
      "$agent" check --root "$r" --benchmark "$b" --profile "$p" --format json \
        >"$work/scan-$(echo "$r" | tr / _)-$b-$p.json" 2>/dev/null || true
    done
  done
done
mkdir "$work/samples"
python3 - "$work" <<'PY'
import glob, json, sys
work = sys.argv[1]
n = 0
for f in sorted(glob.glob(f"{work}/scan-*.json")):
    results = [{"rule_id": r["id"], "status": r["status"], "evidence": r["evidence"]}
               for r in json.load(open(f))["results"]]
    for i in range(0, len(results), 25):
        with open(f"{work}/samples/{n:05d}.json", "w") as s:
            s.write(json.dumps(results[i:i + 25], separators=(",", ":")))
        n += 1
print(f"results-dict.sh: {n} samples", file=sys.stderr)
PY
zstd -q --train "$work"/samples/*.json -o "$out" --maxdict=32768 --dictID=32769
echo "results-dict.sh: wrote $out ($(wc -c <"$out") bytes)" >&2
