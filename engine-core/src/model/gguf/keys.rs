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
    /// Head size of keys and queries (defaults to width / heads).
    pub const KEY_LENGTH: &str = "attention.key_length";
    /// Head size of values (must equal the key length here).
    pub const VALUE_LENGTH: &str = "attention.value_length";
    /// Sliding-window size of the local attention layers (Gemma 3).
    pub const SLIDING_WINDOW: &str = "attention.sliding_window";
    /// RoPE base of the sliding-window layers (Gemma 3; 10000 when absent, as llama.cpp).
    pub const ROPE_FREQ_BASE_SWA: &str = "rope.freq_base_swa";
    /// RoPE scaling type: `none`, `linear`, `yarn`, `longrope`...
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    /// RoPE scaling factor.
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    /// Older files' linear RoPE scale.
    pub const ROPE_SCALE_LINEAR: &str = "rope.scale_linear";
    /// Multiplier of `q·k` in attention (Granite and others); default `1/√head_dim`.
    pub const ATTENTION_SCALE: &str = "attention.scale";
    /// Logit soft-capping of the output head (Gemma 2): refused, Gemma 3 has none.
    pub const FINAL_LOGIT_SOFTCAPPING: &str = "final_logit_softcapping";
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

/// Tensor names of the Llama family (llama, qwen2, qwen3, gemma3).
pub mod tensor {
    /// Token embedding table `[vocab, dim]`.
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    /// Final norm.
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    /// Output head `[vocab, dim]`; absent when tied to the embedding.
    pub const OUTPUT: &str = "output.weight";

    /// Llama 3.1+'s RoPE frequency factors `[rope_dim / 2]` (F32).
    pub const ROPE_FREQS: &str = "rope_freqs.weight";

    /// Name of a per-block tensor, e.g. `blk.3.attn_q.weight`.
    pub fn block(layer: usize, suffix: &str) -> String {
        format!("blk.{layer}.{suffix}.weight")
    }
    /// Name of a per-block bias, e.g. `blk.3.attn_q.bias` (Qwen 2).
    pub fn block_bias(layer: usize, suffix: &str) -> String {
        format!("blk.{layer}.{suffix}.bias")
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
    /// Per-head query norm (Qwen 3, Gemma 3).
    pub const ATTN_Q_NORM: &str = "attn_q_norm";
    /// Per-head key norm (Qwen 3, Gemma 3).
    pub const ATTN_K_NORM: &str = "attn_k_norm";
    /// Norm of the attention block's output (Gemma 3).
    pub const POST_ATTN_NORM: &str = "post_attention_norm";
    /// Norm of the MLP's output (Gemma 3).
    pub const POST_FFN_NORM: &str = "post_ffw_norm";
}
