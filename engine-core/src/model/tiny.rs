//! A tiny seeded random-weight model of each supported architecture, written as GGUF by our own
//! code, so tests run in milliseconds without the real model. Same spec, same bytes.
//!
//! Shape: 2 layers (Gemma 3: 6, so that the sixth is a global layer among five sliding-window
//! ones), width 256, 4 query heads over 2 KV heads (GQA) of 64 (Gemma 3: over 1 KV head of 128,
//! so the query width 512 differs from the model width), MLP 512, a byte-level BPE vocabulary
//! of 3 control tokens + 256 byte symbols + a few dozen merges, and a ChatML template. Each
//! architecture adds its own tensors ([`crate::model::llama::ArchOptions`]): Qwen 2's Q/K/V
//! biases, Qwen 3's and Gemma 3's Q/K norms, Gemma 3's post-norms and its 24-key sliding window;
//! [`TinySpec::rope_freqs`] adds Llama 3's RoPE frequency factors. Matrices are stored as
//! [`TinySpec::weight_type`]; norms, biases and factors stay F32.

use std::path::Path;

use kernels::GgmlType;
use kernels::quant::quantize_row;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::gguf::{GgufWriter, MetadataValue, ValueType, keys, keys::tensor as tn};
use super::llama::Arch;

/// End-of-text (also BOS) id of the tiny vocabulary.
pub const TINY_ENDOFTEXT: u32 = 0;
/// `<|im_start|>` id.
pub const TINY_IM_START: u32 = 1;
/// `<|im_end|>` id, the EOS.
pub const TINY_IM_END: u32 = 2;

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// Words whose left-to-right merges make the BPE's merge list.
const MERGE_WORDS: [&str; 14] = [
    "the",
    " the",
    " and",
    "hello",
    " world",
    "ing",
    " is",
    " of",
    " a",
    "er",
    " to",
    " in",
    "user",
    "assistant",
];
const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// What to write.
#[derive(Clone, Copy, Debug)]
pub struct TinySpec {
    /// Architecture.
    pub arch: Arch,
    /// Write Llama 3.1's `rope_freqs` frequency factors (llama only).
    pub rope_freqs: bool,
    /// Seed of the weights.
    pub seed: u64,
    /// Storage type of the matrices.
    pub weight_type: GgmlType,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Context length recorded in the metadata.
    pub context_length: usize,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            arch: Arch::Llama,
            rope_freqs: false,
            seed: 0x5EED,
            weight_type: GgmlType::F32,
            n_layers: 2,
            context_length: 512,
        }
    }
}

impl TinySpec {
    /// The default spec with matrices stored as `ty`.
    pub fn with_type(ty: GgmlType) -> Self {
        Self {
            weight_type: ty,
            ..Self::default()
        }
    }

    /// The default spec of architecture `arch` (Gemma 3 with 6 layers).
    pub fn for_arch(arch: Arch) -> Self {
        Self {
            arch,
            n_layers: if arch == Arch::Gemma3 { 6 } else { 2 },
            ..Self::default()
        }
    }

    /// Query heads, KV heads and head size.
    fn heads(&self) -> (usize, usize, usize) {
        match self.arch {
            Arch::Gemma3 => (4, 1, 128),
            _ => (
                N_HEADS as usize,
                N_KV_HEADS as usize,
                DIM / N_HEADS as usize,
            ),
        }
    }
}

/// Gemma 3's sliding window in the tiny model: shorter than the test prompts.
pub const TINY_SLIDING_WINDOW: usize = 24;

const DIM: usize = 256;
const FFN: usize = 512;
const N_HEADS: u32 = 4;
const N_KV_HEADS: u32 = 2;

/// GPT-2's byte-to-symbol map: printable bytes stand for themselves, the rest map to U+0100+.
pub fn byte_symbols() -> Vec<char> {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("latin-1")
            } else {
                extra += 1;
                char::from_u32(255 + extra).expect("BMP")
            }
        })
        .collect()
}

