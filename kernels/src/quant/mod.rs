//! ggml tensor formats: block layouts, reference (de)quantizers and fast dot products.
//!
//! Supported weight types: [`GgmlType::F32`], [`GgmlType::F16`], [`GgmlType::BF16`],
//! [`GgmlType::Q4_0`], [`GgmlType::Q4_1`], [`GgmlType::Q5_0`], [`GgmlType::Q5_1`],
//! [`GgmlType::Q8_0`], and the K-quants [`GgmlType::Q2_K`], [`GgmlType::Q3_K`],
//! [`GgmlType::Q4_K`], [`GgmlType::Q5_K`] and [`GgmlType::Q6_K`], with the byte layouts of
//! ggml/GGUF (see [`blocks`]). The reference dequantizers match gguf-py's bit for bit on the
//! blocks of `kernels/tests/data/quant_goldens.txt`.
//!
//! # Dot products
//!
//! [`vec_dot`] multiplies one raw weight row with one activation row ([`ActRow`]). What the
//! activation must hold depends on [`GgmlType::act_kind`]:
//!
//! - [`ActKind::F32`] (F32, F16, BF16 weights): the plain f32 activations;
//! - [`ActKind::Q8`] (all quantized types): the activations quantized by [`quantize_act_q8`] into
//!   32-element [`BlockQ8`] blocks. Each 32-element weight chunk is dotted with its activation
//!   block in exact integer arithmetic, then scaled by the weight scale and the activation `d`;
//!   offsets (Q4_1's and Q5_1's `m`, Q4_K's and Q5_K's mins) multiply the activation block's
//!   `s`. Q2_K's mins change every 16 elements, so their dot with the activation quants is a
//!   second exact integer dot, scaled by `-dmin` and the activation `d`. The 5-bit types put
//!   the high bit into the nibble and run the 4-bit path; Q3_K runs Q6_K's (signed quants,
//!   16-element integer scales).
//!
//! [`vec_dot_multi`] does the same for many activation rows while unpacking each weight block
//! once per group of activations (groups of up to 8 with AVX-512, 4 with AVX2 for quant types;
//! the row stays in L1 between groups); its results are bit-identical to [`vec_dot`] for each
//! row, whatever the batch.
//!
//! [`panel`] holds a second layout for the hottest types: sixteen rows interleaved so that one
//! AVX-512 vector computes sixteen outputs (the CPU backend packs Q4_0, Q4_1, Q5_0, Q5_1,
//! Q4_K, Q5_K and Q6_K weights this way with AVX2 or AVX-512 VNNI, Q8_0 with VNNI). Its order
//! of operations is its own, equally fixed.
//!
//! # Accuracy
//!
//! Integer block dots are exact; the only rounding is in the f32 scaling and accumulation. The
//! tests hold every level to `|fast - exact| <= 1e-5 * Σ|w_i x_i|` against an f64 dot of the
//! dequantized weights with the activation the kernel sees (for quant types the dequantized
//! [`BlockQ8`] values), and, against the unquantized f32 activation, to the activation's own
//! rounding bound `Σ|w_i| d_i / 2` on top of that.
//!
//! # Determinism
//!
//! The fast path ([`simd_level`]) is chosen once per process. For a given level, every result is
//! computed in an order that depends only on the row length: never on threads, batch size or
//! the position of an activation in a batch. Different levels (scalar vs AVX2 vs AVX-512) may
//! differ in the last bits.

pub mod blocks;
pub mod panel;
mod reference;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

/// How many weight types are supported (the length of [`GgmlType::ALL`]).
pub const N_TYPES: usize = 13;

/// ggml tensor types supported. Discriminants are the ggml type ids.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 16-bit IEEE float.
    F16 = 1,
    /// 4-bit, 32-element blocks with one fp16 scale.
    Q4_0 = 2,
    /// 4-bit, 32-element blocks with an fp16 scale and an fp16 offset.
    Q4_1 = 3,
    /// 5-bit, 32-element blocks with one fp16 scale.
    Q5_0 = 6,
    /// 5-bit, 32-element blocks with an fp16 scale and an fp16 offset.
    Q5_1 = 7,
    /// 8-bit, 32-element blocks with one fp16 scale.
    Q8_0 = 8,
    /// 2-bit K-quant, 256-element super-blocks with 4-bit sub-block scales and mins.
    Q2_K = 10,
    /// 3-bit K-quant, 256-element super-blocks with 6-bit sub-block scales.
    Q3_K = 11,
    /// 4-bit K-quant, 256-element super-blocks with 6-bit sub-block scales and mins.
    Q4_K = 12,
    /// 5-bit K-quant, 256-element super-blocks with 6-bit sub-block scales and mins.
    Q5_K = 13,
    /// 6-bit K-quant, 256-element super-blocks with 8-bit sub-block scales.
    Q6_K = 14,
    /// bfloat16.
    BF16 = 30,
}

