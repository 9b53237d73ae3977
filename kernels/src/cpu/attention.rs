//! Causal paged attention with grouped-query heads.
//!
//! Each (token, head) pair is one task: it walks its sequence's block table over keys
//! `0..=pos` in order, so its result is the same whichever batch or chunk it ran in.

use std::cell::RefCell;

use rayon::prelude::*;

use super::elementwise::{axpy, dot_f32};
use super::tensor::{CpuKvPool, CpuTensor};
use crate::backend::{AttentionLayout, Cols};

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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
    let scale = 1.0 / (hd as f32).sqrt();
    let bs = layout.block_size;

    out.data.par_chunks_mut(hd).enumerate().for_each(|(i, o)| {
        let (t, h) = (i / nh, i % nh);
        let kvh = h / group;
        let q = &x.row_cols(t, q_cols)[h * hd..(h + 1) * hd];
        let table = layout.block_tables[layout.token_seq[t] as usize];
        let n_keys = layout.positions[t] as usize + 1;
        let slot = |j: usize| table[j / bs] as usize * bs + j % bs;
        SCORES.with_borrow_mut(|scores| {
            scores.clear();
            let mut max = f32::NEG_INFINITY;
            for j in 0..n_keys {
                let k = &pool.key(layer, slot(j))[kvh * hd..(kvh + 1) * hd];
                let s = dot_f32(q, k) * scale;
                max = max.max(s);
                scores.push(s);
            }
            let mut sum = 0.0f32;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            o.fill(0.0);
            for (j, &p) in scores.iter().enumerate() {
                let v = &pool.value(layer, slot(j))[kvh * hd..(kvh + 1) * hd];
                axpy(o, p, v);
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|v| *v *= inv);
        });
    });
}
