//! x86_64 fast paths for [`vec_dot_multi`](super::vec_dot_multi): one table of kernels per
//! level (`avx2::KERNELS`, `vnni::KERNELS`).
//!
//! The kernels are written once (the `level_kernels!` macro) and compiled twice: for AVX2 + FMA +
//! F16C, where the u8×i8 block dot is `vpmaddubsw` + `vpmaddwd`, and for AVX-512 (F/BW/VL) +
//! VNNI, where it is one `vpdpbusd` (and the compiler has 32 vector registers).
//!
//! Order of operations, per activation row (it depends only on the row length):
//! - quant types: the row is walked in 32-element chunks `c = 0, 1, ...`. A chunk's dot with its
//!   activation block is exact (eight i32 lanes), converted to f32 and accumulated as
//!   `acc[c % 2] = fma(lanes, splat(ds * x.d), acc[c % 2])`; offset terms go to scalars
//!   `accm[c % 2] = fma(dm, x.s, accm[c % 2])`. Result:
//!   `hsum8(acc[0] + acc[1]) + (accm[0] + accm[1])`. Q2_K, whose 16-element halves have
//!   their own integer mins, instead takes the exact dot of the mins with the activation
//!   quants into the same vector: `acc[c % 2] = fma(min_lanes, splat(-dmin * x.d), acc[c % 2])`
//!   right after the scale term.
//! - float types: 32 elements per step into four 8-lane accumulators, remaining 8-element groups
//!   into the first one, remaining elements into a scalar fma `tail`. Result:
//!   `hsum8((a0 + a1) + (a2 + a3)) + tail`.
//!
//! `vec_dot_multi` runs the same per-activation sequence for a group of activations at once
//! (each with its own accumulators), so its results are bit-identical to `vec_dot`.

use core::arch::x86_64::*;

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, RawBlock, as_blocks, f16_le,
};
use super::dispatch::{LevelKernels, PerType};
use super::{ActRow, BlockQ8};

// ---------------------------------------------------------------------------------------------
// Helpers shared by both levels (their features are a subset of either level's, so they inline).

#[target_feature(enable = "avx")]
#[inline]
fn load_i8x32(a: &[i8; 32]) -> __m256i {
    // SAFETY: `a` is 32 readable bytes and an unaligned load has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

#[target_feature(enable = "avx")]
#[inline]
fn load_u8x32(a: &[u8; 32]) -> __m256i {
    // SAFETY: `a` is 32 readable bytes and an unaligned load has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

#[inline]
fn load_u8x16(a: &[u8; 16]) -> __m128i {
    // SAFETY: `a` is 16 readable bytes, an unaligned load has no alignment requirement, and SSE2
    // is part of the x86_64 baseline.
    unsafe { _mm_loadu_si128(a.as_ptr().cast()) }
}

/// One fp16 (little-endian bytes) to f32 with F16C.
#[target_feature(enable = "avx,f16c")]
#[inline]
fn f16_to_f32(h: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
        u16::from_le_bytes(h),
    ))))
}

/// The two fp16 values in the first four bytes of a block (Q4_1's `d, m`, Q4_K's `d, dmin`) as
/// f32, with one load and one F16C conversion.
#[target_feature(enable = "avx,f16c")]
#[inline]
fn head_f16x2<B: RawBlock>(b: &B) -> (f32, f32) {
    const { assert!(size_of::<B>() >= 4) };
    // SAFETY: B is at least 4 bytes of plain data (RawBlock), and the read is unaligned.
    let head = unsafe { core::ptr::read_unaligned((b as *const B).cast::<i32>()) };
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(i32::from_le(head)));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The 32 nibbles of a Q4_0/Q4_1 block as bytes 0..=15: low nibbles then high nibbles.
#[target_feature(enable = "avx2")]
#[inline]
fn nibbles(qs: &[u8; 16]) -> __m256i {
    let raw = load_u8x16(qs);
    let hi = _mm_srli_epi16::<4>(raw);
    _mm256_and_si256(_mm256_set_m128i(hi, raw), _mm256_set1_epi8(0x0F))
}

