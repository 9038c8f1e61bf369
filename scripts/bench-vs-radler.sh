#!/usr/bin/env bash
# Side-by-side CLEAN benchmark of aperture and radler (WSClean's deconvolution library) on
# the same 2048^2 dirty image and PSF, single-threaded, same niter/gain/threshold, in one
# run (issue #3). The images come from `aperture bench deconv --write-images`: the PSF of
# the SDP benchmark scenario (LOW within 600 m, 7 times, 8 channels at 100-150 MHz) and a
# dirty image that is exactly model (*) PSF for 30 point sources and a Gaussian.
# Quality is measured the same way for both models by scripts/radler_bench.py: the exact
# residual dirty - model (*) PSF (peak, RMS) and the flux recovered around each source.
# Needs `pip install radler numpy astropy`.
# Usage: scripts/bench-vs-radler.sh [NITER] [THRESHOLD_JY] [REPEAT] [NPIX]
#        (prints a Markdown table; BENCH_DIR=dir keeps and reuses the images)
set -euo pipefail
cd "$(dirname "$0")/.."
NITER="${1:-10000}"
THRESHOLD="${2:-1e-3}"
REPEAT="${3:-1}"
NPIX="${4:-2048}"
GAIN=0.1
SCALES=0,3,10,30
if [ -n "${BENCH_DIR:-}" ]; then
  WORK="$BENCH_DIR"
  mkdir -p "$WORK"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
fi
cargo build --release -p aperture --quiet
APERTURE="${CARGO_TARGET_DIR:-target}/release/aperture"
if [ ! -f "$WORK/dirty.fits" ]; then
  "$APERTURE" -q bench deconv --write-images "$WORK" --npix "$NPIX" >/dev/null
fi

echo "| algorithm | niter | gain | threshold | tool | time s | iterations | exact peak residual | residual rms | model flux | worst source flux error |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for alg in hogbom msclean; do
  A=$("$APERTURE" -q bench deconv --dirty "$WORK/dirty.fits" --psf "$WORK/psf.fits" \
      --algorithm "$alg" --niter "$NITER" --gain "$GAIN" --threshold "$THRESHOLD" \
      --scales "$SCALES" --repeat "$REPEAT" --model-out "$WORK/aperture-$alg-model.fits" \
      --overwrite --json)
  AQ=$(python3 scripts/radler_bench.py --dirty "$WORK/dirty.fits" --psf "$WORK/psf.fits" \
      --evaluate "$WORK/aperture-$alg-model.fits")
  R=$(python3 scripts/radler_bench.py --dirty "$WORK/dirty.fits" --psf "$WORK/psf.fits" \
      --algorithm "$alg" --niter "$NITER" --gain "$GAIN" --threshold "$THRESHOLD" \
      --scales "$SCALES" --repeat "$REPEAT" 2>/dev/null)
  python3 - "$alg" "$A" "$AQ" "$R" <<'PY'
import json, sys
alg, a, aq, r = sys.argv[1], *(json.loads(v) for v in sys.argv[2:])
def row(tool, t, it, q, extra=""):
    print(f"| {alg} | {r['niter']} | {r['gain']} | {r['threshold']} | {tool} | {t:.2f}{extra} | {it} "
          f"| {q['exact_peak_residual']:.3e} | {q['exact_residual_rms']:.3e} | {q['model_flux']:.4f} "
          f"| {100 * q.get('worst_flux_error', float('nan')):.2f} % |")
row("aperture", a["best_s"], a["iterations"], aq)
row("radler", r["best_s"], r["iterations"], r, f" ({r['best_s'] / a['best_s']:.1f}x aperture)")
PY
done
