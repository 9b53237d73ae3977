//! Panel tests: the packing is a lossless permutation, the scalar order meets the dot-product
//! accuracy bound, and the fast kernel matches the scalar order bit for bit at every batch size.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::tests::{
    KERNEL_RTOL, abs_dot, act_q8, act_rows, dequant_q8, dequantized, extreme_q8, quantized,
    test_row,
};
use super::super::{ActRow, BlockQ8, GgmlType, vec_dot_reference};
use super::*;

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

/// The row lengths of `ns` that are whole blocks of `ty` (the K-quants take the multiples of
/// 256).
fn lengths(ty: GgmlType, ns: &[usize]) -> Vec<usize> {
    let out: Vec<usize> = ns
        .iter()
        .copied()
        .filter(|n| n.is_multiple_of(ty.block_elems()))
        .collect();
    assert!(!out.is_empty(), "no length for {ty}");
    out
}

#[test]
fn every_type_with_a_layout_is_tested() {
    for ty in GgmlType::ALL {
        assert_eq!(
            segments(ty).is_some(),
            TYPES.contains(&ty),
            "{ty}: layout and TYPES disagree"
        );
    }
}

/// `PANEL_ROWS * panels` random rows of `n` elements, as GGUF bytes, and their f32 values.
fn weight_rows(rng: &mut ChaCha8Rng, ty: GgmlType, panels: usize, n: usize) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut values = Vec::new();
    for _ in 0..panels * PANEL_ROWS {
        let w = quantized(ty, &test_row(rng, n));
        values.extend(dequantized(ty, &w, n));
        bytes.extend(w);
    }
    (bytes, values)
}

/// `count` random activation rows of `n` elements and their Q8 blocks.
fn activations(rng: &mut ChaCha8Rng, count: usize, n: usize) -> (Vec<Vec<f32>>, Vec<Vec<BlockQ8>>) {
    let xs: Vec<Vec<f32>> = (0..count).map(|_| test_row(rng, n)).collect();
    let q8s = xs.iter().map(|x| act_q8(x)).collect();
    (xs, q8s)
}

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

#[test]
fn pack_then_unpack_gives_every_row_back() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for ty in TYPES {
        for n in lengths(ty, &[32, 96, 256, 512, 576]) {
            let row_bytes = ty.row_bytes(n).unwrap();
            let (rows, _) = weight_rows(&mut rng, ty, 2, n);
            let panels = packed(ty, &rows, row_bytes);
            assert_ne!(panels, rows, "{ty}: packing must move bytes");
            for r in 0..2 * PANEL_ROWS {
                let (p, lane) = (r / PANEL_ROWS, r % PANEL_ROWS);
                let mut back = vec![0u8; row_bytes];
                let panel = &panels[p * PANEL_ROWS * row_bytes..][..PANEL_ROWS * row_bytes];
                unpack_row(ty, panel, row_bytes, lane, &mut back);
                assert_eq!(
                    back,
                    rows[r * row_bytes..][..row_bytes],
                    "{ty} n={n} row {r}"
                );
            }
        }
    }
}

#[test]
fn scalar_order_meets_the_dot_product_bound() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for ty in TYPES {
        for n in lengths(ty, &[32, 64, 256, 576, 1536]) {
            let row_bytes = ty.row_bytes(n).unwrap();
            let (rows, values) = weight_rows(&mut rng, ty, 1, n);
            let panels = packed(ty, &rows, row_bytes);
            let (xs, q8s) = activations(&mut rng, 3, n);
            let acts = act_rows(&xs, &q8s);
            let mut out = vec![0.0f32; PANEL_ROWS * acts.len()];
            dot_panels_scalar(ty, &panels, row_bytes, &acts, &mut out);
            for r in 0..PANEL_ROWS {
                let w = &values[r * n..][..n];
                for (k, q8) in q8s.iter().enumerate() {
                    let xk = dequant_q8(q8);
                    let want = f64::from(vec_dot_reference(
                        ty,
                        &rows[r * row_bytes..][..row_bytes],
                        &xk,
                    ));
                    let err = (f64::from(out[r * acts.len() + k]) - want).abs();
                    let mag = abs_dot(w, &xk).max(1e-30);
                    assert!(
                        err / mag <= KERNEL_RTOL,
                        "{ty} n={n} row {r} act {k}: {:e}",
                        err / mag
                    );
                }
            }
        }
    }
}

