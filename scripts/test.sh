#!/usr/bin/env bash
# Runs every check and test Journey has: formatting, lints, unit and integration tests (on the
# tiny model and on the real SmolLM2, which this script fetches if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== model"
scripts/fetch-model.sh

echo "== test dependencies"
scripts/test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

echo "== build the binaries the end-to-end tests start"
cargo build --release --workspace --bins

echo "== cargo test"
cargo test --release --workspace --no-fail-fast
