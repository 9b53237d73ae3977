//! [`KvCacheManager`]: the KV cache as the scheduler sees it. The scheduler asks for a
//! request's blocks and learns how many of its tokens are already computed; how blocks are
//! found, shared, cached and given back (prefix caching, the sliding-window pool) is decided
//! here, so another cache (token-granular, radix) can replace this one without touching
//! scheduling. Modelled on vLLM v1's `KVCacheManager` (`get_computed_blocks`,
//! `allocate_slots`, `free`).

use super::{BlockAllocator, BlockHash, BlockId, BlockTable};

/// The sliding-window layers' pool of a model that has some.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowKv {
    /// Keys a token attends to, itself included.
    pub window: usize,
    /// Blocks in the pool (one of them is the placeholder of given-back entries).
    pub num_blocks: usize,
}

/// What becomes of a finished request's KV blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvRelease {
    /// Their contents are valid: cached prompt blocks stay findable by later requests.
    Keep,
    /// The step that wrote them failed: nobody may reuse their contents.
    Discard,
}

/// One request's share of the KV cache (opaque to the scheduler).
#[derive(Debug, Default)]
pub struct RequestKv {
    blocks: BlockTable,
    window_blocks: BlockTable,
    /// Chain hashes of the prompt's full blocks (empty without prefix caching).
    prompt_hashes: Vec<BlockHash>,
    /// Prompt tokens found in the prefix cache at its last admission.
    num_cached_tokens: usize,
    /// Leading blocks already registered in the prefix cache.
    num_registered_blocks: usize,
}

impl RequestKv {
    /// Block ids of the full-attention layers, as the backend reads them.
    pub fn block_table(&self) -> &[u32] {
        self.blocks.as_raw()
    }

    /// Block ids of the sliding-window layers, as the backend reads them.
    pub fn window_block_table(&self) -> &[u32] {
        self.window_blocks.as_raw()
    }

    /// The full-attention table.
    pub fn blocks(&self) -> &BlockTable {
        &self.blocks
    }

    /// The sliding-window table (empty for a model without one).
    pub fn window_blocks(&self) -> &BlockTable {
        &self.window_blocks
    }

    /// Prompt tokens found in the prefix cache at its last admission.
    pub fn num_cached_tokens(&self) -> usize {
        self.num_cached_tokens
    }
}

#[derive(Debug)]
struct WindowPool {
    window: usize,
    alloc: BlockAllocator,
    placeholder: BlockId,
}

/// The block pools and their policy.
#[derive(Debug)]
pub struct KvCacheManager {
    alloc: BlockAllocator,
    window: Option<WindowPool>,
    prefix_caching: bool,
}

impl KvCacheManager {
    /// Pools of `num_blocks` blocks of `block_size` tokens (and `window`'s), sharing prompt
    /// prefixes when `prefix_caching` (never with a sliding-window pool).
    ///
    /// # Panics
    /// If the sliding-window pool has fewer than 2 blocks.
    pub fn new(
        num_blocks: usize,
        block_size: usize,
        window: Option<WindowKv>,
        prefix_caching: bool,
    ) -> Self {
        let window = window.map(|w| {
            assert!(
                w.num_blocks >= 2,
                "the sliding-window pool needs 2 blocks at least"
            );
            let mut alloc = BlockAllocator::new(w.num_blocks, block_size);
            let placeholder = alloc.allocate(1).expect("checked above")[0];
            WindowPool {
                window: w.window,
                alloc,
                placeholder,
            }
        });
        Self {
            prefix_caching: prefix_caching && window.is_none(),
            alloc: BlockAllocator::new(num_blocks, block_size),
            window,
        }
    }

    /// Whether prompt prefixes are shared.
    pub fn prefix_caching(&self) -> bool {
        self.prefix_caching
    }

    /// The state of a new request whose prompt's full blocks have the chain hashes
    /// `prompt_hashes` ([`super::prefix_hashes`]; ignored without prefix caching).
    pub fn new_request(&self, prompt_hashes: Vec<BlockHash>) -> RequestKv {
        RequestKv {
            prompt_hashes: if self.prefix_caching {
                prompt_hashes
            } else {
                Vec::new()
            },
            ..RequestKv::default()
        }
    }

