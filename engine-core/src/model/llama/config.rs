//! Hyper-parameters read from GGUF metadata, and what each architecture of the family changes.

use kernels::{GluActivation, RopeStyle};

use super::ModelError;
use crate::model::gguf::{GgufFile, keys};

/// The architectures Journey runs: one forward pass, with the options of [`ArchOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `llama`: Llama 1-3.x, Mistral-style files, SmolLM.
    Llama,
    /// `qwen2`: Qwen 2 / 2.5 (Q/K/V biases).
    Qwen2,
    /// `qwen3`: Qwen 3 dense (per-head Q/K RMSNorm).
    Qwen3,
    /// `gemma3`: Gemma 3 text (scaled embedding, pre- and post-norms, Q/K norms, GeGLU,
    /// interleaved sliding-window and global layers).
    Gemma3,
}

impl Arch {
    /// Every supported architecture.
    pub const ALL: [Arch; 4] = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Gemma3];

    /// The `general.architecture` string.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
        }
    }

    /// The architecture named `name`, if supported.
    pub fn from_name(name: &str) -> Option<Arch> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The supported names, for error messages.
    pub fn supported() -> String {
        Self::ALL.map(Arch::name).join(", ")
    }

    /// What the forward pass does differently for this architecture.
    pub fn options(self) -> ArchOptions {
        let base = ArchOptions {
            rope_style: RopeStyle::Interleaved,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            embed_scale: false,
            activation: GluActivation::Silu,
            sliding_window_pattern: None,
        };
        match self {
            Arch::Llama => base,
            Arch::Qwen2 => ArchOptions {
                rope_style: RopeStyle::Neox,
                qkv_bias: true,
                ..base
            },
            Arch::Qwen3 => ArchOptions {
                rope_style: RopeStyle::Neox,
                qk_norm: true,
                ..base
            },
            // llama.cpp's gemma3: every sixth layer global, the others sliding-window.
            Arch::Gemma3 => ArchOptions {
                rope_style: RopeStyle::Neox,
                qk_norm: true,
                post_norms: true,
                embed_scale: true,
                activation: GluActivation::GeluTanh,
                sliding_window_pattern: Some(6),
                ..base
            },
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The per-architecture switches of the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchOptions {
    /// Which head dims RoPE pairs (GGUF's llama converter permutes Q/K rows; the others don't).
    pub rope_style: RopeStyle,
    /// Q, K and V projections carry biases (`attn_{q,k,v}.bias`).
    pub qkv_bias: bool,
    /// Per-head RMSNorm of Q and K before RoPE (`attn_{q,k}_norm`).
    pub qk_norm: bool,
    /// RMSNorm of each block's attention and MLP outputs before the residual add.
    pub post_norms: bool,
    /// Input embeddings multiplied by `√dim`.
    pub embed_scale: bool,
    /// The MLP's gate activation.
    pub activation: GluActivation,
    /// `Some(n)`: layers `l` with `(l + 1) % n != 0` use the sliding window, the rest are
    /// global (when the file gives a window).
    pub sliding_window_pattern: Option<usize>,
}

/// How positions are scaled before RoPE.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// None.
    None,
    /// Positions divided by the factor (`rope.scaling.type = linear`).
    Linear(f32),
    /// Per-pair frequency factors from the `rope_freqs` tensor (Llama 3.1+).
    FreqFactors,
}

/// What the forward pass needs to know about a model of the Llama family.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// Architecture from the file.
    pub arch: Arch,
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
    /// Head size (`attention.key_length`, else `dim / n_heads`).
    pub head_dim: usize,
    /// Rotated dims per head.
    pub rope_dim: usize,
    /// RoPE base frequency (of the global layers).
    pub rope_base: f32,
    /// RoPE base of the sliding-window layers.
    pub rope_base_local: f32,
    /// Position scaling of the global layers (sliding-window layers are never scaled).
    pub rope_scaling: RopeScaling,
    /// Multiplier of `q·k`.
    pub attn_scale: f32,
    /// Sliding window of the local layers, in keys.
    pub sliding_window: Option<usize>,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context length.
    pub context_length: usize,
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// The architecture's switches.
    pub options: ArchOptions,
}