/// Bit `i` of the little-endian word `qh` as `0x10` in byte `i` (else 0): the fifth bit of the
/// Q5_0/Q5_1 quants, in the byte order of [`nibbles`].
#[target_feature(enable = "avx2")]
#[inline]
fn q5_high(qh: [u8; 4]) -> __m256i {
    let word = _mm256_set1_epi32(i32::from_le_bytes(qh));
    // Byte i takes byte i / 8 of the word; each 128-bit lane holds the whole word, so the
    // in-lane shuffle can reach it.
    let spread = _mm256_shuffle_epi8(
        word,
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// The 32 unsigned 5-bit quants (0..=31) of a Q5_0/Q5_1 block, in element order.
#[target_feature(enable = "avx2")]
#[inline]
fn q5_quants(qh: [u8; 4], qs: &[u8; 16]) -> __m256i {
    _mm256_or_si256(nibbles(qs), q5_high(qh))
}

/// `val` in every byte of `v` whose bit `k` is set, 0 elsewhere (the high quant bit of Q3_K
/// and Q5_K, moved into place).
#[target_feature(enable = "avx2")]
#[inline]
fn bit_to(v: __m256i, k: usize, val: i8) -> __m256i {
    let bk = _mm256_set1_epi8((1u8 << k) as i8);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bk), bk);
    _mm256_and_si256(set, _mm256_set1_epi8(val))
}

/// The four 32-element chunks of one Q6_K half as unsigned 6-bit values (0..=63).
#[target_feature(enable = "avx2")]
#[inline]
fn q6k_half(ql0: &[u8; 32], ql1: &[u8; 32], qh: &[u8; 32]) -> [__m256i; 4] {
    let (l0, l1, h) = (load_u8x32(ql0), load_u8x32(ql1), load_u8x32(qh));
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    // 16-bit shifts are fine: the masks drop every bit that crossed a byte boundary.
    [
        _mm256_or_si256(
            _mm256_and_si256(l0, m4),
            _mm256_and_si256(_mm256_slli_epi16::<4>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(l1, m4),
            _mm256_and_si256(_mm256_slli_epi16::<2>(h), m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
            _mm256_and_si256(h, m30),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
            _mm256_and_si256(_mm256_srli_epi16::<2>(h), m30),
        ),
    ]
}

/// Horizontal sum in a fixed tree: `(v0+v4, v1+v5, v2+v6, v3+v7)`, then `(s0+s2, s1+s3)`, then
/// `t0 + t1`.
#[target_feature(enable = "avx")]
#[inline]
fn hsum8(v: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
}

/// Eight float weights starting at element `i`: `K` = 0 for f32, 1 for f16, 2 for bf16.
///
/// # Safety
/// `p` must point to at least `i + 8` elements of that type.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn load_w8<const K: u8>(p: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees elements i..i + 8 are readable; loads are unaligned.
    unsafe {
        match K {
            0 => _mm256_loadu_ps(p.add(4 * i).cast()),
            1 => _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i).cast())),
            _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                _mm_loadu_si128(p.add(2 * i).cast()),
            ))),
        }
    }
}

/// Float weight `i` of a row (`K` as in [`load_w8`]).
#[inline]
fn scalar_w<const K: u8>(w: &[u8], i: usize) -> f32 {
    match K {
        0 => f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]),
        1 => f16_le([w[2 * i], w[2 * i + 1]]),
        _ => f32::from_bits(u32::from(u16::from_le_bytes([w[2 * i], w[2 * i + 1]])) << 16),
    }
}

#[inline]
fn q8_rows<'a, const N: usize>(xc: &[ActRow<'a>]) -> [&'a [BlockQ8]; N] {
    core::array::from_fn(|k| xc[k].q8)
}

#[inline]
fn f32_rows<'a, const N: usize>(xc: &[ActRow<'a>]) -> [&'a [f32]; N] {
    core::array::from_fn(|k| xc[k].f32)
}

