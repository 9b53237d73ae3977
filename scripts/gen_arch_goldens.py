#!/usr/bin/env python3
"""Regenerate the per-architecture goldens from llama.cpp (llama-cpp-python 0.3.36).

Two files, each read by engine-core/tests/arch_golden.rs:

- engine-core/tests/data/tiny_arch_golden.json: for every tiny model `engine-core
  write-tiny-model` writes (each architecture, Llama with Llama 3's rope_freqs too, several
  weight types), llama.cpp's greedy continuation and top-5 logits per step of fixed token-id
  prompts, one of them longer than Gemma 3's tiny sliding window.
- engine-core/tests/data/gemma3_golden.json: the same on the real Gemma 3 270M Q4_K_M
  (scripts/fetch-model.sh gemma3) for raw-text prompts, one longer than its 512-token sliding
  window. The file is the pretrained model (google/gemma-3-270m, not -it) and has no chat
  template, so there are no chat prompts: on a base model they only make it ramble through
  near-uniform distributions.

    scripts/build-llama-cpp.sh            # /tmp/llvenv with llama_cpp on the built libraries
    cargo build --release -p engine-core  # the tiny-model writer
    /tmp/llvenv/bin/python scripts/gen_arch_goldens.py [tiny|gemma3|all]
"""
import json
import os
import subprocess
import sys
import tempfile

import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "engine-core", "tests", "data")
ENGINE = os.path.join(ROOT, "target", "release", "engine-core")
TOP = 5

# (arch, rope_freqs, weight types)
TINY_MODELS = [
    ("llama", False, ["F16", "Q4_K", "Q5_0"]),
    ("llama", True, ["F32", "Q8_0", "Q5_K"]),
    ("qwen2", False, ["F32", "Q8_0", "Q6_K", "Q5_1"]),
    ("qwen3", False, ["F32", "Q4_0", "Q4_K", "Q3_K"]),
    ("gemma3", False, ["F32", "Q8_0", "Q4_K", "Q5_0", "Q2_K"]),
]
# Token-id prompts of the tiny vocabulary (3 specials, 256 byte symbols, merges): short, a
# medium one, and one of 40 tokens, past the tiny Gemma 3's 24-key window.
TINY_PROMPTS = [
    [1, 270, 275, 35, 260, 266],
    [0, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116],
    [1] + [3 + (i * 37) % 256 for i in range(39)],
]
TINY_NEW_TOKENS = 12

GEMMA_MODEL = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
GEMMA_NEW_TOKENS = 16
GEMMA_RAW = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):\n    ",
    "The three primary colors are",
    "1, 2, 3, 4, 5,",
    "Water boils at a temperature of",
    "The quick brown fox",
    "In machine learning, overfitting means",
]
# Longer than the 512-token window: the local layers must really drop the oldest keys.
GEMMA_LONG = " ".join(
    f"Item {i}: the {['red', 'green', 'blue', 'yellow'][i % 4]} box holds {i * 7 % 31} stones."
    for i in range(60)
) + " Question: what does the green box of item 5 hold? Answer:"


def top_k(row):
    idx = np.argsort(-row, kind="stable")[:TOP]
    return [[int(i), float(row[i])] for i in idx]


def run_ids(llm, ids, new_tokens):
    llm.reset()
    llm.eval(ids)
    steps, out = [], []
    for _ in range(new_tokens):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        steps.append(top_k(row))
        tok = int(np.argmax(row))
        out.append(tok)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
        llm.eval([tok])
    return {"prompt_ids": [int(i) for i in ids], "greedy_ids": out, "top5": steps}


def load(path, n_ctx):
    # An f32 KV cache (llama.cpp's default is f16): Journey keeps f32 keys and values, and the
    # reference should not add a rounding of its own.
    return llama_cpp.Llama(path, n_ctx=n_ctx, n_batch=1024, n_ubatch=1024, logits_all=True,
                           n_threads=2, verbose=False, seed=0,
                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)


def tiny():
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, rope_freqs, types in TINY_MODELS:
            for ty in types:
                path = os.path.join(tmp, f"tiny-{arch}-{ty}.gguf")
                cmd = [ENGINE, "write-tiny-model", "--arch", arch, "--weight-type", ty, "--out", path]
                if rope_freqs:
                    cmd.append("--rope-freqs")
                subprocess.run(cmd, check=True)
                llm = load(path, 256)
                cases = [run_ids(llm, p, TINY_NEW_TOKENS) for p in TINY_PROMPTS]
                del llm
                models.append({"arch": arch, "rope_freqs": rope_freqs, "weight_type": ty, "cases": cases})
                print(f"tiny {arch} {ty} rope_freqs={rope_freqs}: {[len(c['greedy_ids']) for c in cases]}")
    write("tiny_arch_golden.json", {"models": models})


def gemma3():
    llm = load(GEMMA_MODEL, 2048)
    cases = []
    for text in GEMMA_RAW + [GEMMA_LONG]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        cases.append({"kind": "raw", "text": text, **run_ids(llm, ids, GEMMA_NEW_TOKENS)})
    print(f"gemma3: prompt lengths {[len(c['prompt_ids']) for c in cases]}")
    write("gemma3_golden.json", {"cases": cases})


def write(name, body):
    body["meta"] = {"llama_cpp_python": llama_cpp.__version__, "generator": "scripts/gen_arch_goldens.py"}
    path = os.path.join(DATA, name)
    with open(path, "w") as f:
        json.dump(body, f, indent=None, separators=(",", ":"), ensure_ascii=False)
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("tiny", "all"):
        tiny()
    if which in ("gemma3", "all"):
        gemma3()
