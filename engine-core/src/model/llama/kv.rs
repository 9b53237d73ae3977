//! Where each layer's keys and values live: one paged pool for the full-attention layers and,
//! for models with sliding-window layers (Gemma 3), a second pool for those.
//!
//! The two pools have their own block ids and block tables. A sliding-window layer never reads
//! a key older than its window, so the KV cache manager can give the blocks before the window
//! back while the sequence goes on (the scheduler does, for the engine), and its pool only
//! needs a window's worth of blocks per sequence: vLLM's hybrid KV cache in its simplest form.
//! Callers that keep one table per sequence ([`ForwardBatch::window_block_tables`] `None`) use
//! it for both pools, which then need the same block count.
//!
//! [`ForwardBatch::window_block_tables`]: super::ForwardBatch::window_block_tables

use kernels::Backend;
use kernels::backend::KvPoolConfig;

use super::{Llama, ModelError};

/// The pool a layer's keys and values live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvGroup {
    /// Full attention: keys `0..=pos`.
    Full,
    /// Sliding window of this many keys.
    Window(usize),
}

/// The KV pools of one model: `full` for the full-attention layers, `window` for the
/// sliding-window ones (each `None` when the model has no such layer).
pub struct KvCache<B: Backend> {
    pub(super) full: Option<B::KvPool>,
    pub(super) window: Option<B::KvPool>,
}

impl<B: Backend> KvCache<B> {
    /// Blocks in the full-attention pool and in the sliding-window pool (0 for an absent one).
    pub fn num_blocks(&self, backend: &B) -> (usize, usize) {
        let n =
            |p: &Option<B::KvPool>| p.as_ref().map_or(0, |p| backend.kv_pool_config(p).n_blocks);
        (n(&self.full), n(&self.window))
    }
}

impl<B: Backend> Llama<B> {
    /// The pool of layer `l` and its index there.
    pub(super) fn kv_slot(&self, l: usize) -> (KvGroup, usize) {
        self.kv_slots[l]
    }

    /// The sliding window of the model's windowed layers, if it has any.
    pub fn kv_window(&self) -> Option<usize> {
        self.kv_slots.iter().find_map(|&(g, _)| match g {
            KvGroup::Window(w) => Some(w),
            KvGroup::Full => None,
        })
    }

    /// Layers in the full-attention pool and in the sliding-window pool.
    pub fn kv_layers(&self) -> (usize, usize) {
        let window = self
            .kv_slots
            .iter()
            .filter(|(g, _)| *g != KvGroup::Full)
            .count();
        (self.kv_slots.len() - window, window)
    }

    /// Allocates both pools with `n_blocks` blocks each: for callers that give every sequence
    /// one block table.
    pub fn alloc_kv_pool(
        &self,
        n_blocks: usize,
        block_size: usize,
    ) -> Result<KvCache<B>, ModelError> {
        self.alloc_kv_cache(n_blocks, n_blocks, block_size)
    }

    /// Allocates `full_blocks` blocks for the full-attention layers and `window_blocks` for the
    /// sliding-window ones.
    pub fn alloc_kv_cache(
        &self,
        full_blocks: usize,
        window_blocks: usize,
        block_size: usize,
    ) -> Result<KvCache<B>, ModelError> {
        let (full_layers, window_layers) = self.kv_layers();
        let pool = |layers: usize, blocks: usize| -> Result<Option<B::KvPool>, ModelError> {
            if layers == 0 {
                return Ok(None);
            }
            Ok(Some(self.backend.alloc_kv_pool(
                self.pool_config(layers, blocks, block_size),
            )?))
        };
        Ok(KvCache {
            full: pool(full_layers, full_blocks)?,
            window: pool(window_layers, window_blocks)?,
        })
    }

    /// Bytes of one block of the full-attention pool and of the sliding-window pool (keys and
    /// values, in the backend's storage type).
    pub fn kv_block_bytes(&self, block_size: usize) -> (usize, usize) {
        let (full, window) = self.kv_layers();
        (
            self.pool_config(full, 1, block_size).bytes(),
            self.pool_config(window, 1, block_size).bytes(),
        )
    }

    fn pool_config(&self, n_layers: usize, n_blocks: usize, block_size: usize) -> KvPoolConfig {
        KvPoolConfig {
            n_layers,
            n_blocks,
            block_size,
            n_kv_heads: self.cfg.n_kv_heads,
            head_dim: self.cfg.head_dim,
            dtype: self.backend.kv_dtype(),
        }
    }
}

/// Each layer's pool and index there, in layer order.
pub(super) fn kv_slots(cfg: &super::LlamaConfig) -> Vec<(KvGroup, usize)> {
    let (mut full, mut window) = (0, 0);
    (0..cfg.n_layers)
        .map(|l| match cfg.layer_window(l) {
            Some(w) => {
                window += 1;
                (KvGroup::Window(w), window - 1)
            }
            None => {
                full += 1;
                (KvGroup::Full, full - 1)
            }
        })
        .collect()
}
