//! Model throughput on the CPU backend: prompt processing (512-token prompt, one chunk),
//! single-stream decode (128 tokens) and 16-way batched decode (128 steps).
//!
//! `cargo bench -p engine-core --bench model_throughput [-- --json]`; the model is
//! `$JOURNEY_MODEL` or `models/SmolLM2-135M-Instruct.Q4_1.gguf`. `scripts/bench_model.sh` runs
//! this beside llama.cpp in the same run and prints the ratios.

use std::path::PathBuf;
use std::time::Instant;

use engine_core::kv_cache::{BlockAllocator, BlockTable};
use engine_core::model::Model;
use engine_core::model::llama::ForwardBatch;
use kernels::{CpuBackend, cpu::CpuKvPool};

const BLOCK: usize = 16;

struct Seqs {
    _alloc: BlockAllocator,
    tables: Vec<BlockTable>,
    pool: CpuKvPool,
}

impl Seqs {
    fn new(model: &Model<CpuBackend>, n: usize, tokens_each: usize) -> Self {
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

    /// One forward: `tokens[i]` of sequence `seqs[i]` at `positions[i]`; logits for every row.
    fn step(
        &mut self,
        model: &Model<CpuBackend>,
        tokens: &[u32],
        positions: &[u32],
        seqs: &[u32],
        logits_rows: &[u32],
    ) -> Vec<f32> {
        let tables: Vec<&[u32]> = self.tables.iter().map(BlockTable::as_raw).collect();
        let batch = ForwardBatch {
            tokens,
            positions,
            token_seq: seqs,
            block_tables: &tables,
            block_size: BLOCK,
            logits_rows,
        };
        model.llama.forward(&mut self.pool, &batch).unwrap()
    }
}

fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i as u32)
        .unwrap()
}

fn prompt(n: usize, salt: u32, vocab: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(salt * 7919)) % (vocab - 100) + 50)
        .collect()
}

fn pp(model: &Model<CpuBackend>, n: usize) -> f64 {
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

fn decode(model: &Model<CpuBackend>, n_seqs: usize, prompt_len: usize, steps: usize) -> f64 {
    let vocab = model.llama.config().vocab_size as u32;
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
    let rows: Vec<u32> = (0..n_seqs as u32).collect();
    let t0 = Instant::now();
    for step in 0..steps {
        let pos = vec![(prompt_len + step) as u32; n_seqs];
        let logits = s.step(model, &next, &pos, &seqs, &rows);
        next = logits.chunks_exact(vocab as usize).map(argmax).collect();
    }
    (n_seqs * steps) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let path = std::env::var_os("JOURNEY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let model = Model::load(&path, CpuBackend::new()).expect("load model");
    let threads = rayon::current_num_threads();
    // `--only tg` (or `pp`, `batched`) runs one part, for profiling.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let pp512 = if wants("pp") { pp(&model, 512) } else { 0.0 };
    let tg128 = if wants("tg") {
        decode(&model, 1, 16, 128)
    } else {
        0.0
    };
    let batched16 = if wants("batched") {
        decode(&model, 16, 16, 128)
    } else {
        0.0
    };
    if json {
        println!(
            "{{\"threads\":{threads},\"simd\":\"{}\",\"pp512\":{pp512:.1},\"tg128\":{tg128:.1},\"batched16\":{batched16:.1}}}",
            kernels::quant::simd_level()
        );
    } else {
        println!(
            "journey ({threads} threads, {}):",
            kernels::quant::simd_level()
        );
        println!("  pp512      {pp512:8.1} tok/s");
        println!("  tg128      {tg128:8.1} tok/s");
        println!("  batched16  {batched16:8.1} tok/s aggregate");
    }
}