impl LlamaConfig {
    /// Reads and checks the configuration.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let arch_name = file.get_str(keys::ARCHITECTURE)?;
        let arch = Arch::from_name(arch_name)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(arch_name.to_owned()))?;
        let options = arch.options();
        let key = |suffix: &str| format!("{arch}.{suffix}");
        let has = |suffix: &str| file.get(&key(suffix)).is_some();
        let int = |suffix: &str| -> Result<usize, ModelError> {
            let v = file.get_u64(&key(suffix))?;
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0 && v < (1 << 24))
                .ok_or_else(|| ModelError::InvalidConfig(format!("{} = {v}", key(suffix))))
        };
        let float = |suffix: &str, default: f64| -> Result<f32, ModelError> {
            match file.get(&key(suffix)) {
                None => Ok(default as f32),
                Some(_) => Ok(file.get_f64(&key(suffix))? as f32),
            }
        };
        let n_layers = int(keys::arch::BLOCK_COUNT)?;
        let dim = int(keys::arch::EMBEDDING_LENGTH)?;
        let ffn_dim = int(keys::arch::FEED_FORWARD_LENGTH)?;
        let n_heads = int(keys::arch::HEAD_COUNT)?;
        let n_kv_heads = match has(keys::arch::HEAD_COUNT_KV) {
            true => int(keys::arch::HEAD_COUNT_KV)?,
            false => n_heads,
        };
        let context_length = int(keys::arch::CONTEXT_LENGTH)?;
        if n_heads % n_kv_heads != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "{n_heads} heads over {n_kv_heads} kv heads: heads must divide into kv heads"
            )));
        }
        let head_dim = if has(keys::arch::KEY_LENGTH) {
            let k = int(keys::arch::KEY_LENGTH)?;
            if has(keys::arch::VALUE_LENGTH) && int(keys::arch::VALUE_LENGTH)? != k {
                return Err(ModelError::InvalidConfig(format!(
                    "key length {k} differs from value length {}",
                    int(keys::arch::VALUE_LENGTH)?
                )));
            }
            k
        } else if dim % n_heads == 0 {
            dim / n_heads
        } else {
            return Err(ModelError::InvalidConfig(format!(
                "dim {dim} does not divide into {n_heads} heads and the file gives no key length"
            )));
        };
        let rope_dim = match has(keys::arch::ROPE_DIMENSION_COUNT) {
            true => int(keys::arch::ROPE_DIMENSION_COUNT)?,
            false => head_dim,
        };
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "rope dimension {rope_dim} for head size {head_dim}"
            )));
        }
        let rope_base = float(keys::arch::ROPE_FREQ_BASE, 10_000.0)?;
        let rope_base_local = float(keys::arch::ROPE_FREQ_BASE_SWA, 10_000.0)?;
        let rms_eps = float(keys::arch::RMS_EPS, 1e-5)?;
        if !(rope_base > 1.0 && rope_base_local > 1.0 && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(ModelError::InvalidConfig(format!(
                "rope base {rope_base} (local {rope_base_local}), rms eps {rms_eps}"
            )));
        }
        let rope_scaling = rope_scaling(file, &key)?;
        let attn_scale = match has(keys::arch::ATTENTION_SCALE) {
            true => float(keys::arch::ATTENTION_SCALE, 0.0)?,
            // Gemma 3 27B scales by its query_pre_attn_scalar (dim / heads), which the GGUF
            // does not store: llama.cpp recognizes the model by its 62 layers.
            false if arch == Arch::Gemma3 && n_layers == 62 => {
                1.0 / ((dim / n_heads) as f32).sqrt()
            }
            false => 1.0 / (head_dim as f32).sqrt(),
        };
        if !(attn_scale.is_finite() && attn_scale > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "attention scale {attn_scale}"
            )));
        }
        if float(keys::arch::FINAL_LOGIT_SOFTCAPPING, 0.0)? != 0.0 {
            return Err(ModelError::InvalidConfig(
                "final logit soft-capping is not supported".into(),
            ));
        }
        let sliding_window = match (
            options.sliding_window_pattern,
            has(keys::arch::SLIDING_WINDOW),
        ) {
            (Some(_), true) => Some(int(keys::arch::SLIDING_WINDOW)?),
            _ => None,
        };
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
            rope_base_local,
            rope_scaling,
            attn_scale,
            sliding_window,
            rms_eps,
            context_length,
            vocab_size,
            options,
        })
    }

    /// Width of the Q projection (`n_heads * head_dim`, which Gemma 3 makes differ from `dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the K (and V) projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The sliding window of layer `l`, or `None` for a global layer.
    pub fn layer_window(&self, l: usize) -> Option<usize> {
        let pattern = self.options.sliding_window_pattern?;
        self.sliding_window
            .filter(|_| !(l + 1).is_multiple_of(pattern))
    }
}

/// The file's RoPE scaling: none, linear, or Llama 3's frequency factors; anything else
/// (YaRN, LongRoPE) is refused by name rather than run wrong.
fn rope_scaling(file: &GgufFile, key: &dyn Fn(&str) -> String) -> Result<RopeScaling, ModelError> {
    let factor = |k: &str| -> Result<Option<f32>, ModelError> {
        match file.get(&key(k)) {
            None => Ok(None),
            Some(_) => Ok(Some(file.get_f64(&key(k))? as f32)),
        }
    };
    let kind = match file.get(&key(keys::arch::ROPE_SCALING_TYPE)) {
        None => None,
        Some(_) => Some(
            file.get_str(&key(keys::arch::ROPE_SCALING_TYPE))?
                .to_owned(),
        ),
    };
    let has_freqs = file.tensor(keys::tensor::ROPE_FREQS).is_ok();
    let linear = |f: f32| {
        if f.is_finite() && f >= 1.0 {
            Ok(if f == 1.0 {
                RopeScaling::None
            } else {
                RopeScaling::Linear(f)
            })
        } else {
            Err(ModelError::InvalidConfig(format!(
                "rope scaling factor {f}"
            )))
        }
    };
    match kind.as_deref() {
        None | Some("none") if has_freqs => Ok(RopeScaling::FreqFactors),
        // Llama 3.1 files may name their scheme; the factors are in rope_freqs either way.
        Some("llama3") if has_freqs => Ok(RopeScaling::FreqFactors),
        None => match factor(keys::arch::ROPE_SCALE_LINEAR)? {
            Some(f) => linear(f),
            None => Ok(RopeScaling::None),
        },
        Some("none") => Ok(RopeScaling::None),
        Some("linear") => linear(factor(keys::arch::ROPE_SCALING_FACTOR)?.unwrap_or(1.0)),
        Some(other) => Err(ModelError::InvalidConfig(format!(
            "rope scaling type {other:?} is not supported (supported: none, linear, llama3 frequency factors)"
        ))),
    }
}
