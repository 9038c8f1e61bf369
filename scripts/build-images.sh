#!/usr/bin/env bash
# scripts/build-images.sh: builds the aperture container images from this workspace:
# the release binaries (on the host), the distroless-style base image (once, from
# Debian with debootstrap) and the two runtime images, aperture-operator and
# aperture-worker, tagged <version> and dev. See docs/images.md.
#
# Usage: scripts/build-images.sh [--no-cargo] [--rebuild-base] [--base-only] [--tag TAG]
#
#   --no-cargo      use the release binaries already built (no cargo build)
#   --rebuild-base  make the base image again even if it exists
#   --base-only     make the base image (if missing) and stop
#   --tag TAG       an extra tag for both images (besides <version> and dev)
#
# Environment:
#   DOCKER            the docker client (default: docker)
#   CARGO_TARGET_DIR  where cargo puts target/release (default: <repo>/target)
#   APERTURE_BASE_IMAGE  the base image (default: aperture-base:bookworm)
#   DEBIAN_MIRROR     the Debian mirror for debootstrap (default: the one apt uses)
#   REVISION          the revision label (default: git HEAD, "-dirty" if modified)
#
# Idempotent: an existing base image is reused; docker's build cache makes a rebuild
# with unchanged binaries a no-op apart from re-tagging.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

DOCKER="${DOCKER:-docker}"
BASE_IMAGE="${APERTURE_BASE_IMAGE:-aperture-base:bookworm}"
SUITE=bookworm
NO_CARGO=0
REBUILD_BASE=0
BASE_ONLY=0
EXTRA_TAG=""

die() {
    echo "build-images: error: $*" >&2
    exit 1
}
say() { echo "build-images: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --no-cargo) NO_CARGO=1 ;;
        --rebuild-base) REBUILD_BASE=1 ;;
        --base-only) BASE_ONLY=1 ;;
        --tag)
            [ $# -ge 2 ] || die "--tag needs a value"
            EXTRA_TAG="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

# --- docker -----------------------------------------------------------------------
command -v "$DOCKER" >/dev/null 2>&1 ||
    die "the docker client '$DOCKER' is not installed (apt-get install docker.io, or set DOCKER)"
if ! docker_err="$("$DOCKER" version --format '{{.Server.Version}}' 2>&1)"; then
    die "the docker engine is not reachable: $(echo "$docker_err" | grep -v '^ *$' | tr '\n' ' ')
  Start it (e.g. 'systemctl start docker', or as root:
  dockerd --iptables=false --bridge=none >/var/log/dockerd.log 2>&1 &), or set DOCKER_HOST."
fi
say "docker engine $docker_err"

# --- version and revision ---------------------------------------------------------
VERSION="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
[ -n "$VERSION" ] || die "no version in [workspace.package] of Cargo.toml"
SOURCE="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^repository *= *"\(.*\)"/\1/p' Cargo.toml)"
LICENSES="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^license *= *"\(.*\)"/\1/p' Cargo.toml)"
if [ -z "${REVISION:-}" ]; then
    if REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)"; then
        # GIT_OPTIONAL_LOCKS=0: status must not rewrite the index of a shared checkout.
        if [ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
            REVISION="$REVISION-dirty"
        fi
    else
        REVISION=unknown
    fi
fi
# The commit's time, not the clock's: an unchanged tree rebuilds to the same image.
CREATED="$(git -C "$ROOT" log -1 --format=%cI 2>/dev/null || echo unknown)"

# --- base image -------------------------------------------------------------------
# The mirror apt uses (deb822 .sources or one-line sources.list), else deb.debian.org.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local m=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        m="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources)"
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)"
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# The packages whose files the runtime needs (ldd of the three binaries: libc, libm,
# libgcc_s, libstdc++); ca-certificates is installed only for its CA bundle.
RUNTIME_PACKAGES="libc6 libgcc-s1 libstdc++6"