/// The vocabulary (specials, byte symbols, merged tokens) and merge list.
fn vocabulary() -> (Vec<String>, Vec<String>) {
    let sym = byte_symbols();
    let mut tokens: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    tokens.extend(sym.iter().map(|c| c.to_string()));
    let mut merges = Vec::new();
    for word in MERGE_WORDS {
        let pieces: Vec<String> = word.bytes().map(|b| sym[b as usize].to_string()).collect();
        let mut acc = pieces[0].clone();
        for p in &pieces[1..] {
            let merged = format!("{acc}{p}");
            if !tokens.contains(&merged) {
                merges.push(format!("{acc} {p}"));
                tokens.push(merged.clone());
            }
            acc = merged;
        }
    }
    (tokens, merges)
}

fn strings(values: impl IntoIterator<Item = String>) -> Vec<MetadataValue> {
    values.into_iter().map(MetadataValue::String).collect()
}

/// Serializes the tiny model.
pub fn tiny_model_bytes(spec: &TinySpec) -> Vec<u8> {
    let (tokens, merges) = vocabulary();
    let vocab = tokens.len();
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut w = GgufWriter::new();
    let arch = spec.arch.name();
    let opts = spec.arch.options();
    let (n_heads, n_kv_heads, head_dim) = spec.heads();
    let k = |s: &str| format!("{arch}.{s}");
    if spec.arch == Arch::Gemma3 {
        w.meta_u32(&k(keys::arch::SLIDING_WINDOW), TINY_SLIDING_WINDOW as u32)
            .meta_f32(&k(keys::arch::ROPE_FREQ_BASE_SWA), 10_000.0);
    }
    if head_dim != DIM / n_heads {
        w.meta_u32(&k(keys::arch::KEY_LENGTH), head_dim as u32)
            .meta_u32(&k(keys::arch::VALUE_LENGTH), head_dim as u32);
    }
    w.meta_str(keys::ARCHITECTURE, arch)
        .meta_str(keys::NAME, "journey-tiny")
        .meta_u32(&k(keys::arch::CONTEXT_LENGTH), spec.context_length as u32)
        .meta_u32(&k(keys::arch::EMBEDDING_LENGTH), DIM as u32)
        .meta_u32(&k(keys::arch::BLOCK_COUNT), spec.n_layers as u32)
        .meta_u32(&k(keys::arch::FEED_FORWARD_LENGTH), FFN as u32)
        .meta_u32(&k(keys::arch::HEAD_COUNT), n_heads as u32)
        .meta_u32(&k(keys::arch::HEAD_COUNT_KV), n_kv_heads as u32)
        .meta_f32(
            &k(keys::arch::ROPE_FREQ_BASE),
            if spec.arch == Arch::Llama {
                10_000.0
            } else {
                1e6
            },
        )
        .meta_f32(&k(keys::arch::RMS_EPS), 1e-5)
        .meta_str(keys::tokenizer::MODEL, "gpt2")
        .meta_str(keys::tokenizer::PRE, "default")
        .meta_array(keys::tokenizer::TOKENS, ValueType::String, strings(tokens))
        .meta_array(
            keys::tokenizer::TOKEN_TYPE,
            ValueType::I32,
            (0..vocab)
                .map(|i| MetadataValue::I32(if i < SPECIALS.len() { 3 } else { 1 }))
                .collect(),
        )
        .meta_array(keys::tokenizer::MERGES, ValueType::String, strings(merges))
        .meta_u32(keys::tokenizer::BOS_ID, TINY_ENDOFTEXT)
        .meta_u32(keys::tokenizer::EOS_ID, TINY_IM_END)
        .meta(keys::tokenizer::ADD_BOS, MetadataValue::Bool(false))
        .meta_str(keys::tokenizer::CHAT_TEMPLATE, CHAT_TEMPLATE);

    let mut matrix =
        |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, scale: f32, ty: GgmlType| {
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-scale..scale))
                .collect();
            let row_bytes = ty.row_bytes(cols).expect("tiny dims fit every block size");
            let mut data = vec![0u8; rows * row_bytes];
            for (src, dst) in values
                .chunks_exact(cols)
                .zip(data.chunks_exact_mut(row_bytes))
            {
                quantize_row(ty, src, dst);
            }
            let dims: Vec<u64> = if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            };
            w.tensor(name, &dims, ty, data);
        };
    let ty = spec.weight_type;
    let f32 = GgmlType::F32;
    let (q, kv) = (n_heads * head_dim, n_kv_heads * head_dim);
    // Scales give unit-ish activations so the logits are far from uniform.
    let s_in = 1.7 / (DIM as f32).sqrt();
    let s_q = 1.7 / (q as f32).sqrt();
    let s_ffn = 1.7 / (FFN as f32).sqrt();
    // Unscaled even where Gemma 3 multiplies the input by √dim: the table is also the output
    // head, whose logits must stay far from uniform.
    matrix(&mut w, tn::TOKEN_EMBD, vocab, DIM, 1.0, ty);
    if spec.rope_freqs {
        // Llama 3.1's shape: high frequencies kept, low ones slowed by up to 8.
        let factors: Vec<u8> = (0..head_dim / 2)
            .map(|i| 1.0 + 7.0 * (i as f32 / (head_dim / 2) as f32).powi(2))
            .flat_map(f32::to_le_bytes)
            .collect();
        w.tensor(tn::ROPE_FREQS, &[(head_dim / 2) as u64], f32, factors);
    }
    for l in 0..spec.n_layers {
        let b = |s| tn::block(l, s);
        matrix(&mut w, &b(tn::ATTN_NORM), 1, DIM, 1.0, f32);
        matrix(&mut w, &b(tn::ATTN_Q), q, DIM, s_in, ty);
        matrix(&mut w, &b(tn::ATTN_K), kv, DIM, s_in, ty);
        matrix(&mut w, &b(tn::ATTN_V), kv, DIM, s_in, ty);
        if opts.qkv_bias {
            let bias = |s| tn::block_bias(l, s);
            matrix(&mut w, &bias(tn::ATTN_Q), 1, q, 0.5, f32);
            matrix(&mut w, &bias(tn::ATTN_K), 1, kv, 0.5, f32);
            matrix(&mut w, &bias(tn::ATTN_V), 1, kv, 0.5, f32);
        }
        if opts.qk_norm {
            matrix(&mut w, &b(tn::ATTN_Q_NORM), 1, head_dim, 1.0, f32);
            matrix(&mut w, &b(tn::ATTN_K_NORM), 1, head_dim, 1.0, f32);
        }
        matrix(&mut w, &b(tn::ATTN_OUTPUT), DIM, q, s_q, ty);
        matrix(&mut w, &b(tn::FFN_NORM), 1, DIM, 1.0, f32);
        matrix(&mut w, &b(tn::FFN_GATE), FFN, DIM, s_in, ty);
        matrix(&mut w, &b(tn::FFN_UP), FFN, DIM, s_in, ty);
        matrix(&mut w, &b(tn::FFN_DOWN), DIM, FFN, s_ffn, ty);
        if opts.post_norms {
            matrix(&mut w, &b(tn::POST_ATTN_NORM), 1, DIM, 1.0, f32);
            matrix(&mut w, &b(tn::POST_FFN_NORM), 1, DIM, 1.0, f32);
        }
    }
    matrix(&mut w, tn::OUTPUT_NORM, 1, DIM, 1.0, f32);
    w.to_bytes()
}

/// Writes the tiny model to `path`.
pub fn write_tiny_model(path: impl AsRef<Path>, spec: &TinySpec) -> std::io::Result<()> {
    std::fs::write(path, tiny_model_bytes(spec))
}
