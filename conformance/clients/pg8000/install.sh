#!/usr/bin/env bash
# Installs pg8000 1.31.6, with its dependencies pinned too (the versions pip chose when the
# expectations were written), into target/clients/pg8000/site (never the system site-packages);
# client.py puts that folder at the front of sys.path. Idempotent: nothing happens when the
# exact version is already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
site="$root/target/clients/pg8000/site"
want="1.31.6"

have="$(python3 - "$site" pg8000 <<'PY'
import importlib.metadata as m, sys
site, name = sys.argv[1], sys.argv[2]
print(next((d.version for d in m.distributions(path=[site])
            if (d.metadata["Name"] or "").lower() == name), ""))
PY
)"
if [ "$have" = "$want" ]; then
    echo "pg8000 client: pg8000 $want already in $site"
    exit 0
fi

rm -rf "$site"
mkdir -p "$site"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --disable-pip-version-check --no-input --quiet \
    --no-warn-conflicts --no-deps \
    --target "$site" 'pg8000==1.31.6' 'scramp==1.5.0' 'asn1crypto==1.5.1' \
    'python-dateutil==4.0.0' 'tzdata==2026.6'
PYTHONPATH="$site" python3 - <<'PY'
import pg8000
print("pg8000", pg8000.__version__)
PY
echo "pg8000 client: pg8000 $want installed in $site"
