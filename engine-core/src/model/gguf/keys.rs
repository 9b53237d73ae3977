//! The GGUF metadata keys Journey reads, in one place.

/// `general.architecture`, e.g. `llama`.
pub const ARCHITECTURE: &str = "general.architecture";
/// `general.name`.
pub const NAME: &str = "general.name";
/// `general.alignment` (u32) of the tensor data.
pub const ALIGNMENT: &str = "general.alignment";

/// Architecture-scoped keys are `"{arch}.{suffix}"`; these are the suffixes.
pub mod arch {
    /// Training context length.
    pub const CONTEXT_LENGTH: &str = "context_length";
    /// Model width.
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    /// Number of transformer blocks.
    pub const BLOCK_COUNT: &str = "block_count";
    /// MLP hidden width.
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    /// Query heads.
    pub const HEAD_COUNT: &str = "attention.head_count";
    /// Key/value heads (GQA); defaults to the query head count.
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    /// RMSNorm epsilon.
    pub const RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
    /// RoPE base frequency.
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    /// Rotated dimensions per head (defaults to the head size).
    pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
    /// Vocabulary size (optional; the token list is authoritative).
    pub const VOCAB_SIZE: &str = "vocab_size";
}

/// Tokenizer keys.
pub mod tokenizer {
    /// Tokenizer family: `gpt2` (byte-level BPE), `llama` (SentencePiece), ...
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// Pre-tokenizer name, e.g. `smollm`, `llama-bpe`, `qwen2`.
    pub const PRE: &str = "tokenizer.ggml.pre";
    /// Token strings, indexed by id.
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// Token types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// SentencePiece scores.
    pub const SCORES: &str = "tokenizer.ggml.scores";
    /// BPE merges, `"a b"` each.
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// Beginning-of-sequence id.
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence id.
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    /// End-of-turn id.
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    /// End-of-generation id.
    pub const EOM_ID: &str = "tokenizer.ggml.eom_token_id";
    /// Unknown-token id.
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// Padding id.
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    /// Whether to prepend BOS.
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    /// Whether to append EOS.
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    /// Jinja chat template.
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// Tensor names of the llama architecture.
pub mod tensor {
    /// Token embedding table `[vocab, dim]`.
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    /// Final norm.
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    /// Output head `[vocab, dim]`; absent when tied to the embedding.
    pub const OUTPUT: &str = "output.weight";

    /// Name of a per-block tensor, e.g. `blk.3.attn_q.weight`.
    pub fn block(layer: usize, suffix: &str) -> String {
        format!("blk.{layer}.{suffix}.weight")
    }
    /// Per-block suffixes.
    pub const ATTN_NORM: &str = "attn_norm";
    /// Query projection.
    pub const ATTN_Q: &str = "attn_q";
    /// Key projection.
    pub const ATTN_K: &str = "attn_k";
    /// Value projection.
    pub const ATTN_V: &str = "attn_v";
    /// Attention output projection.
    pub const ATTN_OUTPUT: &str = "attn_output";
    /// MLP norm.
    pub const FFN_NORM: &str = "ffn_norm";
    /// MLP gate.
    pub const FFN_GATE: &str = "ffn_gate";
    /// MLP up.
    pub const FFN_UP: &str = "ffn_up";
    /// MLP down.
    pub const FFN_DOWN: &str = "ffn_down";
}
