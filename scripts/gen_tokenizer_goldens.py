#!/usr/bin/env python3
"""Writes the tokenizer and chat-template goldens of engine-core/tests/data/ from llama.cpp.

- tokenizer_golden.json (SmolLM2, byte-level BPE): for a mixed corpus, the ids of llama.cpp's
  `llama_tokenize(text, add_special, parse_special=True)` with add_special false and true, and the
  detokenized text (each token's `llama_token_to_piece`, concatenated) with special tokens
  rendered and hidden; the vocabulary facts (vocab size, BOS/EOS ids, add_bos, end-of-generation
  set) and the model's chat template rendered with Jinja2 as llama-cpp-python's
  `Jinja2ChatFormatter` does.
- tokenizer_golden_gemma3.json (Gemma 3 270M, SentencePiece): the same per string for
  add_special x parse_special, plus `llama_detokenize` with its remove/unparse flags, the
  vocabulary facts, and llama.cpp's built-in "gemma" chat format (`llama_chat_apply_template`,
  which is what the file gets: it has no `tokenizer.chat_template`).
- tokenizer_golden_tiny.json: tiny vocabularies written here as GGUF files (metadata only) and
  loaded by llama.cpp: a byte-level BPE vocabulary with merges trained on the corpus, once per
  `tokenizer.ggml.pre` Journey implements, and a SentencePiece vocabulary with default keys. The
  JSON holds the metadata itself so the Rust test writes the same files.
- chat_template_golden.json: llama.cpp's official templates (models/templates/*.jinja of the
  vendored source) for Llama 3.x, Qwen 2.5/3 and Gemma 2, rendered with Jinja2 as above.

Usage (python of scripts/build-llama-cpp.sh's venv: llama-cpp-python and jinja2):
    python scripts/gen_tokenizer_goldens.py [--model PATH] [--gemma PATH] [--llama-cpp-src DIR]
"""

import argparse
import ctypes
import functools
import json
import os
import struct
import sys
import tempfile

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DATA = os.path.join(ROOT, "engine-core", "tests", "data")
DEFAULT_OUT = os.path.join(DATA, "tokenizer_golden.json")
DEFAULT_GEMMA = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")
DEFAULT_LLAMA_CPP_SRC = os.path.join(
    os.environ.get("LLCPP_DIR", "/tmp/llcpp"), "llama_cpp_python-0.3.36", "vendor", "llama.cpp"
)

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


def smollm(model, out_path):
    """The SmolLM2 goldens (byte-level BPE with a chat template)."""
    llm = Llama(model_path=model, vocab_only=True, verbose=False)
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
        "model": os.path.basename(model),
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
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases and {len(chats)} chat renders to {out_path}")



def write_json(path, obj, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            # One case per line: small and still diffable.
            f.write("{\n")
            items = list(obj.items())
            for k, (key, value) in enumerate(items):
                f.write(json.dumps(key) + ": ")
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    f.write("[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in value) + "\n]")
                else:
                    f.write(json.dumps(value, ensure_ascii=False))
                f.write(",\n" if k + 1 < len(items) else "\n")
            f.write("}\n")
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")


def llama_detokenize(vocab, ids, remove_special, unparse_special):
    arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    size = 64 + 16 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, remove_special, unparse_special)
    if n < 0:
        size = -n
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, remove_special, unparse_special)
    return buf.raw[:n].decode("utf-8", errors="replace")


def vocab_facts(vocab):
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    bos = llama_cpp.llama_vocab_bos(vocab)
    eos = llama_cpp.llama_vocab_eos(vocab)
    return {
        "n_vocab": n_vocab,
        "bos_id": bos if bos >= 0 else None,
        "eos_id": eos if eos >= 0 else None,
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "add_eos": bool(llama_cpp.llama_vocab_get_add_eos(vocab)),
        "eog_ids": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)],
    }


def full_cases(llm, corpus, detok_flags=True):
    """Per string: ids for add_special x parse_special, pieces joined, llama_detokenize."""
    vocab = llm._model.vocab
    cases = []
    for s in corpus:
        b = s.encode("utf-8")
        ids = llm.tokenize(b, add_bos=False, special=True)
        case = {
            "text": s,
            "ids": ids,
            "ids_add_special": llm.tokenize(b, add_bos=True, special=True),
            "ids_no_parse": llm.tokenize(b, add_bos=False, special=False),
            "ids_add_special_no_parse": llm.tokenize(b, add_bos=True, special=False),
            "detok": detokenize(vocab, ids, True),
            "detok_skip_special": detokenize(vocab, ids, False),
        }
        if detok_flags:
            ids_add = case["ids_add_special"]
            # llama_detokenize(remove_special, unparse_special) over the ids with BOS.
            case["detokenize"] = {
                f"{int(r)}{int(u)}": llama_detokenize(vocab, ids_add, r, u)
                for r in (False, True)
                for u in (False, True)
            }
            case["detokenize_no_bos"] = llama_detokenize(vocab, ids, False, False)
        cases.append(case)
    return cases


