#!/usr/bin/env bash
# Installs Go and pgx v4 from Debian and builds the pgx client offline (GOPATH mode against
# Debian's /usr/share/gocode) into target/clients/pgx/client.
set -euo pipefail

root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="$root/target/clients/pgx"

need=()
for pkg in golang-go golang-github-jackc-pgx-v4-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "pgx install: need root to install ${need[*]}" >&2
        exit 1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
    }
    # A machine whose package lists were never fetched knows no package: fetch them once.
    apt_install "${need[@]}" || { apt-get -o DPkg::Lock::Timeout=600 update && apt_install "${need[@]}"; }
fi

mkdir -p "$out"
cd "$root"
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$out/go-cache" CGO_ENABLED=0 \
    go build -o "$out/client.new" conformance/clients/pgx/main.go
mv -f "$out/client.new" "$out/client"
dpkg-query -W -f='pgx ${Version}\n' golang-github-jackc-pgx-v4-dev
