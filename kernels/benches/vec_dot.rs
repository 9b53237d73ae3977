//! Row-kernel speed at every SIMD level this CPU runs: ns per weight row for one activation
//! (`vec_dot`) and for a batch of 16 (`vec_dot_multi`), over 256 rows of 512–1536 elements, a
//! slice past L1 but in L2 like one layer's matrix slice.
//!
//! `cargo bench -p kernels --bench vec_dot`.

mod common;

use std::hint::black_box;

use kernels::quant::bench_support::{Level, vec_dot_multi_at};
use kernels::quant::{GgmlType, simd_level};

/// Rows per measured matrix slice.
const ROWS: usize = 256;
/// Passes over the slice per single-activation run (a quarter of them for the batch of 16).
const ITERS: usize = 20;

fn main() {
    let mut rng = common::rng(7);
    println!("simd_level = {}", simd_level());
    for ty in [
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q5_K,
    ] {
        let ns: &[usize] = if ty.block_elems() == 256 {
            &[512, 1536]
        } else {
            &[576, 1536]
        };
        for &n in ns {
            let rb = ty.row_bytes(n).expect("whole blocks");
            let wm = common::weight_rows(&mut rng, ty, ROWS, n);
            let (xs, q8s) = common::activations(&mut rng, ty, 16, n);
            let acts = common::act_rows(&xs, &q8s);
            for level in Level::supported() {
                let mut sink = 0.0f32;
                let single = common::best_ns(7, &mut || {
                    for _ in 0..ITERS {
                        for w in wm.chunks_exact(rb) {
                            let mut o = [0.0f32];
                            vec_dot_multi_at(level, ty, black_box(w), &acts[..1], &mut o);
                            sink += o[0];
                        }
                    }
                }) / (ITERS * ROWS) as f64;
                let mut out = [0.0f32; 16];
                let multi = common::best_ns(7, &mut || {
                    for _ in 0..ITERS / 4 {
                        for w in wm.chunks_exact(rb) {
                            vec_dot_multi_at(level, ty, black_box(w), &acts, &mut out);
                            sink += out[3];
                        }
                    }
                }) / (ITERS / 4 * ROWS) as f64;
                black_box(sink);
                println!(
                    "{ty:>5} n={n:>5} {:<11} single {single:7.1} ns/row   16-multi {multi:8.1} ns/row ({:6.1} ns per row-dot)",
                    level.name(),
                    multi / 16.0
                );
            }
        }
    }
}
