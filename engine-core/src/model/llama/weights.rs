//! Loading a model's weights onto a backend: the tensors every architecture of the family has,
//! and the optional ones its [`ArchOptions`](super::ArchOptions) ask for (a missing required
//! tensor is an error naming it).

use kernels::Backend;

use super::config::RopeScaling;
use super::{LlamaConfig, ModelError};
use crate::model::gguf::{GgufFile, keys, keys::tensor as tn};

/// One transformer block's weights.
pub(super) struct Layer<W> {
    pub attn_norm: W,
    pub wq: W,
    pub wk: W,
    pub wv: W,
    pub wo: W,
    pub ffn_norm: W,
    pub w_gate: W,
    pub w_up: W,
    pub w_down: W,
    /// Q, K and V biases (Qwen 2).
    pub qkv_bias: Option<[W; 3]>,
    /// Per-head Q and K norms (Qwen 3, Gemma 3).
    pub qk_norm: Option<[W; 2]>,
    /// Norms of the attention and MLP outputs (Gemma 3).
    pub post_norms: Option<[W; 2]>,
}

/// A Llama model resident on backend `B`.
pub struct Llama<B: Backend> {
    pub(super) cfg: LlamaConfig,
    pub(super) backend: B,
    pub(super) embd: B::Weight,
    pub(super) layers: Vec<Layer<B::Weight>>,
    pub(super) output_norm: B::Weight,
    /// `None` when the output head is tied to the embedding.
    pub(super) output: Option<B::Weight>,
    /// Llama 3.1+'s RoPE frequency factors, host side (`rope_dim / 2`).
    pub(super) rope_freqs: Option<Vec<f32>>,
    /// Each layer's KV pool and index there.
    pub(super) kv_slots: Vec<(super::KvGroup, usize)>,
}

impl<B: Backend> Llama<B> {
    /// Reads the configuration and uploads every weight to `backend`.
    pub fn load(file: &GgufFile, backend: B) -> Result<Self, ModelError> {
        let cfg = LlamaConfig::from_gguf(file)?;
        let load = |name: &str, rows: usize, cols: usize| -> Result<B::Weight, ModelError> {
            let info = file.tensor(name)?;
            let expected = if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            };
            if info.dims != expected {
                return Err(ModelError::TensorShape {
                    name: name.to_owned(),
                    found: info.dims.clone(),
                    expected,
                });
            }
            let ty = info.ggml_type()?;
            Ok(backend.upload_weight(ty, rows, cols, file.tensor_data(info)?)?)
        };
        let (d, f, q, kv, hd) = (
            cfg.dim,
            cfg.ffn_dim,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.head_dim,
        );
        let opts = cfg.options;
        let embd = load(tn::TOKEN_EMBD, cfg.vocab_size, d)?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let blk = |suffix: &str, rows, cols| load(&tn::block(l, suffix), rows, cols);
            let bias = |suffix: &str, cols| load(&tn::block_bias(l, suffix), 1, cols);
            layers.push(Layer {
                attn_norm: blk(tn::ATTN_NORM, 1, d)?,
                wq: blk(tn::ATTN_Q, q, d)?,
                wk: blk(tn::ATTN_K, kv, d)?,
                wv: blk(tn::ATTN_V, kv, d)?,
                wo: blk(tn::ATTN_OUTPUT, d, q)?,
                ffn_norm: blk(tn::FFN_NORM, 1, d)?,
                w_gate: blk(tn::FFN_GATE, f, d)?,
                w_up: blk(tn::FFN_UP, f, d)?,
                w_down: blk(tn::FFN_DOWN, d, f)?,
                qkv_bias: match opts.qkv_bias {
                    true => Some([
                        bias(tn::ATTN_Q, q)?,
                        bias(tn::ATTN_K, kv)?,
                        bias(tn::ATTN_V, kv)?,
                    ]),
                    false => None,
                },
                qk_norm: match opts.qk_norm {
                    true => Some([blk(tn::ATTN_Q_NORM, 1, hd)?, blk(tn::ATTN_K_NORM, 1, hd)?]),
                    false => None,
                },
                post_norms: match opts.post_norms {
                    true => Some([
                        blk(tn::POST_ATTN_NORM, 1, d)?,
                        blk(tn::POST_FFN_NORM, 1, d)?,
                    ]),
                    false => None,
                },
            });
        }
        let rope_freqs = match cfg.rope_scaling {
            RopeScaling::FreqFactors => Some(rope_freqs(file, cfg.rope_dim)?),
            _ => None,
        };
        let output_norm = load(tn::OUTPUT_NORM, 1, d)?;
        let output = match file.tensor(keys::tensor::OUTPUT) {
            Ok(_) => Some(load(tn::OUTPUT, cfg.vocab_size, d)?),
            Err(_) => None,
        };
        Ok(Self {
            backend,
            embd,
            layers,
            output_norm,
            output,
            rope_freqs,
            kv_slots: super::kv::kv_slots(&cfg),
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// The backend the model runs on.
    pub fn backend(&self) -> &B {
        &self.backend
    }
}

/// The `rope_freqs` tensor as host floats: `rope_dim / 2` positive F32 factors.
fn rope_freqs(file: &GgufFile, rope_dim: usize) -> Result<Vec<f32>, ModelError> {
    let info = file.tensor(tn::ROPE_FREQS)?;
    let expected = vec![(rope_dim / 2) as u64];
    if info.dims != expected {
        return Err(ModelError::TensorShape {
            name: tn::ROPE_FREQS.to_owned(),
            found: info.dims.clone(),
            expected,
        });
    }
    let ty = info.ggml_type()?;
    if ty != kernels::GgmlType::F32 {
        return Err(ModelError::InvalidConfig(format!(
            "{} is {ty}, expected F32",
            tn::ROPE_FREQS
        )));
    }
    let factors: Vec<f32> = file
        .tensor_data(info)?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
        return Err(ModelError::InvalidConfig(format!(
            "rope frequency factor {bad}"
        )));
    }
    Ok(factors)
}
