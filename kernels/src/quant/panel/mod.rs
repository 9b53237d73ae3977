//! Row panels: [`PANEL_ROWS`] weight rows interleaved chunk by chunk, so that one AVX-512 vector
//! holds the same 32-element chunk of sixteen rows and a block dot yields sixteen outputs at once.
//!
//! The row kernels ([`vec_dot_rows`](super::vec_dot_rows)) pay an unpack, a float conversion and
//! a scale per 32 multiply-adds of one row; a panel pays them once per 512 (sixteen rows), with
//! no horizontal sums: lane `r` of every vector belongs to row `r`. Packing is a permutation of
//! the bytes of each group of sixteen rows, so a packed weight is exactly as large as its GGUF
//! rows, and [`unpack_row`] gives any row back.
//!
//! # Layout of one panel chunk (rows `0..16`, one GGUF block of each)
//!
//! Each field of the block is a segment ([`segments`]): its bytes cut into units of four (two
//! for an fp16), unit `u` of the sixteen rows side by side (row `r` at `unit * r`), so a
//! 4-byte unit is one 64-byte vector with row `r` in 32-bit lane `r`.
//!
//! - Q4_0 (288 bytes): four `qs` groups (low nibbles are elements `4p..4p+4`, high ones
//!   `16+4p..`), the sixteen fp16 `d`. Q4_1 adds the sixteen `m`.
//! - Q5_0 (352): Q4_0's groups, then one `qh` group (lane `r` is row `r`'s 32 fifth bits), then
//!   `d`. Q5_1 adds `m`.
//! - Q8_0 (544): eight groups of `qs` stored `+128` (as unsigned bytes: `vpdpbusd` multiplies
//!   unsigned by signed), then `d`.
//! - Q4_K (2304, one 256-element super-block): 32 `qs` groups, three groups of the packed
//!   scales, `d`, `dmin`. Q5_K (2816) puts eight `qh` groups after the `qs`.
//! - Q6_K (3360): 32 `ql` groups, 16 `qh` groups, four groups of the i8 scales, `d`.
//!
//! # Order of operations (per row and activation; it depends only on the row length)
//!
//! For each 32-element chunk `c` in turn: the exact integer dot `isum` of the chunk's signed
//! weight quants (Q4_0: `q - 8`, Q5_0: `q - 16`, Q6_K: `q - 32`, each 16-element half times its
//! integer scale for Q6_K) with activation block `c`, then `acc = fma(isum as f32, ds * x.d,
//! acc)` with `ds` the block's `d` (Q4_K, Q5_K: `d * sc` rounded to f32) and, for the types
//! with an offset, `accm = fma(dm, x.s, accm)` with `dm` Q4_1's and Q5_1's `m`, or Q4_K's and
//! Q5_K's `-(dmin * m)`. The result is `acc + accm` (`acc` without an offset).
//! [`dot_panels_scalar`] is this order written out; every fast kernel matches it bit for bit,
//! whatever the number of activations or their position in a batch.
//!
//! Panels are used only where the level has a kernel for them ([`packs`]): AVX-512 VNNI and
//! AVX2 for every type with a layout except Q8_0, which only VNNI takes. Elsewhere weights
//! keep their GGUF rows. Every kernel follows the same order, so the levels agree bit for bit.

#[cfg(target_arch = "x86_64")]
mod amx;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

use super::blocks::QK;
use super::{ActKind, ActRow, GgmlType, Level, simd_level_enum};

pub(crate) use scalar::dot_panels_scalar;

/// Weight rows per panel.
pub const PANEL_ROWS: usize = 16;

/// Whether weights of `ty` are packed into panels on this CPU: true where the detected level
/// has a panel kernel for the type (AVX-512 VNNI: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and
/// Q6_K; AVX2: the same but Q8_0).
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

