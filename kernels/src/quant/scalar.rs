//! Portable fallback for [`vec_dot_multi`](super::vec_dot_multi), used where the CPU lacks
//! AVX2/FMA/F16C (and by the tests, to check it everywhere).
//!
//! Order of operations (fixed by the row length only):
//! - quant types: the row is walked in 32-element chunks; each chunk's integer dot with the
//!   activation block is exact (i32), and one f32 accumulator per activation takes
//!   `acc += (ds * x.d) * isum + dm * x.s` chunk after chunk (for Q2_K, whose 16-element halves
//!   have their own integer mins, `(dm * x.d) * imin_dot` in place of `dm * x.s`, `imin_dot`
//!   the exact dot of the mins with the activation quants);
//! - float types: eight lane accumulators (element `i` goes to lane `i % 8`, with `a * b + c`
//!   in two roundings), reduced as `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`, plus the tail.

use half::f16;

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ5_1, BlockQ5K, BlockQ6K,
    BlockQ8_0, QK, QK_K, as_blocks, f16_le, k2_low_bits, q5_quants,
};
use super::dispatch::{LevelKernels, PerType};
use super::reference::{q3k_chunk, q5k_chunk, q6k_chunk, q6k_scale_index};
use super::{ActRow, BlockQ8, GgmlType};

