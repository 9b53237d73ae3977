//! Activations as the dot products read them: the f32 row and its [`BlockQ8`] quantization,
//! paired in an [`ActRow`]; [`ActKind`] says which form a weight type reads.

use super::blocks;
use super::reference;

/// What form of the activation row [`vec_dot`](super::vec_dot) reads for a weight type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// Plain f32 activations ([`ActRow::f32`]).
    F32,
    /// Activations quantized into [`BlockQ8`] blocks ([`ActRow::q8`]).
    Q8,
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
    #[cfg(target_arch = "x86_64")]
    if super::simd_level_enum() >= super::Level::Avx2 {
        // SAFETY: the AVX2 level includes F16C; the lengths were checked above.
        return unsafe { x86::quantize_act(x, out) };
    }
    reference::quantize_act(x, out);
}

/// One activation row in both forms; `q8` is empty unless the weight type's act_kind is Q8.
///
/// [`vec_dot`](super::vec_dot) reads only the form the weight type wants
/// ([`GgmlType::act_kind`](super::GgmlType::act_kind)).
#[derive(Clone, Copy, Debug)]
pub struct ActRow<'a> {
    /// The activations as f32.
    pub f32: &'a [f32],
    /// The activations quantized by [`quantize_act_q8`] (one block per 32 elements).
    pub q8: &'a [BlockQ8],
}

/// [`reference::quantize_act`] in AVX2: the same operations on eight lanes, so the same bytes.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::BlockQ8;

    /// Quantizes `x` (a multiple of 32 long) into `out`, one block per 32 elements.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `out.len() == x.len() / 32`.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize_act(x: &[f32], out: &mut [BlockQ8]) {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
        for (b, xs) in out.iter_mut().zip(x.chunks_exact(32)) {
            // SAFETY: `xs` is 32 f32s; unaligned loads.
            let v: [__m256; 4] =
                core::array::from_fn(|i| unsafe { _mm256_loadu_ps(xs.as_ptr().add(8 * i)) });
            // `max(|v|, m)` returns `m` for a NaN `|v|`, as `f32::max` skips NaN; the lanes
            // hold no NaN and no -0.0, so their maximum is one value in any order.
            let mut m = _mm256_setzero_ps();
            for v in v {
                m = _mm256_max_ps(_mm256_and_ps(v, abs_mask), m);
            }
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
            let d = amax / 127.0;
            let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
            let q: [__m256i; 4] = core::array::from_fn(|i| {
                // `max(y, -127)` is -127 for a NaN `y`, as `round_clamp` makes it; then the
                // truncation, the fraction and the half-away-from-zero correction, exact.
                let c = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[i], id), lo), hi);
                let t = _mm256_cvttps_epi32(c);
                let frac = _mm256_sub_ps(c, _mm256_cvtepi32_ps(t));
                let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half));
                let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, neg_half));
                // A true comparison is -1 in every bit.
                _mm256_add_epi32(_mm256_sub_epi32(t, up), down)
            });
            // Packing interleaves the 128-bit lanes; the permutation puts dwords back in order.
            let bytes = _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            );
            let bytes =
                _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: `qs` is 32 writable bytes; unaligned store.
            unsafe { _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), bytes) };
            let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)));
            // fp16 round trip, round to nearest even as `half::f16::from_f32`.
            let dh = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d));
            b.d = _mm_cvtss_f32(_mm_cvtph_ps(dh));
            b.s = b.d * sum as f32;
            b.sum = sum;
        }
    }
}
