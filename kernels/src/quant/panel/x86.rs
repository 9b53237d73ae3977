//! The x86 panel kernels, lane `r` of every vector belonging to row `r`: with AVX-512 VNNI one
//! `vpdpbusd` per 4 elements of sixteen rows (Q4_0, Q4_1, Q8_0); with AVX2, `vpmaddubsw` +
//! `vpmaddwd` per 4 elements of eight rows, each half of a panel in turn (Q4_0 and Q4_1 only:
//! Q8_0's +128 bytes would saturate `vpmaddubsw`'s pair sums).

use core::arch::x86_64::*;

use super::super::{ActRow, BlockQ8, GgmlType, Level};
use super::{GROUP, HALVES, PANEL_ROWS, chunk_bytes};

/// Activations dotted with one panel per AVX-512 kernel call: eight accumulator pairs plus the
/// eight unpacked weight vectors fit the 32 vector registers.
const MAX_GROUP: usize = 8;
/// Activations per AVX2 kernel call: with 16 registers, eight hold half a chunk's weights.
const AVX2_GROUP: usize = 2;

/// Dots one panel with up to [`MAX_GROUP`] activations: `res[k][lane]` for activation `k`.
///
/// Calling one requires its level's CPU features and lengths checked by `check_dots`.
type GroupKernel = unsafe fn(&[u8], &[ActRow<'_>], &mut [[f32; PANEL_ROWS]; MAX_GROUP]);

/// The group kernel of `ty` at `level`, and the activations it takes per call; `None` where
/// there is none.
pub(super) fn kernel(level: Level, ty: GgmlType) -> Option<(GroupKernel, usize)> {
    match (level, ty) {
        (Level::Avx512Vnni, GgmlType::Q4_0) => Some((vnni_q4_0 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q4_1) => Some((vnni_q4_1 as GroupKernel, MAX_GROUP)),
        (Level::Avx512Vnni, GgmlType::Q8_0) => Some((vnni_q8_0 as GroupKernel, MAX_GROUP)),
        (Level::Avx2, GgmlType::Q4_0) => Some((avx2_q4::<false> as GroupKernel, AVX2_GROUP)),
        (Level::Avx2, GgmlType::Q4_1) => Some((avx2_q4::<true> as GroupKernel, AVX2_GROUP)),
        _ => None,
    }
}

/// [`dot_panels`](super::dot_panels) with one group kernel.
///
/// # Safety
/// The CPU must support the kernel's level, `group` must not exceed what it takes, and the
/// lengths must have passed `check_dots`.
pub(super) unsafe fn dot_panels(
    (kernel, group): (GroupKernel, usize),
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    debug_assert!((1..=MAX_GROUP).contains(&group));
    let n = xs.len();
    let mut res = [[0.0f32; PANEL_ROWS]; MAX_GROUP];
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        let mut k0 = 0;
        while k0 < n {
            let g = (n - k0).min(group);
            // SAFETY: the caller's guarantees, and g <= group activations.
            unsafe { kernel(panel, &xs[k0..k0 + g], &mut res) };
            for (k, r) in res[..g].iter().enumerate() {
                for (lane, &v) in r.iter().enumerate() {
                    out[(p * PANEL_ROWS + lane) * n + k0 + k] = v;
                }
            }
            k0 += g;
        }
    }
}

/// Stores sixteen-lane results into `res[k]`, one per activation.
macro_rules! store16 {
    ($res:expr, $v:expr) => {
        for (r, v) in $res.iter_mut().zip($v) {
            // SAFETY: `r` is PANEL_ROWS (sixteen) writable f32s.
            unsafe { _mm512_storeu_ps(r.as_mut_ptr(), v) };
        }
    };
}

/// Generates a [`GroupKernel`] over the const-generic AVX-512 kernel `$f` (with one more const
/// argument `$extra`, if given) for the listed activation counts (`1..=MAX_GROUP`).
macro_rules! vnni_group {
    ($name:ident, $f:ident $(, $extra:expr)?; [$($n:literal)*]) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name(
            panel: &[u8],
            xc: &[ActRow<'_>],
            res: &mut [[f32; PANEL_ROWS]; MAX_GROUP],
        ) {
            vnni_group!(@match panel, xc, res, $f $(, $extra)?; [$($n)*]);
        }
    };
    (@match $panel:ident, $xc:ident, $res:ident, $f:ident; [$($n:literal)*]) => {
        match $xc.len() {
            $($n => store16!($res, $f::<$n>($panel, rows::<$n>($xc))),)*
            _ => unreachable!("1..=MAX_GROUP activations"),
        }
    };
    (@match $panel:ident, $xc:ident, $res:ident, $f:ident, $extra:expr; [$($n:literal)*]) => {
        match $xc.len() {
            $($n => store16!($res, $f::<$n, $extra>($panel, rows::<$n>($xc))),)*
            _ => unreachable!("1..=MAX_GROUP activations"),
        }
    };
}

vnni_group!(vnni_q4_0, q4, false; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q4_1, q4, true; [1 2 3 4 5 6 7 8]);
vnni_group!(vnni_q8_0, q8_0; [1 2 3 4 5 6 7 8]);

/// The AVX2 Q4_0 / Q4_1 (`OFFSET`) [`GroupKernel`]: each half of the panel (rows 0..8, then
/// 8..16) in turn.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2_q4<const OFFSET: bool>(
    panel: &[u8],
    xc: &[ActRow<'_>],
    res: &mut [[f32; PANEL_ROWS]; MAX_GROUP],
) {
    for half in 0..2 {
        macro_rules! store {
            ($v:expr) => {
                for (r, v) in res.iter_mut().zip($v) {
                    // SAFETY: lanes 8 * half..8 * half + 8 of `r` are writable.
                    unsafe { _mm256_storeu_ps(r.as_mut_ptr().add(8 * half), v) };
                }
            };
        }
        match xc.len() {
            1 => store!(q4_avx2::<1, OFFSET>(panel, half, rows::<1>(xc))),
            2 => store!(q4_avx2::<2, OFFSET>(panel, half, rows::<2>(xc))),
            _ => unreachable!("1..=AVX2_GROUP activations"),
        }
    }
}

#[inline]
fn rows<'a, const N: usize>(xc: &[ActRow<'a>]) -> [&'a [BlockQ8]; N] {
    core::array::from_fn(|k| xc[k].q8)
}

