//! SmolLM2 on `--device cuda`: decode tok/s at batch 1, 16 and 64 and prefill tok/s (512
//! tokens), each beside its physical bound: the weight bytes a decode step must stream from
//! HBM against the device's bandwidth, and the kernel launches per step.
//!
//! `cargo bench -p engine-core --features cuda --bench cuda_throughput` on a GPU machine.
//! Elsewhere it prints the bound it can compute (from the GGUF and an H200's 4.8 TB/s) and
//! says that it could not run.

use std::path::PathBuf;

use engine_core::model::gguf::GgufFile;
/// H200 HBM3e, the GPU machines of this workplace (used when no device can be asked).
const H200_BYTES_PER_S: f64 = 4.8e12;

/// Bytes one decode step reads from weights: every matrix once (the tied LM head is the
/// embedding table; an untied model reads `output.weight` and gathers embedding rows only).
fn weight_bytes_per_step(path: &std::path::Path) -> u64 {
    let file = GgufFile::open(path).expect("open the GGUF");
    let tied = file.tensors.iter().all(|t| t.name != "output.weight");
    file.tensors
        .iter()
        .filter(|t| tied || t.name != "token_embd.weight")
        .map(|t| file.tensor_data(t).map_or(0, |d| d.len() as u64))
        .sum()
}

/// The timed loops; built only where they can run.
#[cfg(feature = "cuda")]
mod measure {
    use std::time::Instant;

    use engine_core::kv_cache::{BlockAllocator, BlockTable};
    use engine_core::model::Model;
    use engine_core::model::llama::ForwardBatch;
    use kernels::Backend;

    const BLOCK: usize = 16;

    struct Seqs<B: Backend> {
        _alloc: BlockAllocator,
        tables: Vec<BlockTable>,
        pool: B::KvPool,
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

    fn argmax(row: &[f32]) -> u32 {
        row.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
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
}

fn print_bound(weight_bytes: u64, bandwidth: f64, source: &str) {
    let step_s = weight_bytes as f64 / bandwidth;
    println!(
        "bound: {:.1} MB of weights per decode step at {:.2} TB/s ({source}) = {:.1} µs/step",
        weight_bytes as f64 / 1e6,
        bandwidth / 1e12,
        step_s * 1e6
    );
    for batch in [1usize, 16, 64] {
        println!(
            "  decode batch {batch:>2}: at most {:>9.0} tok/s from weight traffic",
            batch as f64 / step_s
        );
    }
}

fn main() {
    let path = std::env::var_os("JOURNEY_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let weight_bytes = weight_bytes_per_step(&path);
    run(&path, weight_bytes);
}

#[cfg(not(feature = "cuda"))]
fn run(_path: &std::path::Path, weight_bytes: u64) {
    print_bound(weight_bytes, H200_BYTES_PER_S, "H200 datasheet");
    println!(
        "could not run: this build has no CUDA backend (add --features cuda, on a GPU machine)"
    );
}

#[cfg(feature = "cuda")]
fn run(path: &std::path::Path, weight_bytes: u64) {
    let cuda = match kernels::cuda::CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            print_bound(weight_bytes, H200_BYTES_PER_S, "H200 datasheet");
            println!("could not run: {e}");
            return;
        }
    };
    let bandwidth = cuda.peak_bandwidth().unwrap_or(H200_BYTES_PER_S);
    println!("device: {}", cuda.device());
    print_bound(weight_bytes, bandwidth, "device attributes");
    use engine_core::model::Model;
    use measure::{decode, prefill};
    let model = Model::load(path, cuda.clone()).expect("load the model on CUDA");
    // decode(1 sequence, 1 step) runs two forwards (the prompt, then one token) with the same
    // kernels each.
    let before = cuda.launch_count();
    decode(&model, 1, 1);
    let per_forward = (cuda.launch_count() - before) / 2;
    println!(
        "launches per forward: {per_forward} (per token: {per_forward} at batch 1, {:.1} at 64)",
        per_forward as f64 / 64.0
    );
    let pp = prefill(&model, 512);
    println!("prefill 512:      {pp:>9.0} tok/s");
    for batch in [1usize, 16, 64] {
        let tps = decode(&model, batch, 64);
        let bound = batch as f64 * bandwidth / weight_bytes as f64;
        println!(
            "decode batch {batch:>2}:  {tps:>9.0} tok/s ({:.0}% of the weight-traffic bound)",
            100.0 * tps / bound
        );
    }
    cuda.synchronize();
}