/// One field of a GGUF block as a panel stores it: `len` bytes from `off`, cut into units of
/// `unit` bytes (4 for quants and packed scales, 2 for an fp16), each unit of the sixteen rows
/// side by side (row `r` at `unit * r`), unit after unit. A 4-byte unit makes one 64-byte
/// vector with row `r` in 32-bit lane `r`; a 2-byte one, sixteen fp16 for `vcvtph2ps`.
#[derive(Clone, Copy)]
struct Segment {
    /// Offset of the field in the GGUF block.
    off: usize,
    /// Bytes of the field per block.
    len: usize,
    /// Bytes per row per unit (2 or 4).
    unit: usize,
    /// XORed into each byte: Q8_0's `+128` as an unsigned byte.
    flip: u8,
}

const fn seg(off: usize, len: usize, unit: usize) -> Segment {
    Segment {
        off,
        len,
        unit,
        flip: 0,
    }
}

/// The fields of a GGUF block of `ty` in panel order (a panel chunk is sixteen blocks, the
/// segments one after the other), or `None` if it has no panel layout.
const fn segments(ty: GgmlType) -> Option<&'static [Segment]> {
    Some(match ty {
        // qs, d.
        GgmlType::Q4_0 => const { &[seg(2, 16, 4), seg(0, 2, 2)] },
        // qs, d, m.
        GgmlType::Q4_1 => const { &[seg(4, 16, 4), seg(0, 2, 2), seg(2, 2, 2)] },
        // qs, qh, d.
        GgmlType::Q5_0 => const { &[seg(6, 16, 4), seg(2, 4, 4), seg(0, 2, 2)] },
        // qs, qh, d, m.
        GgmlType::Q5_1 => const { &[seg(8, 16, 4), seg(4, 4, 4), seg(0, 2, 2), seg(2, 2, 2)] },
        // qs (+128), d.
        GgmlType::Q8_0 => {
            const {
                &[
                    Segment {
                        off: 2,
                        len: 32,
                        unit: 4,
                        flip: 0x80,
                    },
                    seg(0, 2, 2),
                ]
            }
        }
        // qs, scales, d, dmin.
        GgmlType::Q4_K => const { &[seg(16, 128, 4), seg(4, 12, 4), seg(0, 2, 2), seg(2, 2, 2)] },
        // qs, qh, scales, d, dmin.
        GgmlType::Q5_K => {
            const {
                &[
                    seg(48, 128, 4),
                    seg(16, 32, 4),
                    seg(4, 12, 4),
                    seg(0, 2, 2),
                    seg(2, 2, 2),
                ]
            }
        }
        // ql, qh, scales, d.
        GgmlType::Q6_K => {
            const {
                &[
                    seg(0, 128, 4),
                    seg(128, 64, 4),
                    seg(192, 16, 4),
                    seg(208, 2, 2),
                ]
            }
        }
        _ => return None,
    })
}

/// Bytes of one 64-byte quant group: four bytes of each of the sixteen rows.
const GROUP: usize = 4 * PANEL_ROWS;
/// Bytes of the sixteen fp16 scales (or offsets) of a chunk.
const HALVES: usize = 2 * PANEL_ROWS;

/// Bytes of one panel chunk of `ty`: sixteen GGUF blocks, one from each row (0 if `ty` has no
/// panel layout).
pub(crate) const fn chunk_bytes(ty: GgmlType) -> usize {
    match segments(ty) {
        Some(s) => {
            let mut total = 0;
            let mut i = 0;
            while i < s.len() {
                total += PANEL_ROWS * s[i].len;
                i += 1;
            }
            total
        }
        None => 0,
    }
}

/// Offset in a panel chunk of segment `i` of `ty`'s layout.
const fn seg_start(ty: GgmlType, i: usize) -> usize {
    let s = match segments(ty) {
        Some(s) => s,
        None => panic!("no panel layout"),
    };
    let mut at = 0;
    let mut j = 0;
    while j < i {
        at += PANEL_ROWS * s[j].len;
        j += 1;
    }
    at
}

