#!/usr/bin/env bash
# Builds the tokio-postgres client of the conformance kit into target/clients/tokio-postgres/ (release: SCRAM's
# key derivation is slow in a debug build). Idempotent: cargo rebuilds only what changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
CARGO_TARGET_DIR="$root/target/clients/tokio-postgres" \
    cargo build --release --locked --manifest-path conformance/clients/tokio-postgres/Cargo.toml
