#!/usr/bin/env bash
# Runs every check and test Journey has: formatting, lints, unit and integration tests (on the
# tiny models and on the real SmolLM2 and Gemma 3 270M, which this script fetches if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

echo "== models"
scripts/fetch-model.sh
scripts/fetch-model.sh gemma3

echo "== test dependencies"
scripts/test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

echo "== cargo clippy --features cuda (the CUDA backend; no GPU needed to build it)"
cargo clippy --release -p kernels -p engine-core --features cuda --all-targets -- -D warnings

echo "== kernels' micro-benchmarks (feature bench-internals; built, not run)"
cargo clippy --release -p kernels --features bench-internals --all-targets -- -D warnings

echo "== engine-core without the journey feature (tracing compiled out: the no-op observer)"
cargo clippy --release -p engine-core --no-default-features --all-targets -- -D warnings
cargo test --release -p engine-core --no-default-features --lib

echo "== CUDA kernels: NVRTC compile (sm_80, sm_90), ptxas, entry points (GPU parity: #[ignore]d, needs a device)"
nvidia=$(ls -d "$root"/.venv-test/lib/python3*/site-packages/nvidia)
cuda_env=(env LD_LIBRARY_PATH="$nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  JOURNEY_PTXAS="$nvidia/cuda_nvcc/bin/ptxas" JOURNEY_REQUIRE_NVRTC=1)
"${cuda_env[@]}" cargo test --release -p kernels --features cuda --test cuda_compile --test parity -- --nocapture
# cuda_parity's tests are #[ignore]d (they need a device; the summary lists them); the CLI's
# no-driver start-up error is reachable only in a cuda build, so it runs here too.
"${cuda_env[@]}" cargo test --release -p engine-core --features cuda --test cuda_parity --test cli -- --nocapture

echo "== build the binaries the end-to-end tests start"
cargo build --release --workspace --bins

echo "== cargo test"
cargo test --release --workspace --no-fail-fast
