#!/usr/bin/env bash
# Installs psycopg 3.3.9, the pure-Python package (not psycopg[binary], which bundles its own
# libpq), into target/clients/psycopg/site (never the system site-packages), so that it runs
# on the system libpq (Debian's libpq5); client.py puts that folder at the front of sys.path.
# Idempotent: nothing happens when the exact version is already there.
set -euo pipefail

if ! python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("pq") else 1)'; then
    echo "psycopg client: libpq not found; install it with: apt-get install -y libpq5" >&2
    exit 1
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
site="$root/target/clients/psycopg/site"
want="3.3.9"

have="$(python3 - "$site" psycopg <<'PY'
import importlib.metadata as m, sys
site, name = sys.argv[1], sys.argv[2]
print(next((d.version for d in m.distributions(path=[site])
            if (d.metadata["Name"] or "").lower() == name), ""))
PY
)"
if [ "$have" = "$want" ]; then
    echo "psycopg client: psycopg $want already in $site"
    exit 0
fi

rm -rf "$site"
mkdir -p "$site"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-input --quiet \
    --no-warn-conflicts --no-deps \
    --target "$site" 'psycopg==3.3.9' 'typing_extensions==4.16.0'
PSYCOPG_IMPL=python PYTHONPATH="$site" python3 - <<'PY'
import psycopg
print("psycopg", psycopg.__version__, "libpq", psycopg.pq.version(),
      "implementation", psycopg.pq.__impl__)
PY
echo "psycopg client: psycopg $want installed in $site"
