//! Sizing the KV pools from a memory budget: the full-attention pool takes what the
//! sliding-window pool (if the model has one) does not need.

/// What the split depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvBudget {
    /// Bytes of one block of the full-attention pool.
    pub full_block_bytes: usize,
    /// Bytes of one block of the sliding-window pool (0 without one).
    pub window_block_bytes: usize,
    /// Token slots per block.
    pub block_size: usize,
    /// The sliding window, for a model with sliding-window layers.
    pub window: Option<usize>,
    /// Most sequences running at once.
    pub max_num_seqs: usize,
    /// Most tokens one step schedules.
    pub max_num_batched_tokens: usize,
}

impl KvBudget {
    /// Window-pool blocks that always suffice: each running sequence holds at most the blocks
    /// covering its window and the tokens it schedules this step (two partial blocks at the
    /// ends), the steps' tokens sum to at most the token budget, and one block is the
    /// placeholder.
    pub fn window_need(&self) -> usize {
        let Some(window) = self.window else {
            return 0;
        };
        let bs = self.block_size;
        self.max_num_seqs * (window.div_ceil(bs) + 2) + self.max_num_batched_tokens.div_ceil(bs) + 1
    }

    /// [`window_need`](Self::window_need) of a single sequence scheduling up to
    /// `max_num_batched_tokens` per step: the least window pool any engine can run with.
    pub fn one_sequence_window_need(
        block_size: usize,
        window: Option<usize>,
        max_num_batched_tokens: usize,
    ) -> usize {
        KvBudget {
            full_block_bytes: 1,
            window_block_bytes: 1,
            block_size,
            window,
            max_num_seqs: 1,
            max_num_batched_tokens,
        }
        .window_need()
    }

    /// `(full, window)` pool blocks for `bytes` of memory: the window pool gets what it needs
    /// (never more blocks than the full pool, which bounds every sequence anyway) and the full
    /// pool the rest.
    pub fn split(&self, bytes: usize) -> (usize, usize) {
        let full_bytes = self.full_block_bytes.max(1);
        if self.window.is_none() {
            return (bytes / full_bytes, 0);
        }
        let even = bytes / (full_bytes + self.window_block_bytes);
        let need = self.window_need();
        if need >= even {
            return (even, even);
        }
        ((bytes - need * self.window_block_bytes) / full_bytes, need)
    }

    /// `(full, window)` for an explicit full-pool block count.
    pub fn with_full_blocks(&self, full: usize) -> (usize, usize) {
        match self.window {
            None => (full, 0),
            Some(_) => (full, full.min(self.window_need())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gemma 3 270M's pools at block size 16 (3 full and 15 sliding-window layers).
    fn gemma(window: Option<usize>) -> KvBudget {
        KvBudget {
            full_block_bytes: 3 * 16 * 256 * 2 * 4,
            window_block_bytes: if window.is_some() {
                15 * 16 * 256 * 2 * 4
            } else {
                0
            },
            block_size: 16,
            window,
            max_num_seqs: 64,
            max_num_batched_tokens: 512,
        }
    }

    #[test]
    fn a_large_budget_goes_to_the_full_pool() {
        let b = gemma(Some(512));
        assert_eq!(b.window_need(), 64 * (32 + 2) + 32 + 1);
        let bytes = 8 << 30;
        let (full, window) = b.split(bytes);
        assert_eq!(window, b.window_need());
        assert!(full * b.full_block_bytes + window * b.window_block_bytes <= bytes);
        // Versus every layer keeping every block: 4.5x the tokens in the same memory.
        let same = bytes / (b.full_block_bytes + b.window_block_bytes);
        assert!(full > 4 * same, "{full} vs {same}");
    }

    #[test]
    fn a_small_budget_splits_evenly_and_no_window_takes_all() {
        let b = gemma(Some(512));
        let bytes = 256 << 20;
        let (full, window) = b.split(bytes);
        assert_eq!(full, window);
        assert_eq!(full, bytes / (b.full_block_bytes + b.window_block_bytes));
        let none = gemma(None);
        assert_eq!(none.split(bytes), (bytes / none.full_block_bytes, 0));
        assert_eq!(b.with_full_blocks(100), (100, 100));
        assert_eq!(b.with_full_blocks(100_000), (100_000, b.window_need()));
    }
}
