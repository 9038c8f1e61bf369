#!/usr/bin/env bash
# Side-by-side MeasurementSet read throughput (issue #9): `aperture import ms` (reads,
# forms Stokes I, writes a Zarr dataset) against python-casacore's getcol of the same
# columns into numpy (scripts/bench_casacore_read.py: DATA, FLAG, WEIGHT_SPECTRUM, UVW,
# TIME, ANTENNA1/2, FLAG_ROW, DATA_DESC_ID, FIELD_ID), on one MS of about SIZE_GB
# written by scripts/make_large_ms.py (LOW stations within 600 m, 64 channels,
# XX/XY/YX/YY; the number of integrations sets the size). Runs interleaved, REPEAT times
# each, warm (page cache filled by a read of the MS first) and cold (the MS's pages
# dropped with posix_fadvise(DONTNEED) before each run: no root needed, but the disk
# cache of the host below the VM is not dropped). Prints a Markdown table of the best
# run of each: seconds, visibilities/s (row x channel x correlation of the whole MS),
# MB/s (MS bytes on disk / s) and peak RSS (/usr/bin/time %M).
#
# Needs python-casacore and numpy (pip install python-casacore numpy).
# Usage: scripts/bench-ms-import.sh [SIZE_GB] [REPEAT]    (default 4 GB, 3 runs)
# Environment: MS=path reuses an existing MS (not deleted); KEEP=1 keeps the generated
# one; MS_DIR=dir writes it there [default /tmp]; SKIP_COLD=1 skips the cold runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GB="${1:-4}"
REPEAT="${2:-3}"
WORK="$(mktemp -d "${MS_DIR:-/tmp}/aperture-bench-ms.XXXXXX")"
GENERATED=
cleanup() {
  if [[ -n "${KEEP:-}" && -n "$GENERATED" && -d "$WORK/large.ms" ]]; then
    rm -rf "$WORK/out.zarr" "$WORK/aperture"
    echo "kept $WORK/large.ms" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

cargo build --release -p aperture --quiet
# A private copy: other builds may replace the shared binary during the runs.
cp "${CARGO_TARGET_DIR:-target}/release/aperture" "$WORK/aperture"
AP="$WORK/aperture"

if [[ -z "${MS:-}" ]]; then
  MS="$WORK/large.ms"
  GENERATED=1
  # Size of one integration, from a dry run with one.
  PER_T=$(python3 scripts/make_large_ms.py "$MS" --times 1 --aperture "$AP" --dry-run 2>&1 |
          sed -n 's/.*about \([0-9.]*\) GB.*/\1/p')
  TIMES=$(python3 -c "print(max(1, round($SIZE_GB / $PER_T)))")
  echo "writing a ~$SIZE_GB GB MS ($TIMES integrations) at $MS" >&2
  python3 scripts/make_large_ms.py "$MS" --times "$TIMES" --aperture "$AP" >&2
fi

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
warm() { find "$MS" -type f -exec cat {} + >/dev/null; }
evict() { python3 scripts/bench_casacore_read.py "$MS" --evict-only >/dev/null; }
# One run of `$@` under /usr/bin/time: appends {reader, cache, seconds, rss_kib}.
timed() {
  local reader="$1" cache="$2"
  shift 2
  local t="$WORK/time"
  /usr/bin/time -f "%e %M" -o "$t" "$@" >"$WORK/$reader.out"
  read -r secs rss <"$t"
  echo "{\"reader\": \"$reader\", \"cache\": \"$cache\", \"seconds\": $secs, \"rss_kib\": $rss}" >>"$RUNS"
}
# The readers (each a command line).
declare -A CMD=(
  [import_ms]="$AP -q import ms $MS $WORK/out.zarr"
  [import_ms_w8]="$AP -q import ms $MS $WORK/out.zarr --channels-per-window 8 --read-buffer 256"
  [getcol]="python3 scripts/bench_casacore_read.py $MS"
  [getcol_i]="python3 scripts/bench_casacore_read.py $MS --stokes-i"
)
READERS=(import_ms import_ms_w8 getcol getcol_i)

caches=(warm)
[[ -z "${SKIP_COLD:-}" ]] && caches+=(cold)
for cache in "${caches[@]}"; do
  [[ "$cache" == warm ]] && warm
  for _ in $(seq "$REPEAT"); do
    for reader in "${READERS[@]}"; do
      rm -rf "$WORK/out.zarr"
      [[ "$cache" == cold ]] && evict
      # shellcheck disable=SC2086 # the command lines are split on purpose (no spaces in paths)
      timed "$reader" "$cache" ${CMD[$reader]}
    done
  done
done

python3 - "$RUNS" "$WORK/getcol.out" "$REPEAT" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
info = json.load(open(sys.argv[2]))
vis, disk = info["visibilities"], info["ms_bytes_on_disk"]
names = {
    "import_ms": "`aperture import ms` (read, Stokes I, write Zarr; one 64-channel window)",
    "import_ms_w8": "the same, `--channels-per-window 8 --read-buffer 256` (8 windows)",
    "getcol": "python-casacore getcol (raw read into numpy)",
    "getcol_i": "python-casacore getcol + numpy Stokes I",
}
print(f"MS: {info['rows']:,} rows x {info['channels']} channels x {info['correlations']} "
      f"correlations = {vis:,} visibilities, {disk / 1e9:.2f} GB on disk; best of "
      f"{sys.argv[3]}\n")
print("| reader | cache | best s | M visibilities/s | MB/s (MS on disk) | peak RSS MiB |")
print("|---|---|---|---|---|---|")
for cache in ("warm", "cold"):
    for r in ("import_ms", "import_ms_w8", "getcol", "getcol_i"):
        sel = [x for x in runs if x["reader"] == r and x["cache"] == cache]
        if not sel:
            continue
        best = min(sel, key=lambda x: x["seconds"])
        s = best["seconds"]
        rss = max(x["rss_kib"] for x in sel) / 1024
        print(f"| {names[r]} | {cache} | {s:.2f} | {vis / s / 1e6:.0f} | {disk / 1e6 / s:.0f} "
              f"| {rss:.0f} |")
PY