/// Runs `$call` (which names the const `$n` and the activation group `$xc`) on groups of
/// activations: as many groups of the largest size as fit, then one smaller group. The sizes
/// listed must be `1..=max`. A lone activation (the decode case) skips the group bookkeeping.
macro_rules! per_chunk {
    ([$($k:literal)*], $xs:expr, $out:expr, |$n:ident, $xc:ident| $call:expr) => {{
        const MAX: usize = [$($k),*].len();
        let xs: &[ActRow<'_>] = $xs;
        let out: &mut [f32] = $out;
        if xs.len() == 1 {
            const $n: usize = 1;
            let $xc = xs;
            out[0] = $call[0];
        } else {
            let mut i = 0;
            while xs.len() - i >= MAX {
                const $n: usize = MAX;
                let $xc = &xs[i..i + MAX];
                out[i..i + MAX].copy_from_slice(&$call);
                i += MAX;
            }
            let $xc = &xs[i..];
            let oc = &mut out[i..];
            match $xc.len() {
                0 => {}
                $($k => {
                    const $n: usize = $k;
                    oc.copy_from_slice(&$call);
                })*
                _ => unreachable!(),
            }
        }
    }};
}

/// The row kernel `$run` over consecutive rows, the loop compiled with the level's features
/// `$feat` so that each row's kernel is called directly (or inlined), not per row through the
/// dispatch.
macro_rules! rows_kernel {
    ($feat:literal, $run:ident) => {{
        #[target_feature(enable = $feat)]
        unsafe fn rows(w_rows: &[u8], row_bytes: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
            for (w_row, o) in w_rows
                .chunks_exact(row_bytes)
                .zip(out.chunks_exact_mut(xs.len()))
            {
                $run(w_row, xs, o)
            }
        }
        rows
    }};
}

macro_rules! level_kernels {
    (
        $(#[$doc:meta])*
        mod $name:ident;
        features = $feat:literal;
        quant_group = [$($qn:literal)*];
        float_group = [$($fnn:literal)*];
        fn dot_u8i8($a:ident, $b:ident) -> __m256i $dot:block
    ) => {
        $(#[$doc])*
        pub(super) mod $name {
            use super::*;

            /// Exact `Σ a[k] * b[k]` over each group of four bytes (`a` unsigned, `b` signed), as
            /// eight i32 lanes. Callers keep `a <= 128` and `b` in `-127..=127`, so the AVX2 form's
            /// i16 pair sums (at most 2 * 128 * 127) cannot saturate.
            #[target_feature(enable = $feat)]
            #[inline]
            fn dot_u8i8($a: __m256i, $b: __m256i) -> __m256i $dot

            /// This level's kernels. Calling one requires this level's CPU features and lengths
            /// checked by `check_dot`.
            pub(in super::super) const KERNELS: LevelKernels = LevelKernels {
                row: PerType {
                    f32: run_f32,
                    f16: run_f16,
                    bf16: run_bf16,
                    q4_0: run_q4_0,
                    q4_1: run_q4_1,
                    q5_0: run_q5_0,
                    q5_1: run_q5_1,
                    q8_0: run_q8_0,
                    q2_k: run_q2k,
                    q3_k: run_q3k,
                    q4_k: run_q4k,
                    q5_k: run_q5k,
                    q6_k: run_q6k,
                },
                rows: PerType {
                    f32: rows_kernel!($feat, run_f32),
                    f16: rows_kernel!($feat, run_f16),
                    bf16: rows_kernel!($feat, run_bf16),
                    q4_0: rows_kernel!($feat, run_q4_0),
                    q4_1: rows_kernel!($feat, run_q4_1),
                    q5_0: rows_kernel!($feat, run_q5_0),
                    q5_1: rows_kernel!($feat, run_q5_1),
                    q8_0: rows_kernel!($feat, run_q8_0),
                    q2_k: rows_kernel!($feat, run_q2k),
                    q3_k: rows_kernel!($feat, run_q3k),
                    q4_k: rows_kernel!($feat, run_q4k),
                    q5_k: rows_kernel!($feat, run_q5k),
                    q6_k: rows_kernel!($feat, run_q6k),
                },
            };

            #[target_feature(enable = $feat)]
            fn run_f32(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                per_chunk!([$($fnn)*], xs, out, |N, xc| float_n::<N, 0>(w_row, f32_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_f16(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                per_chunk!([$($fnn)*], xs, out, |N, xc| float_n::<N, 1>(w_row, f32_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_bf16(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                per_chunk!([$($fnn)*], xs, out, |N, xc| float_n::<N, 2>(w_row, f32_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q4_0(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ4_0>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q4_0_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q4_1(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ4_1>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q4_1_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q5_0(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ5_0>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q5_0_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q5_1(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ5_1>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q5_1_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q2k(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ2K>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q2k_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q3k(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ3K>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q3k_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q5k(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ5K>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q5k_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q8_0(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ8_0>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q8_0_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q4k(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ4K>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q4k_n::<N>(w, q8_rows::<N>(xc)))
            }

            #[target_feature(enable = $feat)]
            fn run_q6k(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                let w = as_blocks::<BlockQ6K>(w_row);
                per_chunk!([$($qn)*], xs, out, |N, xc| q6k_n::<N>(w, q8_rows::<N>(xc)))
            }

            /// Chunk `c` with unsigned weights `q` (0..=31) for every activation:
            /// `acc += (ds * x.d) * dot(q, x.qs)` and `accm += dm * x.s`.
            #[target_feature(enable = $feat)]
            #[inline]
            fn step_u<const N: usize>(
                q: __m256i,
                ds: f32,
                dm: f32,
                xs: &[&[BlockQ8]; N],
                c: usize,
                acc: &mut [__m256; N],
                accm: &mut [f32; N],
            ) {
                for ((a, am), x) in acc.iter_mut().zip(accm.iter_mut()).zip(xs) {
                    debug_assert!(c < x.len());
                    // SAFETY: `check_dot` verified each activation row has one block per weight
                    // chunk, and `c` is a chunk index of the weight row.
                    let xb = unsafe { x.get_unchecked(c) };
                    let p = dot_u8i8(q, load_i8x32(&xb.qs));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(ds * xb.d), *a);
                    *am = dm.mul_add(xb.s, *am);
                }
            }

            /// Chunk `c` with signed weights `w` (i8) for every activation:
            /// `acc += (ds * x.d) * dot(w, x.qs)`.
            #[target_feature(enable = $feat)]
            #[inline]
            fn step_s<const N: usize>(
                w: __m256i,
                ds: f32,
                xs: &[&[BlockQ8]; N],
                c: usize,
                acc: &mut [__m256; N],
            ) {
                // |w| as u8 (128 for -128) and the activation takes w's sign: an exact product.
                let aw = _mm256_abs_epi8(w);
                for (a, x) in acc.iter_mut().zip(xs) {
                    debug_assert!(c < x.len());
                    // SAFETY: as in `step_u`.
                    let xb = unsafe { x.get_unchecked(c) };
                    let p = dot_u8i8(aw, _mm256_sign_epi8(load_i8x32(&xb.qs), w));
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(ds * xb.d), *a);
                }
            }

            /// Q6_K chunk `c` (signed weights `w` in -32..=31, i16 scales `sc`: eight lanes for
            /// the first 16 elements, eight for the last): `acc += (d * x.d) * Σ sc * w * x`.
            #[target_feature(enable = $feat)]
            #[inline]
            fn step_q6<const N: usize>(
                w: __m256i,
                sc: __m256i,
                d: f32,
                xs: &[&[BlockQ8]; N],
                c: usize,
                acc: &mut [__m256; N],
            ) {
                let aw = _mm256_abs_epi8(w);
                for (a, x) in acc.iter_mut().zip(xs) {
                    debug_assert!(c < x.len());
                    // SAFETY: as in `step_u`.
                    let xb = unsafe { x.get_unchecked(c) };
                    let sx = _mm256_sign_epi8(load_i8x32(&xb.qs), w);
                    // Pair sums are at most 2 * 32 * 127: no saturation.
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), sc);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), *a);
                }
            }

            /// Q2_K chunk `c` (quants `q` in 0..=3, i16 scales `sc` and byte mins `m`, each
            /// the first 16 elements' then the last 16's; `[d, dm]` the super-block factors):
            /// `acc += (d * x.d) * Σ sc * q * x`, then `acc += (dm * x.d) * Σ m * x`.
            #[target_feature(enable = $feat)]
            #[inline]
            fn step_q2<const N: usize>(
                q: __m256i,
                sc: __m256i,
                m: __m256i,
                [d, dm]: [f32; 2],
                xs: &[&[BlockQ8]; N],
                c: usize,
                acc: &mut [__m256; N],
            ) {
                for (a, x) in acc.iter_mut().zip(xs) {
                    debug_assert!(c < x.len());
                    // SAFETY: as in `step_u`.
                    let xb = unsafe { x.get_unchecked(c) };
                    let xq = load_i8x32(&xb.qs);
                    // q <= 3 and sc <= 15: pair sums of at most 2 * 3 * 127, then exact i32s.
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xq), sc);
                    let pm = dot_u8i8(m, xq);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * xb.d), *a);
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pm), _mm256_set1_ps(dm * xb.d), *a);
                }
            }

            #[target_feature(enable = $feat)]
            #[inline]
            fn finish<const N: usize>(acc0: &[__m256; N], acc1: &[__m256; N]) -> [f32; N] {
                let mut r = [0.0f32; N];
                for ((r, a0), a1) in r.iter_mut().zip(acc0).zip(acc1) {
                    *r = hsum8(_mm256_add_ps(*a0, *a1));
                }
                r
            }

            /// `finish` plus the offset accumulators: `... + (accm0 + accm1)`.
            #[target_feature(enable = $feat)]
            #[inline]
            fn finish_m<const N: usize>(
                acc0: &[__m256; N],
                acc1: &[__m256; N],
                accm0: &[f32; N],
                accm1: &[f32; N],
            ) -> [f32; N] {
                let mut r = finish(acc0, acc1);
                for ((r, m0), m1) in r.iter_mut().zip(accm0).zip(accm1) {
                    *r += m0 + m1;
                }
                r
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q4_0_n<const N: usize>(w: &[BlockQ4_0], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let eight = _mm256_set1_epi8(8);
                let (pairs, rest) = w.as_chunks::<2>();
                let mut c = 0;
                for [b0, b1] in pairs {
                    let q0 = _mm256_sub_epi8(nibbles(&b0.qs), eight);
                    step_s(q0, f16_to_f32(b0.d), &xs, c, &mut acc0);
                    let q1 = _mm256_sub_epi8(nibbles(&b1.qs), eight);
                    step_s(q1, f16_to_f32(b1.d), &xs, c + 1, &mut acc1);
                    c += 2;
                }
                if let [b] = rest {
                    let q = _mm256_sub_epi8(nibbles(&b.qs), eight);
                    step_s(q, f16_to_f32(b.d), &xs, c, &mut acc0);
                }
                finish(&acc0, &acc1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q4_1_n<const N: usize>(w: &[BlockQ4_1], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let mut accm0 = [0.0f32; N];
                let mut accm1 = [0.0f32; N];
                let (pairs, rest) = w.as_chunks::<2>();
                let mut c = 0;
                for [b0, b1] in pairs {
                    let (d0, m0) = head_f16x2(b0);
                    step_u(nibbles(&b0.qs), d0, m0, &xs, c, &mut acc0, &mut accm0);
                    let (d1, m1) = head_f16x2(b1);
                    step_u(nibbles(&b1.qs), d1, m1, &xs, c + 1, &mut acc1, &mut accm1);
                    c += 2;
                }
                if let [b] = rest {
                    let (d, m) = head_f16x2(b);
                    step_u(nibbles(&b.qs), d, m, &xs, c, &mut acc0, &mut accm0);
                }
                finish_m(&acc0, &acc1, &accm0, &accm1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q5_0_n<const N: usize>(w: &[BlockQ5_0], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let sixteen = _mm256_set1_epi8(16);
                let (pairs, rest) = w.as_chunks::<2>();
                let mut c = 0;
                for [b0, b1] in pairs {
                    let q0 = _mm256_sub_epi8(q5_quants(b0.qh, &b0.qs), sixteen);
                    step_s(q0, f16_to_f32(b0.d), &xs, c, &mut acc0);
                    let q1 = _mm256_sub_epi8(q5_quants(b1.qh, &b1.qs), sixteen);
                    step_s(q1, f16_to_f32(b1.d), &xs, c + 1, &mut acc1);
                    c += 2;
                }
                if let [b] = rest {
                    let q = _mm256_sub_epi8(q5_quants(b.qh, &b.qs), sixteen);
                    step_s(q, f16_to_f32(b.d), &xs, c, &mut acc0);
                }
                finish(&acc0, &acc1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q5_1_n<const N: usize>(w: &[BlockQ5_1], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let mut accm0 = [0.0f32; N];
                let mut accm1 = [0.0f32; N];
                let (pairs, rest) = w.as_chunks::<2>();
                let mut c = 0;
                for [b0, b1] in pairs {
                    let (d0, m0) = head_f16x2(b0);
                    step_u(q5_quants(b0.qh, &b0.qs), d0, m0, &xs, c, &mut acc0, &mut accm0);
                    let (d1, m1) = head_f16x2(b1);
                    step_u(q5_quants(b1.qh, &b1.qs), d1, m1, &xs, c + 1, &mut acc1, &mut accm1);
                    c += 2;
                }
                if let [b] = rest {
                    let (d, m) = head_f16x2(b);
                    step_u(q5_quants(b.qh, &b.qs), d, m, &xs, c, &mut acc0, &mut accm0);
                }
                finish_m(&acc0, &acc1, &accm0, &accm1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q2k_n<const N: usize>(w: &[BlockQ2K], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let three = _mm256_set1_epi8(3);
                for (bi, b) in w.iter().enumerate() {
                    let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
                    let (qs, _) = b.qs.as_chunks::<32>();
                    for (h, half) in qs.iter().enumerate() {
                        let mut bits = load_u8x32(half);
                        for j in 0..4 {
                            let k = 4 * h + j;
                            let q = _mm256_and_si256(bits, three);
                            // 16-bit shifts: the mask keeps only bits of the same byte.
                            bits = _mm256_srli_epi16::<2>(bits);
                            let (s0, s1) = (b.scales[2 * k], b.scales[2 * k + 1]);
                            let sc = _mm256_set_m128i(
                                _mm_set1_epi16(i16::from(s1 & 0x0F)),
                                _mm_set1_epi16(i16::from(s0 & 0x0F)),
                            );
                            let m = _mm256_set_m128i(
                                _mm_set1_epi8((s1 >> 4) as i8),
                                _mm_set1_epi8((s0 >> 4) as i8),
                            );
                            let acc = if k % 2 == 0 { &mut acc0 } else { &mut acc1 };
                            step_q2(q, sc, m, [d, -dmin], &xs, 8 * bi + k, acc);
                        }
                    }
                }
                finish(&acc0, &acc1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q3k_n<const N: usize>(w: &[BlockQ3K], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let three = _mm256_set1_epi8(3);
                let four = _mm256_set1_epi8(4);
                for (bi, b) in w.iter().enumerate() {
                    let d = f16_to_f32(b.d);
                    let hm = load_u8x32(&b.hmask);
                    let (qs, _) = b.qs.as_chunks::<32>();
                    for (h, half) in qs.iter().enumerate() {
                        let mut bits = load_u8x32(half);
                        for j in 0..4 {
                            let k = 4 * h + j;
                            let low = _mm256_and_si256(bits, three);
                            // 16-bit shifts: the mask keeps only bits of the same byte.
                            bits = _mm256_srli_epi16::<2>(bits);
                            // A set hmask bit means no -4: q = (low | 4 * bit) - 4.
                            let w = _mm256_sub_epi8(_mm256_or_si256(low, bit_to(hm, k, 4)), four);
                            let sc = _mm256_set_m128i(
                                _mm_set1_epi16(i16::from(b.scale(2 * k + 1))),
                                _mm_set1_epi16(i16::from(b.scale(2 * k))),
                            );
                            let acc = if k % 2 == 0 { &mut acc0 } else { &mut acc1 };
                            step_q6(w, sc, d, &xs, 8 * bi + k, acc);
                        }
                    }
                }
                finish(&acc0, &acc1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q5k_n<const N: usize>(w: &[BlockQ5K], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let mut accm0 = [0.0f32; N];
                let mut accm1 = [0.0f32; N];
                let mask = _mm256_set1_epi8(0x0F);
                for (bi, b) in w.iter().enumerate() {
                    let (d, dmin) = head_f16x2(b);
                    let qh = load_u8x32(&b.qh);
                    let (groups, _) = b.qs.as_chunks::<32>();
                    for (g, raw) in groups.iter().enumerate() {
                        let raw = load_u8x32(raw);
                        let c = 8 * bi + 2 * g;
                        let (sc, m) = b.scale_min(2 * g);
                        let (ds, dm) = (d * f32::from(sc), -(dmin * f32::from(m)));
                        let lo = _mm256_and_si256(raw, mask);
                        let q = _mm256_or_si256(lo, bit_to(qh, 2 * g, 0x10));
                        step_u(q, ds, dm, &xs, c, &mut acc0, &mut accm0);
                        let (sc, m) = b.scale_min(2 * g + 1);
                        let (ds, dm) = (d * f32::from(sc), -(dmin * f32::from(m)));
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), mask);
                        let q = _mm256_or_si256(hi, bit_to(qh, 2 * g + 1, 0x10));
                        step_u(q, ds, dm, &xs, c + 1, &mut acc1, &mut accm1);
                    }
                }
                finish_m(&acc0, &acc1, &accm0, &accm1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q8_0_n<const N: usize>(w: &[BlockQ8_0], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let (pairs, rest) = w.as_chunks::<2>();
                let mut c = 0;
                for [b0, b1] in pairs {
                    step_s(load_i8x32(&b0.qs), f16_to_f32(b0.d), &xs, c, &mut acc0);
                    step_s(load_i8x32(&b1.qs), f16_to_f32(b1.d), &xs, c + 1, &mut acc1);
                    c += 2;
                }
                if let [b] = rest {
                    step_s(load_i8x32(&b.qs), f16_to_f32(b.d), &xs, c, &mut acc0);
                }
                finish(&acc0, &acc1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q4k_n<const N: usize>(w: &[BlockQ4K], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let mut accm0 = [0.0f32; N];
                let mut accm1 = [0.0f32; N];
                let mask = _mm256_set1_epi8(0x0F);
                for (bi, b) in w.iter().enumerate() {
                    let (d, dmin) = head_f16x2(b);
                    let (groups, _) = b.qs.as_chunks::<32>();
                    for (g, raw) in groups.iter().enumerate() {
                        let raw = load_u8x32(raw);
                        let c = 8 * bi + 2 * g;
                        let (sc, m) = b.scale_min(2 * g);
                        let (ds, dm) = (d * f32::from(sc), -(dmin * f32::from(m)));
                        let q = _mm256_and_si256(raw, mask);
                        step_u(q, ds, dm, &xs, c, &mut acc0, &mut accm0);
                        let (sc, m) = b.scale_min(2 * g + 1);
                        let (ds, dm) = (d * f32::from(sc), -(dmin * f32::from(m)));
                        let q = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), mask);
                        step_u(q, ds, dm, &xs, c + 1, &mut acc1, &mut accm1);
                    }
                }
                finish_m(&acc0, &acc1, &accm0, &accm1)
            }

            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn q6k_n<const N: usize>(w: &[BlockQ6K], xs: [&[BlockQ8]; N]) -> [f32; N] {
                let mut acc0 = [_mm256_setzero_ps(); N];
                let mut acc1 = [_mm256_setzero_ps(); N];
                let off = _mm256_set1_epi8(32);
                for (bi, b) in w.iter().enumerate() {
                    let d = f16_to_f32(b.d);
                    let (ql, _) = b.ql.as_chunks::<32>();
                    let (qh, _) = b.qh.as_chunks::<32>();
                    let sc = |i: usize| {
                        _mm256_set_m128i(
                            _mm_set1_epi16(i16::from(b.scales[i + 1])),
                            _mm_set1_epi16(i16::from(b.scales[i])),
                        )
                    };
                    for h in 0..2 {
                        let q = q6k_half(&ql[2 * h], &ql[2 * h + 1], &qh[h]);
                        let c = 8 * bi + 4 * h;
                        for p in 0..2 {
                            let s = 8 * h + 4 * p;
                            let w0 = _mm256_sub_epi8(q[2 * p], off);
                            step_q6(w0, sc(s), d, &xs, c + 2 * p, &mut acc0);
                            let w1 = _mm256_sub_epi8(q[2 * p + 1], off);
                            step_q6(w1, sc(s + 2), d, &xs, c + 2 * p + 1, &mut acc1);
                        }
                    }
                }
                finish(&acc0, &acc1)
            }

            /// Float weights (`K` as in `load_w8`) against f32 activations.
            #[target_feature(enable = $feat)]
            #[inline(never)]
            fn float_n<const N: usize, const K: u8>(w: &[u8], xs: [&[f32]; N]) -> [f32; N] {
                let n = w.len() / if K == 0 { 4 } else { 2 };
                let wp = w.as_ptr();
                let mut acc = [[_mm256_setzero_ps(); 4]; N];
                let mut i = 0;
                while i + 32 <= n {
                    for a in 0..4 {
                        // SAFETY: i + 8 a + 8 <= n, the row's element count.
                        let wv = unsafe { load_w8::<K>(wp, i + 8 * a) };
                        for (acc_j, x) in acc.iter_mut().zip(&xs) {
                            debug_assert_eq!(x.len(), n);
                            // SAFETY: `x` has n elements (checked by `check_dot`).
                            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * a)) };
                            acc_j[a] = _mm256_fmadd_ps(wv, xv, acc_j[a]);
                        }
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    // SAFETY: i + 8 <= n.
                    let wv = unsafe { load_w8::<K>(wp, i) };
                    for (acc_j, x) in acc.iter_mut().zip(&xs) {
                        // SAFETY: `x` has n elements (checked by `check_dot`).
                        let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
                        acc_j[0] = _mm256_fmadd_ps(wv, xv, acc_j[0]);
                    }
                    i += 8;
                }
                let mut r = [0.0f32; N];
                for ((r, a), x) in r.iter_mut().zip(&acc).zip(&xs) {
                    let mut tail = 0.0f32;
                    for (t, &xv) in x.iter().enumerate().skip(i) {
                        tail = scalar_w::<K>(w, t).mul_add(xv, tail);
                    }
                    let s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
                    *r = hsum8(s) + tail;
                }
                r
            }
        }
    };
}

level_kernels! {
    /// AVX-512 (F/BW/VL) + VNNI: `vpdpbusd` for the block dots, 32 vector registers.
    mod vnni;
    features = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni";
    quant_group = [1 2 3 4 5 6 7 8];
    float_group = [1 2 3 4];
    fn dot_u8i8(a, b) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
    }
}

level_kernels! {
    /// AVX2 + FMA + F16C: `vpmaddubsw` + `vpmaddwd` for the block dots.
    mod avx2;
    features = "avx2,fma,f16c";
    quant_group = [1 2 3 4];
    float_group = [1 2];
    fn dot_u8i8(a, b) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
    }
}
