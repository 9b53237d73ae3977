//! Plain reference code: row dequantizers, row quantizers and the activation quantizer.
//!
//! Nothing here is on the hot path; it is written for clarity and determinism.

use half::{bf16, f16};

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, QK, QK_K, as_blocks, as_blocks_mut, f16_le, k2_low_bits, q5_quants,
};
use super::{BlockQ8, GgmlType};

/// Dequantizes `src` (whole blocks of `ty`) into `dst`; lengths were checked by the caller.
pub(crate) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_le([c[0], c[1]]);
            }
        }
        GgmlType::BF16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        GgmlType::Q4_0 => {
            for (b, y) in as_blocks::<BlockQ4_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK))
            {
                let d = f16_le(b.d);
                for (j, &q) in b.qs.iter().enumerate() {
                    y[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
                    y[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (b, y) in as_blocks::<BlockQ4_1>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK))
            {
                let (d, m) = (f16_le(b.d), f16_le(b.m));
                for (j, &q) in b.qs.iter().enumerate() {
                    y[j] = f32::from(q & 0x0F) * d + m;
                    y[j + 16] = f32::from(q >> 4) * d + m;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (b, y) in as_blocks::<BlockQ5_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK))
            {
                let d = f16_le(b.d);
                for (o, q) in y.iter_mut().zip(q5_quants(b.qh, &b.qs)) {
                    *o = (i32::from(q) - 16) as f32 * d;
                }
            }
        }
        GgmlType::Q5_1 => {
            for (b, y) in as_blocks::<BlockQ5_1>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK))
            {
                let (d, m) = (f16_le(b.d), f16_le(b.m));
                for (o, q) in y.iter_mut().zip(q5_quants(b.qh, &b.qs)) {
                    *o = f32::from(q) * d + m;
                }
            }
        }
        GgmlType::Q2_K => {
            for (b, y) in as_blocks::<BlockQ2K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK_K))
            {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for (k, out) in y.chunks_exact_mut(QK).enumerate() {
                    let q = k2_low_bits(&b.qs, k);
                    for (l, o) in out.iter_mut().enumerate() {
                        let s = b.scales[2 * k + l / 16];
                        let (dl, ml) = (d * f32::from(s & 0x0F), dmin * f32::from(s >> 4));
                        *o = dl * f32::from(q[l]) - ml;
                    }
                }
            }
        }
        GgmlType::Q3_K => {
            for (b, y) in as_blocks::<BlockQ3K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK_K))
            {
                let d = f16_le(b.d);
                for (k, out) in y.chunks_exact_mut(QK).enumerate() {
                    let q = q3k_chunk(b, k);
                    for (l, o) in out.iter_mut().enumerate() {
                        let dl = d * f32::from(b.scale(2 * k + l / 16));
                        *o = dl * f32::from(q[l]);
                    }
                }
            }
        }
        GgmlType::Q5_K => {
            for (b, y) in as_blocks::<BlockQ5K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK_K))
            {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for (k, out) in y.chunks_exact_mut(QK).enumerate() {
                    let (sc, m) = b.scale_min(k);
                    let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
                    for (o, q) in out.iter_mut().zip(q5k_chunk(b, k)) {
                        *o = dl * f32::from(q) - ml;
                    }
                }
            }
        }
        GgmlType::Q8_0 => {
            for (b, y) in as_blocks::<BlockQ8_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK))
            {
                let d = f16_le(b.d);
                for (o, &q) in y.iter_mut().zip(&b.qs) {
                    *o = f32::from(q) * d;
                }
            }
        }
        GgmlType::Q4_K => {
            for (b, y) in as_blocks::<BlockQ4K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK_K))
            {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for g in 0..4 {
                    let (sc_lo, m_lo) = b.scale_min(2 * g);
                    let (sc_hi, m_hi) = b.scale_min(2 * g + 1);
                    let (d_lo, m_lo) = (d * f32::from(sc_lo), dmin * f32::from(m_lo));
                    let (d_hi, m_hi) = (d * f32::from(sc_hi), dmin * f32::from(m_hi));
                    let qs = &b.qs[32 * g..32 * g + 32];
                    let out = &mut y[64 * g..64 * g + 64];
                    for (l, &q) in qs.iter().enumerate() {
                        out[l] = d_lo * f32::from(q & 0x0F) - m_lo;
                        out[l + 32] = d_hi * f32::from(q >> 4) - m_hi;
                    }
                }
            }
        }
        GgmlType::Q6_K => {
            for (b, y) in as_blocks::<BlockQ6K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(QK_K))
            {
                let d = f16_le(b.d);
                for (k, out) in y.chunks_exact_mut(QK).enumerate() {
                    let q = q6k_chunk(b, k);
                    for (l, o) in out.iter_mut().enumerate() {
                        let sc = f32::from(b.scales[q6k_scale_index(k, l)]);
                        *o = d * sc * f32::from(q[l]);
                    }
                }
            }
        }
    }
}