make_base() {
    [ "$(id -u)" = 0 ] || die "making the base image $BASE_IMAGE needs root (debootstrap). Run
  'sudo scripts/build-images.sh --base-only' once, or load the image from elsewhere."
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query is not installed (needed to read the rootfs's package lists)"
    local mirror work debian rootfs
    mirror="$(debian_mirror)"
    work="$(mktemp -d "${TMPDIR:-/var/tmp}/aperture-base.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    debian="$work/debian"
    rootfs="$work/rootfs"
    say "debootstrap --variant=minbase $SUITE from $mirror (a few minutes; log: $work/debootstrap.log)"
    if ! debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$debian" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap failed (mirror $mirror; set DEBIAN_MIRROR to use another)"
    fi

    # A distroless-style root: the shared libraries of the runtime packages, the CA
    # bundle, passwd/group with the non-root user 65532, /tmp. No shell, no package
    # manager, no coreutils.
    mkdir -p "$rootfs"
    # Debian bookworm has a merged /usr: keep its /lib and /lib64 links so the ELF
    # interpreter /lib64/ld-linux-x86-64.so.2 resolves.
    cp -a "$debian/lib" "$debian/lib64" "$rootfs/"
    local admindir="$debian/var/lib/dpkg" pkg path dir
    mkdir -p "$rootfs/var/lib/dpkg/status.d"
    for pkg in $RUNTIME_PACKAGES base-files ca-certificates; do
        # The package's dpkg record, as distroless images keep them, so that image
        # scanners see which Debian packages (and versions) the image holds.
        dpkg-query --admindir="$admindir" -s "$pkg" >"$rootfs/var/lib/dpkg/status.d/$pkg"
        if [ -f "$debian/usr/share/doc/$pkg/copyright" ]; then
            mkdir -p "$rootfs/usr/share/doc/$pkg"
            cp "$debian/usr/share/doc/$pkg/copyright" "$rootfs/usr/share/doc/$pkg/"
        fi
    done
    for pkg in $RUNTIME_PACKAGES; do
        dpkg-query --admindir="$admindir" -L "$pkg" | while IFS= read -r path; do
            case "$path" in
                /usr/share/* | */gconv/* | /etc/*) continue ;; # docs, gdb helpers, iconv modules
            esac
            [ -L "$debian$path" ] || [ -f "$debian$path" ] || continue
            # The parent with /lib → usr/lib resolved, so the copy lands under usr/.
            dir="$(cd "$debian$(dirname "$path")" && pwd -P)"
            dir="${dir#"$debian"}"
            mkdir -p "$rootfs$dir"
            cp -a "$debian$path" "$rootfs$dir/"
        done
    done
    mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/usr/lib" "$rootfs/usr/local/bin" "$rootfs/tmp" \
        "$rootfs/home/nonroot"
    cp "$debian/etc/ssl/certs/ca-certificates.crt" "$rootfs/etc/ssl/certs/"
    cp "$debian/usr/lib/os-release" "$rootfs/usr/lib/os-release"
    ln -s ../usr/lib/os-release "$rootfs/etc/os-release"
    cp "$debian/etc/debian_version" "$rootfs/etc/debian_version"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
        >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
    chmod 1777 "$rootfs/tmp"
    chown 65532:65532 "$rootfs/home/nonroot"
    chmod 0700 "$rootfs/home/nonroot"

    local libc
    libc="$(dpkg-query --admindir="$admindir" -W -f='${Version}' libc6)"
    say "importing $BASE_IMAGE ($(du -sh "$rootfs" | cut -f1), glibc $libc)"
    tar --numeric-owner -C "$rootfs" -cf - . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/bin:/usr/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'USER 65532:65532' \
        --change 'WORKDIR /tmp' \
        --change "LABEL org.opencontainers.image.title=aperture-base org.opencontainers.image.description=\"Debian $SUITE runtime libraries ($RUNTIME_PACKAGES) and CA bundle, no shell\" org.opencontainers.image.version=$SUITE-glibc-$libc" \
        -m "debootstrap --variant=minbase $SUITE $mirror; runtime files only" \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$work"
    trap - EXIT
}

if [ "$REBUILD_BASE" = 1 ] || ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    make_base
else
    say "base image $BASE_IMAGE exists (--rebuild-base to make it again)"
fi
[ "$BASE_ONLY" = 1 ] && exit 0

# --- release binaries -------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BINARIES="aperture aperture-worker aperture-operator"
if [ "$NO_CARGO" = 0 ]; then
    say "cargo build --release (target dir $TARGET_DIR)"
    cargo build --release --locked -p aperture -p aperture-worker -p aperture-operator
fi
for b in $BINARIES; do
    [ -x "$TARGET_DIR/release/$b" ] ||
        die "$TARGET_DIR/release/$b is missing (run without --no-cargo, or set CARGO_TARGET_DIR)"
done

# --- images -----------------------------------------------------------------------
# The build context holds only the binaries (debug info stripped: the release profile's
# line tables make them ~6x larger; symbols stay, so backtraces still name functions).
CTX="$(mktemp -d "${TMPDIR:-/tmp}/aperture-images.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
for b in $BINARIES; do
    if command -v objcopy >/dev/null 2>&1; then
        objcopy --strip-debug "$TARGET_DIR/release/$b" "$CTX/$b"
    else
        say "warning: objcopy not found (binutils); $b keeps its debug info"
        cp "$TARGET_DIR/release/$b" "$CTX/$b"
    fi
    chmod 0755 "$CTX/$b"
done

build() { # build NAME
    local name="$1" tags=()
    tags=(-t "$name:$VERSION" -t "$name:dev")
    [ -n "$EXTRA_TAG" ] && tags+=(-t "$name:$EXTRA_TAG")
    say "building $name:$VERSION (revision $REVISION)"
    "$DOCKER" build --quiet -f "$ROOT/images/${name#aperture-}/Dockerfile" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --build-arg "VERSION=$VERSION" \
        --build-arg "REVISION=$REVISION" \
        --build-arg "SOURCE=$SOURCE" \
        --build-arg "LICENSES=$LICENSES" \
        --build-arg "CREATED=$CREATED" \
        "${tags[@]}" "$CTX" >/dev/null
}
build aperture-operator
build aperture-worker
# Earlier builds of these images, now untagged (only ours: filtered by source label).
"$DOCKER" image prune --force --filter "label=org.opencontainers.image.source=$SOURCE" >/dev/null

"$DOCKER" image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
    grep -E "^(aperture-operator|aperture-worker):$VERSION|^${BASE_IMAGE}" | sed 's/^/build-images:   /' || true
say "done: aperture-operator:$VERSION, aperture-worker:$VERSION (also :dev)"
