#!/usr/bin/env python3
"""Times ducc0's wgridder (vis2dirty / dirty2vis) on an aperture numpy bundle.

The peer measurement for docs/performance.md: same data, same epsilon, same thread
count as `aperture bench kernels --bundle DIR`. ducc0's w sign is the opposite of
aperture's (DESIGN.md), hence flip_w=True. Prints one JSON object.
"""
import argparse
import json
import statistics
import time

import numpy as np
import ducc0


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle")
    ap.add_argument("--npix", type=int, required=True)
    ap.add_argument("--cell-rad", type=float, required=True)
    ap.add_argument("--epsilon", type=float, default=1e-5)
    ap.add_argument("--precision", choices=["f32", "f64"], default="f64")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    uvw = np.load(f"{a.bundle}/uvw.npy")
    freq = np.load(f"{a.bundle}/freq.npy")
    rdt, cdt = (np.float64, np.complex128) if a.precision == "f64" else (np.float32, np.complex64)
    vis = np.load(f"{a.bundle}/vis.npy").astype(cdt)
    common = dict(epsilon=a.epsilon, do_wgridding=True, divide_by_n=True, flip_w=True,
                  nthreads=a.threads)
    t_inv, t_pred = [], []
    dirty = None
    for _ in range(a.repeat):
        t = time.perf_counter()
        dirty = ducc0.wgridder.experimental.vis2dirty(
            uvw=uvw, freq=freq, vis=vis, npix_x=a.npix, npix_y=a.npix,
            pixsize_x=a.cell_rad, pixsize_y=a.cell_rad, **common)
        t_inv.append(time.perf_counter() - t)
    for _ in range(a.repeat):
        t = time.perf_counter()
        ducc0.wgridder.experimental.dirty2vis(
            uvw=uvw, freq=freq, dirty=dirty.astype(rdt),
            pixsize_x=a.cell_rad, pixsize_y=a.cell_rad, **common)
        t_pred.append(time.perf_counter() - t)
    print(json.dumps({
        "peer": f"ducc0 {ducc0.__version__}",
        "nvis": int(vis.size),
        "invert_best_s": min(t_inv), "invert_median_s": statistics.median(t_inv),
        "predict_best_s": min(t_pred), "predict_median_s": statistics.median(t_pred),
    }))


if __name__ == "__main__":
    main()
