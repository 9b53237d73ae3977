//! Data and timing shared by the kernel micro-benchmarks. The rows are drawn like the quant
//! unit tests' (`kernels/src/quant/tests.rs`), so that the kernels see the same mix of scales,
//! outliers and constant stretches as where their accuracy is checked.

use std::time::Instant;

use kernels::quant::{self, ActKind, ActRow, BlockQ8, GgmlType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded generator: every run measures the same data.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; u1 in (0, 1].
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Gaussian values with a random scale per 32 elements, a few outliers, and some special
/// 32-element stretches (all zero, constant, all positive, one spike).
pub fn test_row(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    for start in (0..n).step_by(32) {
        let len = 32.min(n - start);
        let scale = 10f32.powf(rng.random_range(-2.0..1.0));
        let kind = rng.random_range(0..16);
        for k in 0..len {
            let g = gauss(rng) * scale;
            v.push(match kind {
                0 => 0.0,
                1 => 0.75 * scale,
                2 => g.abs() + scale,
                3 if k == 5 => 30.0 * scale,
                3 => g * 0.1,
                _ if rng.random_range(0..64) == 0 => g * 8.0,
                _ => g,
            });
        }
    }
    v
}

/// `rows` random weight rows of `n` elements of `ty`, concatenated as GGUF bytes.
pub fn weight_rows(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, n: usize) -> Vec<u8> {
    let row_bytes = ty.row_bytes(n).expect("whole blocks");
    let mut out = vec![0u8; rows * row_bytes];
    for row in out.chunks_exact_mut(row_bytes) {
        quant::quantize_row(ty, &test_row(rng, n), row);
    }
    out
}

/// `count` random activation rows of `n` elements and, where `ty` reads them, their Q8 blocks
/// (else empty).
pub fn activations(
    rng: &mut ChaCha8Rng,
    ty: GgmlType,
    count: usize,
    n: usize,
) -> (Vec<Vec<f32>>, Vec<Vec<BlockQ8>>) {
    let xs: Vec<Vec<f32>> = (0..count).map(|_| test_row(rng, n)).collect();
    let q8s = xs
        .iter()
        .map(|x| {
            if ty.act_kind() == ActKind::Q8 {
                let mut q = vec![BlockQ8::default(); x.len() / 32];
                quant::quantize_act_q8(x, &mut q);
                q
            } else {
                Vec::new()
            }
        })
        .collect();
    (xs, q8s)
}

/// The activation rows over `xs` and their Q8 blocks.
pub fn act_rows<'a>(xs: &'a [Vec<f32>], q8s: &'a [Vec<BlockQ8>]) -> Vec<ActRow<'a>> {
    xs.iter()
        .zip(q8s)
        .map(|(x, q)| ActRow { f32: x, q8: q })
        .collect()
}

/// The fastest of `runs` runs of `f`, in nanoseconds: the machine may be shared, so the least
/// disturbed run is the one that measures the kernel.
pub fn best_ns(runs: usize, f: &mut dyn FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .fold(f64::INFINITY, f64::min)
}
