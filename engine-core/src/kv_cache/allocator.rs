//! The KV block allocator: reference-counted blocks, and (vLLM's automatic prefix caching) a
//! map from the hash of a full block's token prefix to the block holding its keys and values.
//!
//! A block is in one of three places: *in use* (referenced by one or more sequences: several
//! when they share a cached prefix), *cached* (unreferenced but still holding a registered
//! prefix; reused by a later lookup, or evicted least recently freed first when blocks run
//! out), or *free* (unreferenced, holding nothing anyone can look up). Free blocks are handed
//! out before cached ones are evicted.

use std::collections::{HashMap, VecDeque};

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

/// The hash of a full block's tokens and of every token before them (a chain), so equal
/// hashes mean equal prefixes, not just equal blocks: 128 bits of SHA-256, so that nobody can
/// choose a prompt whose blocks collide with another's prefix (vLLM moved from Python's `hash`
/// to SHA-256 for the same reason) and a hit needs no check of the block's tokens.
pub type BlockHash = u128;

/// Hands out and takes back block ids; the pool has `total` blocks of `block_size` slots.
#[derive(Debug)]
pub struct BlockAllocator {
    block_size: usize,
    total: usize,
    /// Free ids, popped from the end; lowest ids are handed out first.
    free: Vec<BlockId>,
    /// Sequences referencing each block.
    refs: Vec<u32>,
    /// The prefix each block holds, when registered.
    hash_of: Vec<Option<BlockHash>>,
    /// Registered prefixes.
    cached: HashMap<BlockHash, BlockId>,
    /// Unreferenced registered blocks, least recently freed first, as (block, generation):
    /// an entry is stale when the block's generation moved on (it was reused or evicted).
    evictable: VecDeque<(BlockId, u32)>,
    generation: Vec<u32>,
    /// Unreferenced registered blocks (the live entries of `evictable`).
    num_evictable: usize,
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
            refs: vec![0; total],
            hash_of: vec![None; total],
            cached: HashMap::new(),
            evictable: VecDeque::new(),
            generation: vec![0; total],
            num_evictable: 0,
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

    /// Blocks a request could get now: free ones and evictable cached ones.
    pub fn num_free(&self) -> usize {
        self.free.len() + self.num_evictable
    }

    /// Blocks referenced by sequences now.
    pub fn num_used(&self) -> usize {
        self.total - self.num_free()
    }

    /// Blocks holding a registered prefix (in use or not).
    pub fn num_cached(&self) -> usize {
        self.cached.len()
    }

    /// Blocks needed to hold `n_tokens` tokens.
    pub fn blocks_for(&self, n_tokens: usize) -> usize {
        n_tokens.div_ceil(self.block_size)
    }

    /// Takes `n` blocks, all or none: free ones first, then the least recently freed cached
    /// ones (their prefixes are forgotten).
    pub fn allocate(&mut self, n: usize) -> Result<Vec<BlockId>, OutOfBlocks> {
        if n > self.num_free() {
            return Err(OutOfBlocks {
                needed: n,
                free: self.num_free(),
            });
        }
        let from_free = n.min(self.free.len());
        let at = self.free.len() - from_free;
        let mut taken = self.free.split_off(at);
        taken.reverse();
        while taken.len() < n {
            let Some((b, generation)) = self.evictable.pop_front() else {
                unreachable!("num_evictable counts live entries");
            };
            if self.generation[b.0 as usize] != generation || self.refs[b.0 as usize] != 0 {
                continue; // stale entry
            }
            self.forget(b);
            self.num_evictable -= 1;
            taken.push(b);
        }
        for b in &taken {
            self.refs[b.0 as usize] = 1;
            self.generation[b.0 as usize] += 1;
        }
        Ok(taken)
    }

    /// Drops one reference to each block; an unreferenced block becomes cached (if it holds a
    /// registered prefix) or free.
    pub fn release(&mut self, blocks: impl IntoIterator<Item = BlockId>) {
        for b in blocks {
            let i = b.0 as usize;
            debug_assert!(i < self.total, "block {b:?} is not from this pool");
            debug_assert!(self.refs[i] > 0, "block {b:?} freed twice");
            self.refs[i] = self.refs[i].saturating_sub(1);
            if self.refs[i] > 0 {
                continue;
            }
            if self.hash_of[i].is_some() {
                self.generation[i] += 1;
                self.evictable.push_back((b, self.generation[i]));
                self.num_evictable += 1;
            } else {
                self.free.push(b);
            }
        }
    }

    /// The blocks holding the longest cached prefix of `hashes`, each now referenced once
    /// more (release them like allocated ones).
    pub fn lookup(&mut self, hashes: &[BlockHash]) -> Vec<BlockId> {
        let mut hits = Vec::new();
        for h in hashes {
            let Some(&b) = self.cached.get(h) else { break };
            let i = b.0 as usize;
            if self.refs[i] == 0 {
                // Leaves the evictable set; its queue entry goes stale.
                self.generation[i] += 1;
                self.num_evictable -= 1;
            }
            self.refs[i] += 1;
            hits.push(b);
        }
        hits
    }

