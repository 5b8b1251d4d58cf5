#!/usr/bin/env bash
# Builds a PostgreSQL image without a container registry: a Debian root file system made by
# debootstrap from the machine's own apt mirror, built into a local image FROM scratch with the
# entry point of docker-entrypoint.sh (the official image's contract).
#
#   conformance/image/build.sh [--force] [--keep-rootfs] [--repo NAME] MAJOR...
#
# MAJOR 15 comes from Debian 12 (bookworm), 17 from Debian 13 (trixie). The images are tagged
# NAME:MAJOR, NAME from --repo, else TEA_PG_IMAGE_REPO, else tea-pgcloud/postgres; an existing
# tag is kept unless --force. The root file system is built under target/pg-rootfs/MAJOR, packed
# into the build context of the Dockerfile beside this script (FROM scratch + ADD), and removed
# after the build (or a failed one) unless --keep-rootfs.
# Needs root (or sudo), debootstrap (installed when missing) and a Docker engine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root_dir=$(cd "$here/../.." && pwd)
force=0
keep=0
repo="${TEA_PG_IMAGE_REPO:-tea-pgcloud/postgres}"
majors=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --keep-rootfs) keep=1 ;;
    --repo)
      [ $# -ge 2 ] && [ -n "$2" ] || { echo "build.sh: --repo needs an image name" >&2; exit 2; }
      repo="$2"
      shift
      ;;
    --repo=*) repo="${1#--repo=}" ;;
    15 | 17) majors+=("$1") ;;
    *) echo "build.sh: unknown argument '$1' (majors: 15, 17)" >&2; exit 2 ;;
  esac
  shift
done
case "$repo" in
  "" | *:* | *[!a-z0-9._/-]*)
    echo "build.sh: bad image name '$repo' (lowercase name without a tag, e.g. tea-pgcloud/postgres)" >&2
    exit 2
    ;;
esac
[ ${#majors[@]} -gt 0 ] || majors=(15 17)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# The mirror is the machine's own: the first deb URI of its apt sources that is not the
# security archive. Nothing here names a host.
mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
      /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "build.sh: no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
    exit 1
  fi
  echo "$uri"
}

if ! docker info >/dev/null 2>&1; then
  echo "build.sh: no Docker engine answers (docker info failed)" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build.sh: installing debootstrap"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq debootstrap >/dev/null
fi
uri=$(mirror)

# A failed build (debootstrap, a full disk) leaves neither its root file system nor its build
# context behind; --keep-rootfs keeps the root file system.
rootfs=""
context=""
cleanup() {
  [ -z "$context" ] || $sudo rm -rf "$context"
  [ "$keep" -eq 1 ] || [ -z "$rootfs" ] || $sudo rm -rf "$rootfs"
}
trap cleanup EXIT

for major in "${majors[@]}"; do
  tag="$repo:$major"
  if [ "$force" -eq 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "build.sh: $tag present (--force rebuilds it)"
    continue
  fi
  case "$major" in
    15) suite=bookworm ;;
    17) suite=trixie ;;
  esac
  rootfs="$root_dir/target/pg-rootfs/$major"
  started=$(date +%s)
  echo "build.sh: debootstrap $suite with postgresql-$major from $uri"
  $sudo rm -rf "$rootfs"
  mkdir -p "$rootfs"
  $sudo debootstrap --variant=minbase --include="postgresql-$major,ca-certificates" \
    "$suite" "$rootfs" "$uri" >"$root_dir/target/pg-rootfs/debootstrap-$major.log" 2>&1 || {
    echo "build.sh: debootstrap failed; the last lines of target/pg-rootfs/debootstrap-$major.log:" >&2
    tail -20 "$root_dir/target/pg-rootfs/debootstrap-$major.log" >&2
    exit 1
  }
  # The package's own cluster and what an image does not need.
  $sudo rm -rf "$rootfs/var/lib/postgresql/$major" "$rootfs/etc/postgresql/$major" \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
  $sudo install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"
  $sudo mkdir -p "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/lib/postgresql/data"
  $sudo chroot "$rootfs" chown postgres:postgres /var/lib/postgresql/data
  version=$($sudo chroot "$rootfs" "/usr/lib/postgresql/$major/bin/postgres" --version)
  old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  context="$root_dir/target/pg-rootfs/context-$major"
  $sudo rm -rf "$context"
  mkdir -p "$context"
  $sudo tar -C "$rootfs" --numeric-owner -cf "$context/rootfs.tar" .
  cp "$here/Dockerfile" "$context/Dockerfile"
  docker build --quiet --build-arg "PG_MAJOR=$major" \
    --build-arg "DESCRIPTION=$version on Debian $suite, built by tea-pgcloud conformance/image/build.sh" \
    -t "$tag" "$context" >/dev/null
  $sudo rm -rf "$context"
  # The tag now names the new image; the one it named before (if any, and if no other tag or
  # container still uses it) goes.
  new_id=$(docker image inspect --format '{{.Id}}' "$tag")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  [ "$keep" -eq 1 ] || $sudo rm -rf "$rootfs"
  size=$(docker image inspect --format '{{.Size}}' "$tag")
  echo "build.sh: $tag ($version, $((size / 1000000)) MB) built in $(($(date +%s) - started)) s"
done
