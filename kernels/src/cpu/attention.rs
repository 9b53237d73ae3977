//! Causal paged attention with grouped-query heads.
//!
//! Each (token, kv head) pair is one task: it walks its sequence's block table over keys
//! `0..=pos` in order, once, scoring every query head of the group against each key (so a key
//! or value row is loaded once per group, not once per head). Each head's arithmetic is a fixed
//! sequence over the keys, so its result is the same whichever batch or chunk it ran in.

use std::cell::RefCell;

use rayon::prelude::*;

use super::elementwise::{axpy_body, dot_f32_body, has_fma};
use super::tensor::{CpuKvPool, CpuTensor};
use crate::backend::{AttentionLayout, Cols};

thread_local! {
    /// Per worker: the scores of a task's heads (`[head][key]`), then each head's max and sum.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// What one task reads: one kv head of a layer of the pool through one sequence's block table.
struct Keys<'a> {
    pool: &'a CpuKvPool,
    layer: usize,
    table: &'a [u32],
    block_size: usize,
    /// First key position read (the sliding window's start).
    first: usize,
    n_keys: usize,
    kv_head: usize,
    head_dim: usize,
    scale: f32,
}

impl Keys<'_> {
    /// The runs of positions `first..first + n_keys` in order, one per block: `(first slot,
    /// length)` (no division per key; blocks before the window's are never read).
    fn runs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let bs = self.block_size;
        let end = self.first + self.n_keys;
        (self.first / bs..end.div_ceil(bs)).map(move |b| {
            let lo = self.first.max(b * bs);
            let hi = end.min((b + 1) * bs);
            (self.table[b] as usize * bs + lo - b * bs, hi - lo)
        })
    }
}