const _: () = {
    // Every layout is a permutation of sixteen blocks: each byte of a block is in exactly one
    // segment.
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    let mut t = 0;
    while t < types.len() {
        let ty = types[t];
        assert!(chunk_bytes(ty) == PANEL_ROWS * ty.block_bytes());
        let s = match segments(ty) {
            Some(s) => s,
            None => panic!("listed types have layouts"),
        };
        let mut covered = [0u8; 256];
        let mut i = 0;
        while i < s.len() {
            assert!(s[i].len % s[i].unit == 0);
            let mut b = s[i].off;
            while b < s[i].off + s[i].len {
                covered[b] += 1;
                b += 1;
            }
            i += 1;
        }
        let mut b = 0;
        while b < 256 {
            assert!(covered[b] == (b < ty.block_bytes()) as u8);
            b += 1;
        }
        t += 1;
    }
};

/// Panics unless `ty` has a layout and `row_bytes` is whole blocks of it; returns the layout.
#[track_caller]
fn check_rows(ty: GgmlType, row_bytes: usize) -> &'static [Segment] {
    let Some(s) = segments(ty) else {
        panic!("no panel layout for {ty}");
    };
    assert!(
        row_bytes > 0 && row_bytes.is_multiple_of(ty.block_bytes()),
        "{ty} row of {row_bytes} bytes is not whole blocks"
    );
    s
}

/// [`check_rows`], and `panel_len` must be `PANEL_ROWS` rows of `row_bytes`.
#[track_caller]
fn check_panel(ty: GgmlType, panel_len: usize, row_bytes: usize) -> &'static [Segment] {
    let s = check_rows(ty, row_bytes);
    assert_eq!(
        panel_len,
        PANEL_ROWS * row_bytes,
        "a {ty} panel is {PANEL_ROWS} rows of {row_bytes} bytes"
    );
    s
}

/// Calls `f(block byte, chunk byte, flip)` for every byte of row `lane`'s block in a panel
/// chunk of layout `segs`: the permutation [`pack`] and [`unpack_row`] apply.
fn for_each_byte(segs: &[Segment], lane: usize, mut f: impl FnMut(usize, usize, u8)) {
    let mut start = 0;
    for s in segs {
        for u in 0..s.len / s.unit {
            for b in 0..s.unit {
                f(
                    s.off + s.unit * u + b,
                    start + u * s.unit * PANEL_ROWS + s.unit * lane + b,
                    s.flip,
                );
            }
        }
        start += PANEL_ROWS * s.len;
    }
}

/// Packs `PANEL_ROWS` consecutive GGUF rows of `ty` (`rows`, `row_bytes` each) into one panel.
///
/// # Panics
/// If `ty` has no panel layout or the lengths are not sixteen rows.
pub fn pack(ty: GgmlType, rows: &[u8], row_bytes: usize, panel: &mut [u8]) {
    let segs = check_panel(ty, rows.len(), row_bytes);
    assert_eq!(panel.len(), rows.len(), "panel and rows differ in size");
    let bb = ty.block_bytes();
    for (c, out) in panel.chunks_exact_mut(chunk_bytes(ty)).enumerate() {
        for r in 0..PANEL_ROWS {
            let block = &rows[r * row_bytes + c * bb..][..bb];
            for_each_byte(segs, r, |from, to, flip| out[to] = block[from] ^ flip);
        }
    }
}

/// Row `lane` (`< PANEL_ROWS`) of a panel, back in its GGUF bytes.
///
/// # Panics
/// As [`pack`], or if `lane` or `row.len()` is out of range.
pub fn unpack_row(ty: GgmlType, panel: &[u8], row_bytes: usize, lane: usize, row: &mut [u8]) {
    let segs = check_panel(ty, panel.len(), row_bytes);
    assert!(lane < PANEL_ROWS, "lane {lane} of a {PANEL_ROWS}-row panel");
    assert_eq!(row.len(), row_bytes, "row length");
    for (chunk, block) in panel
        .chunks_exact(chunk_bytes(ty))
        .zip(row.chunks_exact_mut(ty.block_bytes()))
    {
        for_each_byte(segs, lane, |to, from, flip| block[to] = chunk[from] ^ flip);
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
        check_dots(ty, panels, row_bytes, xs, Shape::ByRow(out.len()));
        // SAFETY: the CPU supports `level` (asserted above), and `check_dots` checked every
        // length.
        return unsafe { x86::dot_panels(kernel, panels, row_bytes, xs, Out::ByRow(out)) };
    }
    // The scalar order makes the same checks.
    dot_panels_scalar(ty, panels, row_bytes, xs, out);
}

