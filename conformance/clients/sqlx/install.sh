#!/usr/bin/env bash
# Builds the sqlx client of the conformance kit into target/clients/sqlx/ (release: SCRAM's
# key derivation is slow in a debug build). Idempotent: cargo rebuilds only what changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
CARGO_TARGET_DIR="$root/target/clients/sqlx" \
    cargo build --release --locked --manifest-path conformance/clients/sqlx/Cargo.toml
