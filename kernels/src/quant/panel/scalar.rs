//! The panel order of operations written out in portable Rust: the specification the fast
//! kernel is tested against bit for bit (it is not a serving path: weights are packed only
//! where a fast kernel exists).

use super::super::blocks::f16_le;
use super::super::{ActRow, GgmlType};
use super::{GROUP, HALVES, PANEL_ROWS, check_dots, chunk_bytes};

/// [`dot_panels`](super::dot_panels) in scalar code, on any CPU.
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
    check_dots(ty, panels, row_bytes, xs, out);
    let cb = chunk_bytes(ty);
    let n = xs.len();
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        for lane in 0..PANEL_ROWS {
            for (k, x) in xs.iter().enumerate() {
                let mut acc = 0.0f32;
                let mut accm = 0.0f32;
                for (chunk, xb) in panel.chunks_exact(cb).zip(x.q8) {
                    let (isum, d, m) = match ty {
                        GgmlType::Q4_0 => {
                            let mut isum = 0i32;
                            for g in 0..4 {
                                let bytes = &chunk[g * GROUP + 4 * lane..][..4];
                                for (b, &q) in bytes.iter().enumerate() {
                                    let (lo, hi) = (i32::from(q & 0x0F) - 8, i32::from(q >> 4) - 8);
                                    isum += lo * i32::from(xb.qs[4 * g + b]);
                                    isum += hi * i32::from(xb.qs[16 + 4 * g + b]);
                                }
                            }
                            (isum, half_at(chunk, 4 * GROUP, lane), None)
                        }
                        GgmlType::Q4_1 => {
                            let mut isum = 0i32;
                            for g in 0..4 {
                                let bytes = &chunk[g * GROUP + 4 * lane..][..4];
                                for (b, &q) in bytes.iter().enumerate() {
                                    isum += i32::from(q & 0x0F) * i32::from(xb.qs[4 * g + b]);
                                    isum += i32::from(q >> 4) * i32::from(xb.qs[16 + 4 * g + b]);
                                }
                            }
                            let d = half_at(chunk, 4 * GROUP, lane);
                            (isum, d, Some(half_at(chunk, 4 * GROUP + HALVES, lane)))
                        }
                        GgmlType::Q8_0 => {
                            let mut isum = 0i32;
                            for j in 0..8 {
                                let bytes = &chunk[j * GROUP + 4 * lane..][..4];
                                for (b, &u) in bytes.iter().enumerate() {
                                    let w = i32::from(u) - 128;
                                    isum += w * i32::from(xb.qs[4 * j + b]);
                                }
                            }
                            (isum, half_at(chunk, 8 * GROUP, lane), None)
                        }
                        _ => unreachable!("checked by check_dots"),
                    };
                    acc = (isum as f32).mul_add(d * xb.d, acc);
                    if let Some(m) = m {
                        accm = m.mul_add(xb.s, accm);
                    }
                }
                out[(p * PANEL_ROWS + lane) * n + k] = if ty == GgmlType::Q4_1 {
                    acc + accm
                } else {
                    acc
                };
            }
        }
    }
}

/// fp16 number `lane` of the sixteen starting at byte `at` of a chunk.
fn half_at(chunk: &[u8], at: usize, lane: usize) -> f32 {
    f16_le([chunk[at + 2 * lane], chunk[at + 2 * lane + 1]])
}
