#!/usr/bin/env bash
# The psql client is libpq itself: it needs only psql (Debian's postgresql-client), which the
# harness uses as its oracle too. Nothing is installed here; this checks that psql runs.
set -euo pipefail

if ! command -v psql >/dev/null 2>&1; then
    echo "psql not found on PATH; install it with: apt-get install -y postgresql-client" >&2
    exit 1
fi
if ! version="$(psql --version 2>&1)"; then
    echo "psql does not run: $version" >&2
    echo "install it with: apt-get install -y postgresql-client" >&2
    exit 1
fi
echo "psql client: $version"
