#!/usr/bin/env python3
"""Reads a MeasurementSet with python-casacore's getcol, in row blocks, into numpy: the
peer of aperture's MS import throughput (issue #9, docs/performance.md).

Reads, per block of rows: the data column (--column, default DATA), FLAG, WEIGHT_SPECTRUM
(WEIGHT when the MS has none), UVW, ANTENNA1, ANTENNA2, TIME, FLAG_ROW, DATA_DESC_ID and
FIELD_ID: what an importer needs. With --stokes-i it also forms Stokes I and its weight
as the importer does (I = (P+Q)/2, w = 4/(1/w_P + 1/w_Q), one hand when the other is
flagged), so the arithmetic is in the comparison too.

Prints one JSON object: rows, channels, correlations, visibilities (row x channel x
correlation), Stokes-I samples (row x channel), bytes of the numpy arrays read, seconds,
visibilities/s, MB/s (1 MB = 1e6 bytes, of the arrays read), the MS size on disk, and the
peak RSS of this process (getrusage ru_maxrss).

--cold first asks the kernel to drop the MS's files from the page cache
(posix_fadvise DONTNEED on every file: no root needed, other files untouched), so the
read comes from the disk; --evict-only does just that and exits, for timing another
reader (aperture import) cold in the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

import casacore
import casacore.tables as pt

# Parallel-hand CORR_TYPE pairs (casacore Stokes::StokesTypes): XX/YY, RR/LL.
PARALLEL = {(9, 12), (5, 8)}


def ms_files(path: str):
    for dp, _, fs in os.walk(path):
        for f in fs:
            yield os.path.join(dp, f)


def evict(path: str) -> int:
    """Drops the MS's pages from the page cache; returns the bytes on disk."""
    total = 0
    for f in ms_files(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def stokes_i(data, flag, flag_row, weight, p, q):
    bad = flag | flag_row[:, None, None] | ~(weight > 0)
    up, uq = ~bad[..., p], ~bad[..., q]
    wp, wq = weight[..., p], weight[..., q]
    both = up & uq
    with np.errstate(divide="ignore", invalid="ignore"):
        vis = np.where(both, 0.5 * (data[..., p] + data[..., q]),
                       np.where(up, data[..., p], np.where(uq, data[..., q], 0)))
        w = np.where(both, 4.0 / (1.0 / wp + 1.0 / wq), np.where(up, wp, np.where(uq, wq, 0)))
    return vis.astype(np.complex64), w.astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ms")
    ap.add_argument("--column", default="DATA", help="DATA, CORRECTED_DATA or MODEL_DATA")
    ap.add_argument("--block-rows", type=int, default=0,
                    help="rows per getcol [default: about 64 MB of the data column]")
    ap.add_argument("--stokes-i", action="store_true", help="also form Stokes I and weights")
    ap.add_argument("--cold", action="store_true", help="evict the MS from the page cache first")
    ap.add_argument("--evict-only", action="store_true", help="evict the MS and exit")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.ms, "table.dat")):
        raise SystemExit(f"{a.ms}: not a casacore table (no table.dat)")
    if a.evict_only:
        print(json.dumps({"evicted": a.ms, "bytes": evict(a.ms)}))
        return
    disk_bytes = evict(a.ms) if a.cold else sum(os.path.getsize(f) for f in ms_files(a.ms))

    t0 = time.perf_counter()
    with pt.table(os.path.join(a.ms, "POLARIZATION"), ack=False) as t:
        corr = [int(c) for c in t.getcell("CORR_TYPE", 0)]
    hands = next(((corr.index(x), corr.index(y)) for x, y in PARALLEL
                  if x in corr and y in corr), None)
    if a.stokes_i and hands is None:
        raise SystemExit(f"{a.ms}: POLARIZATION CORR_TYPE {corr} has no parallel hands")
    t = pt.table(a.ms, ack=False)
    nrow = t.nrows()
    if a.column not in t.colnames():
        raise SystemExit(f"{a.ms}: no column {a.column}")
    wcol = "WEIGHT_SPECTRUM" if ("WEIGHT_SPECTRUM" in t.colnames()
                                 and t.iscelldefined("WEIGHT_SPECTRUM", 0)) else "WEIGHT"
    nchan, ncorr = t.getcell(a.column, 0).shape
    block = a.block_rows or max(1, 64_000_000 // (nchan * ncorr * 8))
    columns = [a.column, "FLAG", wcol, "UVW", "ANTENNA1", "ANTENNA2", "TIME", "FLAG_ROW",
               "DATA_DESC_ID", "FIELD_ID"]
    nbytes = nvis = nsamp = 0
    for start in range(0, nrow, block):
        n = min(block, nrow - start)
        try:
            got = {c: t.getcol(c, startrow=start, nrow=n) for c in columns}
        except RuntimeError as e:  # e.g. spectral windows of different channel counts
            raise SystemExit(f"{a.ms}: rows {start}..{start + n}: getcol: {e}") from e
        nbytes += sum(v.nbytes for v in got.values())
        d = got[a.column]
        nvis += d.size
        nsamp += d.shape[0] * d.shape[1]
        if a.stokes_i:
            w = got[wcol]
            if w.ndim == 2:
                w = np.broadcast_to(w[:, None, :], d.shape)
            stokes_i(d, got["FLAG"], got["FLAG_ROW"], w, *hands)  # formed, not counted
    t.close()
    secs = time.perf_counter() - t0
    print(json.dumps({
        "peer": f"python-casacore {casacore.__version__} getcol",
        "ms": a.ms, "column": a.column, "weight_column": wcol, "columns": columns,
        "rows": nrow, "channels": nchan, "correlations": ncorr, "block_rows": block,
        "visibilities": nvis, "stokes_i_samples": nsamp, "stokes_i": a.stokes_i,
        "array_bytes": nbytes, "ms_bytes_on_disk": disk_bytes, "cold": a.cold,
        "seconds": round(secs, 3),
        "visibilities_per_s": round(nvis / secs),
        "stokes_i_samples_per_s": round(nsamp / secs),
        "mb_per_s": round(nbytes / 1e6 / secs, 1),
        "disk_mb_per_s": round(disk_bytes / 1e6 / secs, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