/// What form of the activation row [`vec_dot`] reads for a weight type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// Plain f32 activations ([`ActRow::f32`]).
    F32,
    /// Activations quantized into [`BlockQ8`] blocks ([`ActRow::q8`]).
    Q8,
}

impl GgmlType {
    /// Every supported type, in id order.
    pub const ALL: [GgmlType; N_TYPES] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The supported type with ggml type id `id`, or `None` (use [`ggml_type_name`] to name it).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// ggml's name for the type: `"F32"`, `"Q4_1"`, `"Q4_K"`, ...
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Elements per block: 1 for F32/F16/BF16, 32 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, 256 for the
    /// K-quants (Q2_K..Q6_K).
    pub fn block_elems(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                blocks::QK
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                blocks::QK_K
            }
        }
    }

    /// Bytes per block: 4, 2, 18, 20, 22, 24, 34, 84, 110, 144, 176, 210, 2 (in declaration
    /// order).
    pub const fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => size_of::<blocks::BlockQ4_0>(),
            GgmlType::Q4_1 => size_of::<blocks::BlockQ4_1>(),
            GgmlType::Q5_0 => size_of::<blocks::BlockQ5_0>(),
            GgmlType::Q5_1 => size_of::<blocks::BlockQ5_1>(),
            GgmlType::Q8_0 => size_of::<blocks::BlockQ8_0>(),
            GgmlType::Q2_K => size_of::<blocks::BlockQ2K>(),
            GgmlType::Q3_K => size_of::<blocks::BlockQ3K>(),
            GgmlType::Q4_K => size_of::<blocks::BlockQ4K>(),
            GgmlType::Q5_K => size_of::<blocks::BlockQ5K>(),
            GgmlType::Q6_K => size_of::<blocks::BlockQ6K>(),
        }
    }

    /// Bytes of a row of `n_elems` elements; `None` if `n_elems` is not a multiple of
    /// [`GgmlType::block_elems`] (or the size overflows `usize`).
    pub fn row_bytes(self, n_elems: usize) -> Option<usize> {
        if !n_elems.is_multiple_of(self.block_elems()) {
            return None;
        }
        (n_elems / self.block_elems()).checked_mul(self.block_bytes())
    }

    /// The activation form [`vec_dot`] wants for weights of this type.
    pub fn act_kind(self) -> ActKind {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => ActKind::F32,
            _ => ActKind::Q8,
        }
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of any ggml type id, including ones we don't support (Q8_1=9, Q8_K=15, IQ*..., I8..,
/// F64.., MXFP4=39, ...), for error messages. `None` for unknown ids.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_2",
        5 => "Q4_3",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        34 => "TQ1_0",
        35 => "TQ2_0",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        39 => "MXFP4",
        _ => return None,
    })
}

/// An activation block quantized for integer dot products: `x[i] ≈ d * qs[i]`;
/// `sum = Σ qs`, `s = d * sum`.
///
/// The fast paths assume `qs` in `-127..=127` (never -128), which [`quantize_act_q8`] guarantees.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockQ8 {
    /// Scale.
    pub d: f32,
    /// `d * sum`, used for weight offsets.
    pub s: f32,
    /// `Σ qs`, exact (what a kernel that biases signed weights into unsigned bytes takes back).
    pub sum: i32,
    /// Quants, in `-127..=127`.
    pub qs: [i8; 32],
}

/// Quantizes one activation row (len multiple of 32) into 32-element blocks (round-to-nearest,
/// amax/127 scale). Deterministic.
///
/// # Panics
/// If `x.len()` is not a multiple of 32 or `out.len() != x.len() / 32`.
pub fn quantize_act_q8(x: &[f32], out: &mut [BlockQ8]) {
    assert!(
        x.len().is_multiple_of(blocks::QK),
        "activation length {} is not a multiple of 32",
        x.len()
    );
    assert_eq!(
        out.len(),
        x.len() / blocks::QK,
        "output must have one BlockQ8 per 32 activations"
    );
    reference::quantize_act(x, out);
}