/// Activations for [`dot_panels_by_activation`]: the rows and, where AMX tiles take them, the
/// same activations laid out for the tiles, once for every weight a product multiplies them
/// with.
pub struct PanelActs<'a> {
    rows: &'a [ActRow<'a>],
    #[cfg(target_arch = "x86_64")]
    tiles: Option<amx::Staged>,
}

impl<'a> PanelActs<'a> {
    /// `rows`, each with the same number of Q8 blocks.
    pub fn new(rows: &'a [ActRow<'a>]) -> Self {
        Self {
            rows,
            #[cfg(target_arch = "x86_64")]
            tiles: ((amx::MIN_ACTIVATIONS..=amx::TILE).contains(&rows.len()) && amx::available())
                .then(|| amx::Staged::new(rows)),
        }
    }

    /// The activations.
    pub fn rows(&self) -> &'a [ActRow<'a>] {
        self.rows
    }
}

/// [`dot_panels`] with the results by activation: run `k` of `out` holds row `r` (counted
/// across panels) with activation `k` at `r`, as a matrix product's output row takes them.
/// Same bits as [`dot_panels`], through AMX tiles where the CPU has them and `xs` are
/// enough to fill one.
///
/// # Panics
/// As [`dot_panels`], or if `out` has fewer runs than activations or a run is shorter than the
/// panels' rows.
pub fn dot_panels_by_activation(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &PanelActs<'_>,
    mut out: Runs<'_>,
) {
    let rows = check_dots(ty, panels, row_bytes, xs.rows, Shape::Runs(&out));
    #[cfg(target_arch = "x86_64")]
    if let Some(tiles) = &xs.tiles
        && amx::takes(ty)
    {
        debug_assert_eq!(tiles.count(), xs.rows.len());
        // SAFETY: `takes` checked the CPU and the permission; `check_dots` every length.
        return unsafe { amx::dot_panels(ty, panels, row_bytes, tiles, out) };
    }
    let xs = xs.rows;
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = x86::kernel(simd_level_enum(), ty) {
        // SAFETY: the detected level's kernel; `check_dots` checked every length.
        return unsafe { x86::dot_panels(kernel, panels, row_bytes, xs, Out::ByActivation(out)) };
    }
    let mut by_row = vec![0.0f32; rows * xs.len()];
    dot_panels_scalar(ty, panels, row_bytes, xs, &mut by_row);
    for (r, results) in by_row.chunks_exact(xs.len().max(1)).enumerate() {
        for (k, &v) in results.iter().enumerate() {
            out.run(k)[r] = v;
        }
    }
}

