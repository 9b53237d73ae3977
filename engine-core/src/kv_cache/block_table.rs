//! One sequence's block table.

use super::allocator::{BlockAllocator, BlockId, OutOfBlocks};

/// The blocks holding one sequence's keys and values, in position order.
///
/// In a sliding-window pool the leading blocks can be given back ([`release_before`]) while
/// the sequence goes on: their entries then name a placeholder block, which attention never
/// reads (it starts at the window).
///
/// [`release_before`]: BlockTable::release_before
#[derive(Debug, Default)]
pub struct BlockTable {
    blocks: Vec<BlockId>,
    /// The same ids as plain u32, the form the backend's attention reads.
    raw: Vec<u32>,
    /// Leading blocks already given back.
    released: usize,
}

impl BlockTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grows the table so it can hold `n_tokens` tokens; all-or-nothing.
    pub fn reserve(
        &mut self,
        alloc: &mut BlockAllocator,
        n_tokens: usize,
    ) -> Result<(), OutOfBlocks> {
        let needed = alloc.blocks_for(n_tokens).saturating_sub(self.blocks.len());
        if needed > 0 {
            let new = alloc.allocate(needed)?;
            self.raw.extend(new.iter().map(|b| b.0));
            self.blocks.extend(new);
        }
        Ok(())
    }

    /// Starts an empty table with `blocks` (a cached prefix, already referenced).
    pub fn adopt(&mut self, blocks: Vec<BlockId>) {
        debug_assert!(self.blocks.is_empty(), "adopting into a non-empty table");
        self.raw.extend(blocks.iter().map(|b| b.0));
        self.blocks.extend(blocks);
    }

    /// The block ids, in position order (given-back ones included).
    pub fn blocks(&self) -> &[BlockId] {
        &self.blocks
    }

    /// Gives back the blocks before block index `first_kept` (all of whose positions lie
    /// before every window still to be read); their entries become `placeholder`.
    pub fn release_before(
        &mut self,
        alloc: &mut BlockAllocator,
        first_kept: usize,
        placeholder: BlockId,
    ) {
        let end = first_kept.min(self.blocks.len());
        if end <= self.released {
            return;
        }
        alloc.release(self.blocks[self.released..end].iter().copied());
        self.raw[self.released..end].fill(placeholder.0);
        self.released = end;
    }

    /// Blocks still held (the table's length less those given back).
    pub fn num_held(&self) -> usize {
        self.blocks.len() - self.released
    }

    /// Blocks needed beyond the current ones to hold `n_tokens`.
    pub fn missing_blocks(&self, alloc: &BlockAllocator, n_tokens: usize) -> usize {
        alloc.blocks_for(n_tokens).saturating_sub(self.blocks.len())
    }

    /// The pool slot of position `pos`.
    pub fn slot(&self, pos: usize, block_size: usize) -> u32 {
        self.raw[pos / block_size] * block_size as u32 + (pos % block_size) as u32
    }

    /// Block ids as u32, for the backend.
    pub fn as_raw(&self) -> &[u32] {
        &self.raw
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Gives every block still held back.
    pub fn release(&mut self, alloc: &mut BlockAllocator) {
        self.raw.clear();
        alloc.release(self.blocks.drain(..).skip(self.released));
        self.released = 0;
    }
}