/// One activation row in both forms; `q8` is empty unless the weight type's act_kind is Q8.
///
/// [`vec_dot`] reads only the form the weight type wants ([`GgmlType::act_kind`]).
#[derive(Clone, Copy, Debug)]
pub struct ActRow<'a> {
    /// The activations as f32.
    pub f32: &'a [f32],
    /// The activations quantized by [`quantize_act_q8`] (one block per 32 elements).
    pub q8: &'a [BlockQ8],
}

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
    // SAFETY: `kernels` is the table of the level detected on this CPU, and the dimensions were
    // checked just above.
    unsafe { kernels()[ty.index()](w_row, xs, out) }
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
    // SAFETY: the table is the detected level's; every row has the checked length.
    unsafe { rows_kernels()[ty.index()](w_rows, row_bytes, xs, out) }
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

/// Which fast path this process uses: `"avx512vnni"`, `"avx2"` or `"scalar"`. Detected once and
/// fixed for the process lifetime.
pub fn simd_level() -> &'static str {
    simd_level_enum().name()
}

/// The instruction-set levels with a fast path, in increasing order.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The AVX2 set plus AVX-512 F/BW/VL and VNNI.
    Avx512Vnni,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx512vnni",
        }
    }
}

/// The best level this CPU supports, detected once.
pub(crate) fn simd_level_enum() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect_level)
}

fn detect_level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                return Level::Avx512Vnni;
            }
            return Level::Avx2;
        }
    }
    Level::Scalar
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

/// A row kernel `(w_row, xs, out)` of one type at one level.
///
/// Calling one requires the CPU features of its level and lengths checked by `check_dot`.
pub(crate) type RowKernel = unsafe fn(&[u8], &[ActRow<'_>], &mut [f32]);

/// A multi-row kernel `(w_rows, row_bytes, xs, out)`: [`RowKernel`] over each row of
/// `w_rows`, writing `out[r * xs.len()..][..xs.len()]`. Same requirements.
pub(crate) type RowsKernel = unsafe fn(&[u8], usize, &[ActRow<'_>], &mut [f32]);

/// The multi-row kernels of the detected level.
#[inline]
fn rows_kernels() -> &'static [RowsKernel; N_TYPES] {
    static TABLE: OnceLock<&'static [RowsKernel; N_TYPES]> = OnceLock::new();
    TABLE.get_or_init(|| match simd_level_enum() {
        Level::Scalar => &scalar::ROWS,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => &x86::avx2::ROWS,
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni => &x86::vnni::ROWS,
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar level exists on this architecture"),
    })
}

/// The row kernels of `level`, in [`GgmlType::ALL`] order.
fn kernel_table(level: Level) -> &'static [RowKernel; N_TYPES] {
    match level {
        Level::Scalar => &scalar::TABLE,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => &x86::avx2::TABLE,
        #[cfg(target_arch = "x86_64")]
        Level::Avx512Vnni => &x86::vnni::TABLE,
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar level exists on this architecture"),
    }
}

/// The row kernels of the detected level.
#[inline]
fn kernels() -> &'static [RowKernel; N_TYPES] {
    static TABLE: OnceLock<&'static [RowKernel; N_TYPES]> = OnceLock::new();
    TABLE.get_or_init(|| kernel_table(simd_level_enum()))
}

impl GgmlType {
    /// Position in [`GgmlType::ALL`].
    #[inline]
    fn index(self) -> usize {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 4,
            GgmlType::Q5_1 => 5,
            GgmlType::Q8_0 => 6,
            GgmlType::Q2_K => 7,
            GgmlType::Q3_K => 8,
            GgmlType::Q4_K => 9,
            GgmlType::Q5_K => 10,
            GgmlType::Q6_K => 11,
            GgmlType::BF16 => 12,
        }
    }
}

/// [`vec_dot_multi`] at an explicit level. Panics if the CPU does not support `level`.
#[cfg(test)]
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
    unsafe { kernel_table(level)[ty.index()](w_row, xs, out) }
}
