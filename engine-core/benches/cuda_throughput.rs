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

/// The timed loops, built only where they can run.
#[cfg(feature = "cuda")]
mod throughput;

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
    use throughput::{decode, prefill};
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
