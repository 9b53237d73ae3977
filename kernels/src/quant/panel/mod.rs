//! Row panels: [`PANEL_ROWS`] weight rows interleaved chunk by chunk, so that one AVX-512 vector
//! holds the same 32-element chunk of sixteen rows and a block dot yields sixteen outputs at once.
//!
//! The row kernels ([`vec_dot_rows`](super::vec_dot_rows)) pay an unpack, a float conversion and
//! a scale per 32 multiply-adds of one row; a panel pays them once per 512 (sixteen rows), with
//! no horizontal sums: lane `r` of every vector belongs to row `r`. Packing is a permutation of
//! the bytes of each group of sixteen rows, so a packed weight is exactly as large as its GGUF
//! rows, and [`unpack_row`] gives any row back.
//!
//! # Layout of one panel chunk (rows `0..16`, elements `32c..32c+32`)
//!
//! - Q4_1, 320 bytes: four 64-byte groups `p = 0..4`, each holding the `qs[4p..4p+4]` bytes of
//!   rows 0..16 (row `r` at bytes `4r..4r+4`): low nibbles are elements `4p..4p+4`, high nibbles
//!   `16+4p..16+4p+4`; then the sixteen fp16 `d`, then the sixteen fp16 `m`.
//! - Q4_0, 288 bytes: the same four groups, then the sixteen fp16 `d`.
//! - Q8_0, 544 bytes: eight 64-byte groups `j = 0..8`, each holding the `qs[4j..4j+4]` bytes of
//!   rows 0..16 stored `+128` (as unsigned bytes: `vpdpbusd` multiplies unsigned by signed);
//!   then the sixteen fp16 `d`.
//!
//! # Order of operations (per row and activation; it depends only on the row length)
//!
//! For each chunk `c` in turn: the exact integer dot `isum` of the chunk's weight quants (Q4_0:
//! `q - 8`) with activation block `c`, then `acc = fma(isum as f32, d * x.d, acc)` and, for
//! Q4_1, `accm = fma(m, x.s, accm)`. The result is `acc + accm` (Q4_0 and Q8_0: `acc`). [`dot_panels_scalar`] is this order written out;
//! the fast kernel matches it bit for bit, whatever the number of activations or their
//! position in a batch.
//!
//! Panels are used only where the level has a kernel for them ([`packs`]): AVX-512 VNNI for
//! Q4_0, Q4_1 and Q8_0, AVX2 for Q4_0 and Q4_1. Elsewhere weights keep their GGUF rows. Every
//! kernel follows the same order, so the levels agree bit for bit.

mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QK};
use super::{ActKind, ActRow, GgmlType, Level, simd_level_enum};

pub(crate) use scalar::dot_panels_scalar;

/// Weight rows per panel.
pub const PANEL_ROWS: usize = 16;

/// Whether weights of `ty` are packed into panels on this CPU: true where the detected level
/// has a panel kernel for the type (AVX-512 VNNI: Q4_0, Q4_1 and Q8_0; AVX2: Q4_0 and Q4_1).
pub fn packs(ty: GgmlType) -> bool {
    has_kernel(simd_level_enum(), ty)
}

/// Whether `level` has a panel kernel for `ty`.
fn has_kernel(level: Level, ty: GgmlType) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::kernel(level, ty).is_some()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (level, ty);
        false
    }
}

/// Where a GGUF block of a panel type keeps its fields. Every one starts with its fp16 `d`.
#[derive(Clone, Copy)]
struct Fields {
    /// Offset of the quant bytes in the block.
    qs: usize,
    /// Quant groups of four bytes per block (4 for the 4-bit types, 8 for Q8_0).
    groups: usize,
    /// Offset of Q4_1's fp16 `m` (its halves array follows the `d` one in a chunk).
    m: Option<usize>,
    /// XORed into each quant byte: Q8_0's `+128` as an unsigned byte.
    flip: u8,
    /// What a stored (unsigned) quant exceeds the weight's integer by: Q4_0's 8 (`q - 8`),
    /// Q8_0's 128 (`flip`).
    bias: i32,
}

