#!/usr/bin/env bash
# The main job on the embedded default: simulate a LOW-like observation into a numpy
# bundle, then image it (dirty image + PSF, FITS with WCS and PNG quick-looks).
# Outputs go to ${OUT:-out/quickstart}.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/quickstart}"
mkdir -p "$OUT"
cargo build --release -p aperture --quiet
APERTURE="${CARGO_TARGET_DIR:-target}/release/aperture"

"$APERTURE" simulate --telescope low --rmax 600 --windows 4 --channels-per-window 2 \
    --times 7 --sources 10 --noise 0.01 --seed 1 --out "$OUT/low.bundle" --overwrite
"$APERTURE" invert "$OUT/low.bundle" --npix 1024 --weighting robust --robust 0 \
    --out "$OUT/dirty.fits" --psf "$OUT/psf.fits" --overwrite
echo "products: $OUT/dirty.fits $OUT/psf.fits (+ .png quick-looks)"
