#!/usr/bin/env bash
# Model throughput, Journey vs llama.cpp, in one run on this machine (2 threads each), for
# several models: prompt processing (512-token prompt), single-stream decode (128 tokens), and
# 16-way batched decode (Journey's default f32 KV cache, and f16 as llama.cpp stores it by
# default and as `--kv-cache-dtype f16` does); single-stream decode also as a fraction of the memory-bandwidth bound
# (measured read bandwidth / weight bytes one token reads). llama.cpp's single-stream numbers
# come from llama-cpp-python (n_threads=2); its batched figure from `llama-batched-bench` built
# from the llama.cpp sources vendored in the llama-cpp-python sdist. scripts/build-llama-cpp.sh
# builds both (and llama-quantize); LLAMA_PY, LLAMA_BATCHED_BENCH and LLAMA_QUANTIZE point
# elsewhere.
#
# MODELS (space-separated GGUF paths) picks the models; the default is SmolLM2 Q4_1, Gemma 3
# 270M Q4_K_M (scripts/fetch-model.sh gemma3), and SmolLM2 requantized to Q4_K_M and Q6_K with
# llama-quantize (made under models/ if missing). ROUNDS (default 2): the two sides alternate
# that many times per model and each keeps its best figure per row.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py="${LLAMA_PY:-/tmp/llvenv/bin/python}"
bin="/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin"
bb="${LLAMA_BATCHED_BENCH:-$bin/llama-batched-bench}"
quantize="${LLAMA_QUANTIZE:-$bin/llama-quantize}"
rounds="${ROUNDS:-2}"
cd "$root"

smollm="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
requant() { # requant TYPE: SmolLM2 in another llama.cpp preset, made once.
  local out="$root/models/SmolLM2-135M-Instruct.$1.gguf"
  if [ ! -s "$out" ]; then
    "$quantize" --allow-requantize "$smollm" "$out" "$1" >/dev/null 2>&1
  fi
  echo "$out"
}
if [ -z "${MODELS:-}" ]; then
  scripts/fetch-model.sh >/dev/null
  scripts/fetch-model.sh gemma3 >/dev/null
  MODELS="$smollm $root/models/gemma-3-270m-q4_k_m.gguf $(requant Q4_K_M) $(requant Q6_K)"
fi

cargo build --release -p engine-core --bench model_throughput >/dev/null 2>&1

run_ours() { JOURNEY_MODEL="$1" cargo bench -q -p engine-core --bench model_throughput -- --json 2>/dev/null | tail -n 1; }

run_theirs() { "$py" - "$1" <<'PY'
import json, sys, time
import llama_cpp
m = sys.argv[1]
llm = llama_cpp.Llama(m, n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2, verbose=False)
toks = [(i * 2654435761 + 7919) % 49000 + 50 for i in range(512)]
best = 1e9
for _ in range(3):
    llm.reset(); t = time.perf_counter(); llm.eval(toks); best = min(best, time.perf_counter() - t)
pp = 512 / best
llm.reset(); llm.eval(toks[:16]); tok = 100
t = time.perf_counter()
for _ in range(128):
    llm.eval([tok])
tg = 128 / (time.perf_counter() - t)
print(json.dumps({"pp512": pp, "tg128": tg}))
PY
}

run_batched() {
  # Columns: | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
  "$bb" -m "$1" -c 4096 -b 2048 -ub 512 -npp 16 -ntg 128 -npl 16 -t 2 -tb 2 2>/dev/null \
    | awk -F'|' '$4+0==16 {gsub(/ /,"",$9); print $9}' | tail -n 1
}

echo "best of $rounds alternated rounds per model, 2 threads each"
for model in $MODELS; do
  all_ours=(); all_theirs=(); all_batched=()
  for _ in $(seq "$rounds"); do
    all_ours+=("$(run_ours "$model")")
    all_theirs+=("$(run_theirs "$model")")
    all_batched+=("$(run_batched "$model")")
  done
  python3 - "$model" "$rounds" "${all_ours[@]}" "${all_theirs[@]}" "${all_batched[@]}" <<'PY'
import json, os, sys
model, n = os.path.basename(sys.argv[1]), int(sys.argv[2])
args = sys.argv[3:]
runs_ours = [json.loads(a) for a in args[:n]]
runs_theirs = [json.loads(a) for a in args[n:2 * n]]
best = lambda runs, k: max(r[k] for r in runs)
ours = {k: best(runs_ours, k)
        for k in ("pp512", "tg128", "batched16", "batched16_f16kv", "read_bandwidth")}
theirs = {k: best(runs_theirs, k) for k in ("pp512", "tg128")}
batched = max(float(a) for a in args[2 * n:3 * n])
per_token = runs_ours[0]["weight_bytes_per_token"]
bound = ours["read_bandwidth"] / per_token
rows = [("prompt processing, 512 tokens", ours["pp512"], theirs["pp512"]),
        ("single-stream decode, 128 tokens", ours["tg128"], theirs["tg128"]),
        ("16-way batched decode, aggregate", ours["batched16"], batched),
        ("  the same, both with f16 KV cache", ours["batched16_f16kv"], batched)]
print(f"\n{model} (journey simd={runs_ours[0]['simd']})")
print(f"{'':36} {'journey':>10} {'llama.cpp':>10} {'ratio':>7}")
for name, a, b in rows:
    print(f"{name:36} {a:10.1f} {b:10.1f} {a / b:6.2f}x")
print(f"decode bound: {per_token / 1e6:.1f} MB of weights per token at "
      f"{ours['read_bandwidth'] / 1e9:.1f} GB/s = {bound:.0f} tok/s; journey at "
      f"{ours['tg128'] / bound:.0%} of it, llama.cpp at {theirs['tg128'] / bound:.0%}")
PY
done