GEMMA_EXTRA = [
    "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text<eos> and <end_of_turn>",
    "literal <0x41> byte text, <unused0> and <pad>",
    "[multimodal] <table><tr><td>x</td></tr></table> <b>bold</b>",
    "two  spaces,   three,\t\ttabs\n\n\nnewlines\n\n\n\n\n",
    "\u2581already escaped \u2581 markers\u2581\u2581",
    "<start_of_image><end_of_image>",
    " leading space after nothing",
]

# Gemma chat format conversations: llama.cpp merges system text into the next user turn.
GEMMA_CHATS = [
    [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Arr, hello."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "  S1 \n"},
        {"role": "system", "content": "S2"},
        {"role": "assistant", "content": " first "},
        {"role": "user", "content": "\t u \u00a0"},
    ],
    [{"role": "system", "content": "only system"}],
    [{"role": "user", "content": "  spaces  \n\nand newlines\n"}, {"role": "tool", "content": "t"}],
]


def apply_builtin_template(tmpl, messages, add_ass):
    msgs = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        role, content = m["role"].encode("utf-8"), m["content"].encode("utf-8")
        keep += [role, content]
        msgs[i].role = role
        msgs[i].content = content
    size = 4096
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_chat_apply_template(tmpl, msgs, len(messages), add_ass, buf, size)
    if n < 0:
        raise RuntimeError(f"llama_chat_apply_template({tmpl}) failed: {n}")
    if n > size:
        buf = ctypes.create_string_buffer(n)
        n = llama_cpp.llama_chat_apply_template(tmpl, msgs, len(messages), add_ass, buf, n)
    return buf.raw[:n].decode("utf-8")


def gemma3(model, out_path):
    """The Gemma 3 goldens (SentencePiece, no chat template: llama.cpp's built-in format)."""
    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    vocab = llm._model.vocab
    out = {
        "generator": "scripts/gen_tokenizer_goldens.py",
        "llama_cpp_python": llama_cpp.__version__,
        "model": os.path.basename(model),
        **vocab_facts(vocab),
        "has_chat_template": llm.metadata.get("tokenizer.chat_template") is not None,
        "chats": [
            {
                "messages": m,
                "add_generation_prompt": add,
                "prompt": apply_builtin_template(b"gemma", m, add),
            }
            for m in GEMMA_CHATS
            for add in (True, False)
        ],
        "cases": full_cases(llm, CORPUS + GEMMA_EXTRA),
    }
    write_json(out_path, out, compact=True)
    print(f"wrote {len(out['cases'])} cases and {len(out['chats'])} chat renders to {out_path}")


# --- tiny vocabularies -------------------------------------------------------------------------

GGUF_TYPES = {"u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8}


def gguf_value(t, v):
    if t == "u32":
        return struct.pack("<I", v)
    if t == "i32":
        return struct.pack("<i", v)
    if t == "f32":
        return struct.pack("<f", v)
    if t == "bool":
        return struct.pack("<B", int(v))
    if t == "str":
        b = v.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    raise ValueError(t)


def write_gguf(path, kvs):
    """A metadata-only GGUF v3 file; kvs: [key, type, value] with type `u32`..`str` or `[elem]`."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)))
    for key, t, value in kvs:
        out += gguf_value("str", key)
        if t.startswith("["):
            elem = t[1:-1]
            out += struct.pack("<IIQ", 9, GGUF_TYPES[elem], len(value))
            for v in value:
                out += gguf_value(elem, v)
        else:
            out += struct.pack("<I", GGUF_TYPES[t]) + gguf_value(t, value)
    out += b"\0" * ((-len(out)) % 32)
    with open(path, "wb") as f:
        f.write(out)


# llama.cpp loads a vocabulary only through a model header.
TINY_HPARAMS = [
    ["general.architecture", "str", "llama"],
    ["llama.block_count", "u32", 1],
    ["llama.context_length", "u32", 64],
    ["llama.embedding_length", "u32", 8],
    ["llama.feed_forward_length", "u32", 8],
    ["llama.attention.head_count", "u32", 1],
    ["llama.attention.layer_norm_rms_epsilon", "f32", 1e-5],
]


def byte_alphabet():
    """GPT-2's byte -> printable character map."""
    direct = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, n = {}, 0
    for b in range(256):
        if b in direct:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


@functools.lru_cache(maxsize=None)
def train_merges(words, n_merges):
    """Greedy pair merging over symbol lists (most frequent pair, then the smallest)."""
    merges = []
    words = [list(w) for w in words]
    for _ in range(n_merges):
        counts = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        best, count = max(
            counts.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0][0] + kv[0][1]])
        )
        if count < 2:
            break
        merges.append(best)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i : i + 2] = [w[i] + w[i + 1]]
                i += 1
    return merges


