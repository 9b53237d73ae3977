//! The panel order of operations written out in portable Rust: the specification the fast
//! kernel is tested against bit for bit (it is not a serving path: weights are packed only
//! where a fast kernel exists).

use super::super::blocks::f16_le;
use super::super::{ActRow, GgmlType};
use super::{GROUP, HALVES, PANEL_ROWS, check_dots, chunk_bytes, fields};

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
    let f = fields(ty).expect("checked by check_dots");
    let cb = chunk_bytes(ty);
    let halves = f.groups * GROUP;
    let n = xs.len();
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        for lane in 0..PANEL_ROWS {
            for (k, x) in xs.iter().enumerate() {
                let mut acc = 0.0f32;
                let mut accm = 0.0f32;
                for (chunk, xb) in panel.chunks_exact(cb).zip(x.q8) {
                    let mut isum = 0i32;
                    for (e, &xq) in xb.qs.iter().enumerate() {
                        // 4-bit types: elements 0..16 in the low nibbles, 16..32 in the high.
                        let at = e % (4 * f.groups);
                        let byte = chunk[at / 4 * GROUP + 4 * lane + at % 4];
                        let u = match (f.groups, e < 16) {
                            (8, _) => byte,
                            (_, true) => byte & 0x0F,
                            (_, false) => byte >> 4,
                        };
                        isum += (i32::from(u) - f.bias) * i32::from(xq);
                    }
                    let d = half_at(chunk, halves, lane);
                    acc = (isum as f32).mul_add(d * xb.d, acc);
                    if f.m.is_some() {
                        accm = half_at(chunk, halves + HALVES, lane).mul_add(xb.s, accm);
                    }
                }
                out[(p * PANEL_ROWS + lane) * n + k] = if f.m.is_some() { acc + accm } else { acc };
            }
        }
    }
}

/// fp16 number `lane` of the sixteen starting at byte `at` of a chunk.
fn half_at(chunk: &[u8], at: usize, lane: usize) -> f32 {
    f16_le([chunk[at + 2 * lane], chunk[at + 2 * lane + 1]])
}
