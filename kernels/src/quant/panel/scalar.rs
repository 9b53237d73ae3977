//! The panel order of operations written out in portable Rust: the specification the fast
//! kernels are tested against bit for bit (it is not a serving path: weights are packed only
//! where a fast kernel exists). It reads each row back through [`unpack_row`], so it depends on
//! the panel layout only through the permutation the pack tests check.

use super::super::blocks::{
    BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K, BlockQ8_0, QK,
    as_blocks, f16_le, q5_quants,
};
use super::super::reference::{q5k_chunk, q6k_chunk, q6k_scale_index};
use super::super::{ActRow, GgmlType};
use super::{PANEL_ROWS, Shape, check_dots, unpack_row};

/// One 32-element chunk of a row as the panel order uses it: the weight is
/// `ds * isc[l / 16] * q[l]`, plus `dm` (times the activation) for the types with an offset.
struct Chunk {
    /// Signed integer weights (Q4_0: nibble - 8, Q5_0: quant - 16, Q6_K: quant - 32).
    q: [i8; 32],
    /// Integer scales of the two 16-element halves (Q6_K's sub-block scales; else 1).
    isc: [i32; 2],
    /// Float scale: the block's `d`, or for Q4_K and Q5_K `d * sc` rounded to f32.
    ds: f32,
    /// Offset per unit of activation: Q4_1's `m`, Q4_K's and Q5_K's `-(dmin * m)`.
    dm: Option<f32>,
}

/// The 32-element chunks of a GGUF row of `ty`, in order.
fn chunks(ty: GgmlType, row: &[u8]) -> Vec<Chunk> {
    let plain = |q: [i8; 32], d: [u8; 2], dm: Option<f32>| Chunk {
        q,
        isc: [1, 1],
        ds: f16_le(d),
        dm,
    };
    let nibbles = |qs: &[u8; 16], bias: i8| -> [i8; 32] {
        core::array::from_fn(|l| ((qs[l % 16] >> (4 * (l / 16))) & 0x0F) as i8 - bias)
    };
    let mut out = Vec::with_capacity(row.len());
    match ty {
        GgmlType::Q4_0 => {
            for b in as_blocks::<BlockQ4_0>(row) {
                out.push(plain(nibbles(&b.qs, 8), b.d, None));
            }
        }
        GgmlType::Q4_1 => {
            for b in as_blocks::<BlockQ4_1>(row) {
                out.push(plain(nibbles(&b.qs, 0), b.d, Some(f16_le(b.m))));
            }
        }
        GgmlType::Q5_0 => {
            for b in as_blocks::<BlockQ5_0>(row) {
                let q = q5_quants(b.qh, &b.qs).map(|v| v as i8 - 16);
                out.push(plain(q, b.d, None));
            }
        }
        GgmlType::Q5_1 => {
            for b in as_blocks::<BlockQ5_1>(row) {
                let q = q5_quants(b.qh, &b.qs).map(|v| v as i8);
                out.push(plain(q, b.d, Some(f16_le(b.m))));
            }
        }
        GgmlType::Q8_0 => {
            for b in as_blocks::<BlockQ8_0>(row) {
                out.push(plain(b.qs, b.d, None));
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            // Q5_K is Q4_K with a fifth bit; both share d, dmin and the packed scales.
            let k4 = |d: [u8; 2], dmin: [u8; 2], (sc, m): (u8, u8), q: [i8; 32]| Chunk {
                q,
                isc: [1, 1],
                ds: f16_le(d) * f32::from(sc),
                dm: Some(-(f16_le(dmin) * f32::from(m))),
            };
            if ty == GgmlType::Q4_K {
                for b in as_blocks::<BlockQ4K>(row) {
                    for k in 0..8 {
                        let (g, shift) = (k / 2, 4 * (k % 2));
                        let q =
                            core::array::from_fn(|l| ((b.qs[32 * g + l] >> shift) & 0x0F) as i8);
                        out.push(k4(b.d, b.dmin, b.scale_min(k), q));
                    }
                }
            } else {
                for b in as_blocks::<BlockQ5K>(row) {
                    for k in 0..8 {
                        let q = q5k_chunk(b, k).map(|v| v as i8);
                        out.push(k4(b.d, b.dmin, b.scale_min(k), q));
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for b in as_blocks::<BlockQ6K>(row) {
                for k in 0..8 {
                    out.push(Chunk {
                        q: q6k_chunk(b, k),
                        isc: [
                            i32::from(b.scales[q6k_scale_index(k, 0)]),
                            i32::from(b.scales[q6k_scale_index(k, 16)]),
                        ],
                        ds: f16_le(b.d),
                        dm: None,
                    });
                }
            }
        }
        _ => unreachable!("{ty} has no panel layout"),
    }
    out
}

/// [`dot_panels`](super::dot_panels) in scalar code, on any CPU.
///
/// Per row and activation, for each 32-element chunk `c` in turn: the exact integer
/// `isum = isc[0] Σ_{l<16} q x + isc[1] Σ_{l>=16} q x` with activation block `c`, then
/// `acc = fma(isum as f32, ds * x.d, acc)` and, for the types with an offset,
/// `accm = fma(dm, x.s, accm)`; the result is `acc + accm` (`acc` without an offset).
///
/// # Panics
/// On the length mismatches `dot_panels` panics on.
pub(crate) fn dot_panels_scalar(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    check_dots(ty, panels, row_bytes, xs, Shape::ByRow(out.len()));
    let n = xs.len();
    let mut row = vec![0u8; row_bytes];
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        for lane in 0..PANEL_ROWS {
            unpack_row(ty, panel, row_bytes, lane, &mut row);
            let chunks = chunks(ty, &row);
            for (k, x) in xs.iter().enumerate() {
                debug_assert_eq!(chunks.len() * QK, x.q8.len() * QK);
                let mut acc = 0.0f32;
                let mut accm = 0.0f32;
                for (ch, xb) in chunks.iter().zip(x.q8) {
                    let half = |h: usize| -> i32 {
                        (16 * h..16 * h + 16)
                            .map(|l| i32::from(ch.q[l]) * i32::from(xb.qs[l]))
                            .sum()
                    };
                    let isum = ch.isc[0] * half(0) + ch.isc[1] * half(1);
                    acc = (isum as f32).mul_add(ch.ds * xb.d, acc);
                    if let Some(dm) = ch.dm {
                        accm = dm.mul_add(xb.s, accm);
                    }
                }
                let offset = chunks.first().is_some_and(|c| c.dm.is_some());
                out[(p * PANEL_ROWS + lane) * n + k] = if offset { acc + accm } else { acc };
            }
        }
    }
}