/// The 32 signed quants (`q - 32`, in -32..=31) of 32-element chunk `k` (0..8) of a Q6_K block.
#[inline]
pub(crate) fn q6k_chunk(b: &BlockQ6K, k: usize) -> [i8; 32] {
    let (half, kk) = (k / 4, k % 4);
    let ql = &b.ql[64 * half..64 * half + 64];
    let qh = &b.qh[32 * half..32 * half + 32];
    let mut out = [0i8; 32];
    for (l, o) in out.iter_mut().enumerate() {
        let lo = match kk {
            0 => ql[l] & 0x0F,
            1 => ql[l + 32] & 0x0F,
            2 => ql[l] >> 4,
            _ => ql[l + 32] >> 4,
        };
        let hi = (qh[l] >> (2 * kk)) & 3;
        *o = (lo | (hi << 4)) as i8 - 32;
    }
    out
}

/// The 32 signed quants (-4..=3) of 32-element chunk `k` (0..8) of a Q3_K block.
#[inline]
pub(crate) fn q3k_chunk(b: &BlockQ3K, k: usize) -> [i8; 32] {
    let low = k2_low_bits(&b.qs, k);
    core::array::from_fn(|l| low[l] as i8 - if b.hmask[l] >> k & 1 == 1 { 0 } else { 4 })
}

/// The 32 unsigned quants (0..=31) of 32-element chunk `k` (0..8) of a Q5_K block.
#[inline]
pub(crate) fn q5k_chunk(b: &BlockQ5K, k: usize) -> [u8; 32] {
    let (g, shift) = (k / 2, 4 * (k % 2));
    core::array::from_fn(|l| ((b.qs[32 * g + l] >> shift) & 0x0F) | (((b.qh[l] >> k) & 1) << 4))
}

/// Index into `BlockQ6K::scales` of element `l` (0..32) of chunk `k` (0..8).
#[inline]
pub(crate) fn q6k_scale_index(k: usize, l: usize) -> usize {
    8 * (k / 4) + 2 * (k % 4) + l / 16
}

/// Rounds `x` (finite, >= 0) to an fp16 value that is `>= x`, saturating at the fp16 maximum.
fn f16_round_up(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() >= x {
        h
    } else if h == f16::MAX {
        f16::MAX
    } else {
        f16::from_bits(h.to_bits() + 1)
    }
}

