#!/usr/bin/env python3
"""Checks the products of a finished ImagingJob against the sky it simulated.

The job's output is read either from a local directory (`--dir out/ical-small`, as
`aperture run` leaves it) or over HTTP from a SeaweedFS filer (`--filer
http://127.0.0.1:18888 --bucket aperture-e2e --prefix ical-small`: the e2e script
port-forwards the filer of the in-cluster SeaweedFS, whose /buckets/<bucket>/<key> paths
serve the objects the S3 API wrote).

Checks, each failing with a message naming the object:
- the products and diagnostics exist (restored, model, residual, psf, dirty FITS,
  timings.csv, plan.json);
- the true sources: the simulation's sky model is in the visibility set's metadata
  (vis.zarr/zarr.json, attributes.aperture.extra.sky_model); at the pixel astropy's WCS
  of restored.fits gives for each source, the restored image holds the source's flux at
  the image's reference frequency within --tolerance, and is the brightest pixel within
  two pixels;
- nothing else: away from the sources (outside 1.5 restoring-beam FWHM of each) the
  restored image stays below --spurious × the faintest source.
Needs numpy and astropy. Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import io
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

REQUIRED = [
    "plan.json",
    "products/restored.fits",
    "products/model.fits",
    "products/residual.fits",
    "products/psf.fits",
    "products/dirty.fits",
    "diagnostics/timings.csv",
]


class Failed(Exception):
    """A check failed; the message names the object."""


class LocalOutput:
    def __init__(self, root):
        self.root = Path(root)

    def describe(self, key):
        return str(self.root / key)

    def get(self, key):
        path = self.root / key
        if not path.is_file():
            raise Failed(f"{path}: missing")
        return path.read_bytes()


class FilerOutput:
    def __init__(self, filer, bucket, prefix):
        self.base = f"{filer.rstrip('/')}/buckets/{bucket}/{prefix.strip('/')}"
        self.url = f"s3://{bucket}/{prefix.strip('/')}"

    def describe(self, key):
        return f"{self.url}/{key}"

    def get(self, key):
        try:
            with urllib.request.urlopen(f"{self.base}/{key}", timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise Failed(f"{self.describe(key)}: HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise Failed(f"{self.describe(key)}: {e.reason}") from None


def image_2d(data):
    """The RA×Dec plane of a FITS image with FREQ and STOKES axes of length one."""
    a = np.asarray(data, dtype=np.float64)
    while a.ndim > 2:
        if a.shape[0] != 1:
            raise Failed(f"a non-degenerate axis of length {a.shape[0]}")
        a = a[0]
    return a


def check(out, tolerance, spurious):
    for key in REQUIRED:
        if not out.get(key):
            raise Failed(f"{out.describe(key)}: empty")

    zarr = json.loads(out.get("vis.zarr/zarr.json"))
    try:
        sky = zarr["attributes"]["aperture"]["extra"]["sky_model"]
    except KeyError:
        raise Failed(
            f"{out.describe('vis.zarr/zarr.json')}: no attributes.aperture.extra.sky_model "
            "(the input was not simulated)"
        ) from None
    sources = sky["sources"]
    if not sources:
        raise Failed("the simulated sky has no sources")

    with fits.open(io.BytesIO(out.get("products/restored.fits"))) as hdul:
        header = hdul[0].header
        restored = image_2d(hdul[0].data)
    if "BMAJ" not in header or "CRVAL3" not in header:
        raise Failed(
            f"{out.describe('products/restored.fits')}: no restoring beam (BMAJ) or "
            "frequency (CRVAL3) in the header: not a restored image"
        )
    wcs = WCS(header).celestial
    freq = float(header["CRVAL3"])
    beam_px = float(header["BMAJ"]) / abs(float(header["CDELT2"]))
    ny, nx = restored.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    away = np.ones_like(restored, dtype=bool)
    fluxes = []
    report = []
    for i, s in enumerate(sources):
        want = s["flux_jy"] * (freq / sky["ref_freq_hz"]) ** s["spectral_index"]
        fluxes.append(want)
        c = SkyCoord(np.degrees(s["dir"]["ra"]), np.degrees(s["dir"]["dec"]), unit="deg", frame="icrs")
        x, y = wcs.world_to_pixel(c)
        xi, yi = int(round(float(x))), int(round(float(y)))
        if not (2 <= xi < nx - 2 and 2 <= yi < ny - 2):
            raise Failed(f"source {i} at pixel ({x:.1f}, {y:.1f}) is outside the restored image")
        got = restored[yi, xi]
        box = restored[yi - 2 : yi + 3, xi - 2 : xi + 3]
        report.append(f"source {i}: pixel ({xi}, {yi}) {got:.3f} Jy/beam, true {want:.3f} Jy")
        if abs(got - want) > tolerance * want:
            raise Failed(
                f"{out.describe('products/restored.fits')}: source {i} at pixel ({xi}, {yi}) "
                f"has {got:.4f} Jy/beam, the simulation {want:.4f} Jy (tolerance {tolerance:.0%})"
            )
        if box.max() > got * (1 + 1e-6):
            raise Failed(
                f"{out.describe('products/restored.fits')}: source {i}: the peak near pixel "
                f"({xi}, {yi}) is {box.max():.4f}, not at the source ({got:.4f})"
            )
        away &= (xx - xi) ** 2 + (yy - yi) ** 2 > (1.5 * beam_px) ** 2
    rest = np.abs(restored[away]).max()
    limit = spurious * min(fluxes)
    report.append(f"elsewhere: |restored| <= {rest:.3f} Jy/beam (limit {limit:.3f})")
    if rest > limit:
        raise Failed(
            f"{out.describe('products/restored.fits')}: {rest:.4f} Jy/beam away from every "
            f"source, above {limit:.4f} (a spurious source or unconverged calibration)"
        )
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--dir", help="the job's output directory")
    where.add_argument("--filer", help="SeaweedFS filer URL, e.g. http://127.0.0.1:18888")
    p.add_argument("--bucket", help="bucket of the output (with --filer)")
    p.add_argument("--prefix", help="key prefix of the output (with --filer)")
    p.add_argument("--tolerance", type=float, default=0.1, help="relative flux tolerance (0.1)")
    p.add_argument("--spurious", type=float, default=0.2, help="residual limit / faintest source (0.2)")
    a = p.parse_args()
    if a.filer and not (a.bucket and a.prefix):
        p.error("--filer needs --bucket and --prefix")
    out = LocalOutput(a.dir) if a.dir else FilerOutput(a.filer, a.bucket, a.prefix)
    try:
        for line in check(out, a.tolerance, a.spurious):
            print(line)
    except Failed as e:
        print(f"check_products: FAILED: {e}", file=sys.stderr)
        return 1
    print(f"check_products: {out.describe('products/')}: every source restored, nothing spurious")
    return 0


if __name__ == "__main__":
    sys.exit(main())
