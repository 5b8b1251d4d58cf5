#!/usr/bin/env bash
# Installs asyncpg 0.32.0 into target/clients/asyncpg/site (never the system site-packages);
# client.py puts that folder at the front of sys.path. Idempotent: nothing happens when the
# exact version is already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
site="$root/target/clients/asyncpg/site"
want="0.32.0"

have="$(python3 - "$site" asyncpg <<'PY'
import importlib.metadata as m, sys
site, name = sys.argv[1], sys.argv[2]
print(next((d.version for d in m.distributions(path=[site])
            if (d.metadata["Name"] or "").lower() == name), ""))
PY
)"
if [ "$have" = "$want" ]; then
    echo "asyncpg client: asyncpg $want already in $site"
    exit 0
fi

rm -rf "$site"
mkdir -p "$site"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-input --quiet \
    --no-warn-conflicts \
    --target "$site" 'asyncpg==0.32.0'
PYTHONPATH="$site" python3 - <<'PY'
import asyncpg
print("asyncpg", asyncpg.__version__)
PY
echo "asyncpg client: asyncpg $want installed in $site"
