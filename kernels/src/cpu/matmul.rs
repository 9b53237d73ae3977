//! Quantized matrix products: `out[t, :] = x[t, :] · Wᵀ` for one or several weights side by side.
//!
//! Work is split over weight rows; each task dots its rows with one tile of tokens at a time:
//! rows packed into panels with `quant::panel::dot_panels_by_activation` (sixteen rows per
//! vector, results written in place, in token order), the others with `quant::vec_dot_rows` (each row
//! unpacked once per tile). Both are bit-identical to their one-token dot, so each output
//! element is computed by one thread in one fixed order whatever the batch.

use rayon::prelude::*;

use super::tensor::{CpuTensor, CpuWeight};
use crate::quant::panel::{PANEL_ROWS, PanelActs, Runs};
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

    // (weight index, first row, end row, first output column) of every task, across all
    // weights. Task boundaries fall on panel boundaries.
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = (n_total / (threads * 8))
        .max(MIN_ROWS_PER_TASK)
        .next_multiple_of(PANEL_ROWS);
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

    // Each tile of tokens laid out once for every weight and task.
    let tiles: Vec<PanelActs<'_>> = acts.chunks(TOKEN_TILE).map(PanelActs::new).collect();
    let out_ptr = OutPtr(out.data.as_mut_ptr());
    tasks.into_par_iter().for_each(|(wi, r0, r1, col_base)| {
        let w = weights[wi];
        let n = r1 - r0;
        // Rows r0..split are in panels, split..r1 are GGUF rows.
        let split = w.panel_rows.clamp(r0, r1);
        let mut by_row = Vec::new();
        for (ti, tile) in tiles.iter().enumerate() {
            let m = tile.rows().len();
            // This task's columns of the tile's output rows, written in place.
            // SAFETY: the tile's tokens are below t_count and col_base + r1 <= n_total, so each
            // token's n elements from t * n_total + col_base + r0 lie inside `out.data`; they
            // belong to this task alone because tasks cover disjoint weight rows; `out` is
            // borrowed mutably for the whole parallel region, so nothing else touches it.
            let mut runs = unsafe {
                Runs::from_raw(
                    out_ptr.get().add(ti * TOKEN_TILE * n_total + col_base + r0),
                    n_total,
                    n,
                    m,
                )
            };
            if split > r0 {
                let panels = &w.data[r0 * w.row_bytes..split * w.row_bytes];
                quant::panel::dot_panels_by_activation(
                    w.ty,
                    panels,
                    w.row_bytes,
                    tile,
                    runs.reborrow(),
                );
            }
            if r1 > split {
                // The rows kernel lays its results out by row: a few rows (or a type
                // without panels) transposed here.
                let rows = &w.data[split * w.row_bytes..r1 * w.row_bytes];
                by_row.resize((r1 - split) * m, 0.0);
                quant::vec_dot_rows(w.ty, rows, w.row_bytes, tile.rows(), &mut by_row);
                for (i, results) in by_row.chunks_exact(m).enumerate() {
                    for (k, &v) in results.iter().enumerate() {
                        runs.run(k)[split - r0 + i] = v;
                    }
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::quant::GgmlType;

    fn weight(rng: &mut ChaCha8Rng, ty: GgmlType, rows: usize, cols: usize) -> CpuWeight {
        let row_bytes = ty.row_bytes(cols).unwrap();
        let mut bytes = vec![0u8; rows * row_bytes];
        for row in bytes.chunks_exact_mut(row_bytes) {
            let v: Vec<f32> = (0..cols).map(|_| rng.random_range(-1.0..1.0)).collect();
            quant::quantize_row(ty, &v, row);
        }
        CpuWeight::new(ty, rows, cols, &bytes).unwrap()
    }

    /// Each token's output row is the same bits whether it is multiplied alone or inside a
    /// batch, for weights that mix panels and GGUF rows (40 = two panels + 8 rows) and for
    /// types without panels; and the panel rows agree with the GGUF-row dot of the same row.
    #[test]
    fn batched_rows_are_bit_identical_to_single_tokens() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let cols = 256; // one K-quant super-block, eight 32-element chunks
        for ty in GgmlType::ALL {
            let a = weight(&mut rng, ty, 40, cols);
            let b = weight(&mut rng, ty, 16, cols);
            if quant::panel::packs(ty) {
                assert_eq!((a.panel_rows, b.panel_rows), (32, 16), "{ty}");
            }
            let t = 29; // a full token tile, then a partial one of 13 (an AMX tile, padded)
            let x = CpuTensor::from_vec(
                t,
                cols,
                (0..t * cols).map(|_| rng.random_range(-2.0..2.0)).collect(),
            );
            let mut all = CpuTensor::zeros(t, 56);
            matmul(&x, &[&a, &b], &mut all);
            for tok in 0..t {
                let one = CpuTensor::from_vec(1, cols, x.row(tok).to_vec());
                let mut y = CpuTensor::zeros(1, 56);
                matmul(&one, &[&a, &b], &mut y);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(all.row(tok)), bits(y.row(0)), "{ty} token {tok}");
                // Against the row kernel on the unpacked GGUF row: same math, other order.
                let mut q8 = vec![BlockQ8::default(); cols / 32];
                if ty.act_kind() == ActKind::Q8 {
                    quant::quantize_act_q8(x.row(tok), &mut q8);
                }
                let act = ActRow {
                    f32: x.row(tok),
                    q8: if ty.act_kind() == ActKind::Q8 {
                        &q8
                    } else {
                        &[]
                    },
                };
                for r in 0..40 {
                    let want = quant::vec_dot(ty, &a.row(r), &act);
                    let got = y.row(0)[r];
                    assert!(
                        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "{ty} token {tok} row {r}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
