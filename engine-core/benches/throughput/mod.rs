//! The timed loops the model benches share, for any backend: prefill of one prompt, and
//! greedy decode of several sequences after a 16-token prompt each, straight through
//! `Llama::forward` (no scheduler, no server).

use std::time::Instant;

use engine_core::kv_cache::{BlockAllocator, BlockTable};
use engine_core::model::Model;
use engine_core::model::llama::ForwardBatch;
use engine_core::sampling::argmax;
use kernels::Backend;

const BLOCK: usize = 16;

struct Seqs<B: Backend> {
    _alloc: BlockAllocator,
    tables: Vec<BlockTable>,
    pool: engine_core::model::llama::KvCache<B>,
}

impl<B: Backend> Seqs<B> {
    fn new(model: &Model<B>, n: usize, tokens_each: usize) -> Self {
        let blocks = n * tokens_each.div_ceil(BLOCK);
        let mut alloc = BlockAllocator::new(blocks, BLOCK);
        let tables = (0..n)
            .map(|_| {
                let mut t = BlockTable::new();
                t.reserve(&mut alloc, tokens_each).unwrap();
                t
            })
            .collect();
        Self {
            _alloc: alloc,
            tables,
            pool: model.llama.alloc_kv_pool(blocks, BLOCK).unwrap(),
        }
    }

    fn step(
        &mut self,
        model: &Model<B>,
        tokens: &[u32],
        positions: &[u32],
        seqs: &[u32],
        rows: &[u32],
    ) -> Vec<f32> {
        let tables: Vec<&[u32]> = self.tables.iter().map(BlockTable::as_raw).collect();
        let batch = ForwardBatch {
            tokens,
            positions,
            token_seq: seqs,
            block_tables: &tables,
            window_block_tables: None,
            block_size: BLOCK,
            logits_rows: rows,
        };
        // The logits come back to the host, which waits for the step's kernels.
        model.llama.forward(&mut self.pool, &batch).unwrap()
    }
}

fn prompt(n: usize, salt: u32, vocab: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt * 7919)) % (vocab - 100) + 50)
        .collect()
}

/// Prefill tok/s of one `n`-token prompt (best of 3).
pub fn prefill<B: Backend>(model: &Model<B>, n: usize) -> f64 {
    let vocab = model.llama.config().vocab_size as u32;
    let toks = prompt(n, 1, vocab);
    let pos: Vec<u32> = (0..n as u32).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut s = Seqs::new(model, 1, n);
        let t0 = Instant::now();
        s.step(model, &toks, &pos, &vec![0; n], &[n as u32 - 1]);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    n as f64 / best
}

/// Aggregate decode tok/s of `n_seqs` sequences after a 16-token prompt each.
pub fn decode<B: Backend>(model: &Model<B>, n_seqs: usize, steps: usize) -> f64 {
    let vocab = model.llama.config().vocab_size as u32;
    let prompt_len = 16;
    let mut s = Seqs::new(model, n_seqs, prompt_len + steps);
    let mut next = Vec::new();
    for q in 0..n_seqs {
        let toks = prompt(prompt_len, q as u32 + 2, vocab);
        let pos: Vec<u32> = (0..prompt_len as u32).collect();
        let logits = s.step(
            model,
            &toks,
            &pos,
            &vec![q as u32; prompt_len],
            &[prompt_len as u32 - 1],
        );
        next.push(argmax(&logits));
    }
    let seqs: Vec<u32> = (0..n_seqs as u32).collect();
    let t0 = Instant::now();
    for step in 0..steps {
        let pos = vec![(prompt_len + step) as u32; n_seqs];
        let logits = s.step(model, &next, &pos, &seqs, &seqs);
        next = logits.chunks_exact(vocab as usize).map(argmax).collect();
    }
    (n_seqs * steps) as f64 / t0.elapsed().as_secs_f64()
}