/// `round(v)` (half away from zero) clamped to `lo..=hi`, as an i32 (NaN gives `lo`).
///
/// Written without `f32::round`, which is a libm call on the baseline x86_64 target (7% of the
/// engine's time in a 32-stream load profile, through the activation quantizer): clamping
/// first keeps `v` small, so truncation, the fraction and the correction are exact and
/// vectorize. Same results as `(v.round() as i32).clamp(lo, hi)` (a unit test compares).
#[inline]
fn round_clamp(v: f32, lo: i32, hi: i32) -> i32 {
    if v.is_nan() {
        return lo;
    }
    let v = v.clamp(lo as f32, hi as f32);
    let t = v as i32;
    let frac = v - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// Quantizes `src` into whole blocks of `ty` in `dst`; lengths were checked by the caller.
pub(crate) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::F32 => {
            for (c, &v) in dst.chunks_exact_mut(4).zip(src) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (c, &v) in dst.chunks_exact_mut(2).zip(src) {
                c.copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for (c, &v) in dst.chunks_exact_mut(2).zip(src) {
                c.copy_from_slice(&bf16::from_f32(v).to_bits().to_le_bytes());
            }
        }
        GgmlType::Q4_0 => {
            for (b, x) in as_blocks_mut::<BlockQ4_0>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK))
            {
                *b = quantize_q4_0(x);
            }
        }
        GgmlType::Q4_1 => {
            for (b, x) in as_blocks_mut::<BlockQ4_1>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK))
            {
                *b = quantize_q4_1(x);
            }
        }
        GgmlType::Q5_0 => {
            for (b, x) in as_blocks_mut::<BlockQ5_0>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK))
            {
                *b = quantize_q5_0(x);
            }
        }
        GgmlType::Q5_1 => {
            for (b, x) in as_blocks_mut::<BlockQ5_1>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK))
            {
                *b = quantize_q5_1(x);
            }
        }
        GgmlType::Q2_K => {
            for (b, x) in as_blocks_mut::<BlockQ2K>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK_K))
            {
                *b = quantize_q2_k(x);
            }
        }
        GgmlType::Q3_K => {
            for (b, x) in as_blocks_mut::<BlockQ3K>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK_K))
            {
                *b = quantize_q3_k(x);
            }
        }
        GgmlType::Q5_K => {
            for (b, x) in as_blocks_mut::<BlockQ5K>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK_K))
            {
                *b = quantize_q5_k(x);
            }
        }
        GgmlType::Q8_0 => {
            for (b, x) in as_blocks_mut::<BlockQ8_0>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK))
            {
                *b = quantize_q8_0(x);
            }
        }
        GgmlType::Q4_K => {
            for (b, x) in as_blocks_mut::<BlockQ4K>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK_K))
            {
                *b = quantize_q4_k(x);
            }
        }
        GgmlType::Q6_K => {
            for (b, x) in as_blocks_mut::<BlockQ6K>(dst)
                .iter_mut()
                .zip(src.chunks_exact(QK_K))
            {
                *b = quantize_q6_k(x);
            }
        }
    }
}

/// Q4_0: the element of largest magnitude maps exactly to quant 0 (`-8 d`).
fn quantize_q4_0(x: &[f32]) -> BlockQ4_0 {
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    let d = f16::from_f32(max / -8.0);
    let df = d.to_f32();
    let id = if df != 0.0 { 1.0 / df } else { 0.0 };
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        let lo = round_clamp(x[j] * id + 8.0, 0, 15) as u8;
        let hi = round_clamp(x[j + 16] * id + 8.0, 0, 15) as u8;
        *q = lo | (hi << 4);
    }
    BlockQ4_0 {
        d: d.to_bits().to_le_bytes(),
        qs,
    }
}

/// Q4_1: `m` is the block minimum, `d` spreads the range over 15 steps.
fn quantize_q4_1(x: &[f32]) -> BlockQ4_1 {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let m = f16::from_f32(min);
    let d = f16::from_f32((max - min) / 15.0);
    let (mf, df) = (m.to_f32(), d.to_f32());
    let id = if df != 0.0 { 1.0 / df } else { 0.0 };
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        let lo = round_clamp((x[j] - mf) * id, 0, 15) as u8;
        let hi = round_clamp((x[j + 16] - mf) * id, 0, 15) as u8;
        *q = lo | (hi << 4);
    }
    BlockQ4_1 {
        d: d.to_bits().to_le_bytes(),
        m: m.to_bits().to_le_bytes(),
        qs,
    }
}

/// Packs 32 unsigned 5-bit quants the way [`q5_quants`] reads them: `(qh, qs)`.
fn pack_q5(q: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut qs = [0u8; 16];
    let mut h = 0u32;
    for (j, o) in qs.iter_mut().enumerate() {
        *o = (q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4);
    }
    for (j, &v) in q.iter().enumerate() {
        h |= u32::from(v >> 4) << j;
    }
    (h.to_le_bytes(), qs)
}

