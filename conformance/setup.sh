#!/usr/bin/env bash
# Installs the system packages the test suite needs, when they are missing:
#   libpq-dev     libpq itself, the oracle the property tests compare our parser with
#   libclang-dev  bindgen, which generates the libpq bindings of the `libpq` dev-dependency
# Debian / Ubuntu only; runs apt-get as root, or through sudo.
set -euo pipefail

packages=(libpq-dev libclang-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: system packages present (${packages[*]})"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
echo "setup: installed ${missing[*]}"
