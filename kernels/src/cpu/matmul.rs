//! Quantized matrix products: `out[t, :] = x[t, :] · Wᵀ` for one or several weights side by side.
//!
//! Work is split over weight rows; each task dots its rows with one tile of tokens at a time
//! (`quant::vec_dot_rows`: each row unpacked once per tile, bit-identical to the one-token dot). Each output element
//! is therefore computed by one thread with one fixed reduction order.

use rayon::prelude::*;

use super::tensor::{CpuTensor, CpuWeight};
use crate::quant::{self, ActKind, ActRow, BlockQ8};

/// Tokens dotted against one unpacked weight row at a time.
const TOKEN_TILE: usize = 16;
/// Weight rows per task, at least; enough tasks remain to balance two threads.
const MIN_ROWS_PER_TASK: usize = 8;

/// Raw output pointer shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (token, column) elements; see `matmul`.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method (not field access) so closures capture the whole `Send` wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

pub(super) fn matmul(x: &CpuTensor, weights: &[&CpuWeight], out: &mut CpuTensor) {
    let t_count = x.rows;
    let n_total: usize = weights.iter().map(|w| w.rows).sum();
    assert_eq!(
        (out.rows, out.cols),
        (t_count, n_total),
        "matmul output shape"
    );
    for w in weights {
        assert_eq!(w.cols, x.cols, "matmul inner dimension");
    }
    if t_count == 0 {
        return;
    }

    let q8 = quantize_activations(x, weights);
    let acts: Vec<ActRow<'_>> = (0..t_count)
        .map(|t| ActRow {
            f32: x.row(t),
            q8: if q8.is_empty() {
                &[]
            } else {
                &q8[t * x.cols / 32..(t + 1) * x.cols / 32]
            },
        })
        .collect();

    // (weight index, first row) of every task, across all weights.
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = (n_total / (threads * 8)).max(MIN_ROWS_PER_TASK);
    let mut tasks = Vec::new();
    let mut col_base = 0;
    for (wi, w) in weights.iter().enumerate() {
        let mut r = 0;
        while r < w.rows {
            let end = (r + rows_per_task).min(w.rows);
            tasks.push((wi, r, end, col_base));
            r = end;
        }
        col_base += w.rows;
    }

    let out_ptr = OutPtr(out.data.as_mut_ptr());
    tasks.into_par_iter().for_each(|(wi, r0, r1, col_base)| {
        let w = weights[wi];
        let rows = &w.data[r0 * w.row_bytes..r1 * w.row_bytes];
        let n = r1 - r0;
        let mut res = vec![0.0f32; n * TOKEN_TILE.min(t_count)];
        for (ti, tile) in acts.chunks(TOKEN_TILE).enumerate() {
            let res = &mut res[..n * tile.len()];
            quant::vec_dot_rows(w.ty, rows, w.row_bytes, tile, res);
            // Token-major, so each token's columns are written contiguously (the results are
            // row-major in `res`, a few KiB that stay in L1).
            let m = tile.len();
            for k in 0..m {
                let t = ti * TOKEN_TILE + k;
                for (i, &v) in res.iter().skip(k).step_by(m).enumerate() {
                    // SAFETY: t < t_count and col_base + r0 + i < n_total, so the index is inside
                    // `out.data`; each (t, column) pair belongs to exactly one task because
                    // tasks cover disjoint weight rows; `out` is borrowed mutably for the whole
                    // parallel region, so nothing else reads or writes it.
                    unsafe { *out_ptr.get().add(t * n_total + col_base + r0 + i) = v };
                }
            }
        }
    });
}

/// Activations in Q8 blocks when any weight wants them, else empty.
fn quantize_activations(x: &CpuTensor, weights: &[&CpuWeight]) -> Vec<BlockQ8> {
    if !weights.iter().any(|w| w.ty.act_kind() == ActKind::Q8) {
        return Vec::new();
    }
    assert_eq!(
        x.cols % 32,
        0,
        "quantized matmul needs a row length divisible by 32"
    );
    let per_row = x.cols / 32;
    let mut q8 = vec![BlockQ8::default(); x.rows * per_row];
    // A few rows (decode) quantize in less time than a fork-join costs.
    if x.rows < 8 {
        for (blocks, row) in q8.chunks_mut(per_row).zip(x.data.chunks(x.cols)) {
            quant::quantize_act_q8(row, blocks);
        }
        return q8;
    }
    q8.par_chunks_mut(per_row)
        .zip(x.data.par_chunks(x.cols))
        .with_min_len(8)
        .for_each(|(blocks, row)| quant::quantize_act_q8(row, blocks));
    q8
}
