#!/usr/bin/env bash
# The main job: fetch the model if missing, build, start engine-core and api-gateway with
# journey tracing on, exporting to the embedded default (OTLP-JSON lines in traces/), and
# print a curl example. Ctrl-C stops both (their spans are flushed on the way out).
# Set JOURNEY_OTLP_TRACES_ENDPOINT=http://HOST:4317 to send traces to Tempo or a collector.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/fetch-model.sh
# The same feature set as scripts/test.sh, so the two share build artifacts.
cargo build --release --workspace --bins
model="${JOURNEY_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
engine_addr="${JOURNEY_ENGINE_LISTEN:-127.0.0.1:50051}"
gateway_addr="${JOURNEY_LISTEN:-127.0.0.1:8000}"
export JOURNEY_TRACES_FILE="${JOURNEY_TRACES_FILE:-$root/traces/journey-traces.jsonl}"
mkdir -p "$(dirname "$JOURNEY_TRACES_FILE")"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Starts "$@" in the background and waits for its "listening" line on stdout.
start() {
  local fifo
  fifo=$(mktemp -u)
  mkfifo "$fifo"
  "$@" >"$fifo" &
  pids+=($!)
  while IFS= read -r line; do
    echo "$line"
    case "$line" in *"listening on"*) break ;; esac
  done <"$fifo"
  cat "$fifo" >/dev/null &
  rm -f "$fifo"
}

start target/release/engine-core serve --model "$model" --listen "$engine_addr" \
  --enable-journey-tracing --step-tracing-enabled
start target/release/api-gateway --engine "http://$engine_addr" --listen "$gateway_addr" \
  --enable-journey-tracing

cat <<MSG

Journey is up. Try:
  curl -s http://$gateway_addr/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 32}'
Metrics: http://$gateway_addr/metrics and http://127.0.0.1:9090/metrics
Traces:  $JOURNEY_TRACES_FILE (docs/journey-tracing.md explains them)
Ctrl-C stops both services.
MSG
wait
