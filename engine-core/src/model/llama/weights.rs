//! Loading a Llama model's weights onto a backend.

use kernels::Backend;

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
        let (d, f, kv) = (cfg.dim, cfg.ffn_dim, cfg.kv_dim());
        let embd = load(tn::TOKEN_EMBD, cfg.vocab_size, d)?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let blk = |suffix: &str, rows, cols| load(&tn::block(l, suffix), rows, cols);
            layers.push(Layer {
                attn_norm: blk(tn::ATTN_NORM, 1, d)?,
                wq: blk(tn::ATTN_Q, d, d)?,
                wk: blk(tn::ATTN_K, kv, d)?,
                wv: blk(tn::ATTN_V, kv, d)?,
                wo: blk(tn::ATTN_OUTPUT, d, d)?,
                ffn_norm: blk(tn::FFN_NORM, 1, d)?,
                w_gate: blk(tn::FFN_GATE, f, d)?,
                w_up: blk(tn::FFN_UP, f, d)?,
                w_down: blk(tn::FFN_DOWN, d, f)?,
            });
        }
        let output_norm = load(tn::OUTPUT_NORM, 1, d)?;
        let output = match file.tensor(keys::tensor::OUTPUT) {
            Ok(_) => Some(load(tn::OUTPUT, cfg.vocab_size, d)?),
            Err(_) => None,
        };
        Ok(Self {
            cfg,
            backend,
            embd,
            layers,
            output_norm,
            output,
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

    /// Allocates a KV pool of `n_blocks` blocks of `block_size` slots for this model.
    pub fn alloc_kv_pool(
        &self,
        n_blocks: usize,
        block_size: usize,
    ) -> Result<B::KvPool, ModelError> {
        Ok(self
            .backend
            .alloc_kv_pool(self.kv_pool_config(n_blocks, block_size))?)
    }

    /// The pool geometry for `n_blocks` blocks of `block_size` slots.
    pub fn kv_pool_config(
        &self,
        n_blocks: usize,
        block_size: usize,
    ) -> kernels::backend::KvPoolConfig {
        kernels::backend::KvPoolConfig {
            n_layers: self.cfg.n_layers,
            n_blocks,
            block_size,
            n_kv_heads: self.cfg.n_kv_heads,
            head_dim: self.cfg.head_dim,
        }
    }
}