/// GGUF block `b` of row `r` with extreme quants and scales of `ty` whose dot with
/// [`extreme_q8`] activations stays exactly representable in f32.
fn extreme_block(ty: GgmlType, r: usize, b: usize) -> Vec<u8> {
    let one = half::f16::from_f32(1.0).to_bits().to_le_bytes();
    let mut block = vec![0u8; ty.block_bytes()];
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 => {
            // Every quant at its largest or smallest (Q4_0: 7 / -8, Q5_0: 15 / -16, Q4_1 and
            // Q5_1 with m = 0: 15 / 0, 31 / 0), in the activations' sign pattern.
            block[0..2].copy_from_slice(&one);
            let (qh, qs) = match ty {
                GgmlType::Q4_0 => (None, 2),
                GgmlType::Q4_1 => (None, 4),
                GgmlType::Q5_0 => (Some(2), 6),
                _ => (Some(4), 8),
            };
            if let Some(qh) = qh {
                block[qh..qh + 4].fill(if (r + b).is_multiple_of(2) {
                    0x55
                } else {
                    0xAA
                });
            }
            for (j, q) in block[qs..].iter_mut().enumerate() {
                *q = if (j + r + b).is_multiple_of(2) {
                    0xFF
                } else {
                    0
                };
            }
        }
        GgmlType::Q8_0 => {
            block[0..2].copy_from_slice(&one);
            for (j, q) in block[2..].iter_mut().enumerate() {
                *q = if (j + r + b).is_multiple_of(3) {
                    0x80
                } else {
                    0x7F
                };
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            // d = dmin = 1, scales and mins of 31 and 15 (63 would overflow f32's 24 bits
            // over eight 5-bit chunks), quants 0 or 15 (31) in the activations' sign pattern:
            // element l of chunk k is 15 (31) where l + k + r is even.
            block[0..2].copy_from_slice(&one);
            block[2..4].copy_from_slice(&one);
            block[4..16].fill(0x1F);
            let qs = if ty == GgmlType::Q5_K {
                for (l, q) in block[16..48].iter_mut().enumerate() {
                    *q = if (l + r).is_multiple_of(2) {
                        0x55
                    } else {
                        0xAA
                    };
                }
                48
            } else {
                16
            };
            for (i, q) in block[qs..].iter_mut().enumerate() {
                *q = if (i + r).is_multiple_of(2) {
                    0x0F
                } else {
                    0xF0
                };
            }
        }
        GgmlType::Q6_K => {
            // Quants -32 and 31 in the activations' sign pattern (element l of chunk k is 31
            // where l + k + r is odd: each 16-element half dot is ±64008), scales 127 and -128
            // (products near 2^23), so each chunk sums to -64008 or 64008.
            for (i, q) in block[..128].iter_mut().enumerate() {
                // ql byte 64 h + i': chunk parity that of i' / 32.
                *q = if !(i % 32 + (i % 64) / 32 + r).is_multiple_of(2) {
                    0xFF
                } else {
                    0
                };
            }
            for (i, q) in block[128..192].iter_mut().enumerate() {
                // qh bits 2 kk, 2 kk + 1 for chunk kk of the half.
                *q = if !(i + r).is_multiple_of(2) {
                    0x33
                } else {
                    0xCC
                };
            }
            for (i, s) in block[192..208].iter_mut().enumerate() {
                *s = if (i + r).is_multiple_of(2) { 127 } else { 0x80 };
            }
            block[208..210].copy_from_slice(&one);
        }
        _ => unreachable!("{ty} has no panel layout"),
    }
    block
}

