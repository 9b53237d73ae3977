#!/usr/bin/env python3
"""Regenerate engine-core/tests/data/smollm2_golden.json from llama.cpp (llama-cpp-python).

For each prompt (raw text and chat-templated): llama.cpp's prompt token ids, its greedy
continuation, and the top-5 logits of every step (the distribution after the prompt, then after
each greedy token). The Rust tests compare Journey against these; only this script writes them.

    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install llama-cpp-python==0.3.36 jinja2 numpy
    /tmp/llvenv/bin/python scripts/gen_model_goldens.py [models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""
import json
import os
import sys

import jinja2
import llama_cpp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "engine-core", "tests", "data", "smollm2_golden.json")
NEW_TOKENS = 24
TOP = 5

RAW = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):\n    ",
    "The three primary colors are",
    "Water boils at a temperature of",
    "1, 2, 3, 4, 5,",
    "The quick brown fox",
    "In machine learning, overfitting means",
]
CHAT = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "How many legs does a spider have?",
    "Explain what a CPU does in one sentence.",
    "Translate 'good morning' into Spanish.",
    "List three fruits.",
    "What is 12 times 12?",
    "Who wrote Romeo and Juliet?",
]


def render_chat(template: str, content: str) -> str:
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=False, lstrip_blocks=False)
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(Exception(m))
    return env.from_string(template).render(
        messages=[{"role": "user", "content": content}], add_generation_prompt=True, bos_token="", eos_token=""
    )


def top_k(row: np.ndarray):
    idx = np.argsort(-row, kind="stable")[:TOP]
    return [[int(i), float(row[i])] for i in idx]


def run(llm: llama_cpp.Llama, text: str):
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    llm.reset()
    llm.eval(ids)
    steps, out = [], []
    eog = {llama_cpp.llama_vocab_eos(llm._model.vocab)}
    for _ in range(NEW_TOKENS):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        steps.append(top_k(row))
        tok = int(np.argmax(row))
        out.append(tok)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
        llm.eval([tok])
    return {"prompt_ids": [int(i) for i in ids], "greedy_ids": out, "top5": steps}


def main():
    llm = llama_cpp.Llama(MODEL, n_ctx=1024, n_batch=512, logits_all=True, n_threads=2, verbose=False, seed=0)
    template = llm.metadata["tokenizer.chat_template"]
    cases = []
    for p in RAW:
        cases.append({"kind": "raw", "text": p, **run(llm, p)})
    for p in CHAT:
        rendered = render_chat(template, p)
        cases.append({"kind": "chat", "text": p, "rendered": rendered, **run(llm, rendered)})
    meta = {"llama_cpp_python": llama_cpp.__version__, "model": os.path.basename(MODEL), "new_tokens": NEW_TOKENS}
    with open(OUT, "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, indent=1, ensure_ascii=False)
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