/// The scalar kernels: [`dot_multi`] with each type fixed. They need no CPU feature.
pub(crate) const KERNELS: LevelKernels = {
    /// `dot_multi` of `GgmlType::$ty`, as a [`RowKernel`](super::dispatch::RowKernel).
    macro_rules! row {
        ($ty:ident) => {{
            fn row(w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
                dot_multi(GgmlType::$ty, w_row, xs, out)
            }
            row
        }};
    }
    /// `row!($ty)` over consecutive rows, as a [`RowsKernel`](super::dispatch::RowsKernel).
    macro_rules! rows {
        ($ty:ident) => {{
            fn rows(w_rows: &[u8], row_bytes: usize, xs: &[ActRow<'_>], out: &mut [f32]) {
                for (w_row, o) in w_rows
                    .chunks_exact(row_bytes)
                    .zip(out.chunks_exact_mut(xs.len()))
                {
                    dot_multi(GgmlType::$ty, w_row, xs, o)
                }
            }
            rows
        }};
    }
    /// One `$kernel!(type)` per field.
    macro_rules! per_type {
        ($kernel:ident) => {
            PerType {
                f32: $kernel!(F32),
                f16: $kernel!(F16),
                bf16: $kernel!(BF16),
                q4_0: $kernel!(Q4_0),
                q4_1: $kernel!(Q4_1),
                q5_0: $kernel!(Q5_0),
                q5_1: $kernel!(Q5_1),
                q8_0: $kernel!(Q8_0),
                q2_k: $kernel!(Q2_K),
                q3_k: $kernel!(Q3_K),
                q4_k: $kernel!(Q4_K),
                q5_k: $kernel!(Q5_K),
                q6_k: $kernel!(Q6_K),
            }
        };
    }
    LevelKernels {
        row: per_type!(row),
        rows: per_type!(rows),
    }
};

/// One unpacked 32-element weight chunk: `w[l] = ds * isc[l / 16] * q[l]`, plus an offset
/// `dm` (times `imin[l / 16]` for Q2_K, whose halves have their own mins).
struct Chunk {
    q: [i8; 32],
    /// Integer scales of the two 16-element halves (1 except for Q2_K, Q3_K and Q6_K).
    isc: [i32; 2],
    ds: f32,
    dm: f32,
    /// Q2_K's integer mins of the two halves: the offset term is then
    /// `(dm * x.d) * Σ imin[l / 16] x.qs[l]` instead of `dm * x.s`.
    imin: Option<[i32; 2]>,
}

impl Chunk {
    #[inline]
    fn isum(&self, x: &[i8; 32]) -> i32 {
        let half = |r: core::ops::Range<usize>| -> i32 {
            r.map(|l| i32::from(self.q[l]) * i32::from(x[l])).sum()
        };
        self.isc[0] * half(0..16) + self.isc[1] * half(16..32)
    }

    /// The chunk's offset contribution for activation block `xb`.
    #[inline]
    fn offset(&self, xb: &BlockQ8) -> f32 {
        match self.imin {
            None => self.dm * xb.s,
            Some(m) => {
                let half =
                    |r: core::ops::Range<usize>| -> i32 { r.map(|l| i32::from(xb.qs[l])).sum() };
                (self.dm * xb.d) * (m[0] * half(0..16) + m[1] * half(16..32)) as f32
            }
        }
    }
}

/// Calls `f(chunk_index, &chunk)` for every 32-element chunk of a quantized row, in order.
fn for_each_chunk(ty: GgmlType, w_row: &[u8], mut f: impl FnMut(usize, &Chunk)) {
    let mut c = 0;
    let mut emit = |ch: Chunk| {
        f(c, &ch);
        c += 1;
    };
    match ty {
        GgmlType::Q4_0 => {
            for b in as_blocks::<BlockQ4_0>(w_row) {
                let mut q = [0i8; 32];
                for (j, &v) in b.qs.iter().enumerate() {
                    q[j] = (v & 0x0F) as i8 - 8;
                    q[j + 16] = (v >> 4) as i8 - 8;
                }
                emit(Chunk {
                    q,
                    isc: [1, 1],
                    ds: f16_le(b.d),
                    dm: 0.0,
                    imin: None,
                });
            }
        }
        GgmlType::Q4_1 => {
            for b in as_blocks::<BlockQ4_1>(w_row) {
                let mut q = [0i8; 32];
                for (j, &v) in b.qs.iter().enumerate() {
                    q[j] = (v & 0x0F) as i8;
                    q[j + 16] = (v >> 4) as i8;
                }
                emit(Chunk {
                    q,
                    isc: [1, 1],
                    ds: f16_le(b.d),
                    dm: f16_le(b.m),
                    imin: None,
                });
            }
        }
        GgmlType::Q5_0 => {
            for b in as_blocks::<BlockQ5_0>(w_row) {
                emit(Chunk {
                    q: q5_quants(b.qh, &b.qs).map(|v| v as i8 - 16),
                    isc: [1, 1],
                    ds: f16_le(b.d),
                    dm: 0.0,
                    imin: None,
                });
            }
        }
        GgmlType::Q5_1 => {
            for b in as_blocks::<BlockQ5_1>(w_row) {
                emit(Chunk {
                    q: q5_quants(b.qh, &b.qs).map(|v| v as i8),
                    isc: [1, 1],
                    ds: f16_le(b.d),
                    dm: f16_le(b.m),
                    imin: None,
                });
            }
        }
        GgmlType::Q2_K => {
            for b in as_blocks::<BlockQ2K>(w_row) {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for k in 0..QK_K / QK {
                    let (s0, s1) = (b.scales[2 * k], b.scales[2 * k + 1]);
                    emit(Chunk {
                        q: k2_low_bits(&b.qs, k).map(|v| v as i8),
                        isc: [i32::from(s0 & 0x0F), i32::from(s1 & 0x0F)],
                        ds: d,
                        dm: -dmin,
                        imin: Some([i32::from(s0 >> 4), i32::from(s1 >> 4)]),
                    });
                }
            }
        }
        GgmlType::Q3_K => {
            for b in as_blocks::<BlockQ3K>(w_row) {
                let d = f16_le(b.d);
                for k in 0..QK_K / QK {
                    emit(Chunk {
                        q: q3k_chunk(b, k),
                        isc: [i32::from(b.scale(2 * k)), i32::from(b.scale(2 * k + 1))],
                        ds: d,
                        dm: 0.0,
                        imin: None,
                    });
                }
            }
        }
        GgmlType::Q5_K => {
            for b in as_blocks::<BlockQ5K>(w_row) {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for k in 0..QK_K / QK {
                    let (sc, m) = b.scale_min(k);
                    emit(Chunk {
                        q: q5k_chunk(b, k).map(|v| v as i8),
                        isc: [1, 1],
                        ds: d * f32::from(sc),
                        dm: -(dmin * f32::from(m)),
                        imin: None,
                    });
                }
            }
        }
        GgmlType::Q8_0 => {
            for b in as_blocks::<BlockQ8_0>(w_row) {
                emit(Chunk {
                    q: b.qs,
                    isc: [1, 1],
                    ds: f16_le(b.d),
                    dm: 0.0,
                    imin: None,
                });
            }
        }
        GgmlType::Q4_K => {
            for b in as_blocks::<BlockQ4K>(w_row) {
                let (d, dmin) = (f16_le(b.d), f16_le(b.dmin));
                for k in 0..QK_K / QK {
                    let (sc, m) = b.scale_min(k);
                    let (g, shift) = (k / 2, 4 * (k % 2));
                    let mut q = [0i8; 32];
                    for (l, o) in q.iter_mut().enumerate() {
                        *o = ((b.qs[32 * g + l] >> shift) & 0x0F) as i8;
                    }
                    let ds = d * f32::from(sc);
                    let dm = -(dmin * f32::from(m));
                    emit(Chunk {
                        q,
                        isc: [1, 1],
                        ds,
                        dm,
                        imin: None,
                    });
                }
            }
        }
        GgmlType::Q6_K => {
            for b in as_blocks::<BlockQ6K>(w_row) {
                let d = f16_le(b.d);
                for k in 0..QK_K / QK {
                    let isc = [
                        i32::from(b.scales[q6k_scale_index(k, 0)]),
                        i32::from(b.scales[q6k_scale_index(k, 16)]),
                    ];
                    emit(Chunk {
                        q: q6k_chunk(b, k),
                        isc,
                        ds: d,
                        dm: 0.0,
                        imin: None,
                    });
                }
            }
        }
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => unreachable!("not a quant type"),
    }
}

/// How many activations share one pass over the weight row.
const XCHUNK: usize = 16;

/// Scalar `vec_dot_multi`; dimensions were checked by the caller.
fn dot_multi(ty: GgmlType, w_row: &[u8], xs: &[ActRow<'_>], out: &mut [f32]) {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            for (x, o) in xs.iter().zip(out.iter_mut()) {
                *o = float_dot(ty, w_row, x.f32);
            }
        }
        _ => {
            for (xc, oc) in xs.chunks(XCHUNK).zip(out.chunks_mut(XCHUNK)) {
                let mut acc = [0.0f32; XCHUNK];
                let q8: [&[BlockQ8]; XCHUNK] =
                    core::array::from_fn(|k| xc.get(k).map_or(&[][..], |x| x.q8));
                for_each_chunk(ty, w_row, |c, ch| {
                    for (a, x) in acc.iter_mut().zip(&q8[..xc.len()]) {
                        let xb = &x[c];
                        *a += (ch.ds * xb.d) * ch.isum(&xb.qs) as f32 + ch.offset(xb);
                    }
                });
                oc.copy_from_slice(&acc[..xc.len()]);
            }
        }
    }
}