/// Extreme quants and scales (Q8_0 weights of -128 and 127, the 4- and 5-bit types' largest
/// nibbles, Q6_K's -32 and 31 times scales of -128 and 127) against activations of ±127 give
/// the exact integer dot.
#[test]
fn extreme_quants_are_exact() {
    for ty in TYPES {
        let n = ty.block_elems().max(64);
        let row_bytes = ty.row_bytes(n).unwrap();
        let mut rows = vec![0u8; PANEL_ROWS * row_bytes];
        for (r, row) in rows.chunks_exact_mut(row_bytes).enumerate() {
            for (b, block) in row.chunks_exact_mut(ty.block_bytes()).enumerate() {
                block.copy_from_slice(&extreme_block(ty, r, b));
            }
        }
        let panels = packed(ty, &rows, row_bytes);
        let q8 = extreme_q8(n / 32);
        let x = dequant_q8(&q8);
        let act = [ActRow { f32: &x, q8: &q8 }];
        let mut want = vec![0.0f32; PANEL_ROWS];
        dot_panels_scalar(ty, &panels, row_bytes, &act, &mut want);
        for (r, &w) in want.iter().enumerate() {
            let exact = vec_dot_reference(ty, &rows[r * row_bytes..][..row_bytes], &x);
            assert_eq!(w, exact, "{ty} row {r}");
        }
        assert!(
            want.iter().any(|&w| w.abs() > 1e4),
            "{ty}: extremes too small"
        );
        for level in kernel_levels(ty) {
            let mut got = vec![0.0f32; PANEL_ROWS];
            dot_panels_at(level, ty, &panels, row_bytes, &act, &mut got);
            assert_eq!(got, want, "{ty} {level:?}");
        }
    }
}

/// Tiles of nine to sixteen activations through AMX give the scalar order's bits, on random
/// quants and on extreme ones (every weight and activation at its range's end).
#[cfg(target_arch = "x86_64")]
#[test]
fn amx_tiles_are_bit_identical_to_the_scalar_order() {
    let types = TYPES;
    if !types.iter().all(|&t| amx::takes(t)) {
        eprintln!("skipped: this CPU (or its kernel) offers no AMX-INT8 tiles");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for ty in types {
        for n in lengths(ty, &[32, 576, 1536]) {
            let row_bytes = ty.row_bytes(n).unwrap();
            let (mut rows, _) = weight_rows(&mut rng, ty, 2, n);
            // The second panel at the extremes.
            for (r, row) in rows[PANEL_ROWS * row_bytes..]
                .chunks_exact_mut(row_bytes)
                .enumerate()
            {
                for (b, block) in row.chunks_exact_mut(ty.block_bytes()).enumerate() {
                    block.copy_from_slice(&extreme_block(ty, r, b));
                }
            }
            let panels = packed(ty, &rows, row_bytes);
            let (mut xs, mut q8s) = activations(&mut rng, amx::TILE, n);
            q8s[3] = extreme_q8(n / 32);
            xs[3] = dequant_q8(&q8s[3]);
            let all = act_rows(&xs, &q8s);
            let rows_out = 2 * PANEL_ROWS;
            for m in amx::MIN_ACTIVATIONS..=amx::TILE {
                let acts = &all[amx::TILE - m..];
                let mut want = vec![0.0f32; rows_out * m];
                dot_panels_scalar(ty, &panels, row_bytes, acts, &mut want);
                let mut got = vec![0.0f32; rows_out * m];
                dot_panels_by_activation(
                    ty,
                    &panels,
                    row_bytes,
                    &PanelActs::new(acts),
                    Runs::new(&mut got, rows_out, rows_out, m),
                );
                for k in 0..m {
                    for r in 0..rows_out {
                        assert_eq!(
                            got[k * rows_out + r].to_bits(),
                            want[r * m + k].to_bits(),
                            "{ty} n={n} {m} activations: act {k} row {r}"
                        );
                    }
                }
            }
        }
    }
}

/// The by-activation layout holds the same bits as the by-row one, transposed, with a stride
/// wider than the rows (what lies between the runs is left alone).
#[test]
fn by_activation_is_the_transpose_of_by_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for ty in TYPES {
        let n = lengths(ty, &[256, 576])[0];
        let row_bytes = ty.row_bytes(n).unwrap();
        let (rows, _) = weight_rows(&mut rng, ty, 2, n);
        let panels = packed(ty, &rows, row_bytes);
        let (xs, q8s) = activations(&mut rng, 11, n);
        let acts = act_rows(&xs, &q8s);
        let rows_out = 2 * PANEL_ROWS;
        let mut by_row = vec![0.0f32; rows_out * acts.len()];
        dot_panels(ty, &panels, row_bytes, &acts, &mut by_row);
        let stride = rows_out + 3;
        let mut by_act = vec![-7.0f32; stride * acts.len()];
        let runs = Runs::new(&mut by_act, stride, rows_out, acts.len());
        dot_panels_by_activation(ty, &panels, row_bytes, &PanelActs::new(&acts), runs);
        for (k, run) in by_act.chunks_exact(stride).enumerate() {
            for r in 0..rows_out {
                assert_eq!(
                    run[r].to_bits(),
                    by_row[r * acts.len() + k].to_bits(),
                    "{ty}"
                );
            }
            assert!(
                run[rows_out..].iter().all(|&v| v == -7.0),
                "{ty}: wrote past a run"
            );
        }
    }
}

