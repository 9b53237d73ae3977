#!/usr/bin/env bash
# Installs what the integration tests drive Journey with (idempotent): nothing yet beyond the
# Rust toolchain and Python 3 the machine has.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