/// Float-weight dot with eight lane accumulators (see the module docs for the order).
fn float_dot(ty: GgmlType, w_row: &[u8], x: &[f32]) -> f32 {
    match ty {
        GgmlType::F32 => float_dot_with::<4>(w_row, x, |b| f32::from_le_bytes(*b)),
        GgmlType::F16 => float_dot_with::<2>(w_row, x, |b| {
            f16::from_bits(u16::from_le_bytes(*b)).to_f32_const()
        }),
        _ => float_dot_with::<2>(w_row, x, |b| {
            f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16)
        }),
    }
}

#[inline(always)]
fn float_dot_with<const S: usize>(w_row: &[u8], x: &[f32], get: impl Fn(&[u8; S]) -> f32) -> f32 {
    let (w, _) = w_row.as_chunks::<S>();
    let mut lanes = [0.0f32; 8];
    let (w8, w_tail) = w.as_chunks::<8>();
    let (x8, x_tail) = x.as_chunks::<8>();
    for (wc, xc) in w8.iter().zip(x8) {
        for ((l, wv), xv) in lanes.iter_mut().zip(wc).zip(xc) {
            *l += get(wv) * xv;
        }
    }
    let mut tail = 0.0f32;
    for (wv, xv) in w_tail.iter().zip(x_tail) {
        tail += get(wv) * xv;
    }
    let l = lanes;
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7])) + tail
}
