//! The paged KV cache's bookkeeping: which fixed-size blocks of the device pool belong to which
//! sequence. The pool itself lives in the backend; this module only hands out block ids.
//!
//! The design follows vLLM's block manager: a free list of equally sized blocks, and per
//! sequence a block table mapping position `p` to slot `table[p / block_size] * block_size +
//! p % block_size`. Blocks are reference-counted so that sequences with a common prompt
//! prefix share the blocks holding it (automatic prefix caching, as vLLM's v1 KV cache
//! manager does it).

mod allocator;
mod block_table;
mod budget;
mod manager;

pub use allocator::{BlockAllocator, BlockHash, BlockId, OutOfBlocks, prefix_hashes};
pub use block_table::BlockTable;
pub use budget::KvBudget;
pub use manager::{KvCacheManager, KvRelease, RequestKv, WindowKv};
