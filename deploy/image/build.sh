#!/usr/bin/env bash
# Build the `leanfarm` image (deploy/image/Containerfile) with buildah, on a
# local Debian base made by debootstrap: no container registry is reachable
# where the farm is developed, so the base cannot be pulled.
#
#   deploy/image/build.sh [TAG]      default TAG: localhost/leanfarm:dev
#
# Environment:
#   LEANFARM_BINARY  the leanfarm binary to copy in (default: build it with
#                    `cargo build -p leanfarm` and take it from CARGO_TARGET_DIR)
#   IMAGE_CACHE      where the debootstrap root filesystem is kept
#                    (default /var/tmp/leanfarm-image)
#   DEBIAN_MIRROR    (default http://deb.debian.org/debian)
#
# The base is tagged localhost/leanfarm-base:bookworm and passed to the
# Containerfile by digest (BASE_IMAGE=NAME@sha256:...), as public CI does
# with a registry base. Prints the image's tag on its last line.
# Needs root, buildah and debootstrap; it never pushes anything.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tag="${1:-localhost/leanfarm:dev}"
base_tag="localhost/leanfarm-base:bookworm"
cache="${IMAGE_CACHE:-/var/tmp/leanfarm-image}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

fail() { echo "build.sh: $*" >&2; exit 1; }
command -v buildah >/dev/null || fail "buildah is not installed (apt-get install buildah)"
[ -f /etc/containers/policy.json ] || fail "/etc/containers/policy.json is missing (see /work/shared/TOOLS.md)"

# 1. The base: a minimal Debian made by debootstrap, imported once.
if ! buildah inspect --type image "$base_tag" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
  if [ ! -d "$cache/rootfs" ]; then
    mkdir -p "$cache"
    rm -rf "$cache/rootfs.tmp"
    echo "build.sh: debootstrap bookworm into $cache/rootfs" >&2
    debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" "$mirror" >&2
    mv "$cache/rootfs.tmp" "$cache/rootfs"
  fi
  container="$(buildah from scratch)"
  mount_point="$(buildah mount "$container")"
  cp -a "$cache/rootfs/." "$mount_point/"
  # Nothing the image needs at run time: package caches and docs.
  rm -rf "$mount_point/var/cache/apt/archives/"*.deb "$mount_point/usr/share/doc" "$mount_point/usr/share/man"
  buildah umount "$container" >/dev/null
  buildah commit --rm "$container" "$base_tag" >&2
fi
base_digest="$(buildah inspect --type image --format '{{.FromImageDigest}}' "$base_tag")"
case "$base_digest" in
  sha256:*) ;;
  *) fail "could not read the digest of $base_tag (got '$base_digest')" ;;
esac

# 2. The binary, built outside the image.
binary="${LEANFARM_BINARY:-}"
if [ -z "$binary" ]; then
  (cd "$repo" && cargo build -q -p leanfarm --bin leanfarm) >&2
  binary="${CARGO_TARGET_DIR:-$repo/target}/debug/leanfarm"
fi
[ -x "$binary" ] || fail "no executable leanfarm binary at $binary"

# 3. The image, from a context holding only the binary.
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/leanfarm"
# chroot isolation: the OCI runtime (crun) cannot create containers on
# every host (cgroup v1/hybrid); the one RUN step only checks the binary
# starts on the base.
buildah bud --quiet --layers=false --isolation chroot \
  --build-arg "BASE_IMAGE=$base_tag@$base_digest" \
  --build-arg "LEANFARM_BINARY=leanfarm" \
  -f "$repo/deploy/image/Containerfile" -t "$tag" "$context" >&2
echo "$tag"
