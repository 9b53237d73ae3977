#!/usr/bin/env python3
"""Writes kernels/tests/data/quant_goldens.txt: ggml quant blocks dequantized by gguf-py.

An independent check of Journey's reference dequantizers (kernels/src/quant/reference.rs):
the blocks below are dequantized here with gguf-py's numpy code (`gguf.quants.dequantize`,
written separately from ggml's C), and kernels/tests/quant_goldens.rs requires Journey to give
the same f32 bits for every element.

Blocks per type (seeded, so the file is reproducible):
- random bytes, with every fp16 field set to a random finite bit pattern (any exponent,
  subnormals included, never inf or NaN);
- every non-fp16 byte filled with 0x00, 0xFF, 0x7F, 0x80, 0x55 or 0xAA (all-min and all-max
  quants, and for the K types all-min and all-max sub-block scales), under fp16 fields of
  +-1, +-0, +-65504 (the largest fp16), the smallest subnormal, the smallest normal and 0.5;
- for the K types, blocks that between them hold every sub-block scale value: every 6-bit
  scale and min (Q4_K, Q5_K), every 6-bit scale (Q3_K), every 4-bit scale and min (Q2_K),
  every 8-bit scale (Q6_K).

File format: `#` comment lines, then one line per block:
`<TYPE> <block bytes, hex> <the block's f32 values, little-endian, hex>`.

    python3 -m venv /tmp/ggvenv && /tmp/ggvenv/bin/pip install gguf numpy
    /tmp/ggvenv/bin/python scripts/gen_quant_goldens.py [TYPE ...]
"""
import importlib.metadata
import os
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "kernels", "tests", "data", "quant_goldens.txt")

# Per type: block bytes and the offsets of its fp16 fields.
LAYOUT = {
    "Q4_0": (18, [0]),
    "Q4_1": (20, [0, 2]),
    "Q5_0": (22, [0]),
    "Q5_1": (24, [0, 2]),
    "Q8_0": (34, [0]),
    "Q2_K": (84, [80, 82]),
    "Q3_K": (110, [108]),
    "Q4_K": (144, [0, 2]),
    "Q5_K": (176, [0, 2]),
    "Q6_K": (210, [208]),
}

# +1, -1, +0, -0, 65504, -65504, smallest subnormal, smallest normal, 0.5.
SPECIAL_F16 = [0x3C00, 0xBC00, 0x0000, 0x8000, 0x7BFF, 0xFBFF, 0x0001, 0x0400, 0x3800]
FILLS = [0x00, 0xFF, 0x7F, 0x80, 0x55, 0xAA]


def random_f16_bits(rng):
    """A random finite fp16 bit pattern (exponent field never 31)."""
    while True:
        b = int(rng.integers(0, 1 << 16))
        if (b >> 10) & 0x1F != 0x1F:
            return b


def put_f16(block, off, bits):
    block[off] = bits & 0xFF
    block[off + 1] = bits >> 8


def pack_k4_scales(sc, m):
    """Eight 6-bit scales and mins into Q4_K/Q5_K's 12 bytes."""
    q = bytearray(12)
    for j in range(4):
        q[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
        q[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6)
        q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4)
    return q


def pack_q3k_scales(s):
    """Sixteen 6-bit Q3_K scales (stored values, 0..63) into its 12 bytes."""
    q = bytearray(12)
    for i in range(8):
        q[i] = (s[i] & 0x0F) | ((s[i + 8] & 0x0F) << 4)
    for i in range(4):
        q[8 + i] = sum(((s[i + 4 * g] >> 4) & 3) << (2 * g) for g in range(4))
    return q


def scale_blocks(name, rng, size):
    """Blocks that together hold every sub-block scale value of a K type."""
    out = []

    def base():
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        for off in LAYOUT[name][1]:
            put_f16(b, off, 0x2E66)  # about 0.1
        return b

    if name in ("Q4_K", "Q5_K"):
        for k in range(8):
            sc = [8 * k + j for j in range(8)]
            m = [63 - v for v in sc]
            b = base()
            b[4:16] = pack_k4_scales(sc, m)
            got_sc, got_m = gguf.quants.Q4_K.get_scale_min(np.frombuffer(bytes(b[4:16]), np.uint8).reshape(1, 12))
            assert list(got_sc[0]) == sc and list(got_m[0]) == m, "Q4_K scale packing"
            out.append(b)
    elif name == "Q3_K":
        for k in range(4):
            s = [16 * k + j for j in range(16)]
            b = base()
            b[0:32] = b"\xff" * 32  # every high bit set: q = low bits, no -4
            b[32:96] = b"\x55" * 64  # every 2-bit quant 1
            b[96:108] = pack_q3k_scales(s)
            put_f16(b, 108, 0x3C00)
            # With q = 1 and d = 1 each element is its sub-block's scale - 32.
            y = gguf.quants.dequantize(np.frombuffer(bytes(b), np.uint8), T.Q3_K)
            assert list(y[::16]) == [v - 32 for v in s], "Q3_K scale packing"
            out.append(b)
    elif name == "Q2_K":
        for k in range(2):
            b = base()
            b[0:16] = bytes((j | ((15 - j) << 4)) if k == 0 else ((j << 4) | (15 - j)) for j in range(16))
            out.append(b)
    elif name == "Q6_K":
        for k in range(16):
            b = base()
            b[192:208] = bytes(range(16 * k, 16 * k + 16))
            out.append(b)
    return out


def blocks_for(name, rng):
    size, f16s = LAYOUT[name]
    k_type = name.endswith("_K")
    out = []
    for _ in range(3 if k_type else 12):
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        for off in f16s:
            put_f16(b, off, random_f16_bits(rng))
        out.append(b)
    # Each fill under a few of the special scales, in rotation so every one is used (the file
    # stays small: a K block is 2 KiB of values).
    specials = SPECIAL_F16 if not k_type else [0x3C00, 0xBC00, 0x0000, 0x7BFF, 0x0001]
    fills = FILLS if not k_type else FILLS[:4]
    per_fill = 3 if not k_type else 2
    for fi, fill in enumerate(fills):
        for k in range(per_fill):
            i = per_fill * fi + k
            b = bytearray([fill]) * size
            for n, off in enumerate(f16s):
                # A second fp16 field (offset or min) takes another special value.
                put_f16(b, off, specials[(i + 3 * n) % len(specials)])
            out.append(b)
    return out + scale_blocks(name, rng, size)


def main():
    names = sys.argv[1:] or list(LAYOUT)
    rng = np.random.default_rng(20240611)
    lines = [
        f"# ggml blocks and their values as dequantized by gguf-py {importlib.metadata.version('gguf')}",
        "# Written by scripts/gen_quant_goldens.py; read by kernels/tests/quant_goldens.rs.",
        "# <TYPE> <block bytes, hex> <f32 values, little-endian, hex>",
    ]
    for name in names:
        qtype = T[name]
        size, _ = LAYOUT[name]
        assert gguf.GGML_QUANT_SIZES[qtype][1] == size, name
        blocks = blocks_for(name, rng)
        data = np.frombuffer(b"".join(bytes(b) for b in blocks), dtype=np.uint8)
        values = gguf.quants.dequantize(data, qtype).astype(np.float32, copy=False)
        per = gguf.GGML_QUANT_SIZES[qtype][0]
        values = values.reshape(len(blocks), per)
        assert np.isfinite(values).all(), name
        for b, v in zip(blocks, values):
            lines.append(f"{name} {bytes(b).hex()} {v.astype('<f4').tobytes().hex()}")
        print(f"{name}: {len(blocks)} blocks", file=sys.stderr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
