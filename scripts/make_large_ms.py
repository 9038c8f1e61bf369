#!/usr/bin/env python3
"""Writes a large MeasurementSet (several GB) for the import throughput comparison of
issue #9 (docs/performance.md); not checked in.

The geometry and the sky come from `aperture simulate` run with one channel (stations
within --rmax of the LOW layout, --times integrations over ±3 h, --sources random point
sources); every channel's visibilities are then computed here by the exact DFT of
that sky model (ms_writer.point_source_vis, the measurement equation of DESIGN.md), one
block of rows at a time, so memory stays bounded by --block-rows whatever the MS size.

The MS has the layout of tests/data/ms/low-linear.ms: XX XY YX YY with XX = YY = I and
small cross hands, WEIGHT_SPECTRUM (0.5 on XX and YY, so w_I = 1; 1 on XY and YX),
WEIGHT, SIGMA, a fraction --flag-fraction of samples flagged in all correlations, the
autocorrelations of every station, --spws spectral windows splitting the channels, one
field. DATA, FLAG and WEIGHT_SPECTRUM are in TiledShapeStMan with tiles of about 1 MiB
of DATA ([corr, chan, rows]).

Example (about 3.9 GB: 227 stations, 48 times, 64 channels):
  scripts/make_large_ms.py /tmp/large.ms --rmax 600 --times 48 --channels 64
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ms_writer as mw  # noqa: E402

INTERVAL_S = 10.0


def default_aperture() -> str:
    for cand in (shutil.which("aperture"), "/var/cache/aperture/target/release/aperture",
                 "/var/cache/aperture/target/debug/aperture", "target/release/aperture"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return "aperture"


def estimate_bytes(nrow: int, nchan_spw: int, ncorr: int, weight_spectrum: bool) -> int:
    per_row = nchan_spw * ncorr * (8 + (4 if weight_spectrum else 0)) + nchan_spw * ncorr / 8
    per_row += 24 + 2 * 4 * ncorr + 8 + 1  # UVW, WEIGHT, SIGMA, ANTENNA1/2, FLAG_ROW
    return int(nrow * per_row)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the MS to write (must not exist)")
    ap.add_argument("--rmax", type=float, default=600.0, help="stations within this many m")
    ap.add_argument("--times", type=int, default=48, help="integrations over ±3 h")
    ap.add_argument("--channels", type=int, default=64, help="channels in all")
    ap.add_argument("--spws", type=int, default=1, help="spectral windows (split channels)")
    ap.add_argument("--fmin", type=float, default=100e6)
    ap.add_argument("--fmax", type=float, default=150e6)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flag-fraction", type=float, default=0.01)
    ap.add_argument("--no-weight-spectrum", action="store_true")
    ap.add_argument("--no-autocorrelations", action="store_true")
    ap.add_argument("--block-rows", type=int, default=20_000,
                    help="rows computed and written at a time (bounds memory)")
    ap.add_argument("--aperture", default=default_aperture(), help="the aperture binary")
    ap.add_argument("--dry-run", action="store_true", help="print the size and stop")
    a = ap.parse_args()
    if a.channels % a.spws:
        raise SystemExit(f"--channels {a.channels} is not a multiple of --spws {a.spws}")
    if os.path.exists(a.out):
        raise SystemExit(f"{a.out}: exists; remove it first")

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="large-ms-") as tmp:
        bundle = os.path.join(tmp, "geometry")
        cmd = [a.aperture, "-q", "simulate", "--telescope", "low", "--rmax", str(a.rmax),
               "--windows", "1", "--channels-per-window", "1", "--times", str(a.times),
               "--sources", str(a.sources), "--seed", str(a.seed), "--fmin", str(a.fmin),
               "--fmax", str(a.fmax), "--out", bundle]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        b = mw.read_bundle(bundle)
    m = b["meta"]
    obs = m["observation"]
    enu, resid = mw.recover_enu(b)
    site = obs["site"]
    itrf = mw.enu_to_itrf(math.radians(site["lon_deg"]), math.radians(site["lat_deg"]),
                          site["height_m"], enu)
    nant = len(enu)
    ra0 = math.radians(m["phase_centre"]["ra_deg"])
    dec0 = math.radians(m["phase_centre"]["dec_deg"])
    t_transit = round(mw.transit_mjd_s(m["phase_centre"]["ra_deg"], site["lon_deg"],
                                       51544.0), 3)
    times_rel = np.unique(b["time"])
    nt = len(times_rel)
    nbl = len(b["time"]) // nt
    uvw = b["uvw"].reshape(nt, nbl, 3)
    a1, a2 = b["ant1"][:nbl].astype(np.int32), b["ant2"][:nbl].astype(np.int32)
    sky = m["sky_model"]["sources"]

    width = (a.fmax - a.fmin) / a.channels
    freq = a.fmin + (np.arange(a.channels) + 0.5) * width
    cps = a.channels // a.spws
    spws = [mw.SpectralWindow(f"WINDOW{w}", freq[w * cps:(w + 1) * cps], np.full(cps, width))
            for w in range(a.spws)]
    # One integration's rows, sorted by (ANTENNA1, ANTENNA2): baselines >= 0, autos -1-a.
    keys = [(int(a1[k]), int(a2[k]), k) for k in range(nbl)]
    if not a.no_autocorrelations:
        keys += [(i, i, -1 - i) for i in range(nant)]
    order = np.array([k[2] for k in sorted(keys)])
    rows_per_t = len(order)
    nrow = nt * a.spws * rows_per_t
    ncorr = 4
    est = estimate_bytes(nrow, cps, ncorr, not a.no_weight_spectrum)
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(a.out))).free
    print(f"{nant} stations, {nbl} baselines, {nt} times, {a.channels} channels in {a.spws} "
          f"spw(s): {nrow:,} rows, {nrow * cps:,} row x channel samples, about "
          f"{est / 1e9:.2f} GB (disk free {free / 1e9:.1f} GB); position fit residual "
          f"{resid:.1e} m", file=sys.stderr)
    if a.dry_run:
        return
    if est > free - 15e9:
        raise SystemExit(f"{a.out}: would leave less than 15 GB free on the disk")

    tile_rows = max(1, (1 << 20) // (ncorr * cps * 8))
    layout = mw.MsLayout(
        corr_names=["XX", "XY", "YX", "YY"], spws=spws,
        fields=[mw.Field("SIM", ra0, dec0, t_transit + float(times_rel[0]))],
        antennas=mw.Antennas(names=[f"STN{i:03d}" for i in range(nant)],
                             stations=[f"P{i:03d}" for i in range(nant)],
                             position_itrf_m=itrf,
                             dish_diameter_m=np.full(nant, float(m["station_diameter_m"]))),
        telescope=m.get("telescope", "LOW"),
        time_range_mjd_s=(t_transit + float(times_rel[0]) - INTERVAL_S / 2,
                          t_transit + float(times_rel[-1]) + INTERVAL_S / 2),
        project="aperture large MS (scripts/make_large_ms.py)",
        weight_spectrum=not a.no_weight_spectrum, tile_rows=tile_rows)
    ms = mw.create_ms(a.out, layout)
    rng = np.random.default_rng(a.seed)
    w_corr = np.array([0.5, 1.0, 1.0, 0.5], dtype=np.float32)
    written = 0
    for t in range(nt):
        for w, spw in enumerate(spws):
            for s in range(0, rows_per_t, a.block_rows):
                o = order[s:s + a.block_rows]
                n = len(o)
                auto = o < 0
                bl = np.where(auto, 0, o)
                row_uvw = np.where(auto[:, None], 0.0, uvw[t, bl])
                i = mw.point_source_vis(row_uvw, spw.chan_freq_hz, ra0, dec0, sky)
                i[auto] = sum(src["flux_jy"] for src in sky)
                xy = (0.01 + 0.02j) + 0.05 * np.conj(i)
                data = np.stack([i, xy, np.conj(xy), i], axis=-1).astype(np.complex64)
                flag = np.repeat((rng.random((n, cps)) < a.flag_fraction)[..., None], 4, axis=2)
                wrow = np.broadcast_to(w_corr, (n, ncorr))
                block = {
                    "TIME": np.full(n, t_transit + float(times_rel[t])),
                    "ANTENNA1": np.where(auto, -1 - o, a1[bl]).astype(np.int32),
                    "ANTENNA2": np.where(auto, -1 - o, a2[bl]).astype(np.int32),
                    "DATA_DESC_ID": np.full(n, w, dtype=np.int32),
                    "FIELD_ID": np.zeros(n, dtype=np.int32),
                    "SCAN_NUMBER": np.ones(n, dtype=np.int32),
                    "UVW": row_uvw, "DATA": data, "FLAG": flag,
                    "FLAG_ROW": np.zeros(n, dtype=bool),
                    "WEIGHT": wrow, "SIGMA": 1.0 / np.sqrt(wrow),
                }
                if not a.no_weight_spectrum:
                    block["WEIGHT_SPECTRUM"] = np.broadcast_to(w_corr, (n, cps, ncorr))
                mw.put_rows(ms, block, INTERVAL_S)
                written += n
        print(f"\rintegration {t + 1}/{nt}: {written:,} rows", end="", file=sys.stderr)
    ms.close()
    size = sum(os.path.getsize(os.path.join(dp, f))
               for dp, _, fs in os.walk(a.out) for f in fs)
    print(f"\nwrote {a.out}: {written:,} rows, {size / 1e9:.2f} GB in "
          f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
