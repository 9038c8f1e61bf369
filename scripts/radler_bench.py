#!/usr/bin/env python3
"""Deconvolve a dirty image with radler (WSClean's deconvolution library) and report wall
time and result quality, or evaluate another tool's model on the same images.

    radler_bench.py --dirty d.fits --psf p.fits --algorithm hogbom|msclean \
        [--niter N] [--gain G] [--threshold JY] [--scales 0,3,10,30] [--scale-bias B] \
        [--sources sources.json] [--repeat R]
    radler_bench.py --dirty d.fits --psf p.fits --evaluate model.fits [--sources ...]

Prints one JSON object. radler runs single-threaded (thread_count 1, no parallel
sub-images) for one major iteration (major_loop_gain 1), with the same niter, gain and
absolute threshold as aperture, and with the scale bias's first scale taken from the
PSF main-lobe FWHM measured as aperture measures it (2 sqrt(A/pi) for the area A of the
connected region above half the peak), so both bias the scales alike.

Quality is measured identically for both tools: the exact residual dirty - model (*) PSF
(linear convolution, the PSF zero beyond its image, by numpy FFTs on a 1.5x padded grid),
its peak and RMS, and the model flux within each true source's radius (sources.json from
`aperture bench deconv --write-images`). radler's own residual comes from a circular
convolution on a 1.1x padded grid and is reported separately.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits


def load(path):
    data = fits.getdata(path).astype(np.float64)
    hdr = fits.getheader(path)
    return np.squeeze(data), abs(float(hdr["CDELT2"])) * np.pi / 180.0


def main_lobe_fwhm_px(psf):
    """2 sqrt(A/pi), A = pixels in the 4-connected region around the centre >= half peak."""
    ny, nx = psf.shape
    cy, cx = ny // 2, nx // 2
    half = 0.5 * psf[cy, cx]
    seen = {(cy, cx)}
    stack = [(cy, cx)]
    while stack:
        y, x = stack.pop()
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= yy < ny and 0 <= xx < nx and (yy, xx) not in seen and psf[yy, xx] >= half:
                seen.add((yy, xx))
                stack.append((yy, xx))
    return 2.0 * np.sqrt(len(seen) / np.pi)


def convolve_psf(model, psf):
    """model (*) psf on the model's grid, the PSF centred on pixel (n/2, n/2)."""
    ny, nx = model.shape
    py, px = ny + ny // 2, nx + nx // 2
    kern = np.zeros((py, px))
    kern[:ny, :nx] = psf
    kern = np.roll(kern, (-(ny // 2), -(nx // 2)), axis=(0, 1))
    out = np.fft.irfft2(np.fft.rfft2(model, (py, px)) * np.fft.rfft2(kern), (py, px))
    return out[:ny, :nx]


def quality(dirty, psf, model, sources):
    res = dirty - convolve_psf(model, psf)
    out = {
        "exact_peak_residual": float(np.abs(res).max()),
        "exact_residual_rms": float(np.sqrt(np.mean(res**2))),
        "model_flux": float(model.sum()),
    }
    if sources:
        rec = []
        for s in sources:
            x, y, r = s["x"], s["y"], s["radius"]
            got = float(model[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].sum())
            rec.append({"x": x, "y": y, "flux": s["flux"], "recovered": got})
        out["sources"] = rec
        out["worst_flux_error"] = max(abs(s["recovered"] / s["flux"] - 1.0) for s in rec)
    return out


def run_radler(args, dirty, psf, cell):
    import radler

    s = radler.Settings()
    s.algorithm_type = (
        radler.AlgorithmType.generic_clean
        if args.algorithm == "hogbom"
        else radler.AlgorithmType.multiscale
    )
    s.trimmed_image_width = dirty.shape[1]
    s.trimmed_image_height = dirty.shape[0]
    s.pixel_scale.x = cell
    s.pixel_scale.y = cell
    s.minor_iteration_count = args.niter
    s.minor_loop_gain = args.gain
    s.absolute_threshold = args.threshold
    s.major_loop_gain = 1.0
    s.thread_count = 1
    s.parallel.max_threads = 1
    if args.algorithm != "hogbom":
        s.multiscale.scale_list = [float(v) for v in args.scales.split(",")]
        s.multiscale.scale_bias = args.scale_bias
    beam = main_lobe_fwhm_px(psf) * cell
    psf32 = psf.astype(np.float32)
    times = []
    for _ in range(args.repeat):
        residual = dirty.astype(np.float32)
        model = np.zeros_like(residual)
        t = time.perf_counter()
        r = radler.Radler(s, psf32, residual, model, beam)
        r.perform(0)
        times.append(time.perf_counter() - t)
        iterations = r.iteration_number
    return times, iterations, residual.astype(np.float64), model.astype(np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dirty", required=True)
    ap.add_argument("--psf", required=True)
    ap.add_argument("--algorithm", choices=["hogbom", "msclean"], default="hogbom")
    ap.add_argument("--niter", type=int, default=10000)
    ap.add_argument("--gain", type=float, default=0.1)
    ap.add_argument("--threshold", type=float, default=1e-3)
    ap.add_argument("--scales", default="0,3,10,30")
    ap.add_argument("--scale-bias", type=float, default=0.6)
    ap.add_argument("--sources", help="true sources [default: sources.json beside --dirty]")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--evaluate", metavar="MODEL.fits", help="evaluate this model, no radler")
    args = ap.parse_args()

    dirty, cell = load(args.dirty)
    psf, _ = load(args.psf)
    if dirty.shape != psf.shape:
        sys.exit(f"error: --psf {args.psf}: shape {psf.shape} differs from {dirty.shape}")
    src_path = Path(args.sources) if args.sources else Path(args.dirty).with_name("sources.json")
    sources = json.loads(src_path.read_text()) if src_path.exists() else None

    if args.evaluate:
        model, _ = load(args.evaluate)
        print(json.dumps(quality(dirty, psf, model, sources)))
        return
    # radler logs on stdout: send it to stderr so that stdout holds only the JSON.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        times, iterations, residual, model = run_radler(args, dirty, psf, cell)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    out = {
        "tool": "radler",
        "algorithm": args.algorithm,
        "npix": dirty.shape[1],
        "niter": args.niter,
        "gain": args.gain,
        "threshold": args.threshold,
        "best_s": min(times),
        "median_s": float(np.median(times)),
        "times_s": times,
        "iterations": iterations,
        "own_peak_residual": float(np.abs(residual).max()),
    }
    out.update(quality(dirty, psf, model, sources))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
