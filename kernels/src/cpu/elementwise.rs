//! Row-wise ops: embedding gather, RMSNorm, RoPE, SwiGLU, residual add, row gather.

use rayon::prelude::*;

use super::tensor::{CpuTensor, CpuWeight};
use crate::backend::Cols;

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
    let mut w = vec![0.0f32; weight.cols];
    weight.dequantize_row(0, &mut w);
    assert_eq!(w.len(), x.cols);
    out.data
        .par_chunks_mut(x.cols)
        .with_min_len(ROWS_PER_TASK)
        .zip(x.data.par_chunks(x.cols))
        .for_each(|(o, xr)| {
            // f64 sum in index order: exact enough, and one fixed order per row.
            let ss: f64 = xr.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let scale = (1.0 / (ss / xr.len() as f64 + f64::from(eps)).sqrt()) as f32;
            for ((o, &v), &g) in o.iter_mut().zip(xr).zip(&w) {
                *o = v * scale * g;
            }
        });
}

pub(super) fn rope(
    x: &mut CpuTensor,
    cols: Cols,
    head_dim: usize,
    rot_dim: usize,
    positions: &[u32],
    base: f32,
) {
    assert_eq!(positions.len(), x.rows);
    assert!(
        cols.width.is_multiple_of(head_dim) && rot_dim <= head_dim && rot_dim.is_multiple_of(2)
    );
    let inv_freq: Vec<f64> = (0..rot_dim / 2)
        .map(|i| f64::from(base).powf(-2.0 * i as f64 / rot_dim as f64))
        .collect();
    let stride = x.cols;
    x.data
        .par_chunks_mut(stride)
        .with_min_len(ROWS_PER_TASK)
        .zip(positions.par_iter())
        .for_each(|(row, &pos)| {
            let sin_cos: Vec<(f32, f32)> = inv_freq
                .iter()
                .map(|f| {
                    let (s, c) = (f64::from(pos) * f).sin_cos();
                    (s as f32, c as f32)
                })
                .collect();
            for head in row[cols.offset..cols.offset + cols.width].chunks_exact_mut(head_dim) {
                for (pair, &(s, c)) in head[..rot_dim].chunks_exact_mut(2).zip(&sin_cos) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * c - b * s;
                    pair[1] = a * s + b * c;
                }
            }
        });
}

pub(super) fn swiglu(x: &CpuTensor, out: &mut CpuTensor) {
    let f = out.cols;
    assert_eq!(x.cols, 2 * f);
    assert_eq!(x.rows, out.rows);
    out.data
        .par_chunks_mut(f)
        .zip(x.data.par_chunks(2 * f))
        .for_each(|(o, xr)| {
            let (gate, up) = xr.split_at(f);
            for ((o, &g), &u) in o.iter_mut().zip(gate).zip(up) {
                *o = g / (1.0 + (-g).exp()) * u;
            }
        });
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
