//! Row-wise ops: embedding gather, RMSNorm (rows and heads), bias, RoPE, gated activations,
//! residual add, row gather.

use std::cell::RefCell;
use std::sync::Arc;

use rayon::prelude::*;

use super::tensor::{CpuTensor, CpuWeight};
use crate::backend::{Cols, GluActivation, Rope, RopeStyle};

/// Rows per rayon task for cheap row-wise ops; small batches stay on the calling thread.
const ROWS_PER_TASK: usize = 16;

pub(super) fn embedding(table: &CpuWeight, ids: &[u32], out: &mut CpuTensor) {
    assert_eq!(out.rows, ids.len());
    assert_eq!(out.cols, table.cols);
    out.data
        .par_chunks_mut(table.cols)
        .zip(ids.par_iter())
        .for_each(|(row, &id)| {
            assert!(
                (id as usize) < table.rows,
                "token id {id} outside the vocabulary of {}",
                table.rows
            );
            table.dequantize_row(id as usize, row);
        });
}

pub(super) fn rms_norm(x: &CpuTensor, weight: &CpuWeight, eps: f32, out: &mut CpuTensor) {
    assert_eq!((x.rows, x.cols), (out.rows, out.cols));
    let w = weight_vector(weight, x.cols);
    out.data
        .par_chunks_mut(x.cols)
        .with_min_len(ROWS_PER_TASK)
        .zip(x.data.par_chunks(x.cols))
        .for_each(|(o, xr)| {
            let scale = rms_scale(xr, eps);
            for ((o, &v), &g) in o.iter_mut().zip(xr).zip(&w) {
                *o = v * scale * g;
            }
        });
}

pub(super) fn rms_norm_heads(
    x: &mut CpuTensor,
    cols: Cols,
    head_dim: usize,
    weight: &CpuWeight,
    eps: f32,
) {
    assert!(cols.offset + cols.width <= x.cols && cols.width.is_multiple_of(head_dim));
    let w = weight_vector(weight, head_dim);
    let stride = x.cols;
    x.data
        .par_chunks_mut(stride)
        .with_min_len(ROWS_PER_TASK)
        .for_each(|row| {
            for head in row[cols.offset..cols.offset + cols.width].chunks_exact_mut(head_dim) {
                let scale = rms_scale(head, eps);
                for (v, &g) in head.iter_mut().zip(&w) {
                    *v = *v * scale * g;
                }
            }
        });
}

/// `1 / sqrt(mean(x²) + eps)`, with an f64 sum in index order: exact enough, and one fixed
/// order per row.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let ss: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    (1.0 / (ss / x.len() as f64 + f64::from(eps)).sqrt()) as f32
}

/// A `[1, len]` weight as f32.
fn weight_vector(weight: &CpuWeight, len: usize) -> Vec<f32> {
    assert_eq!((weight.rows, weight.cols), (1, len), "vector weight shape");
    let mut w = vec![0.0f32; len];
    weight.dequantize_row(0, &mut w);
    w
}

pub(super) fn add_bias(x: &mut CpuTensor, cols: Cols, bias: &CpuWeight) {
    assert!(cols.offset + cols.width <= x.cols);
    let b = weight_vector(bias, cols.width);
    let stride = x.cols;
    for row in x.data.chunks_exact_mut(stride) {
        for (v, &b) in row[cols.offset..cols.offset + cols.width]
            .iter_mut()
            .zip(&b)
        {
            *v += b;
        }
    }
}

pub(super) fn rope(
    x: &mut CpuTensor,
    cols: Cols,
    head_dim: usize,
    positions: &[u32],
    rope: &Rope<'_>,
) {
    let rot_dim = rope.rot_dim;
    assert_eq!(positions.len(), x.rows);
    assert!(
        cols.width.is_multiple_of(head_dim) && rot_dim <= head_dim && rot_dim.is_multiple_of(2)
    );
    if let Some(f) = rope.freq_factors {
        assert_eq!(
            f.len(),
            rot_dim / 2,
            "one frequency factor per rotated pair"
        );
    }
    let half = rot_dim / 2;
    let inv_freq: Vec<f64> = (0..half).map(|i| rope.inv_freq(i)).collect();
    let angles = rope_angles(positions, &inv_freq);
    // Pair i of a head: dims (2i, 2i+1) interleaved, (i, i + half) NeoX.
    let (first, second) = match rope.style {
        RopeStyle::Interleaved => (2, 1),
        RopeStyle::Neox => (1, half),
    };
    let stride = x.cols;
    x.data
        .par_chunks_mut(stride)
        .with_min_len(ROWS_PER_TASK)
        .zip(angles.par_chunks(half.max(1)))
        .for_each(|(row, sin_cos)| {
            for head in row[cols.offset..cols.offset + cols.width].chunks_exact_mut(head_dim) {
                for (i, &(s, c)) in sin_cos.iter().enumerate() {
                    let (ia, ib) = (i * first, i * first + second);
                    let (a, b) = (head[ia], head[ib]);
                    head[ia] = a * c - b * s;
                    head[ib] = a * s + b * c;
                }
            }
        });
}

