#!/usr/bin/env bash
# Side-by-side timing of aperture's gridder and ducc0's wgridder on the same data in one
# run (issue #2's benchmark: LOW rmax 600 m, 227 stations, 7 times, 8 channels at
# 100-150 MHz, 1.44 M visibilities, 1024^2). Needs `pip install ducc0 numpy`.
# Usage: scripts/bench-vs-ducc0.sh [REPEAT]   (prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT="${1:-3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cargo build --release -p aperture --quiet
APERTURE="${CARGO_TARGET_DIR:-target}/release/aperture"
"$APERTURE" -q bench kernels --write-bundle "$WORK/bench.bundle" >/dev/null
CELL=$(python3 -c "import json;print(json.load(open('$WORK/bench.bundle/meta.json'))['bench']['cell_rad'])")
NPIX=$(python3 -c "import json;print(json.load(open('$WORK/bench.bundle/meta.json'))['bench']['npix'])")

echo "| precision | epsilon | threads | aperture invert s | ducc0 vis2dirty s | ratio | aperture predict s | ducc0 dirty2vis s | ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
for cfg in "f64 1e-5" "f32 1e-4"; do
  set -- $cfg
  for threads in 1 2; do
    A=$("$APERTURE" -q bench kernels --bundle "$WORK/bench.bundle" --precision "$1" \
        --epsilon "$2" --threads "$threads" --repeat "$REPEAT" --json)
    D=$(python3 scripts/ducc0_bench.py "$WORK/bench.bundle" --npix "$NPIX" --cell-rad "$CELL" \
        --precision "$1" --epsilon "$2" --threads "$threads" --repeat "$REPEAT")
    python3 - "$1" "$2" "$threads" "$A" "$D" <<'PY'
import json, sys
prec, eps, th, a, d = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
def best(obj, kind):
    for k in (f"{kind}_best_s",):
        if k in obj: return obj[k]
    return obj[kind]["best_s"]
ai, ap = best(a, "invert"), best(a, "predict")
di, dp = d["invert_best_s"], d["predict_best_s"]
print(f"| {prec} | {eps} | {th} | {ai:.3f} | {di:.3f} | {ai/di:.2f} | {ap:.3f} | {dp:.3f} | {ap/dp:.2f} |")
PY
  done
done
