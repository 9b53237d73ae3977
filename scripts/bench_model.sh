#!/usr/bin/env bash
# Model throughput, Journey vs llama.cpp, in one run on this machine (2 threads each):
# prompt processing (512-token prompt), single-stream decode (128 tokens), and 16-way batched
# decode. llama.cpp's single-stream numbers come from llama-cpp-python (n_threads=2); its
# batched figure from `llama-batched-bench` built from the llama.cpp sources vendored in the
# llama-cpp-python sdist. Set LLAMA_BATCHED_BENCH to that binary and LLAMA_PY to a python with
# llama_cpp installed; scripts/build-llama-cpp.sh makes both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
model="${JOURNEY_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
py="${LLAMA_PY:-/tmp/llvenv/bin/python}"
bb="${LLAMA_BATCHED_BENCH:-/tmp/llcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-batched-bench}"

cd "$root"
cargo build --release -p engine-core --bench model_throughput >/dev/null 2>&1
# The two sides alternate ROUNDS times (default 2) and each keeps its best figure per row:
# this VM's speed drifts by 20% over minutes, more than some of the differences measured.
rounds="${ROUNDS:-2}"

run_ours() { cargo bench -q -p engine-core --bench model_throughput -- --json 2>/dev/null | tail -n 1; }

run_theirs() { "$py" - "$model" <<'PY'
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
  "$bb" -m "$model" -c 4096 -b 2048 -ub 512 -npp 16 -ntg 128 -npl 16 -t 2 -tb 2 2>/dev/null \
    | awk -F'|' '$4+0==16 {gsub(/ /,"",$9); print $9}' | tail -n 1
}

all_ours=(); all_theirs=(); all_batched=()
for _ in $(seq "$rounds"); do
  all_ours+=("$(run_ours)")
  all_theirs+=("$(run_theirs)")
  all_batched+=("$(run_batched)")
done

python3 - "$rounds" "${all_ours[@]}" "${all_theirs[@]}" "${all_batched[@]}" <<'PY'
import json, sys
n = int(sys.argv[1])
args = sys.argv[2:]
runs_ours = [json.loads(a) for a in args[:n]]
runs_theirs = [json.loads(a) for a in args[n:2 * n]]
best = lambda runs, k: max(r[k] for r in runs)
ours = {k: best(runs_ours, k) for k in ("pp512", "tg128", "batched16")}
ours["simd"] = runs_ours[0]["simd"]
theirs = {k: best(runs_theirs, k) for k in ("pp512", "tg128")}
batched = max(float(a) for a in args[2 * n:3 * n])
print(f"best of {n} alternated rounds")
rows = [("prompt processing, 512 tokens", ours["pp512"], theirs["pp512"]),
        ("single-stream decode, 128 tokens", ours["tg128"], theirs["tg128"]),
        ("16-way batched decode, aggregate", ours["batched16"], batched)]
print(f"SmolLM2-135M Q4_1, 2 threads, journey simd={ours['simd']}")
print(f"{'':36} {'journey':>10} {'llama.cpp':>10} {'ratio':>7}")
for name, a, b in rows:
    print(f"{name:36} {a:10.1f} {b:10.1f} {a / b:6.2f}x")
PY