/// Rotation tables kept per thread: `(positions, inverse frequencies, [token][pair] (sin, cos))`.
type AngleTables = Vec<(Vec<u32>, Vec<f64>, Arc<Vec<(f32, f32)>>)>;

thread_local! {
    /// The last two tables this thread built: every layer of a forward pass rotates the same
    /// positions with one of (at most) two ropes, so the sines are computed once per pass, not
    /// once per layer.
    static ANGLES: RefCell<AngleTables> = const { RefCell::new(Vec::new()) };
}

/// `(sin, cos)` of `position * inv_freq[i]` for every position and pair, `[token][pair]`, from
/// the thread's cache when the same positions and frequencies were rotated last.
fn rope_angles(positions: &[u32], inv_freq: &[f64]) -> Arc<Vec<(f32, f32)>> {
    let cached = ANGLES.with_borrow_mut(|tables| {
        let i = tables
            .iter()
            .position(|(p, f, _)| p == positions && f == inv_freq)?;
        // Most recent last.
        let hit = tables.remove(i);
        let angles = Arc::clone(&hit.2);
        tables.push(hit);
        Some(angles)
    });
    if let Some(angles) = cached {
        return angles;
    }
    // Built outside the borrow: while this thread waits on the parallel loop it may run
    // another pass's rope, which looks in the same cache.
    let angles: Vec<(f32, f32)> = positions
        .par_iter()
        .with_min_len(ROWS_PER_TASK)
        .flat_map_iter(|&pos| {
            inv_freq.iter().map(move |f| {
                let (s, c) = (f64::from(pos) * f).sin_cos();
                (s as f32, c as f32)
            })
        })
        .collect();
    let angles = Arc::new(angles);
    ANGLES.with_borrow_mut(|tables| {
        if tables.len() == 2 {
            tables.remove(0);
        }
        tables.push((positions.to_vec(), inv_freq.to_vec(), Arc::clone(&angles)));
    });
    angles
}

pub(super) fn glu(act: GluActivation, x: &CpuTensor, out: &mut CpuTensor) {
    let f = out.cols;
    assert_eq!(x.cols, 2 * f);
    assert_eq!(x.rows, out.rows);
    out.data
        .par_chunks_mut(f)
        .zip(x.data.par_chunks(2 * f))
        .for_each(|(o, xr)| {
            let (gate, up) = xr.split_at(f);
            #[cfg(target_arch = "x86_64")]
            if has_avx512f() {
                // SAFETY: the CPU has AVX-512F (detected).
                return unsafe { glu_row_avx512(act, gate, up, o) };
            }
            glu_row(act, gate, up, o);
        });
}

/// One row of [`glu`]: `o = act(gate) * up`.
#[inline(always)]
fn glu_row(act: GluActivation, gate: &[f32], up: &[f32], o: &mut [f32]) {
    match act {
        GluActivation::Silu => {
            for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                *o = g / (1.0 + exp(-g)) * u;
            }
        }
        GluActivation::GeluTanh => {
            for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                *o = gelu_tanh(g) * u;
            }
        }
    }
}

/// [`glu_row`] compiled for AVX-512F: sixteen lanes of the same arithmetic (Rust never fuses a
/// multiply and an add on its own, so each lane computes what the scalar code would).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn glu_row_avx512(act: GluActivation, gate: &[f32], up: &[f32], o: &mut [f32]) {
    glu_row(act, gate, up, o);
}

/// Whether the CPU has AVX-512F, detected once.
#[cfg(target_arch = "x86_64")]
fn has_avx512f() -> bool {
    static AVX512F: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX512F.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// GELU, tanh approximation: `x/2 · (1 + tanh(u))` with `u = √(2/π) · (x + 0.044715 x³)`,
/// computed as the equal `x / (1 + e^(-2u))`: one [`exp`] instead of libm's `tanhf`.
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const TWO_SQRT_2_OVER_PI: f32 = 2.0 * 0.797_884_6;
    x / (1.0 + exp(-TWO_SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)))
}