pub(super) fn paged_attention(
    x: &CpuTensor,
    q_cols: Cols,
    pool: &CpuKvPool,
    layer: usize,
    layout: &AttentionLayout<'_>,
    out: &mut CpuTensor,
) {
    let (nh, nkv, hd) = (layout.n_heads, layout.n_kv_heads, layout.head_dim);
    assert_eq!(q_cols.width, nh * hd);
    assert_eq!((out.rows, out.cols), (x.rows, nh * hd));
    assert_eq!(layout.positions.len(), x.rows);
    assert_eq!(nh % nkv, 0, "query heads must be a multiple of kv heads");
    let group = nh / nkv;
    let scale = layout.scale;
    let fma = has_fma();

    // Heads of one kv group are adjacent in a row: chunks of `group * hd` are (token, kv head).
    out.data
        .par_chunks_mut(group * hd)
        .enumerate()
        .for_each(|(i, o)| {
            let (t, kvh) = (i / nkv, i % nkv);
            let qs = &x.row_cols(t, q_cols)[kvh * group * hd..(kvh + 1) * group * hd];
            let keys = Keys {
                pool,
                layer,
                table: layout.block_tables[layout.token_seq[t] as usize],
                block_size: layout.block_size,
                first: layout.first_key(layout.positions[t]) as usize,
                n_keys: (layout.positions[t] - layout.first_key(layout.positions[t])) as usize + 1,
                kv_head: kvh,
                head_dim: hd,
                scale,
            };
            SCRATCH.with_borrow_mut(|scratch| {
                #[cfg(target_arch = "x86_64")]
                if fma {
                    // SAFETY: AVX2 and FMA were detected at run time.
                    return unsafe { attend_fma(qs, &keys, o, scratch) };
                }
                let _ = fma;
                attend_body(qs, &keys, o, scratch);
            });
        });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_fma(qs: &[f32], keys: &Keys<'_>, o: &mut [f32], scratch: &mut Vec<f32>) {
    if keys.head_dim.is_multiple_of(8) {
        // SAFETY (both closures): AVX2 and FMA are enabled here; every row is head_dim long.
        let dot = |a: &[f32], b: &[f32]| unsafe { x86::dot(a, b) };
        let axpy = |acc: &mut [f32], w: f32, v: &[f32]| unsafe { x86::axpy(acc, w, v) };
        attend_with(qs, keys, o, scratch, dot, axpy);
    } else {
        attend_body(qs, keys, o, scratch);
    }
}

/// Softmax attention of the query heads `qs` (`[group][head_dim]`) over `keys`, into `o`.
#[inline(always)]
fn attend_body(qs: &[f32], keys: &Keys<'_>, o: &mut [f32], scratch: &mut Vec<f32>) {
    attend_with(qs, keys, o, scratch, dot_f32_body, axpy_body);
}

/// [`attend_body`] with its dot product and `acc += w * v` given: the same arithmetic written
/// out for one instruction set.
#[inline(always)]
fn attend_with(
    qs: &[f32],
    keys: &Keys<'_>,
    o: &mut [f32],
    scratch: &mut Vec<f32>,
    dot: impl Fn(&[f32], &[f32]) -> f32,
    axpy: impl Fn(&mut [f32], f32, &[f32]),
) {
    let (hd, n) = (keys.head_dim, keys.n_keys);
    let group = qs.len() / hd;
    scratch.clear();
    scratch.resize(group * n + 2 * group, 0.0);
    let (scores, stats) = scratch.split_at_mut(group * n);
    let (maxs, sums) = stats.split_at_mut(group);
    maxs.fill(f32::NEG_INFINITY);
    let mut j = 0;
    for (slot, len) in keys.runs() {
        let run = keys.pool.keys(keys.layer, slot, len, keys.kv_head);
        for i in 0..len {
            let k = &run[i * hd..(i + 1) * hd];
            for g in 0..group {
                let s = dot(&qs[g * hd..(g + 1) * hd], k) * keys.scale;
                maxs[g] = maxs[g].max(s);
                scores[g * n + j] = s;
            }
            j += 1;
        }
    }
    for g in 0..group {
        let mut sum = 0.0f32;
        for s in &mut scores[g * n..(g + 1) * n] {
            *s = (*s - maxs[g]).exp();
            sum += *s;
        }
        sums[g] = sum;
    }
    o.fill(0.0);
    let mut j = 0;
    for (slot, len) in keys.runs() {
        let run = keys.pool.values(keys.layer, slot, len, keys.kv_head);
        for i in 0..len {
            let v = &run[i * hd..(i + 1) * hd];
            for g in 0..group {
                axpy(&mut o[g * hd..(g + 1) * hd], scores[g * n + j], v);
            }
            j += 1;
        }
    }
    for g in 0..group {
        let inv = 1.0 / sums[g];
        o[g * hd..(g + 1) * hd].iter_mut().for_each(|v| *v *= inv);
    }
}

/// [`dot_f32_body`] and [`axpy_body`] in AVX2 for rows a multiple of eight long: the same lanes
/// and the same reduction tree, so the same bits.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `dot_f32_body(a, b)` for `a.len() == b.len()`, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        debug_assert!(a.len() == b.len() && a.len().is_multiple_of(8));
        let mut acc = _mm256_setzero_ps();
        for i in (0..a.len()).step_by(8) {
            // SAFETY: i + 8 <= len for both slices; unaligned loads.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                )
            };
            acc = _mm256_fmadd_ps(x, y, acc);
        }
        // Lanes (0+4, 1+5, 2+6, 3+7), then ((0+4) + (1+5)) + ((2+6) + (3+7)).
        let v = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let pairs = _mm_add_ps(v, _mm_movehdup_ps(v));
        let sum = _mm_add_ss(pairs, _mm_movehl_ps(pairs, pairs));
        // The empty tail's 0.0, as the portable body adds it (-0.0 + 0.0 is +0.0).
        _mm_cvtss_f32(sum) + 0.0
    }

    /// `axpy_body(acc, w, v)` for equal lengths, a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn axpy(acc: &mut [f32], w: f32, v: &[f32]) {
        debug_assert!(acc.len() == v.len() && acc.len().is_multiple_of(8));
        let wv = _mm256_set1_ps(w);
        for i in (0..acc.len()).step_by(8) {
            // SAFETY: i + 8 <= len for both slices; unaligned loads and store.
            unsafe {
                let p = acc.as_mut_ptr().add(i);
                let r = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v.as_ptr().add(i)), _mm256_loadu_ps(p));
                _mm256_storeu_ps(p, r);
            }
        }
    }
}
