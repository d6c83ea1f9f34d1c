#!/bin/sh
# Scans one root with every benchmark and profile and writes the JSON results with
# their timing fields and the rule slug removed, one file per benchmark and profile:
# the content reshaping must leave them byte-identical.
#   scripts/content-snapshot.sh AGENT ROOT OUTDIR
# e.g. scripts/content-snapshot.sh target/debug/rampart-agent /var/cache/rampart-tests/debian12-e007e3547aa6 /tmp/before
set -eu
agent=$1 root=$2 out=$3
mkdir -p "$out"
for b in debian-12 ubuntu-22.04 ubuntu-24.04; do
  for p in level1-server level2-server level1-workstation level2-workstation; do
    "$agent" check --root "$root" --benchmark "$b" --profile "$p" --format json >"$out/$b.$p.raw.json" || true
    python3 - "$out/$b.$p.raw.json" >"$out/$b.$p.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for k in ("generated_at", "started_at", "finished_at", "duration_ms"):
    doc.pop(k, None)
for r in doc.get("results", []):
    r.pop("rule", None)
print(json.dumps(doc, indent=2, ensure_ascii=False))
PY
    rm "$out/$b.$p.raw.json"
  done
done
for b in debian-12 ubuntu-22.04 ubuntu-24.04; do
  "$agent" rules --benchmark "$b" --format json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
def strip(v):
    if isinstance(v, dict):
        v.pop("rule", None)
        for x in v.values(): strip(x)
    if isinstance(v, list):
        for x in v: strip(x)
strip(doc)
print(json.dumps(doc, indent=2, ensure_ascii=False))' >"$out/$b.rules.json"
done
"$agent" coverage >"$out/coverage.md"
