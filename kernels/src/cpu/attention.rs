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

/// What one task reads: a layer of the pool through one sequence's block table.
struct Keys<'a> {
    pool: &'a CpuKvPool,
    layer: usize,
    table: &'a [u32],
    block_size: usize,
    /// First key position read (the sliding window's start).
    first: usize,
    n_keys: usize,
    /// Offset of the kv head in a slot's row.
    kv_off: usize,
    head_dim: usize,
    scale: f32,
}

impl Keys<'_> {
    /// Slots of positions `first..first + n_keys` in order, walking the block table (no
    /// division per key; blocks before the window's are never read).
    fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        let bs = self.block_size;
        let skip = self.first / bs;
        self.table[skip..]
            .iter()
            .flat_map(move |&b| (0..bs).map(move |o| b as usize * bs + o))
            .skip(self.first - skip * bs)
            .take(self.n_keys)
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
                kv_off: kvh * hd,
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
    attend_body(qs, keys, o, scratch);
}

/// Softmax attention of the query heads `qs` (`[group][head_dim]`) over `keys`, into `o`.
#[inline(always)]
fn attend_body(qs: &[f32], keys: &Keys<'_>, o: &mut [f32], scratch: &mut Vec<f32>) {
    let (hd, n) = (keys.head_dim, keys.n_keys);
    let group = qs.len() / hd;
    scratch.clear();
    scratch.resize(group * n + 2 * group, 0.0);
    let (scores, stats) = scratch.split_at_mut(group * n);
    let (maxs, sums) = stats.split_at_mut(group);
    maxs.fill(f32::NEG_INFINITY);
    let kv = keys.kv_off..keys.kv_off + hd;
    for (j, slot) in keys.slots().enumerate() {
        let k = &keys.pool.key(keys.layer, slot)[kv.clone()];
        for g in 0..group {
            let s = dot_f32_body(&qs[g * hd..(g + 1) * hd], k) * keys.scale;
            maxs[g] = maxs[g].max(s);
            scores[g * n + j] = s;
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
    for (j, slot) in keys.slots().enumerate() {
        let v = &keys.pool.value(keys.layer, slot)[kv.clone()];
        for g in 0..group {
            axpy_body(&mut o[g * hd..(g + 1) * hd], scores[g * n + j], v);
        }
    }
    for g in 0..group {
        let inv = 1.0 / sums[g];
        o[g * hd..(g + 1) * hd].iter_mut().for_each(|v| *v *= inv);
    }
}