/// Q5_0: as Q4_0 with 32 levels, the element of largest magnitude maps exactly to `-16 d`.
fn quantize_q5_0(x: &[f32]) -> BlockQ5_0 {
    let mut max = 0.0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    let d = f16::from_f32(max / -16.0);
    let df = d.to_f32();
    let id = if df != 0.0 { 1.0 / df } else { 0.0 };
    let q: [u8; 32] = core::array::from_fn(|j| round_clamp(x[j] * id + 16.0, 0, 31) as u8);
    let (qh, qs) = pack_q5(&q);
    BlockQ5_0 {
        d: d.to_bits().to_le_bytes(),
        qh,
        qs,
    }
}

/// Q5_1: as Q4_1 with 32 levels: `m` is the block minimum, `d` spreads the range over 31 steps.
fn quantize_q5_1(x: &[f32]) -> BlockQ5_1 {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let m = f16::from_f32(min);
    let d = f16::from_f32((max - min) / 31.0);
    let (mf, df) = (m.to_f32(), d.to_f32());
    let id = if df != 0.0 { 1.0 / df } else { 0.0 };
    let q: [u8; 32] = core::array::from_fn(|j| round_clamp((x[j] - mf) * id, 0, 31) as u8);
    let (qh, qs) = pack_q5(&q);
    BlockQ5_1 {
        d: d.to_bits().to_le_bytes(),
        m: m.to_bits().to_le_bytes(),
        qh,
        qs,
    }
}

/// Q8_0: `d = amax / 127`, round to nearest.
fn quantize_q8_0(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = f16::from_f32(amax / 127.0);
    let df = d.to_f32();
    let id = if df != 0.0 { 1.0 / df } else { 0.0 };
    let mut qs = [0i8; 32];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_clamp(v * id, -127, 127) as i8;
    }
    BlockQ8_0 {
        d: d.to_bits().to_le_bytes(),
        qs,
    }
}

/// A K-quant super-block with sub-block scales and mins (`x = d * sc * q - dmin * m`), before
/// packing: `S` sub-blocks, their integer scales and mins, and every element's quant.
struct MinScaled<const S: usize> {
    d: f16,
    dmin: f16,
    sc: [u8; S],
    m: [u8; S],
    q: [u8; QK_K],
}

/// The scale-and-min quantizer of Q2_K, Q4_K and Q5_K, for `S` sub-blocks of `QK_K / S`, integer
/// scales and mins up to `smax` and quants up to `qmax`: per sub-block the range
/// `[min(lo, 0), hi]` is covered by rounding the min and the scale *up*, so no value is clipped;
/// then each value is rounded to the nearest of the `qmax + 1` levels.
fn quantize_min_scaled<const S: usize>(x: &[f32], smax: i32, qmax: i32) -> MinScaled<S> {
    let sub_len = QK_K / S;
    let mut neg_min = [0.0f32; S];
    let mut hi = [0.0f32; S];
    for (j, sub) in x.chunks_exact(sub_len).enumerate() {
        let lo = sub.iter().copied().fold(f32::INFINITY, f32::min);
        neg_min[j] = (-lo).max(0.0);
        hi[j] = sub.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    }
    let (smax_f, qmax_f) = (smax as f32, qmax as f32);
    // Mins: dmin * m[j] >= neg_min[j].
    let dmin = f16_round_up(neg_min.iter().copied().fold(0.0, f32::max) / smax_f);
    let dminf = dmin.to_f32();
    let mut m = [0u8; S];
    let mut range = [0.0f32; S];
    for j in 0..S {
        if dminf > 0.0 {
            m[j] = ((neg_min[j] / dminf).ceil() as i32).clamp(0, smax) as u8;
        }
        range[j] = (hi[j] + dminf * f32::from(m[j])).max(0.0);
    }
    // Scales: qmax * d * sc[j] >= range[j].
    let d = f16_round_up(range.iter().copied().fold(0.0, f32::max) / (qmax_f * smax_f));
    let df = d.to_f32();
    let mut sc = [0u8; S];
    if df > 0.0 {
        for j in 0..S {
            sc[j] = ((range[j] / (qmax_f * df)).ceil() as i32).clamp(0, smax) as u8;
        }
    }
    let mut q = [0u8; QK_K];
    for j in 0..S {
        let step = df * f32::from(sc[j]);
        let off = dminf * f32::from(m[j]);
        let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
        for e in sub_len * j..sub_len * (j + 1) {
            q[e] = round_clamp((x[e] + off) * inv, 0, qmax) as u8;
        }
    }
    MinScaled { d, dmin, sc, m, q }
}