/// The block fields of `ty`, or `None` if it has no panel layout.
const fn fields(ty: GgmlType) -> Option<Fields> {
    match ty {
        GgmlType::Q4_0 => Some(Fields {
            qs: 2,
            groups: 4,
            m: None,
            flip: 0,
            bias: 8,
        }),
        GgmlType::Q4_1 => Some(Fields {
            qs: 4,
            groups: 4,
            m: Some(2),
            flip: 0,
            bias: 0,
        }),
        GgmlType::Q8_0 => Some(Fields {
            qs: 2,
            groups: 8,
            m: None,
            flip: 0x80,
            bias: 128,
        }),
        _ => None,
    }
}

/// Bytes of one 64-byte quant group: four bytes of each of the sixteen rows.
const GROUP: usize = 4 * PANEL_ROWS;
/// Bytes of the sixteen fp16 scales (or offsets) of a chunk.
const HALVES: usize = 2 * PANEL_ROWS;

/// Bytes of one panel chunk of `ty` (sixteen GGUF blocks): the quant groups, then the `d`
/// halves, then (Q4_1) the `m` halves.
pub(crate) const fn chunk_bytes(ty: GgmlType) -> usize {
    match fields(ty) {
        Some(f) => f.groups * GROUP + if f.m.is_some() { 2 } else { 1 } * HALVES,
        None => 0,
    }
}

const _: () = {
    assert!(chunk_bytes(GgmlType::Q4_0) == PANEL_ROWS * size_of::<BlockQ4_0>());
    assert!(chunk_bytes(GgmlType::Q4_1) == PANEL_ROWS * size_of::<BlockQ4_1>());
    assert!(chunk_bytes(GgmlType::Q8_0) == PANEL_ROWS * size_of::<BlockQ8_0>());
};

/// Panics unless `ty` has a layout and `row_bytes` is whole blocks of it; returns the fields.
#[track_caller]
fn check_rows(ty: GgmlType, row_bytes: usize) -> Fields {
    let Some(f) = fields(ty) else {
        panic!("no panel layout for {ty}");
    };
    assert!(
        row_bytes > 0 && row_bytes.is_multiple_of(ty.block_bytes()),
        "{ty} row of {row_bytes} bytes is not whole blocks"
    );
    f
}

/// [`check_rows`], and `panel_len` must be `PANEL_ROWS` rows of `row_bytes`.
#[track_caller]
fn check_panel(ty: GgmlType, panel_len: usize, row_bytes: usize) -> Fields {
    let f = check_rows(ty, row_bytes);
    assert_eq!(
        panel_len,
        PANEL_ROWS * row_bytes,
        "a {ty} panel is {PANEL_ROWS} rows of {row_bytes} bytes"
    );
    f
}

/// Packs `PANEL_ROWS` consecutive GGUF rows of `ty` (`rows`, `row_bytes` each) into one panel.
///
/// # Panics
/// If `ty` has no panel layout or the lengths are not sixteen rows.
pub fn pack(ty: GgmlType, rows: &[u8], row_bytes: usize, panel: &mut [u8]) {
    let f = check_panel(ty, rows.len(), row_bytes);
    assert_eq!(panel.len(), rows.len(), "panel and rows differ in size");
    let bb = ty.block_bytes();
    let halves = f.groups * GROUP;
    for (c, out) in panel.chunks_exact_mut(chunk_bytes(ty)).enumerate() {
        for r in 0..PANEL_ROWS {
            let block = &rows[r * row_bytes + c * bb..][..bb];
            for g in 0..f.groups {
                let src = &block[f.qs + 4 * g..][..4];
                for (o, &q) in out[g * GROUP + 4 * r..][..4].iter_mut().zip(src) {
                    *o = q ^ f.flip;
                }
            }
            out[halves + 2 * r..][..2].copy_from_slice(&block[..2]);
            if let Some(m) = f.m {
                out[halves + HALVES + 2 * r..][..2].copy_from_slice(&block[m..m + 2]);
            }
        }
    }
}