/// Bytes `4j..4j+4` of an activation block in every 32-bit lane.
#[target_feature(enable = "avx512f")]
#[inline]
fn bcast4(qs: &[i8; 32], j: usize) -> __m512i {
    debug_assert!(j < 8);
    // SAFETY: j < 8, so bytes 4j..4j+4 lie inside the 32; the read is unaligned.
    _mm512_set1_epi32(unsafe { qs.as_ptr().add(4 * j).cast::<i32>().read_unaligned() })
}

/// Sixteen fp16 values at `p` as f32.
///
/// # Safety
/// `p` must point to 32 readable bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn halves(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 32 readable bytes; the load is unaligned.
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
}

/// One 64-byte quant group of a chunk.
///
/// # Safety
/// `p` must point to 64 readable bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn group(p: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// Q4_0 and Q4_1 (same chunk layout up to the offsets): `OFFSET` is Q4_1's `+ m` (the `accm`
/// term); without it the nibbles are `q - 8`, taken back as a chain starting at -8 Σx.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q4<const N: usize, const OFFSET: bool>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    let cb = chunk_bytes(if OFFSET {
        GgmlType::Q4_1
    } else {
        GgmlType::Q4_0
    });
    let mask = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); N];
    let mut accm = [_mm512_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(cb).enumerate() {
        let p = chunk.as_ptr();
        let mut lo = [_mm512_setzero_si512(); 4];
        let mut hi = [_mm512_setzero_si512(); 4];
        for g in 0..4 {
            // SAFETY: group g of a chunk (4 * GROUP bytes of quants come first).
            let raw = unsafe { group(p.add(g * GROUP)) };
            lo[g] = _mm512_and_si512(raw, mask);
            hi[g] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
        }
        // SAFETY: the d halves (and Q4_1's m halves) follow the four groups in the chunk.
        let d = unsafe { halves(p.add(4 * GROUP)) };
        let m = if OFFSET {
            // SAFETY: as above.
            unsafe { halves(p.add(4 * GROUP + HALVES)) }
        } else {
            _mm512_setzero_ps()
        };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            // Integer sums are exact, so the two chains may be added in any order.
            let start = if OFFSET { 0 } else { -(xb.sum << 3) };
            let mut s0 = _mm512_dpbusd_epi32(_mm512_set1_epi32(start), lo[0], bcast4(&xb.qs, 0));
            let mut s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi[0], bcast4(&xb.qs, 4));
            for g in 1..4 {
                s0 = _mm512_dpbusd_epi32(s0, lo[g], bcast4(&xb.qs, g));
                s1 = _mm512_dpbusd_epi32(s1, hi[g], bcast4(&xb.qs, 4 + g));
            }
            let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[k] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[k]);
            if OFFSET {
                accm[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(xb.s), accm[k]);
            }
        }
    }
    if OFFSET {
        for k in 0..N {
            acc[k] = _mm512_add_ps(acc[k], accm[k]);
        }
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q8_0<const N: usize>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    const CB: usize = chunk_bytes(GgmlType::Q8_0);
    let mut acc = [_mm512_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(CB).enumerate() {
        let p = chunk.as_ptr();
        let mut w = [_mm512_setzero_si512(); 8];
        for (j, w) in w.iter_mut().enumerate() {
            // SAFETY: group j of a CB-byte chunk (8 * GROUP bytes of quants come first).
            *w = unsafe { group(p.add(j * GROUP)) };
        }
        // SAFETY: the d halves follow the eight groups inside the chunk.
        let d = unsafe { halves(p.add(8 * GROUP)) };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            // The weights are stored +128: Σ (w + 128) x = Σ w x + 128 Σ x, so the chain
            // starts at -128 Σ x (|Σ x| <= 32 * 127: no overflow).
            let mut s0 = _mm512_set1_epi32(-(xb.sum << 7));
            let mut s1 = _mm512_setzero_si512();
            for g in 0..4 {
                s0 = _mm512_dpbusd_epi32(s0, w[g], bcast4(&xb.qs, g));
                s1 = _mm512_dpbusd_epi32(s1, w[4 + g], bcast4(&xb.qs, 4 + g));
            }
            let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[k] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[k]);
        }
    }
    acc
}