/// Q4_K: [`quantize_min_scaled`] with 6-bit scales and mins and 16 levels.
fn quantize_q4_k(x: &[f32]) -> BlockQ4K {
    let r = quantize_min_scaled::<8>(x, 63, 15);
    let mut qs = [0u8; 128];
    for (e, &q) in r.q.iter().enumerate() {
        let (j, l) = (e / 32, e % 32);
        qs[32 * (j / 2) + l] |= q << (4 * (j % 2));
    }
    BlockQ4K {
        d: r.d.to_bits().to_le_bytes(),
        dmin: r.dmin.to_bits().to_le_bytes(),
        scales: BlockQ4K::pack_scale_min(&r.sc, &r.m),
        qs,
    }
}

/// Q5_K: [`quantize_min_scaled`] with 6-bit scales and mins and 32 levels.
fn quantize_q5_k(x: &[f32]) -> BlockQ5K {
    let r = quantize_min_scaled::<8>(x, 63, 31);
    let mut qs = [0u8; 128];
    let mut qh = [0u8; 32];
    for (e, &q) in r.q.iter().enumerate() {
        let (j, l) = (e / 32, e % 32);
        qs[32 * (j / 2) + l] |= (q & 0x0F) << (4 * (j % 2));
        qh[l] |= (q >> 4) << j;
    }
    BlockQ5K {
        d: r.d.to_bits().to_le_bytes(),
        dmin: r.dmin.to_bits().to_le_bytes(),
        scales: BlockQ4K::pack_scale_min(&r.sc, &r.m),
        qh,
        qs,
    }
}

/// Q2_K: [`quantize_min_scaled`] over 16-element sub-blocks with 4-bit scales and mins and 4
/// levels.
fn quantize_q2_k(x: &[f32]) -> BlockQ2K {
    let r = quantize_min_scaled::<16>(x, 15, 3);
    let mut qs = [0u8; 64];
    for (e, &q) in r.q.iter().enumerate() {
        let (k, l) = (e / 32, e % 32);
        qs[32 * (k / 4) + l] |= q << (2 * (k % 4));
    }
    BlockQ2K {
        scales: core::array::from_fn(|j| r.sc[j] | (r.m[j] << 4)),
        qs,
        d: r.d.to_bits().to_le_bytes(),
        dmin: r.dmin.to_bits().to_le_bytes(),
    }
}

