#!/usr/bin/env python3
"""Writes engine-core/tests/data/tokenizer_golden.json: llama.cpp's view of a model's tokenizer.

For a mixed corpus it records, per string, the ids of llama.cpp's
`llama_tokenize(text, add_special, parse_special=True)` with add_special false and true, and the
detokenized text (each token's `llama_token_to_piece`, concatenated) with special tokens rendered
and with them hidden. It also records the vocabulary facts the Rust tokenizer must reproduce
(vocab size, BOS/EOS ids, add_bos, the end-of-generation set) and the model's chat template
rendered with Jinja2 exactly as llama-cpp-python's `Jinja2ChatFormatter` does.

Usage (needs llama-cpp-python and jinja2):
    python scripts/gen_tokenizer_goldens.py [--model PATH] [--out PATH]
"""

import argparse
import ctypes
import json
import os
import sys

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(ROOT, "engine-core", "tests", "data", "tokenizer_golden.json")

CORPUS = [
    # empty and plain ASCII prose
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "It's a test: don't, won't, they're, we've, I'm, you'll, he'd. IT'S LOUD!",
    "Punctuation!!! ... ??? (parens) [brackets] {braces} <angles> \"quotes\" 'single' `back`",
    "email: someone@example.com, url: https://example.org/path?q=1&r=2#frag",
    # unicode: accents, CJK, RTL, mixed scripts
    "naïve café, résumé, Ångström, façade, jalapeño, Straße",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "مرحبا بالعالم — שלום עולם",
    "Ελληνικά, русский язык, ภาษาไทย, हिन्दी",
    "Math: ∑ᵢ xᵢ² ≤ ∞, ½ + ¼ = ¾, π ≈ 3.14159",
    # emoji, including ZWJ sequences, flags and skin tones
    "Emoji: 😀😃😄 🎉 ❤️ 👍🏽",
    "Family 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 🇫🇷🇯🇵 flags",
    "🤖",
    # code with tabs and indentation
    "def main():\n    for i in range(10):\n        print(f\"{i:>3}\")\n    return 0\n",
    "fn add(a: i32, b: i32) -> i32 {\n\treturn a + b;\n}\n",
    "if (x) {\n\t\tfoo();\n\t} else {\n\t\tbar(); // comment\n\t}",
    "<div class=\"x\">&nbsp;</div>\n<!-- html -->",
    # whitespace runs
    "\n\n\n",
    "trailing spaces   ",
    "   leading spaces",
    "a  b   c    d     e",
    "line one\n\nline two\r\nline three\n",
    "\t\t\ttabs\t \t mixed \n \n",
    " ",
    "\u00a0non-breaking\u2003em-space\u3000ideographic",
    # digits and long numbers
    "1234567890",
    "Numbers: 3.14159, 2,718,281, -42, 1e10, 0x1F, 007",
    "The year 2024 had 366 days; 12345678901234567890 is long.",
    "v1.2.3-rc4 and 10:30pm on 2024-02-29",
    # special tokens
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|endoftext|>more text<|im_end|>",
    "<|im_start|><|im_end|><|im_start|>",
    "almost special <|im_start and <im_start|> and <|im_end |>",
    "<repo_name>journey<file_sep>src/main.rs<reponame>x",
    # assorted edge cases
    "a",
    "!",
    "don't stop",
    "ALLCAPS and MiXeD CaSe",
    "\u200bzero\u200dwidth\ufeffbom",
]

CHATS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hello!"}],
    [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3? Answer in 日本語 😀"},
    ],
    [{"role": "user", "content": "  spaces  \n\nand newlines\n"}],
]


def piece(vocab, token, special):
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:n]


def detokenize(vocab, ids, special):
    return b"".join(piece(vocab, t, special) for t in ids).decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("JOURNEY_MODEL", DEFAULT_MODEL))
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"model {args.model} not found: run scripts/fetch-model.sh")

    llm = Llama(model_path=args.model, vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)

    def text_of(tok):
        if tok < 0:
            return ""
        return llama_cpp.llama_vocab_get_text(vocab, tok).decode("utf-8")

    cases = []
    for s in CORPUS:
        ids = llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)
        ids_add = llm.tokenize(s.encode("utf-8"), add_bos=True, special=True)
        cases.append(
            {
                "text": s,
                "ids": ids,
                "ids_add_special": ids_add,
                "detok": detokenize(vocab, ids, True),
                "detok_skip_special": detokenize(vocab, ids, False),
            }
        )

    bos = llama_cpp.llama_vocab_bos(vocab)
    eos = llama_cpp.llama_vocab_eos(vocab)
    eog = [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]

    template = llm.metadata.get("tokenizer.chat_template")
    chats = []
    if template is not None:
        for messages in CHATS:
            for add_gen in (True, False):
                fmt = Jinja2ChatFormatter(
                    template=template,
                    eos_token=text_of(eos),
                    bos_token=text_of(bos),
                    add_generation_prompt=add_gen,
                )
                chats.append(
                    {
                        "messages": messages,
                        "add_generation_prompt": add_gen,
                        "prompt": fmt(messages=messages).prompt,
                    }
                )

    out = {
        "generator": "scripts/gen_tokenizer_goldens.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model": os.path.basename(args.model),
        "n_vocab": n_vocab,
        "bos_id": bos if bos >= 0 else None,
        "eos_id": eos if eos >= 0 else None,
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "eog_ids": eog,
        "cases": cases,
        "chat_template": template,
        "bos_token": text_of(bos),
        "eos_token": text_of(eos),
        "chats": chats,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases and {len(chats)} chat renders to {args.out}")


if __name__ == "__main__":
    main()