/// Every batch size from 1 to 20 (the kernels' groups and every remainder), and each
/// activation alone: every fast kernel this CPU runs gives the scalar order's bits.
#[test]
fn fast_kernels_are_bit_identical_to_the_scalar_order_at_every_batch() {
    if TYPES.iter().all(|&t| kernel_levels(t).is_empty()) {
        eprintln!("skipped: this CPU has no panel kernel (AVX2 or AVX-512 VNNI)");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for ty in TYPES {
        for n in lengths(ty, &[32, 256, 576, 1536]) {
            let row_bytes = ty.row_bytes(n).unwrap();
            let (rows, _) = weight_rows(&mut rng, ty, 2, n);
            let panels = packed(ty, &rows, row_bytes);
            let (xs, q8s) = activations(&mut rng, 20, n);
            let acts = act_rows(&xs, &q8s);
            let rows_out = 2 * PANEL_ROWS;
            let mut alone = vec![0.0f32; rows_out * acts.len()];
            for (k, a) in acts.iter().enumerate() {
                let mut s = vec![0.0f32; rows_out];
                dot_panels_scalar(ty, &panels, row_bytes, std::slice::from_ref(a), &mut s);
                for r in 0..rows_out {
                    alone[r * acts.len() + k] = s[r];
                }
            }
            for level in kernel_levels(ty) {
                for (k, a) in acts.iter().enumerate() {
                    let mut o = vec![0.0f32; rows_out];
                    dot_panels_at(
                        level,
                        ty,
                        &panels,
                        row_bytes,
                        std::slice::from_ref(a),
                        &mut o,
                    );
                    for r in 0..rows_out {
                        assert_eq!(
                            o[r].to_bits(),
                            alone[r * acts.len() + k].to_bits(),
                            "{ty} {level:?} n={n} act {k} alone, row {r}"
                        );
                    }
                }
                for batch in 1..=acts.len() {
                    let start = rng.random_range(0..=acts.len() - batch);
                    let part = &acts[start..start + batch];
                    let mut o = vec![0.0f32; rows_out * batch];
                    dot_panels_at(level, ty, &panels, row_bytes, part, &mut o);
                    for r in 0..rows_out {
                        for k in 0..batch {
                            assert_eq!(
                                o[r * batch + k].to_bits(),
                                alone[r * acts.len() + start + k].to_bits(),
                                "{ty} {level:?} n={n} batch {batch} row {r} act {}",
                                start + k
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "panels of")]
fn rejects_a_partial_panel() {
    let ty = GgmlType::Q4_1;
    let row_bytes = ty.row_bytes(32).unwrap();
    let q8 = [BlockQ8::default()];
    let act = [ActRow {
        f32: &[0.0; 32],
        q8: &q8,
    }];
    let mut out = vec![0.0f32; PANEL_ROWS];
    dot_panels_scalar(ty, &vec![0u8; 15 * row_bytes], row_bytes, &act, &mut out);
}
