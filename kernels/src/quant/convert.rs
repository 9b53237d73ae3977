//! Whole-row conversions between f32 and the ggml formats through the reference (de)quantizers,
//! with their lengths checked: the slow, exact side that the tests, the golden files and the
//! tiny test models rely on.

use super::GgmlType;
use super::reference;

/// Reference: dequantize a whole row.
///
/// # Panics
/// If `src.len() != ty.row_bytes(dst.len())` (including when `dst.len()` is not a multiple of
/// the block size).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    check_row(ty, src.len(), dst.len());
    reference::dequantize(ty, src, dst);
}

/// Reference quantizer f32 -> `ty` (used to write test models and in tests). Deterministic.
///
/// Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 use ggml's reference scheme (Q4_0: the largest-magnitude value
/// maps to `-8 d`, Q5_0: to `-16 d`; Q4_1/Q5_1: `m` = min, `d` = range / 15 or 31; Q8_0: `d` =
/// amax / 127) but round each value against the *stored* fp16 scale, so a few quants can differ
/// by one level from ggml's output.
/// The K-quants use a simple quantizer of our own, not ggml's iterative search: Q2_K, Q4_K and
/// Q5_K round each sub-block's min and scale up so nothing is clipped; Q3_K and Q6_K map each
/// sub-block's largest-magnitude value to the most negative quant (-4, -32) with the scale
/// rounded away from zero; then values are rounded to nearest. Every value lands within half a
/// step of its input, except that Q4_0, Q5_0, Q3_K and Q6_K may clip an opposite-sign extreme
/// by up to one step.
///
/// # Panics
/// If `dst.len() != ty.row_bytes(src.len())`.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    check_row(ty, dst.len(), src.len());
    reference::quantize(ty, src, dst);
}

/// Panics unless `n_bytes == ty.row_bytes(n_elems)`.
#[track_caller]
fn check_row(ty: GgmlType, n_bytes: usize, n_elems: usize) {
    match ty.row_bytes(n_elems) {
        Some(b) if b == n_bytes => {}
        Some(b) => panic!("{ty} row of {n_elems} elements has {b} bytes, got {n_bytes}"),
        None => panic!("{n_elems} elements is not a whole number of {ty} blocks"),
    }
}
