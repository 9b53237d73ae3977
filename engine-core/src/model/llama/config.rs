//! Hyper-parameters read from GGUF metadata.

use super::ModelError;
use crate::model::gguf::{GgufFile, keys};

/// What the forward pass needs to know about a Llama model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Architecture name from the file (`llama`).
    pub arch: String,
    /// `general.name`, or empty.
    pub name: String,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Model width.
    pub dim: usize,
    /// MLP hidden width.
    pub ffn_dim: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// `dim / n_heads`.
    pub head_dim: usize,
    /// Rotated dims per head.
    pub rope_dim: usize,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context length.
    pub context_length: usize,
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
}

/// Architectures whose GGUF layout is the llama one.
const SUPPORTED_ARCHS: &[&str] = &["llama"];

impl LlamaConfig {
    /// Reads and checks the configuration.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let arch = file.get_str(keys::ARCHITECTURE)?.to_owned();
        if !SUPPORTED_ARCHS.contains(&arch.as_str()) {
            return Err(ModelError::UnsupportedArchitecture(arch));
        }
        let key = |suffix: &str| format!("{arch}.{suffix}");
        let int = |suffix: &str| -> Result<usize, ModelError> {
            let v = file.get_u64(&key(suffix))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v < (1 << 24))
                .ok_or_else(|| ModelError::InvalidConfig(format!("{} = {v}", key(suffix))))
        };
        let n_layers = int(keys::arch::BLOCK_COUNT)?;
        let dim = int(keys::arch::EMBEDDING_LENGTH)?;
        let ffn_dim = int(keys::arch::FEED_FORWARD_LENGTH)?;
        let n_heads = int(keys::arch::HEAD_COUNT)?;
        let n_kv_heads = match file.get(&key(keys::arch::HEAD_COUNT_KV)) {
            Some(_) => int(keys::arch::HEAD_COUNT_KV)?,
            None => n_heads,
        };
        let context_length = int(keys::arch::CONTEXT_LENGTH)?;
        if dim % n_heads != 0 || n_heads % n_kv_heads != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "dim {dim}, heads {n_heads}, kv heads {n_kv_heads}: dim must divide into heads and heads into kv heads"
            )));
        }
        let head_dim = dim / n_heads;
        let rope_dim = match file.get(&key(keys::arch::ROPE_DIMENSION_COUNT)) {
            Some(_) => int(keys::arch::ROPE_DIMENSION_COUNT)?,
            None => head_dim,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "rope dimension {rope_dim} for head size {head_dim}"
            )));
        }
        let float = |suffix: &str, default: f64| -> Result<f32, ModelError> {
            match file.get(&key(suffix)) {
                None => Ok(default as f32),
                Some(_) => Ok(file.get_f64(&key(suffix))? as f32),
            }
        };
        let rope_base = float(keys::arch::ROPE_FREQ_BASE, 10_000.0)?;
        let rms_eps = float(keys::arch::RMS_EPS, 1e-5)?;
        if !(rope_base > 1.0 && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(ModelError::InvalidConfig(format!(
                "rope base {rope_base}, rms eps {rms_eps}"
            )));
        }
        let embd = file.tensor(keys::tensor::TOKEN_EMBD)?;
        let vocab_size = embd.dims.get(1).copied().unwrap_or(0) as usize;
        if vocab_size == 0 {
            return Err(ModelError::InvalidConfig("empty token embedding".into()));
        }
        Ok(Self {
            name: file
                .get(keys::NAME)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            arch,
            n_layers,
            dim,
            ffn_dim,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_base,
            rms_eps,
            context_length,
            vocab_size,
        })
    }

    /// Width of the K (and V) projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