/// The signed sub-block scales of Q3_K and Q6_K: per 16 elements, the value of largest
/// magnitude maps to quant `-extreme`; returns the fp16 super-block scale `d` (rounded up) and
/// integer scales of magnitude at most `scale_max`, rounded away from zero so that value is
/// never clipped.
fn signed_sub_scales(x: &[f32], extreme: f32, scale_max: i32) -> (f16, [i32; 16]) {
    let mut scale = [0.0f32; 16];
    for (s, sub) in scale.iter_mut().zip(x.chunks_exact(16)) {
        let mut max = 0.0f32;
        for &v in sub {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        *s = max / -extreme;
    }
    let d = f16_round_up(scale.iter().fold(0.0f32, |a, s| a.max(s.abs())) / scale_max as f32);
    let df = d.to_f32();
    let mut isc = [0i32; 16];
    if df > 0.0 {
        for (o, &s) in isc.iter_mut().zip(&scale) {
            let mag = ((s.abs() / df).ceil() as i32).clamp(0, scale_max);
            *o = if s < 0.0 { -mag } else { mag };
        }
    }
    (d, isc)
}

/// Q3_K: as Q6_K, per 16-element sub-block the value of largest magnitude maps to quant -4;
/// the 6-bit scales (magnitude at most 31) are rounded away from zero so that value is never
/// clipped.
fn quantize_q3_k(x: &[f32]) -> BlockQ3K {
    let (d, isc) = signed_sub_scales(x, 4.0, 31);
    let df = d.to_f32();
    let mut b = BlockQ3K {
        hmask: [0; 32],
        qs: [0; 64],
        scales: BlockQ3K::pack_scales(&isc.map(|v| (v + 32) as u8)),
        d: d.to_bits().to_le_bytes(),
    };
    for (e, &v) in x.iter().enumerate() {
        let step = df * isc[e / 16] as f32;
        let q = if step != 0.0 {
            round_clamp(v / step, -4, 3)
        } else {
            0
        };
        // Stored as low 2 bits of q + 4 and, for q >= 0, the hmask bit.
        let u = (q + 4) as u8;
        let (k, l) = (e / 32, e % 32);
        b.qs[32 * (k / 4) + l] |= (u & 3) << (2 * (k % 4));
        b.hmask[l] |= (u >> 2) << k;
    }
    b
}

/// Q6_K: per 16-element sub-block, the value of largest magnitude maps to quant -32; the 8-bit
/// scales are rounded away from zero so that value is never clipped.
fn quantize_q6_k(x: &[f32]) -> BlockQ6K {
    let (d, isc) = signed_sub_scales(x, 32.0, 127);
    let df = d.to_f32();
    // |isc| <= 127.
    let scales = isc.map(|v| v as i8);
    let mut b = BlockQ6K {
        ql: [0; 128],
        qh: [0; 64],
        scales,
        d: d.to_bits().to_le_bytes(),
    };
    for (e, &v) in x.iter().enumerate() {
        let step = df * f32::from(scales[e / 16]);
        let q = if step != 0.0 {
            round_clamp(v / step, -32, 31)
        } else {
            0
        };
        let q = (q + 32) as u8; // 0..=63
        // Position of element e: half h, chunk kk (0..4) and lane l inside the half.
        let (h, r) = (e / 128, e % 128);
        let (kk, l) = (r / 32, r % 32);
        let ql_index = 64 * h + l + if kk % 2 == 1 { 32 } else { 0 };
        let ql_shift = if kk >= 2 { 4 } else { 0 };
        b.ql[ql_index] |= (q & 0x0F) << ql_shift;
        b.qh[32 * h + l] |= (q >> 4) << (2 * kk);
    }
    b
}

/// Quantizes one activation row into [`BlockQ8`]s (see [`super::quantize_act_q8`]).
pub(crate) fn quantize_act(x: &[f32], out: &mut [BlockQ8]) {
    for (b, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let amax = xs.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(xs) {
            let qi = round_clamp(v * id, -127, 127);
            *q = qi as i8;
            sum += qi;
        }
        // ggml stores the activation scale as fp16; doing the same keeps our logits within
        // llama.cpp's own noise (the quants above use the unrounded scale, as ggml does).
        b.d = half::f16::from_f32(d).to_f32();
        b.s = b.d * sum as f32;
        b.sum = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::round_clamp;

    #[test]
    fn round_clamp_is_round_half_away_then_clamp() {
        let mut cases = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            126.5,
            -126.5,
            127.0,
            127.49,
            127.5,
            128.0,
            -127.5,
            -128.0,
            1e9,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            8388607.5,
        ];
        // A dense sweep around every half-integer in range, and random-looking values.
        let mut x = -130.0f32;
        while x <= 130.0 {
            cases.extend([
                x,
                f32::from_bits(x.to_bits() + 1),
                f32::from_bits(x.to_bits().wrapping_sub(1)),
            ]);
            x += 0.25;
        }
        for v in cases.into_iter().filter(|v| !v.is_nan()) {
            for (lo, hi) in [(-127, 127), (0, 15), (-8, 7), (0, 63)] {
                let want = (v.round() as i32).clamp(lo, hi);
                assert_eq!(round_clamp(v, lo, hi), want, "{v} in {lo}..={hi}");
            }
        }
        assert_eq!(round_clamp(f32::NAN, -127, 127), -127);
    }
}
