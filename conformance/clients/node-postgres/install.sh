#!/usr/bin/env bash
# Installs node-postgres (pg) from Debian's node-pg package into target/clients/node-postgres/.
#
# node-pg is a pure-JavaScript package, but installing it with apt drags in Debian's nodejs,
# which conflicts with a Node.js that came from elsewhere (as on machines with a nodesource
# build). So the package and the few pure-JavaScript packages it needs at run time are fetched
# with `apt-get download` and unpacked with `dpkg-deb -x` under target/; the client runs them
# through NODE_PATH. Nothing outside target/ is touched.
set -euo pipefail

root="$(cd "$(dirname "$0")/../../.." && pwd)"
out="$root/target/clients/node-postgres"
pkgs=(node-pg node-split2 node-xtend node-readable-stream)

command -v node >/dev/null || {
    echo "node-postgres install: node is not installed" >&2
    exit 1
}

candidate() { apt-cache policy node-pg 2>/dev/null | awk '/Candidate:/ {print $2}'; }
want="$(candidate)"
if { [ -z "$want" ] || [ "$want" = "(none)" ]; } && [ "$(id -u)" -eq 0 ]; then
    # A machine whose package lists were never fetched knows no package: fetch them once.
    apt-get -o DPkg::Lock::Timeout=600 update >&2
    want="$(candidate)"
fi
if [ -z "$want" ] || [ "$want" = "(none)" ]; then
    echo "node-postgres install: apt knows no node-pg (run apt-get update?)" >&2
    exit 1
fi
if [ -f "$out/VERSION" ] && [ "$(cat "$out/VERSION")" = "$want" ] \
    && [ -f "$out/root/usr/share/nodejs/pg/package.json" ]; then
    echo "node-pg $want (already unpacked)"
    exit 0
fi

rm -rf "$out/debs" "$out/root"
mkdir -p "$out/debs" "$out/root"
# apt's download sandbox user must be able to write there.
chmod 0777 "$out/debs"
(cd "$out/debs" && apt-get download "${pkgs[@]}")
for deb in "$out"/debs/*.deb; do
    dpkg-deb -x "$deb" "$out/root"
done
NODE_PATH="$out/root/usr/share/nodejs" node -e "require('pg')" >/dev/null
echo "$want" > "$out/VERSION"
echo "node-pg $want"
