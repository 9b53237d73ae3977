//! A free-list allocator of KV blocks.

/// Index of one KV block in the device pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub u32);

/// Not enough free blocks for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("KV cache exhausted: {needed} more blocks needed, {free} free")]
pub struct OutOfBlocks {
    /// Blocks asked for.
    pub needed: usize,
    /// Blocks free at the time.
    pub free: usize,
}

/// Hands out and takes back block ids; the pool has `total` blocks of `block_size` slots.
#[derive(Debug)]
pub struct BlockAllocator {
    block_size: usize,
    total: usize,
    /// Free ids, popped from the end; lowest ids are handed out first.
    free: Vec<BlockId>,
}

impl BlockAllocator {
    /// A pool of `total` blocks, all free.
    pub fn new(total: usize, block_size: usize) -> Self {
        assert!(block_size > 0, "block size must be positive");
        let total_u32 = u32::try_from(total).expect("block count fits u32");
        Self {
            block_size,
            total,
            free: (0..total_u32).rev().map(BlockId).collect(),
        }
    }

    /// Slots per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn num_total(&self) -> usize {
        self.total
    }

    /// Blocks free now.
    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// Blocks in use now.
    pub fn num_used(&self) -> usize {
        self.total - self.free.len()
    }

    /// Blocks needed to hold `n_tokens` tokens.
    pub fn blocks_for(&self, n_tokens: usize) -> usize {
        n_tokens.div_ceil(self.block_size)
    }

    /// Takes `n` blocks, all or none.
    pub fn allocate(&mut self, n: usize) -> Result<Vec<BlockId>, OutOfBlocks> {
        if n > self.free.len() {
            return Err(OutOfBlocks {
                needed: n,
                free: self.free.len(),
            });
        }
        let at = self.free.len() - n;
        let mut taken = self.free.split_off(at);
        taken.reverse();
        Ok(taken)
    }

    /// Returns blocks to the pool.
    pub fn release(&mut self, blocks: impl IntoIterator<Item = BlockId>) {
        for b in blocks {
            debug_assert!(
                (b.0 as usize) < self.total,
                "block {b:?} is not from this pool"
            );
            debug_assert!(!self.free.contains(&b), "block {b:?} freed twice");
            self.free.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_all_or_nothing_and_reuses_freed_blocks() {
        let mut a = BlockAllocator::new(4, 16);
        let x = a.allocate(3).unwrap();
        assert_eq!(x, vec![BlockId(0), BlockId(1), BlockId(2)]);
        assert_eq!(a.allocate(2), Err(OutOfBlocks { needed: 2, free: 1 }));
        assert_eq!(a.num_free(), 1);
        a.release(x);
        assert_eq!(a.num_free(), 4);
        assert_eq!(a.num_used(), 0);
        assert_eq!(a.blocks_for(33), 3);
        assert_eq!(a.allocate(4).unwrap().len(), 4);
    }
}
