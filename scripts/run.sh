#!/usr/bin/env bash
# The main job: fetch the model if missing, build, run Journey.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/fetch-model.sh
cargo build --release -p engine-core
model="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
prompt="${1:-What is the capital of France?}"
echo "== engine-core generate --chat: $prompt"
exec target/release/engine-core generate --model "$model" --prompt "$prompt" --chat --max-tokens 64
