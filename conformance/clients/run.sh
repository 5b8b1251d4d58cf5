#!/usr/bin/env bash
# Installs the named shipped clients (each folder's install.sh) and runs the live TLS matrix
# through all of them in one run, on shared servers:
#
#   conformance/clients/run.sh [--out DIR] NAME...      e.g. tea-pgcloud psql psycopg asyncpg
#   conformance/clients/run.sh --all [--out DIR]        every folder with a client.yaml
#
# Writes DIR/clients.json and DIR/clients.html (default DIR: target/conformance-clients).
# Exit status: the harness's (0 every client passes its expectations, 1 not, 2 could not run);
# a client whose install.sh fails makes the run fail before it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/conformance-clients
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --all)
      for manifest in conformance/clients/*/client.yaml; do
        names+=("$(basename "$(dirname "$manifest")")")
      done
      shift ;;
    *) names+=("$1"); shift ;;
  esac
done
if [ ${#names[@]} -eq 0 ]; then
  echo "usage: conformance/clients/run.sh [--out DIR] (--all | NAME...)" >&2
  exit 2
fi
mkdir -p "$out"
cargo build --quiet --features conformance
args=()
for name in "${names[@]}"; do
  dir="conformance/clients/$name"
  if [ ! -f "$dir/client.yaml" ]; then
    echo "run.sh: $dir/client.yaml: no such client" >&2
    exit 2
  fi
  if [ -x "$dir/install.sh" ]; then
    echo "=== install $name"
    "$dir/install.sh"
  fi
  args+=(--client "$dir")
done
echo "=== the TLS matrix through: ${names[*]}"
exec target/debug/tea-pgcloud conformance "${args[@]}" \
  --json "$out/clients.json" --html "$out/clients.html"
