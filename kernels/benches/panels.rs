//! Panels vs GGUF rows at each level with a panel kernel, and the matmul's own call (AMX tiles
//! included where the CPU has them): ns per row-dot at 1, 8, 12 and 16 activations, for a
//! slice that stays in L2 (256 rows) and for a stream of weights past the last-level cache
//! (65,536 rows); rows of 576 elements, 1536 for the K-quants.
//!
//! `cargo bench -p kernels --bench panels`; `BENCH_TYPES=Q4_K,Q6_K` limits it to those types.

mod common;

use std::hint::black_box;

use kernels::quant::GgmlType;
use kernels::quant::bench_support::{dot_panels_at, panel_levels, vec_dot_multi_at};
use kernels::quant::panel::{PANEL_ROWS, PanelActs, Runs, dot_panels_by_activation, pack};

/// Every type with a panel layout.
const TYPES: [GgmlType; 8] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// `rows` (whole panels of GGUF rows of `row_bytes`) packed into panels.
fn packed(ty: GgmlType, rows: &[u8], row_bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows.len()];
    for (src, dst) in rows
        .chunks_exact(PANEL_ROWS * row_bytes)
        .zip(out.chunks_exact_mut(PANEL_ROWS * row_bytes))
    {
        pack(ty, src, row_bytes, dst);
    }
    out
}

fn main() {
    let mut rng = common::rng(14);
    let only: Option<Vec<String>> = std::env::var("BENCH_TYPES")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect());
    for ty in TYPES {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|t| t == ty.name()))
        {
            continue;
        }
        if panel_levels(ty).is_empty() {
            println!("skipped: no {ty} panel kernel on this CPU");
            continue;
        }
        // SmolLM2's width for the 32-element types; K-quant rows need multiples of 256.
        let n = if ty.block_elems() == 256 { 1536 } else { 576 };
        for rows in [256, 65536] {
            let rb = ty.row_bytes(n).expect("whole blocks");
            let wm = common::weight_rows(&mut rng, ty, rows, n);
            let pm = packed(ty, &wm, rb);
            let (xs, q8s) = common::activations(&mut rng, ty, 16, n);
            let acts = common::act_rows(&xs, &q8s);
            for m in [1, 8, 12, 16] {
                let mut out = vec![0.0f32; rows * m];
                let iters = if rows > 1024 { 1 } else { 50 };
                let per = (iters * rows * m) as f64;
                for level in panel_levels(ty) {
                    // The row kernels at the same level, one call per row.
                    let r = common::best_ns(5, &mut || {
                        for _ in 0..iters {
                            for (w, o) in wm.chunks_exact(rb).zip(out.chunks_exact_mut(m)) {
                                vec_dot_multi_at(level, ty, black_box(w), &acts[..m], o);
                            }
                        }
                    }) / per;
                    let p = common::best_ns(5, &mut || {
                        for _ in 0..iters {
                            dot_panels_at(level, ty, black_box(&pm), rb, &acts[..m], &mut out);
                        }
                    }) / per;
                    println!(
                        "{ty:>5} n={n} rows={rows:>6} m={m:>2} {level:?}: rows {r:6.2} ns, panels {p:6.2} ns per row-dot ({:.2}x)",
                        r / p
                    );
                }
                // What a matrix product runs: results by activation, through AMX tiles where
                // the CPU has them and the type and batch take them.
                let tiles = PanelActs::new(&acts[..m]);
                let d = common::best_ns(5, &mut || {
                    for _ in 0..iters {
                        dot_panels_by_activation(
                            ty,
                            black_box(&pm),
                            rb,
                            &tiles,
                            Runs::new(&mut out, rows, rows, m),
                        );
                    }
                }) / per;
                println!(
                    "{ty:>5} n={n} rows={rows:>6} m={m:>2} as the matmul calls it: {d:6.2} ns per row-dot"
                );
            }
        }
    }
}
