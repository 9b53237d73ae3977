//! The dot-product API: one weight row (raw ggml bytes) with one or many activation rows, at the
//! SIMD level detected once per process ([`super::simd_level`]). Every entry point checks all
//! lengths first, once per weight row, so the kernels behind the dispatch can trust them.

use super::activation::{ActKind, ActRow};
use super::blocks;
use super::convert::dequantize_row;
use super::dispatch::kernels;
#[cfg(any(test, feature = "bench-internals"))]
use super::dispatch::{Level, level_kernels, simd_level_enum};
use super::types::GgmlType;

/// Fast dot product of one weight row (raw bytes of type ty) with one activation row.
///
/// For [`ActKind::Q8`] types the row length is `w_row.len() / block_bytes * block_elems` and
/// `x.q8` must hold one block per 32 of those elements; for float types `x.f32` must have the
/// row length.
///
/// # Panics
/// On mismatched lengths.
pub fn vec_dot(ty: GgmlType, w_row: &[u8], x: &ActRow<'_>) -> f32 {
    let mut out = [0.0f32];
    vec_dot_multi(ty, w_row, core::slice::from_ref(x), &mut out);
    out[0]
}

/// Same as calling [`vec_dot`] for each x in `xs`, but reads/unpacks the weight row once per
/// block for a group of activations. Bit-identical to [`vec_dot`] for every element: each
/// activation goes through exactly the same operation sequence whatever the batch size or its
/// position in the batch.
///
/// # Panics
/// If `out.len() != xs.len()` or on any length mismatch [`vec_dot`] would panic on.
pub fn vec_dot_multi(ty: GgmlType, w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
    check_dot(ty, w_row, xs, out);
    // SAFETY: `kernels` are the detected level's, and the dimensions were checked just above.
    unsafe { kernels().row.get(ty)(w_row, xs, out) }
}

/// [`vec_dot_multi`] for every row of `w_rows` (consecutive rows of `row_bytes` each):
/// `out[r * xs.len() + k]` is row `r` dotted with `xs[k]`, bit-identical to one
/// [`vec_dot_multi`] call per row, with the checks and the dispatch paid once.
///
/// # Panics
/// On the same mismatches as [`vec_dot_multi`], or if `w_rows` is not whole rows or `out`
/// does not hold one output per row and activation.
pub fn vec_dot_rows(
    ty: GgmlType,
    w_rows: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    assert!(
        row_bytes > 0 && w_rows.len().is_multiple_of(row_bytes),
        "vec_dot_rows: {} bytes are not whole rows of {row_bytes}",
        w_rows.len()
    );
    let n_rows = w_rows.len() / row_bytes;
    assert_eq!(out.len(), n_rows * xs.len(), "vec_dot_rows: output length");
    if n_rows == 0 || xs.is_empty() {
        return;
    }
    check_dot(ty, &w_rows[..row_bytes], xs, &out[..xs.len()]);
    // SAFETY: the kernels are the detected level's; every row has the checked length.
    unsafe { kernels().rows.get(ty)(w_rows, row_bytes, xs, out) }
}

/// Reference: dequantize_row then dot in f64, returned as f32. For tests.
///
/// # Panics
/// If `w_row.len() != ty.row_bytes(x.len())`.
pub fn vec_dot_reference(ty: GgmlType, w_row: &[u8], x: &[f32]) -> f32 {
    let mut w = vec![0.0f32; x.len()];
    dequantize_row(ty, w_row, &mut w);
    w.iter()
        .zip(x)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum::<f64>() as f32
}

/// Checks every dimension for a `vec_dot_multi` call (cheaply: this runs once per weight row).
#[inline]
#[track_caller]
fn check_dot(ty: GgmlType, w_row: &[u8], xs: &[ActRow<'_>], out: &[f32]) {
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn fail(ty: GgmlType, w_bytes: usize, what: std::fmt::Arguments<'_>) -> ! {
        panic!("vec_dot ({ty} weight row of {w_bytes} bytes): {what}")
    }
    /// Elements in `len` bytes of `bb`-byte blocks of `be` elements; constant divisors once
    /// inlined into each match arm below (a run-time division costs more than a small dot).
    #[inline(always)]
    fn whole(len: usize, bb: usize, be: usize) -> Option<usize> {
        len.is_multiple_of(bb).then_some(len / bb * be)
    }
    if out.len() != xs.len() {
        fail(
            ty,
            w_row.len(),
            format_args!("{} outputs for {} activations", out.len(), xs.len()),
        );
    }
    let len = w_row.len();
    let n = match ty {
        GgmlType::F32 => whole(len, 4, 1),
        GgmlType::F16 | GgmlType::BF16 => whole(len, 2, 1),
        GgmlType::Q4_0 => whole(len, 18, 32),
        GgmlType::Q4_1 => whole(len, 20, 32),
        GgmlType::Q5_0 => whole(len, 22, 32),
        GgmlType::Q5_1 => whole(len, 24, 32),
        GgmlType::Q8_0 => whole(len, 34, 32),
        GgmlType::Q2_K => whole(len, 84, 256),
        GgmlType::Q3_K => whole(len, 110, 256),
        GgmlType::Q4_K => whole(len, 144, 256),
        GgmlType::Q5_K => whole(len, 176, 256),
        GgmlType::Q6_K => whole(len, 210, 256),
    };
    let Some(n) = n else {
        fail(ty, len, format_args!("not a whole number of blocks"));
    };
    for x in xs {
        let (have, unit) = match ty.act_kind() {
            ActKind::F32 => (x.f32.len(), "f32 activations"),
            ActKind::Q8 => (x.q8.len() * blocks::QK, "activations in q8 blocks"),
        };
        if have != n {
            fail(ty, len, format_args!("{n} elements, but {have} {unit}"));
        }
    }
}

/// [`vec_dot_multi`] at an explicit level, for tests and benchmarks. Panics if the CPU does not
/// support `level`.
#[cfg(any(test, feature = "bench-internals"))]
pub(crate) fn vec_dot_multi_at(
    level: Level,
    ty: GgmlType,
    w_row: &[u8],
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    check_dot(ty, w_row, xs, out);
    assert!(
        level <= simd_level_enum(),
        "{} is not supported by this CPU",
        level.name()
    );
    // SAFETY: the level is supported (asserted above) and the dimensions were checked.
    unsafe { level_kernels(level).row.get(ty)(w_row, xs, out) }
}
