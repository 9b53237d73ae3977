//! The AVX-512 VNNI panel kernels: one `vpdpbusd` per 4 elements of sixteen rows, lane `r` of
//! every vector belonging to row `r`.

use core::arch::x86_64::*;

use super::super::{ActRow, BlockQ8, GgmlType};
use super::{GROUP, HALVES, PANEL_ROWS, chunk_bytes};

/// Activations dotted with one panel per kernel call: eight accumulator pairs plus the eight
/// unpacked weight vectors fit the 32 vector registers.
const MAX_GROUP: usize = 8;

/// [`dot_panels`](super::dot_panels) at this level.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL and VNNI (with AVX2, FMA and F16C), and the lengths
/// must have passed `check_dots` for a type with a panel layout.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn dot_panels(
    ty: GgmlType,
    panels: &[u8],
    row_bytes: usize,
    xs: &[ActRow<'_>],
    out: &mut [f32],
) {
    let n = xs.len();
    let mut res = [[0.0f32; PANEL_ROWS]; MAX_GROUP];
    for (p, panel) in panels.chunks_exact(PANEL_ROWS * row_bytes).enumerate() {
        let mut k0 = 0;
        while k0 < n {
            let g = (n - k0).min(MAX_GROUP);
            let xc = &xs[k0..k0 + g];
            macro_rules! call {
                ($($n:literal)*) => {
                    match g {
                        $($n => {
                            let v = match ty {
                                GgmlType::Q4_1 => q4_1::<$n>(panel, rows::<$n>(xc)),
                                GgmlType::Q8_0 => q8_0::<$n>(panel, rows::<$n>(xc)),
                                _ => unreachable!("checked by check_dots"),
                            };
                            for (r, v) in res.iter_mut().zip(v) {
                                // SAFETY: `r` is PANEL_ROWS (sixteen) writable f32s.
                                unsafe { _mm512_storeu_ps(r.as_mut_ptr(), v) };
                            }
                        })*
                        _ => unreachable!("1 <= g <= MAX_GROUP"),
                    }
                };
            }
            call!(1 2 3 4 5 6 7 8);
            for (k, r) in res[..g].iter().enumerate() {
                for (lane, &v) in r.iter().enumerate() {
                    out[(p * PANEL_ROWS + lane) * n + k0 + k] = v;
                }
            }
            k0 += g;
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

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
fn q4_1<const N: usize>(panel: &[u8], xs: [&[BlockQ8]; N]) -> [__m512; N] {
    const CB: usize = chunk_bytes(GgmlType::Q4_1);
    let mask = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); N];
    let mut accm = [_mm512_setzero_ps(); N];
    for (c, chunk) in panel.chunks_exact(CB).enumerate() {
        let p = chunk.as_ptr();
        let mut lo = [_mm512_setzero_si512(); 4];
        let mut hi = [_mm512_setzero_si512(); 4];
        for g in 0..4 {
            // SAFETY: group g of a CB-byte chunk (4 * GROUP bytes of quants come first).
            let raw = unsafe { group(p.add(g * GROUP)) };
            lo[g] = _mm512_and_si512(raw, mask);
            hi[g] = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), mask);
        }
        // SAFETY: the d and m halves follow the four groups inside the chunk.
        let (d, m) = unsafe { (halves(p.add(4 * GROUP)), halves(p.add(4 * GROUP + HALVES))) };
        for k in 0..N {
            debug_assert!(c < xs[k].len());
            // SAFETY: `check_dots` verified one activation block per chunk.
            let xb = unsafe { xs[k].get_unchecked(c) };
            // Integer sums are exact, so the two chains may be added in any order.
            let mut s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], bcast4(&xb.qs, 0));
            let mut s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi[0], bcast4(&xb.qs, 4));
            for g in 1..4 {
                s0 = _mm512_dpbusd_epi32(s0, lo[g], bcast4(&xb.qs, g));
                s1 = _mm512_dpbusd_epi32(s1, hi[g], bcast4(&xb.qs, 4 + g));
            }
            let isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[k] = _mm512_fmadd_ps(isum, _mm512_mul_ps(d, _mm512_set1_ps(xb.d)), acc[k]);
            accm[k] = _mm512_fmadd_ps(m, _mm512_set1_ps(xb.s), accm[k]);
        }
    }
    let mut r = [_mm512_setzero_ps(); N];
    for k in 0..N {
        r[k] = _mm512_add_ps(acc[k], accm[k]);
    }
    r
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
