//! Model throughput on the CPU backend: prompt processing (512-token prompt, one chunk),
//! single-stream decode (128 tokens) and 16-way batched decode (128 steps).
//!
//! `cargo bench -p engine-core --bench model_throughput [-- --json]`; the model is
//! `$JOURNEY_MODEL` or `models/SmolLM2-135M-Instruct.Q4_1.gguf`. `scripts/bench_model.sh` runs
//! this beside llama.cpp in the same run and prints the ratios.
//!
//! With `--json` it also reports the bytes of weights one decoded token reads (every matrix, the
//! LM head, and one embedding row) and this machine's read bandwidth (a 2-thread streaming sum
//! over 512 MiB, best of 3), so single-stream decode can be stated as a fraction of the
//! memory-bandwidth bound.
//!
//! The batched row is also measured with the KV cache stored as f16 (`--kv-cache-dtype f16`),
//! llama.cpp's default cache type, as `batched16_f16kv`.
//!
//! `-- --layouts` measures the same three rows with the weights in row panels (the default
//! where the CPU has a panel kernel) and in their GGUF rows, alternated twice, best of each, and
//! prints the ratios.

use std::path::PathBuf;

use engine_core::model::Model;
use engine_core::model::gguf::{GgufFile, keys};
use kernels::{CpuBackend, KvDtype};
use rayon::prelude::*;

mod throughput;

use throughput::{decode, prefill};

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
    if std::env::args().any(|a| a == "--layouts") {
        let rows = Model::load(&path, CpuBackend::gguf_rows()).expect("load model");
        let measure =
            |m: &Model<CpuBackend>| [prefill(m, 512), decode(m, 1, 128), decode(m, 16, 128)];
        let (mut p, mut r) = ([0.0f64; 3], [0.0f64; 3]);
        for _ in 0..2 {
            for (best, got) in p.iter_mut().zip(measure(&model)) {
                *best = best.max(got);
            }
            for (best, got) in r.iter_mut().zip(measure(&rows)) {
                *best = best.max(got);
            }
        }
        println!(
            "weights in row panels vs GGUF rows ({threads} threads, {}), best of 2 alternated:",
            kernels::quant::simd_level()
        );
        for (i, name) in ["pp512", "tg128", "batched16"].iter().enumerate() {
            println!(
                "  {name:10} {:8.1} vs {:8.1} tok/s  ({:.2}x)",
                p[i],
                r[i],
                p[i] / r[i]
            );
        }
        return;
    }
    // `--only tg` (or `pp`, `batched`) runs one part, for profiling.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let pp512 = if wants("pp") {
        prefill(&model, 512)
    } else {
        0.0
    };
    let tg128 = if wants("tg") {
        decode(&model, 1, 128)
    } else {
        0.0
    };
    let batched16 = if wants("batched") {
        decode(&model, 16, 128)
    } else {
        0.0
    };
    let batched16_f16kv = if wants("batched-f16kv") {
        let backend = CpuBackend::new().with_kv_dtype(KvDtype::F16);
        decode(&Model::load(&path, backend).expect("load model"), 16, 128)
    } else {
        0.0
    };
    if json {
        let bytes = weight_bytes_per_token(&GgufFile::open(&path).expect("model file"));
        let bandwidth = read_bandwidth();
        println!(
            "{{\"threads\":{threads},\"simd\":\"{}\",\"pp512\":{pp512:.1},\"tg128\":{tg128:.1},\"batched16\":{batched16:.1},\"batched16_f16kv\":{batched16_f16kv:.1},\"weight_bytes_per_token\":{bytes},\"read_bandwidth\":{bandwidth:.0}}}",
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
        println!("  batched16  {batched16_f16kv:8.1} tok/s aggregate, f16 KV cache");
    }
}

/// Bytes of weights one decoded token reads: every tensor once, except that the embedding
/// table costs one row unless it is also the (tied) output head.
fn weight_bytes_per_token(file: &GgufFile) -> u64 {
    let size = |t: &engine_core::model::gguf::TensorInfo| {
        file.tensor_data(t).map_or(0, |d| d.len() as u64)
    };
    let tied = file.tensor(keys::tensor::OUTPUT).is_err();
    file.tensors
        .iter()
        .map(|t| {
            if t.name == keys::tensor::TOKEN_EMBD && !tied {
                size(t) / t.dims.get(1).copied().unwrap_or(1).max(1)
            } else {
                size(t)
            }
        })
        .sum()
}

/// Bytes per second a streaming read reaches with the bench's threads (best of 3).
fn read_bandwidth() -> f64 {
    let buf = vec![1u64; 64 << 20]; // 512 MiB, larger than any cache
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = std::time::Instant::now();
        let sum: u64 = buf
            .par_chunks(1 << 16)
            .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
            .sum();
        best = best.min(t0.elapsed().as_secs_f64());
        assert_eq!(sum, buf.len() as u64);
    }
    (buf.len() * 8) as f64 / best
}
