#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the operator's integration tests start
# (kube-apiserver, kube-controller-manager, kube-scheduler, and a kubectl of the same
# release) from the published k8s.io/kubernetes Go module pinned in
# tests/controlplane/go.mod, into a cache outside the clone keyed by version:
#
#   ${APERTURE_CONTROLPLANE_CACHE:-/var/cache/aperture/controlplane}/<version>/
#
# Idempotent: when that directory already holds the four binaries built from the same
# go.mod/go.sum it does nothing. Prints the directory (and nothing else) on stdout;
# progress goes to stderr. Needs Go and the Go module proxy; see
# docs/testing-kubernetes.md for the time and memory it takes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$here/tests/controlplane"
cache_root="${APERTURE_CONTROLPLANE_CACHE:-/var/cache/aperture/controlplane}"

version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$module/go.mod")"
if [[ -z "$version" ]]; then
    echo "build-controlplane: no k8s.io/kubernetes requirement in $module/go.mod" >&2
    exit 1
fi
dir="$cache_root/$version"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
stamp="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -d' ' -f1)"

complete() {
    [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$stamp" ]] || return 1
    for b in "${binaries[@]}"; do [[ -x "$dir/$b" ]] || return 1; done
}

if complete; then
    echo "build-controlplane: $dir is up to date" >&2
    echo "$dir"
    exit 0
fi

if ! command -v go >/dev/null; then
    echo "build-controlplane: go is not installed (needed to build Kubernetes $version)" >&2
    exit 1
fi

mkdir -p "$cache_root"
staging="$(mktemp -d "$cache_root/.build-$version.XXXXXX")"
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT

# Version stamps as Kubernetes' own build sets them (hack/lib/version.sh), so that
# `kubectl version` and the API server's /version report the release.
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "build-controlplane: building Kubernetes $version into $dir (takes a while the first time)" >&2
start=$SECONDS
(
    cd "$module"
    export GOFLAGS=-trimpath CGO_ENABLED=0
    go build -ldflags "$ldflags" -o "$staging/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl
) >&2
echo "$stamp" > "$staging/.stamp"
rm -rf "$dir"
mv "$staging" "$dir"
trap - EXIT
echo "build-controlplane: built in $((SECONDS - start)) s" >&2
echo "$dir"