/// `e^x` in f32 within 2 ulp for the whole range that matters here (inputs below -87.3 give
/// about 1e-38, above 88.3 about 2e38, never infinity), branch-free so a loop over it
/// vectorizes; libm's `expf` is a scalar call, and the gated activations call it once per
/// element of every MLP (for GeGLU, `tanhf` cost as much again).
///
/// `x = n ln2 + r` with `|r| <= ln2/2` (Cody-Waite: ln2 in two parts), `e^r` by its Taylor
/// polynomial of degree 7 (truncation below 6e-9 relative), times `2^n` built in the exponent
/// bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

pub(super) fn add_assign(x: &mut CpuTensor, y: &CpuTensor) {
    assert_eq!((x.rows, x.cols), (y.rows, y.cols));
    for (a, &b) in x.data.iter_mut().zip(&y.data) {
        *a += b;
    }
}

pub(super) fn gather_rows(x: &CpuTensor, rows: &[u32], out: &mut CpuTensor) {
    assert_eq!((out.rows, out.cols), (rows.len(), x.cols));
    for (o, &r) in out.data.chunks_exact_mut(x.cols).zip(rows) {
        o.copy_from_slice(x.row(r as usize));
    }
}

/// Whether this CPU has AVX2 and FMA; decided once so every call reduces the same way.
pub(super) fn has_fma() -> bool {
    static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    {
        *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        *FMA.get_or_init(|| false)
    }
}

/// Dot product with eight lane accumulators reduced in a fixed tree: vectorizes, and its
/// result depends only on the inputs (and the CPU's fixed feature level). Inlined into a
/// caller compiled for AVX2+FMA when [`has_fma`], so the lanes are fused multiply-adds.
#[inline(always)]
pub(super) fn dot_f32_body(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail = x.mul_add(*y, tail);
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `acc += w * v`, element-wise (inlined like [`dot_f32_body`]).
#[inline(always)]
pub(super) fn axpy_body(acc: &mut [f32], w: f32, v: &[f32]) {
    for (a, &x) in acc.iter_mut().zip(v) {
        *a = w.mul_add(x, *a);
    }
}

#[cfg(test)]
mod tests {
    use super::{exp, gelu_tanh, rope};
    use crate::backend::{Cols, Rope, RopeStyle};
    use crate::cpu::tensor::CpuTensor;

    /// A rotation served from the per-thread table cache equals one computed fresh, across
    /// three ropes in turn (so tables are evicted) and a change of positions.
    #[test]
    fn rope_from_cached_angles_equals_fresh() {
        let (rows, hd) = (5, 8);
        let x = CpuTensor::from_vec(
            rows,
            2 * hd,
            (0..rows * 2 * hd).map(|i| i as f32 * 0.1).collect(),
        );
        let ropes: Vec<Rope<'_>> = [10_000.0, 500.0, 1e6]
            .into_iter()
            .map(|base| Rope {
                rot_dim: hd,
                base,
                style: RopeStyle::Neox,
                freq_scale: 1.0,
                freq_factors: None,
            })
            .collect();
        let run = |r: &Rope<'_>, positions: &[u32]| {
            let mut y = x.clone();
            rope(&mut y, Cols::new(0, 2 * hd), hd, positions, r);
            y.data
        };
        let (p1, p2) = ([0u32, 1, 2, 40, 41], [3u32, 4, 5, 6, 7]);
        let fresh: Vec<_> = ropes.iter().map(|r| (run(r, &p1), run(r, &p2))).collect();
        for _ in 0..2 {
            for (r, (a, b)) in ropes.iter().zip(&fresh) {
                assert_eq!(&run(r, &p1), a);
                assert_eq!(&run(r, &p1), a);
                assert_eq!(&run(r, &p2), b);
            }
        }
        assert_ne!(fresh[0].0, fresh[1].0, "the ropes differ");
    }

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            // One ulp of the f32 nearest `want`.
            let near = want as f32;
            let ulp = f64::from(f32::from_bits(near.to_bits() + 1)) - f64::from(near);
            worst = worst.max(((got - want) / ulp).abs());
            x += 0.0137;
        }
        assert!(worst <= 2.0, "{worst} ulp");
        // Clamped, never infinite or zero-divided.
        assert!(exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_its_tanh_form() {
        for i in -2000..2000 {
            let x = i as f64 / 100.0;
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let want = 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh());
            let got = f64::from(gelu_tanh(x as f32));
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{x}: {got} vs {want}"
            );
        }
    }
}