    /// Records that `block` (in use) now holds the full block of prefix `hash`. A prefix
    /// already held by another block keeps that one.
    pub fn register(&mut self, block: BlockId, hash: BlockHash) {
        let i = block.0 as usize;
        debug_assert!(self.refs[i] > 0, "registering an unreferenced block");
        if self.hash_of[i].is_some() || self.cached.contains_key(&hash) {
            return;
        }
        self.hash_of[i] = Some(hash);
        self.cached.insert(hash, block);
    }

    /// Forgets what `block` holds (its contents may be wrong: the step writing it failed).
    pub fn unregister(&mut self, block: BlockId) {
        let i = block.0 as usize;
        if self.refs[i] == 0 && self.hash_of[i].is_some() {
            // Cached and unreferenced: it becomes plainly free.
            self.generation[i] += 1;
            self.num_evictable -= 1;
            self.forget(block);
            self.free.push(block);
        } else {
            self.forget(block);
        }
    }

    fn forget(&mut self, block: BlockId) {
        if let Some(h) = self.hash_of[block.0 as usize].take() {
            self.cached.remove(&h);
        }
    }
}

/// The chain hashes of every full block of `tokens` (a partial last block has none).
pub fn prefix_hashes(tokens: &[u32], block_size: usize) -> Vec<BlockHash> {
    use sha2::{Digest, Sha256};
    let mut parent: BlockHash = 0;
    tokens
        .chunks_exact(block_size)
        .map(|block| {
            let mut h = Sha256::new();
            h.update(parent.to_le_bytes());
            for t in block {
                h.update(t.to_le_bytes());
            }
            let digest = h.finalize();
            let mut first = [0u8; 16];
            first.copy_from_slice(&digest[..16]);
            parent = u128::from_le_bytes(first);
            parent
        })
        .collect()
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

    #[test]
    fn chain_hashes_depend_on_the_whole_prefix() {
        let a = prefix_hashes(&[1, 2, 3, 4, 5, 6, 7], 2);
        assert_eq!(a.len(), 3, "the partial last block has no hash");
        let b = prefix_hashes(&[9, 9, 3, 4], 2);
        assert_ne!(a[1], b[1], "same block, different prefix");
        assert_eq!(prefix_hashes(&[1, 2, 3, 4], 2), a[..2]);
    }

    #[test]
    fn a_registered_prefix_is_shared_then_cached_then_evicted_last() {
        let mut a = BlockAllocator::new(4, 2);
        let h = prefix_hashes(&[1, 2, 3, 4, 5, 6], 2);
        let blocks = a.allocate(3).unwrap();
        for (b, h) in blocks.iter().zip(&h) {
            a.register(*b, *h);
        }
        // A second sequence with the same first two blocks shares them.
        let hits = a.lookup(&[h[0], h[1], 12345]);
        assert_eq!(hits, blocks[..2]);
        assert_eq!(a.num_used(), 3);
        a.release(blocks.clone());
        assert_eq!(a.num_used(), 2, "the shared blocks stay referenced");
        a.release(hits);
        assert_eq!((a.num_used(), a.num_free(), a.num_cached()), (0, 4, 3));
        // Free blocks go first; then the least recently freed cached block is evicted.
        let one = a.allocate(1).unwrap();
        assert_eq!(one, vec![BlockId(3)]);
        assert_eq!(a.num_cached(), 3);
        // Freed in the order: block 2 (its last reference went first), then 0 and 1.
        let more = a.allocate(2).unwrap();
        assert_eq!(more, vec![blocks[2], blocks[0]]);
        assert_eq!(a.num_cached(), 1, "two prefixes evicted");
        assert!(a.lookup(&h).is_empty(), "the first block's prefix is gone");
        assert_eq!(a.lookup(&h[1..2]), vec![blocks[1]]);
    }

    #[test]
    fn a_cached_block_revived_by_lookup_is_not_evicted() {
        let mut a = BlockAllocator::new(2, 2);
        let h = prefix_hashes(&[7, 7], 2);
        let b = a.allocate(1).unwrap();
        a.register(b[0], h[0]);
        a.release(b.clone());
        let hit = a.lookup(&h);
        assert_eq!(hit, b);
        // Only the one free block remains; the revived one must not be handed out.
        assert_eq!(a.allocate(2), Err(OutOfBlocks { needed: 2, free: 1 }));
        let other = a.allocate(1).unwrap();
        assert_ne!(other, hit);
        a.release(hit);
        a.release(other);
        assert_eq!(a.num_free(), 2);
        // Unregistering a cached block makes it plainly free.
        a.unregister(b[0]);
        assert_eq!((a.num_free(), a.num_cached()), (2, 0));
        assert_eq!(a.allocate(2).unwrap().len(), 2);
    }
}