/// Where a panel product's results go.
pub(crate) enum Out<'a> {
    /// `out[row * activations + k]`.
    ByRow(&'a mut [f32]),
    /// Run `k`, element `row`.
    ByActivation(Runs<'a>),
}

/// One run of results per activation, `stride` elements apart, each written only through
/// this value: the runs of one buffer, or a task's share of an output that other tasks write
/// too (each task its own columns of every row), so that a product writes its results in
/// place instead of into a buffer copied afterwards.
pub struct Runs<'a> {
    ptr: std::ptr::NonNull<f32>,
    stride: usize,
    len: usize,
    count: usize,
    _out: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `Runs` is the only way to its elements for its lifetime (both constructors'
// contracts), like the `&mut [f32]` it stands for.
unsafe impl Send for Runs<'_> {}

impl<'a> Runs<'a> {
    /// `count` runs of `len` elements of `out`, run `k` from `k * stride`.
    ///
    /// # Panics
    /// If `stride < len` (runs would overlap) or `out` cannot hold the last run.
    pub fn new(out: &'a mut [f32], stride: usize, len: usize, count: usize) -> Self {
        assert!(
            stride >= len,
            "runs of {len} at a stride of {stride} overlap"
        );
        let needed = count.saturating_sub(1) * stride + if count == 0 { 0 } else { len };
        assert!(
            out.len() >= needed,
            "{count} runs of {len} at a stride of {stride} need {needed} elements, not {}",
            out.len()
        );
        // SAFETY: the runs lie inside `out` (asserted) and do not overlap (stride >= len);
        // `out` stays borrowed mutably for 'a.
        unsafe { Self::from_raw(out.as_mut_ptr(), stride, len, count) }
    }

    /// Runs from a raw pointer.
    ///
    /// # Safety
    /// For every `k < count`, the `len` elements from `ptr + k * stride` are valid for reads
    /// and writes and accessed through nothing else during `'a`; `stride >= len`.
    pub unsafe fn from_raw(ptr: *mut f32, stride: usize, len: usize, count: usize) -> Self {
        Self {
            ptr: std::ptr::NonNull::new(ptr).expect("a null output"),
            stride,
            len,
            count,
            _out: std::marker::PhantomData,
        }
    }

    /// The same runs, borrowed for a call that takes a `Runs` by value.
    pub fn reborrow(&mut self) -> Runs<'_> {
        Runs {
            _out: std::marker::PhantomData,
            ..*self
        }
    }

    /// Run `k`.
    ///
    /// # Panics
    /// If `k` is not below the number of runs.
    #[inline]
    pub fn run(&mut self, k: usize) -> &mut [f32] {
        assert!(k < self.count, "run {k} of {}", self.count);
        // SAFETY: run k is valid and ours alone (the constructors' contracts), and borrowed
        // from `self` mutably, so no two of them are live at once.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(k * self.stride), self.len) }
    }
}

/// [`dot_panels`] at an explicit level, for tests and benchmarks. Panics if the CPU does not
/// support `level`.
#[cfg(any(test, feature = "bench-internals"))]
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
#[cfg(any(test, feature = "bench-internals"))]
pub(crate) fn kernel_levels(ty: GgmlType) -> Vec<Level> {
    [Level::Avx2, Level::Avx512Vnni]
        .into_iter()
        .filter(|&l| l <= simd_level_enum() && has_kernel(l, ty))
        .collect()
}

/// What a product's output must hold: `ByRow` an exact length (rows × activations), `Runs` at
/// least a run per activation, each at least the rows long.
enum Shape<'r, 'a> {
    ByRow(usize),
    Runs(&'r Runs<'a>),
}

/// The checks of [`dot_panels`] and [`dot_panels_by_activation`] that do not depend on the
/// CPU, `out` the output's shape. Returns the rows (counted across panels).
#[track_caller]
fn check_dots(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: Shape<'_, '_>,
) -> usize {
    check_rows(ty, row_bytes);
    assert_eq!(ty.act_kind(), ActKind::Q8);
    let pb = PANEL_ROWS * row_bytes;
    assert!(
        panels.len().is_multiple_of(pb),
        "{} bytes are not whole {ty} panels of {pb}",
        panels.len()
    );
    let elems = row_bytes / ty.block_bytes() * ty.block_elems();
    for x in xs {
        assert_eq!(
            x.q8.len() * QK,
            elems,
            "{ty} rows of {elems} elements, but {} activations in q8 blocks",
            x.q8.len() * QK
        );
    }
    let rows = panels.len() / pb * PANEL_ROWS;
    match out {
        Shape::ByRow(len) => assert_eq!(len, rows * xs.len(), "dot_panels: output length"),
        Shape::Runs(runs) => {
            assert!(
                runs.count >= xs.len(),
                "{} runs for {} activations",
                runs.count,
                xs.len()
            );
            assert!(runs.len >= rows, "runs of {} for {rows} rows", runs.len);
        }
    }
    rows
}