# The pre-tokenizers Journey implements, each checked against llama.cpp on the tiny BPE vocab.
TINY_PRES = [
    "default", "gpt-2", "smollm", "llama-bpe", "qwen2", "qwen35", "deepseek-llm",
    "deepseek-coder", "deepseek-v3", "falcon", "gpt-4o", "tekken", "bloom", "viking",
    "seed-coder", "bailingmoe", "ufakzeka", "laguna", "minicpm5", "dbrx", "command-r",
]


def tiny_bpe_kvs(pre):
    alpha = byte_alphabet()
    specials = [("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3), ("<tool>", 4)]
    tokens = [t for t, _ in specials] + [alpha[b] for b in range(256)]
    types = [ty for _, ty in specials] + [1] * 256
    words = ["".join(alpha[b] for b in s.encode("utf-8")) for s in CORPUS]
    merges = train_merges(tuple(words), 400)
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(1)
    # Whole words reachable only without merges: `ignore_merges` makes them one token.
    for w in ["Hello", "\u0120quick", "\u0120Numbers", "\u0120spaces"]:
        if w not in tokens:
            tokens.append(w)
            types.append(1)
    return TINY_HPARAMS + [
        ["tokenizer.ggml.model", "str", "gpt2"],
        ["tokenizer.ggml.pre", "str", pre],
        ["tokenizer.ggml.tokens", "[str]", tokens],
        ["tokenizer.ggml.token_type", "[i32]", types],
        ["tokenizer.ggml.merges", "[str]", [a + " " + b for a, b in merges]],
        ["tokenizer.ggml.bos_token_id", "u32", 0],
        ["tokenizer.ggml.eos_token_id", "u32", 2],
    ]


def tiny_spm_kvs():
    """Unknown/BOS/EOS at llama.cpp's default ids 0/1/2 and no add_* or space-prefix keys."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    texts = ["\u2581" + s.replace(" ", "\u2581") for s in CORPUS]
    # Characters outside the vocabulary fall back to bytes: leave out emoji and CJK.
    chars = sorted({c for t in texts for c in t if ord(c) < 0x3000})
    for c in chars:
        tokens.append(c)
        types.append(1)
        scores.append(-1000.0)
    for rank, (a, b) in enumerate(train_merges(tuple(texts), 300)):
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(1)
            # Pairs of equal scores exercise the leftmost-first rule.
            scores.append(-float(rank // 2))
    tokens.append("<ctrl>")
    types.append(3)
    scores.append(0.0)
    return TINY_HPARAMS + [
        ["tokenizer.ggml.model", "str", "llama"],
        ["tokenizer.ggml.tokens", "[str]", tokens],
        ["tokenizer.ggml.scores", "[f32]", scores],
        ["tokenizer.ggml.token_type", "[i32]", types],
    ]


def tiny(out_path):
    """Tiny vocabularies written as GGUF and tokenized by llama.cpp."""
    corpus = CORPUS + ["text<ctrl>more <ctrl> and <s> x</s>", "  two leading spaces"]
    vocabs = []
    with tempfile.TemporaryDirectory() as tmp:
        specs = [("bpe-" + pre, tiny_bpe_kvs(pre)) for pre in TINY_PRES] + [("spm", tiny_spm_kvs())]
        for name, kvs in specs:
            path = os.path.join(tmp, name + ".gguf")
            write_gguf(path, kvs)
            llm = Llama(model_path=path, vocab_only=True, verbose=False)
            vocab = llm._model.vocab
            entry = {"name": name, **vocab_facts(vocab)}
            if name == "spm":
                entry["kvs"] = kvs
                entry["cases"] = full_cases(llm, corpus)
            else:
                # The BPE files differ only in the pre-tokenizer name: the metadata is stored once.
                entry["pre"] = name[4:]
                # add_special only matters at the ends: one string checks it.
                entry["hello_add_special"] = llm.tokenize(b"Hello world", add_bos=True, special=True)
                entry["cases"] = [
                    {"text": s, "ids": llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)}
                    for s in corpus
                ]
            vocabs.append(entry)
        # llama.cpp refuses an unknown pre-tokenizer.
        path = os.path.join(tmp, "unknown.gguf")
        write_gguf(path, tiny_bpe_kvs("no-such-pre"))
        try:
            Llama(model_path=path, vocab_only=True, verbose=False)
            unknown_refused = False
        except Exception:
            unknown_refused = True
    out = {
        "generator": "scripts/gen_tokenizer_goldens.py",
        "llama_cpp_python": llama_cpp.__version__,
        "unknown_pre_refused": unknown_refused,
        "bpe_kvs": [kv for kv in tiny_bpe_kvs("PRE")],
        "vocabs": vocabs,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("{\n")
        for key in ("generator", "llama_cpp_python", "unknown_pre_refused", "bpe_kvs"):
            f.write(f"{json.dumps(key)}: {json.dumps(out[key], ensure_ascii=False)},\n")
        f.write('"vocabs": [\n')
        parts = []
        for v in vocabs:
            head = {k: v[k] for k in v if k != "cases"}
            cases = ",\n".join(json.dumps(c, ensure_ascii=False) for c in v["cases"])
            head_json = json.dumps(head, ensure_ascii=False)[:-1]
            parts.append(head_json + ', "cases": [\n' + cases + "\n]}")
        f.write(",\n".join(parts) + "\n]}\n")
    print(f"wrote {len(vocabs)} tiny vocabularies to {out_path}")


# --- official templates ------------------------------------------------------------------------

TEMPLATES = [
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "google-gemma-2-2b-it.jinja",
]
TEMPLATE_TOKENS = {
    "meta-llama": ("<|begin_of_text|>", "<|eot_id|>"),
    "Qwen": ("", "<|im_end|>"),
    "google": ("<bos>", "<eos>"),
}
TEMPLATE_CHATS = [
    [{"role": "user", "content": "hi"}],
    [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Arr, hello."},
        {"role": "user", "content": "And 3+3? Answer in 日本語 😀"},
    ],
]


def templates(src, out_path):
    """llama.cpp's official chat templates rendered with Jinja2 as llama-cpp-python does."""
    rendered = []
    for name in TEMPLATES:
        with open(os.path.join(src, "models", "templates", name), encoding="utf-8") as f:
            source = f.read()
        bos, eos = next(v for k, v in TEMPLATE_TOKENS.items() if name.startswith(k))
        chats = []
        for messages in TEMPLATE_CHATS:
            # Gemma 2 has no system role.
            if name.startswith("google") and messages[0]["role"] == "system":
                continue
            for add_gen in (True, False):
                fmt = Jinja2ChatFormatter(
                    template=source, eos_token=eos, bos_token=bos, add_generation_prompt=add_gen
                )
                chats.append(
                    {
                        "messages": messages,
                        "add_generation_prompt": add_gen,
                        "prompt": fmt(messages=messages).prompt,
                    }
                )
        rendered.append(
            {"name": name, "source": source, "bos_token": bos, "eos_token": eos, "chats": chats}
        )
    write_json(out_path, {"generator": "scripts/gen_tokenizer_goldens.py", "templates": rendered})
    print(f"wrote {len(rendered)} templates to {out_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.environ.get("JOURNEY_MODEL", DEFAULT_MODEL))
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--gemma", default=DEFAULT_GEMMA)
    ap.add_argument("--llama-cpp-src", default=DEFAULT_LLAMA_CPP_SRC)
    args = ap.parse_args()
    for path in (args.model, args.gemma):
        if not os.path.exists(path):
            sys.exit(f"model {path} not found: run scripts/fetch-model.sh (and fetch-model.sh gemma3)")
    smollm(args.model, args.out)
    gemma3(args.gemma, os.path.join(DATA, "tokenizer_golden_gemma3.json"))
    tiny(os.path.join(DATA, "tokenizer_golden_tiny.json"))
    templates(args.llama_cpp_src, os.path.join(DATA, "chat_template_golden.json"))


if __name__ == "__main__":
    main()
