#!/usr/bin/env bash
# Installs the system packages the test suite and the conformance matrix need, when missing:
#   libpq-dev         libpq itself, the oracle the property tests compare our parser with
#   libclang-dev      bindgen, which generates the libpq bindings of the `libpq` dev-dependency
#   pkg-config        finds libpq for those bindings
#   openssl           the certificate factory's tests check certificates with `openssl verify`
#   time              GNU time (/usr/bin/time): tests/hostile_server.rs reads each client's peak
#                     RSS from its `-f %M`
#   postgresql        server binaries (initdb, pg_ctl, postgres) for the throwaway servers, and
#                     psql, the libpq oracle of the TLS matrix (only if no server binaries exist)
# Debian / Ubuntu only; runs apt-get as root, or through sudo.
set -euo pipefail

packages=(libpq-dev libclang-dev pkg-config openssl time)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql postgresql-client)
fi
if ! command -v psql >/dev/null 2>&1; then
  missing+=(postgresql-client)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: system packages present (${packages[*]}, PostgreSQL server binaries, psql)"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]}"