/// Bytes `4j..4j+4` of an activation block in every 32-bit lane (AVX2).
#[target_feature(enable = "avx2")]
#[inline]
fn bcast4_256(qs: &[i8; 32], j: usize) -> __m256i {
    debug_assert!(j < 8);
    // SAFETY: j < 8, so bytes 4j..4j+4 lie inside the 32; the read is unaligned.
    _mm256_set1_epi32(unsafe { qs.as_ptr().add(4 * j).cast::<i32>().read_unaligned() })
}

/// Exact `Σ w[k] * x[k]` over each group of four bytes (`w` nibbles, `x` signed): the i16 pair
/// sums are at most 2 * 15 * 127, far from saturating.
#[target_feature(enable = "avx2")]
#[inline]
fn dot4_avx2(w: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1))
}

/// Q4_0 or Q4_1 (`OFFSET`, as in [`q4`]) rows `8 * half..8 * half + 8` of a panel, in the
/// panel order of operations.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline(never)]
fn q4_avx2<const N: usize, const OFFSET: bool>(
    panel: &[u8],
    half: usize,
    xs: [&[BlockQ8]; N],
) -> [__m256; N] {
    let cb = chunk_bytes(if OFFSET {
        GgmlType::Q4_1
    } else {
        GgmlType::Q4_0
    });
    debug_assert!(half < 2);
    let mask = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut accm = [_mm256_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(cb).enumerate() {
        // Rows 8 * half.. start 32 bytes into each group and 16 bytes into each halves array.
        let p = chunk.as_ptr();
        let mut lo = [_mm256_setzero_si256(); 4];
        let mut hi = [_mm256_setzero_si256(); 4];
        for g in 0..4 {
            // SAFETY: 32 bytes at offset 32 * half of group g, inside the chunk.
            let raw = unsafe { _mm256_loadu_si256(p.add(g * GROUP + 32 * half).cast()) };
            lo[g] = _mm256_and_si256(raw, mask);
            hi[g] = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), mask);
        }
        // SAFETY: 16 bytes (eight halves) at offset 16 * half of the d and m arrays.
        let (d, m) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(4 * GROUP + 16 * half).cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(
                    p.add(4 * GROUP + HALVES + 16 * half).cast(),
                )),
            )
        };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            let start = if OFFSET { 0 } else { -(xb.sum << 3) };
            let mut s0 = _mm256_add_epi32(
                _mm256_set1_epi32(start),
                dot4_avx2(lo[0], bcast4_256(&xb.qs, 0)),
            );
            let mut s1 = dot4_avx2(hi[0], bcast4_256(&xb.qs, 4));
            for g in 1..4 {
                s0 = _mm256_add_epi32(s0, dot4_avx2(lo[g], bcast4_256(&xb.qs, g)));
                s1 = _mm256_add_epi32(s1, dot4_avx2(hi[g], bcast4_256(&xb.qs, 4 + g)));
            }
            let isum = _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1));
            acc[k] = _mm256_fmadd_ps(isum, _mm256_mul_ps(d, _mm256_set1_ps(xb.d)), acc[k]);
            if OFFSET {
                accm[k] = _mm256_fmadd_ps(m, _mm256_set1_ps(xb.s), accm[k]);
            }
        }
    }
    if OFFSET {
        for k in 0..N {
            acc[k] = _mm256_add_ps(acc[k], accm[k]);
        }
    }
    acc
}