/// Row `lane` (`< PANEL_ROWS`) of a panel, back in its GGUF bytes.
///
/// # Panics
/// As [`pack`], or if `lane` or `row.len()` is out of range.
pub fn unpack_row(ty: GgmlType, panel: &[u8], row_bytes: usize, lane: usize, row: &mut [u8]) {
    let f = check_panel(ty, panel.len(), row_bytes);
    assert!(lane < PANEL_ROWS, "lane {lane} of a {PANEL_ROWS}-row panel");
    assert_eq!(row.len(), row_bytes, "row length");
    let halves = f.groups * GROUP;
    for (chunk, block) in panel
        .chunks_exact(chunk_bytes(ty))
        .zip(row.chunks_exact_mut(ty.block_bytes()))
    {
        block[..2].copy_from_slice(&chunk[halves + 2 * lane..][..2]);
        if let Some(m) = f.m {
            block[m..m + 2].copy_from_slice(&chunk[halves + HALVES + 2 * lane..][..2]);
        }
        for g in 0..f.groups {
            let src = &chunk[g * GROUP + 4 * lane..][..4];
            for (o, &u) in block[f.qs + 4 * g..][..4].iter_mut().zip(src) {
                *o = u ^ f.flip;
            }
        }
    }
}

/// Every panel of `panels` (each `PANEL_ROWS` rows of `row_bytes`) dotted with every activation:
/// `out[r * xs.len() + k]` is row `r` (counted across panels) with `xs[k]`, as
/// [`vec_dot_rows`](super::vec_dot_rows) lays it out. Where [`packs`] is false this runs the
/// scalar order (bit-identical, but slow: weights are packed only where the fast kernel exists).
///
/// # Panics
/// If `ty` has no panel layout, the panels are not whole, an activation is not one Q8 block per
/// chunk, or `out` has the wrong length.
pub fn dot_panels(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    dot_panels_with(simd_level_enum(), ty, panels, row_bytes, xs, out);
}

/// [`dot_panels`] with `level`'s kernel (the scalar order where it has none).
fn dot_panels_with(
    level: Level,
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    assert!(
        level <= simd_level_enum(),
        "{level:?} is not supported by this CPU"
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = x86::kernel(level, ty) {
        check_dots(ty, panels, row_bytes, xs, out);
        // SAFETY: the CPU supports `level` (asserted above), and `check_dots` checked every
        // length.
        return unsafe { x86::dot_panels(kernel, panels, row_bytes, xs, out) };
    }
    // The scalar order makes the same checks.
    dot_panels_scalar(ty, panels, row_bytes, xs, out);
}

/// [`dot_panels`] at an explicit level, for tests. Panics if the CPU does not support `level`.
#[cfg(test)]
pub(crate) fn dot_panels_at(
    level: Level,
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    dot_panels_with(level, ty, panels, row_bytes, xs, out);
}

/// The levels with a panel kernel for `ty` that this CPU supports.
#[cfg(test)]
pub(crate) fn kernel_levels(ty: GgmlType) -> Vec<Level> {
    [Level::Avx2, Level::Avx512Vnni]
        .into_iter()
        .filter(|&l| l <= simd_level_enum() && has_kernel(l, ty))
        .collect()
}

/// The checks of [`dot_panels`] that do not depend on the CPU.
#[track_caller]
fn check_dots(ty: GgmlType, panels: &[u8], row_bytes: usize, xs: &[ActRow<'_>], out: &[f32]) {
    check_rows(ty, row_bytes);
    assert_eq!(ty.act_kind(), ActKind::Q8);
    let pb = PANEL_ROWS * row_bytes;
    assert!(
        panels.len().is_multiple_of(pb),
        "{} bytes are not whole {ty} panels of {pb}",
        panels.len()
    );
    let chunks = row_bytes / ty.block_bytes();
    for x in xs {
        assert_eq!(
            x.q8.len(),
            chunks,
            "{ty} rows of {} elements, but {} activations in q8 blocks",
            chunks * QK,
            x.q8.len() * QK
        );
    }
    assert_eq!(
        out.len(),
        panels.len() / pb * PANEL_ROWS * xs.len(),
        "dot_panels: output length"
    );
}