    /// For a request being admitted with no blocks: takes the blocks of the longest cached
    /// prefix of its prompt, and returns how many of its `num_tokens` known tokens they hold
    /// (never the last one: its logits give the next sample).
    pub fn computed_prefix(&mut self, kv: &mut RequestKv, num_tokens: usize) -> usize {
        if !kv.blocks.is_empty() || kv.prompt_hashes.is_empty() {
            return 0;
        }
        let bs = self.alloc.block_size();
        let most = ((num_tokens - 1) / bs).min(kv.prompt_hashes.len());
        let hits = self.alloc.lookup(&kv.prompt_hashes[..most]);
        kv.num_cached_tokens = hits.len() * bs;
        kv.num_registered_blocks = hits.len();
        kv.blocks.adopt(hits);
        kv.num_cached_tokens
    }

    /// Grows the request's tables to hold its next `n` tokens after `num_computed`, in every
    /// pool or none. In the sliding-window pool it first gives back the blocks wholly before
    /// the window of the first of those tokens: no query of this step or a later one reads
    /// them. False when they do not fit.
    pub fn allocate(&mut self, kv: &mut RequestKv, num_computed: usize, n: usize) -> bool {
        let target = num_computed + n;
        let Some(w) = self.window.as_mut() else {
            return kv.blocks.reserve(&mut self.alloc, target).is_ok();
        };
        let first_key = (num_computed + 1).saturating_sub(w.window);
        let bs = w.alloc.block_size();
        kv.window_blocks
            .release_before(&mut w.alloc, first_key / bs, w.placeholder);
        let fits = kv.blocks.missing_blocks(&self.alloc, target) <= self.alloc.num_free()
            && kv.window_blocks.missing_blocks(&w.alloc, target) <= w.alloc.num_free();
        fits && kv.blocks.reserve(&mut self.alloc, target).is_ok()
            && kv.window_blocks.reserve(&mut w.alloc, target).is_ok()
    }

    /// The request's first `num_computed_prompt` prompt tokens are scheduled (their keys and
    /// values are written this step, before any attention of the step reads them): its full
    /// blocks among them become findable by later requests.
    pub fn cache_prompt_blocks(&mut self, kv: &mut RequestKv, num_computed_prompt: usize) {
        let full = (num_computed_prompt / self.alloc.block_size()).min(kv.prompt_hashes.len());
        for j in kv.num_registered_blocks..full {
            self.alloc
                .register(kv.blocks.blocks()[j], kv.prompt_hashes[j]);
        }
        kv.num_registered_blocks = kv.num_registered_blocks.max(full);
    }

    /// Gives every block back and forgets what was computed (preemption, or an admission
    /// that did not fit after finding its cached prefix).
    pub fn free(&mut self, kv: &mut RequestKv) {
        kv.blocks.release(&mut self.alloc);
        if let Some(w) = self.window.as_mut() {
            kv.window_blocks.release(&mut w.alloc);
        }
        kv.num_cached_tokens = 0;
        kv.num_registered_blocks = 0;
    }

    /// Gives a finished request's blocks back.
    pub fn free_finished(&mut self, kv: &mut RequestKv, release: KvRelease) {
        if release == KvRelease::Discard {
            for &b in kv.blocks.blocks() {
                self.alloc.unregister(b);
            }
        }
        self.free(kv);
    }

    /// Blocks in the full-attention pool.
    pub fn num_total(&self) -> usize {
        self.alloc.num_total()
    }

    /// Blocks held by requests.
    pub fn num_used(&self) -> usize {
        self.alloc.num_used()
    }

    /// Blocks holding a cached prefix (held by requests or not).
    pub fn num_cached(&self) -> usize {
        self.alloc.num_cached()
    }

    /// Blocks free to allocate (evictable cached ones included).
    pub fn num_free(&self) -> usize {
        self.alloc.num_free()
    }

    /// The block that given-back sliding-window table entries name (never read by attention).
    pub fn window_placeholder(&self) -> Option<u32> {
        self.window.as_ref().map(|w| w.placeholder.0)
    }

    /// Blocks in the sliding-window pool and how many requests hold (0s without one).
    pub fn window_blocks(&self) -> (usize, usize) {
        self.window
            .as_ref()
            .map_or((0, 0), |w| (w.alloc.num_total(), w.alloc.num_used() - 1))
    }
}
