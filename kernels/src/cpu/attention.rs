//! Causal paged attention with grouped-query heads.
//!
//! Each (token, kv head) pair is one task: it walks its sequence's block table over keys
//! `0..=pos` in order, once, scoring every query head of the group against each key (so a key
//! or value row is loaded once per group, not once per head). Each head's arithmetic is a fixed
//! sequence over the keys, so its result is the same whichever batch or chunk it ran in.

use std::cell::RefCell;

use rayon::prelude::*;

use half::f16;

use super::elementwise::{axpy_body, dot_f32_body, exp, has_fma};
use super::tensor::{CpuKvPool, CpuTensor, KvElem};
use crate::backend::{AttentionLayout, Cols, KvDtype};

thread_local! {
    /// Per worker: the scores of a task's heads (`[head][key]`), then each head's sum.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// What one task reads: one kv head of a layer of the pool (stored as `E`) through one
/// sequence's block table.
struct Keys<'a, E> {
    pool: &'a CpuKvPool,
    /// The pool's whole key and value stores.
    k: &'a [E],
    v: &'a [E],
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

impl<E: KvElem> Keys<'_, E> {
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

    /// The keys at slots `slot..slot + len`, one block's run: `[len, head_dim]`.
    fn keys(&self, slot: usize, len: usize) -> &[E] {
        &self.k[self.pool.run(self.layer, slot, len, self.kv_head)]
    }

    /// The values, as [`Keys::keys`].
    fn values(&self, slot: usize, len: usize) -> &[E] {
        &self.v[self.pool.run(self.layer, slot, len, self.kv_head)]
    }

    /// Every key's row in order, or every value's with `values`.
    fn rows(&self, values: bool) -> impl Iterator<Item = &[E]> + '_ {
        self.runs().flat_map(move |(slot, len)| {
            let run = if values {
                self.values(slot, len)
            } else {
                self.keys(slot, len)
            };
            run.chunks_exact(self.head_dim)
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
    match pool.cfg.dtype {
        KvDtype::F16 => {
            paged_attention_with::<f16>(x, q_cols, pool, layer, layout, out, Path::best())
        }
        KvDtype::F32 => {
            paged_attention_with::<f32>(x, q_cols, pool, layer, layout, out, Path::best())
        }
    }
}

/// Which kernels compute attention. Every path gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Path {
    /// [`attend_body`], portable.
    Portable,
    /// The blocked AVX2+FMA kernels (F16C converting f16 keys and values as they load).
    Avx2,
    /// Two heads scored per load of a key (AVX-512VL's registers), values mixed with AVX-512F.
    Avx512,
}

impl Path {
    /// The fastest path this CPU runs, detected once.
    fn best() -> Path {
        static BEST: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if has_fma() && is_x86_feature_detected!("f16c") {
                return if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
                {
                    Path::Avx512
                } else {
                    Path::Avx2
                };
            }
            Path::Portable
        })
    }
}

/// [`paged_attention`] through `path`'s kernels, which the CPU must support, on a pool
/// storing `E`.
fn paged_attention_with<E: KvElem>(
    x: &CpuTensor,
    q_cols: Cols,
    pool: &CpuKvPool,
    layer: usize,
    layout: &AttentionLayout<'_>,
    out: &mut CpuTensor,
    path: Path,
) {
    let (nh, nkv, hd) = (layout.n_heads, layout.n_kv_heads, layout.head_dim);
    assert_eq!(q_cols.width, nh * hd);
    assert_eq!((out.rows, out.cols), (x.rows, nh * hd));
    assert_eq!(layout.positions.len(), x.rows);
    assert_eq!(nh % nkv, 0, "query heads must be a multiple of kv heads");
    let group = nh / nkv;
    let scale = layout.scale;
    let (k, v) = pool.stores::<E>();

    // Decode: no two tasks read the same keys, so none finds them cached (in a prompt's
    // chunk, each key serves every later token).
    let one_token_per_sequence = x.rows <= layout.block_tables.len();
    // Heads of one kv group are adjacent in a row: chunks of `group * hd` are (token, kv head).
    out.data
        .par_chunks_mut(group * hd)
        .enumerate()
        .for_each(|(i, o)| {
            let (t, kvh) = (i / nkv, i % nkv);
            let qs = &x.row_cols(t, q_cols)[kvh * group * hd..(kvh + 1) * group * hd];
            let keys = Keys {
                pool,
                k,
                v,
                layer,
                table: layout.block_tables[layout.token_seq[t] as usize],
                block_size: layout.block_size,
                first: layout.first_key(layout.positions[t]) as usize,
                n_keys: (layout.positions[t] - layout.first_key(layout.positions[t])) as usize + 1,
                kv_head: kvh,
                head_dim: hd,
                scale,
            };
            #[cfg(target_arch = "x86_64")]
            if path >= Path::Avx2 && one_token_per_sequence {
                x86::prefetch(&keys);
            }
            SCRATCH.with_borrow_mut(|scratch| {
                #[cfg(target_arch = "x86_64")]
                if path >= Path::Avx2 {
                    // SAFETY: the CPU supports `path`'s features (the caller's guarantee).
                    return unsafe { attend_fma(qs, &keys, o, scratch, path == Path::Avx512) };
                }
                let _ = path;
                attend_body(qs, &keys, o, scratch);
            });
        });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_fma<E: KvElem>(
    qs: &[f32],
    keys: &Keys<'_, E>,
    o: &mut [f32],
    scratch: &mut Vec<f32>,
    avx512: bool,
) {
    if keys.head_dim.is_multiple_of(x86::PIECE) {
        // SAFETY (both closures): AVX2, FMA and F16C are enabled here, AVX-512F and VL when
        // `avx512`; head_dim is a multiple of the piece.
        let score = |qs: &[f32], keys: &Keys<'_, E>, scores: &mut [f32]| unsafe {
            if avx512 {
                x86::scores_wide(qs, keys, scores)
            } else {
                x86::scores(qs, keys, scores)
            }
        };
        let mix = |scores: &[f32], keys: &Keys<'_, E>, o: &mut [f32]| unsafe {
            if avx512 {
                x86::mix512(scores, keys, o)
            } else {
                x86::mix(scores, keys, o)
            }
        };
        attend_with(qs, keys, o, scratch, score, mix);
    } else {
        attend_body(qs, keys, o, scratch);
    }
}

/// Softmax attention of the query heads `qs` (`[group][head_dim]`) over `keys`, into `o`.
#[inline(always)]
fn attend_body<E: KvElem>(qs: &[f32], keys: &Keys<'_, E>, o: &mut [f32], scratch: &mut Vec<f32>) {
    attend_with(qs, keys, o, scratch, scores_body, mix_body);
}

/// A stored row as f32: itself for an f32 pool, else converted (exactly) into `buf`.
#[inline(always)]
fn row_f32<'r, E: KvElem>(row: &'r [E], buf: &'r mut Vec<f32>) -> &'r [f32] {
    match E::as_f32(row) {
        Some(row) => row,
        None => {
            buf.clear();
            buf.extend(row.iter().map(|&e| e.to_f32()));
            buf
        }
    }
}

/// Each head's scaled scores, `scores[g * n_keys + j] = (q_g · k_j) * scale`, with
/// [`dot_f32_body`].
#[inline(always)]
fn scores_body<E: KvElem>(qs: &[f32], keys: &Keys<'_, E>, scores: &mut [f32]) {
    let (hd, n) = (keys.head_dim, keys.n_keys);
    let mut buf = Vec::new();
    for (j, k) in keys.rows(false).enumerate() {
        let k = row_f32(k, &mut buf);
        for (g, q) in qs.chunks_exact(hd).enumerate() {
            scores[g * n + j] = dot_f32_body(q, k) * keys.scale;
        }
    }
}

/// `o_g += w[g][j] * v_j` over the keys in order, one [`axpy_body`] per head and key (`o`
/// starts at zero).
#[inline(always)]
fn mix_body<E: KvElem>(weights: &[f32], keys: &Keys<'_, E>, o: &mut [f32]) {
    let (hd, n) = (keys.head_dim, keys.n_keys);
    let mut buf = Vec::new();
    for (j, v) in keys.rows(true).enumerate() {
        let v = row_f32(v, &mut buf);
        for (g, o) in o.chunks_exact_mut(hd).enumerate() {
            axpy_body(o, weights[g * n + j], v);
        }
    }
}

/// The softmax around a scores phase and a mixing phase ([`scores_body`] and [`mix_body`], or
/// their blocked forms for one instruction set, which do the same arithmetic per element).
#[inline(always)]
fn attend_with<E: KvElem>(
    qs: &[f32],
    keys: &Keys<'_, E>,
    o: &mut [f32],
    scratch: &mut Vec<f32>,
    score: impl Fn(&[f32], &Keys<'_, E>, &mut [f32]),
    mix: impl Fn(&[f32], &Keys<'_, E>, &mut [f32]),
) {
    let (hd, n) = (keys.head_dim, keys.n_keys);
    let group = qs.len() / hd;
    scratch.clear();
    scratch.resize(group * n + group, 0.0);
    let (scores, sums) = scratch.split_at_mut(group * n);
    score(qs, keys, scores);
    for (row, sum) in scores.chunks_exact_mut(n).zip(sums.iter_mut()) {
        // The maximum is one value whatever the order it is taken in.
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        // Exponentials first (a loop that vectorizes), then their sum in order.
        row.iter_mut().for_each(|s| *s = exp(*s - max));
        *sum = row.iter().sum();
    }
    o.fill(0.0);
    mix(scores, keys, o);
    for (o, sum) in o.chunks_exact_mut(hd).zip(sums.iter()) {
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|v| *v *= inv);
    }
}

/// [`scores_body`] and [`mix_body`] in AVX2, blocked: eight keys' dot chains at once (one chain
/// is a serial run of fused multiply-adds, latency-bound), and each head's output kept in
/// registers a piece at a time while the values stream past. Each dot keeps the portable
/// body's eight lanes and reduction tree and each output element its key order, so the bits
/// are the same.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Keys, KvElem};

    /// Eight stored elements at `p` as f32 (f16 converted exactly).
    ///
    /// # Safety
    /// Eight readable elements at `p`; AVX and F16C in the caller.
    #[inline(always)]
    unsafe fn load8<E: KvElem>(p: *const E) -> __m256 {
        // SAFETY: the caller's guarantees; unaligned loads.
        unsafe {
            if E::HALF {
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
            } else {
                _mm256_loadu_ps(p.cast())
            }
        }
    }

    /// Sixteen stored elements at `p` as f32.
    ///
    /// # Safety
    /// Sixteen readable elements at `p`; AVX-512F in the caller.
    #[inline(always)]
    unsafe fn load16<E: KvElem>(p: *const E) -> __m512 {
        // SAFETY: the caller's guarantees; unaligned loads.
        unsafe {
            if E::HALF {
                _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
            } else {
                _mm512_loadu_ps(p.cast())
            }
        }
    }

    /// Asks for every key and value row a task reads before it reads them: the rows lie in
    /// blocks scattered over the pool, each run too short for the hardware prefetcher to get
    /// ahead, so a task otherwise waits on memory at each key. The keys go to L1 (read
    /// first), the values to L2. Measured on SmolLM2 batched decode: +1-5%; on a prompt, whose
    /// keys are mostly cached, -6%.
    pub(super) fn prefetch<E: KvElem>(keys: &Keys<'_, E>) {
        let per_line = 64 / size_of::<E>();
        for (slot, len) in keys.runs() {
            let (k, v) = (keys.keys(slot, len), keys.values(slot, len));
            for (k, v) in k.chunks(per_line).zip(v.chunks(per_line)) {
                // SAFETY: a prefetch has no architectural effect (and these addresses are
                // inside the pool anyway).
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(k.as_ptr().cast());
                    _mm_prefetch::<_MM_HINT_T1>(v.as_ptr().cast());
                }
            }
        }
    }

    /// Output elements of one head held in registers (eight vectors) while the values stream.
    pub(super) const PIECE: usize = 64;
    /// Keys scored at once.
    const KEYS: usize = 8;

    /// `dot_f32_body`'s reduction of eight lane sums, then its empty tail's `+ 0.0`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn reduce(acc: __m256) -> f32 {
        // Lanes (0+4, 1+5, 2+6, 3+7), then ((0+4) + (1+5)) + ((2+6) + (3+7)).
        let v = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let pairs = _mm_add_ps(v, _mm_movehdup_ps(v));
        let sum = _mm_add_ss(pairs, _mm_movehl_ps(pairs, pairs));
        // -0.0 + 0.0 is +0.0, as the portable body's tail makes it.
        _mm_cvtss_f32(sum) + 0.0
    }

    /// The eight lane sums of `N` dots of `q` with the rows `k, k + hd, ...`.
    ///
    /// # Safety
    /// `q` holds `hd` (a multiple of 8) readable f32s and `k` `N * hd`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn lanes<E: KvElem, const N: usize>(
        q: *const f32,
        k: *const E,
        hd: usize,
    ) -> [__m256; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        for i in (0..hd).step_by(8) {
            // SAFETY: the caller's bounds; unaligned loads.
            unsafe {
                let qv = _mm256_loadu_ps(q.add(i));
                for (r, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(qv, load8(k.add(r * hd + i)), *acc);
                }
            }
        }
        acc
    }

    /// [`reduce`] of eight lane sums at once, in key order: the same adds, shuffled so that
    /// each instruction serves several keys.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn reduce8(acc: [__m256; 8]) -> __m256 {
        // Per pair of keys (a, b): [a0+a4, a1+a5, a2+a6, a3+a7 | b0+b4, ..., b3+b7].
        let halves = |a: __m256, b: __m256| {
            _mm256_add_ps(
                _mm256_permute2f128_ps::<0x20>(a, b),
                _mm256_permute2f128_ps::<0x31>(a, b),
            )
        };
        let (v01, v23) = (halves(acc[0], acc[1]), halves(acc[2], acc[3]));
        let (v45, v67) = (halves(acc[4], acc[5]), halves(acc[6], acc[7]));
        // (v0 + v1) and (v2 + v3) of each key, then their sum: keys 0, 2, 4, 6 in the low
        // lane, 1, 3, 5, 7 in the high one.
        let sums = _mm256_hadd_ps(_mm256_hadd_ps(v01, v23), _mm256_hadd_ps(v45, v67));
        let sums = _mm256_add_ps(sums, _mm256_setzero_ps());
        _mm256_permutevar8x32_ps(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// The lane sums of two heads' dots with the same `N` keys: each key row is loaded once
    /// for both (sixteen chains need the 32 registers of AVX-512VL).
    ///
    /// # Safety
    /// As [`lanes`], for both `q0` and `q1`.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    #[inline]
    unsafe fn lanes_pair<E: KvElem, const N: usize>(
        q0: *const f32,
        q1: *const f32,
        k: *const E,
        hd: usize,
    ) -> ([__m256; N], [__m256; N]) {
        let mut a = [_mm256_setzero_ps(); N];
        let mut b = [_mm256_setzero_ps(); N];
        for i in (0..hd).step_by(8) {
            // SAFETY: the caller's bounds; unaligned loads.
            unsafe {
                let (x0, x1) = (_mm256_loadu_ps(q0.add(i)), _mm256_loadu_ps(q1.add(i)));
                for r in 0..N {
                    let kv = load8(k.add(r * hd + i));
                    a[r] = _mm256_fmadd_ps(x0, kv, a[r]);
                    b[r] = _mm256_fmadd_ps(x1, kv, b[r]);
                }
            }
        }
        (a, b)
    }

    /// [`super::scores_body`], eight keys at a time within each run.
    ///
    /// # Safety
    /// AVX2 and FMA; `head_dim` a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn scores<E: KvElem>(qs: &[f32], keys: &Keys<'_, E>, scores: &mut [f32]) {
        // SAFETY: the caller's guarantees.
        unsafe { scores_with::<E, false>(qs, keys, scores) }
    }

    /// [`scores`] with two heads per pass over the keys where a group has two.
    ///
    /// # Safety
    /// AVX2, FMA, AVX-512F and AVX-512VL; `head_dim` a multiple of 8.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl")]
    pub(super) unsafe fn scores_wide<E: KvElem>(
        qs: &[f32],
        keys: &Keys<'_, E>,
        scores: &mut [f32],
    ) {
        // SAFETY: the caller's guarantees.
        unsafe { scores_with::<E, true>(qs, keys, scores) }
    }

    /// [`scores`] and [`scores_wide`]'s loop; `PAIRS` needs AVX-512VL.
    #[inline(always)]
    unsafe fn scores_with<E: KvElem, const PAIRS: bool>(
        qs: &[f32],
        keys: &Keys<'_, E>,
        scores: &mut [f32],
    ) {
        // SAFETY: inlined only into `scores` (AVX2, FMA) and `scores_wide` (also AVX-512F
        // and VL, which `PAIRS` needs), whose callers guarantee those features; every
        // pointer below is inside a head of `qs` (hd long) or a run's rows i..i + m, whose
        // length is asserted.
        unsafe {
            let (hd, n) = (keys.head_dim, keys.n_keys);
            let group = qs.len() / hd;
            assert!(hd.is_multiple_of(8) && scores.len() == n * (qs.len() / hd));
            let mut j = 0;
            for (slot, len) in keys.runs() {
                let run = keys.keys(slot, len);
                assert_eq!(run.len(), len * hd);
                let mut i = 0;
                while i < len {
                    let m = if len - i >= KEYS { KEYS } else { 1 };
                    let mut first = 0;
                    if PAIRS && m == KEYS {
                        while first + 2 <= group {
                            let (q0, q1) = (&qs[first * hd..], &qs[(first + 1) * hd..]);
                            // Both heads are hd long; rows i..i + KEYS of the run exist.
                            let k = run.as_ptr().add(i * hd);
                            let (a, b) = lanes_pair::<E, KEYS>(q0.as_ptr(), q1.as_ptr(), k, hd);
                            for (g, lanes) in [(first, a), (first + 1, b)] {
                                let d = _mm256_mul_ps(reduce8(lanes), _mm256_set1_ps(keys.scale));
                                let out = &mut scores[g * n + j..g * n + j + KEYS];
                                // `out` is KEYS long; unaligned store.
                                _mm256_storeu_ps(out.as_mut_ptr(), d);
                            }
                            first += 2;
                        }
                    }
                    for (g, q) in qs.chunks_exact(hd).enumerate().skip(first) {
                        // q is hd long; rows i..i + m of the run exist (asserted length).
                        let k = run.as_ptr().add(i * hd);
                        let out = &mut scores[g * n + j..g * n + j + m];
                        if m == KEYS {
                            let d = reduce8(lanes::<E, KEYS>(q.as_ptr(), k, hd));
                            let d = _mm256_mul_ps(d, _mm256_set1_ps(keys.scale));
                            // `out` is KEYS long; unaligned store.
                            _mm256_storeu_ps(out.as_mut_ptr(), d);
                        } else {
                            let [d] = lanes::<E, 1>(q.as_ptr(), k, hd);
                            out[0] = reduce(d) * keys.scale;
                        }
                    }
                    i += m;
                    j += m;
                }
            }
        }
    }

    /// [`super::mix_body`], each head's output [`PIECE`] elements at a time in registers.
    ///
    /// # Safety
    /// AVX2 and FMA; `head_dim` a multiple of [`PIECE`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn mix<E: KvElem>(weights: &[f32], keys: &Keys<'_, E>, o: &mut [f32]) {
        let (hd, n) = (keys.head_dim, keys.n_keys);
        assert!(hd.is_multiple_of(PIECE) && weights.len() == n * (o.len() / hd));
        for (g, o) in o.chunks_exact_mut(hd).enumerate() {
            let w = &weights[g * n..(g + 1) * n];
            for piece in (0..hd).step_by(PIECE) {
                let mut acc = [_mm256_setzero_ps(); PIECE / 8];
                let mut j = 0;
                for (slot, len) in keys.runs() {
                    let run = keys.values(slot, len);
                    assert_eq!(run.len(), len * hd);
                    for i in 0..len {
                        let wv = _mm256_set1_ps(w[j]);
                        for (c, acc) in acc.iter_mut().enumerate() {
                            // SAFETY: row i of the run is hd long and piece + 8c + 8 <= hd.
                            let v = unsafe { load8(run.as_ptr().add(i * hd + piece + 8 * c)) };
                            *acc = _mm256_fmadd_ps(wv, v, *acc);
                        }
                        j += 1;
                    }
                }
                for (c, acc) in acc.iter().enumerate() {
                    // SAFETY: piece + 8c + 8 <= hd = o.len(); unaligned store.
                    unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(piece + 8 * c), *acc) };
                }
            }
        }
    }

    /// [`mix`] with AVX-512: up to four heads at once, each head's [`PIECE`] outputs in four
    /// 16-lane registers, so one load of a value row serves all of them. Lanes are
    /// independent, so the width changes nothing in the bits.
    ///
    /// # Safety
    /// AVX-512F; `head_dim` a multiple of [`PIECE`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn mix512<E: KvElem>(weights: &[f32], keys: &Keys<'_, E>, o: &mut [f32]) {
        let hd = keys.head_dim;
        assert!(hd.is_multiple_of(PIECE) && weights.len() == keys.n_keys * (o.len() / hd));
        let group = o.len() / hd;
        let mut g0 = 0;
        while g0 < group {
            let heads = (group - g0).min(4);
            let o = &mut o[g0 * hd..(g0 + heads) * hd];
            let w = &weights[g0 * keys.n_keys..(g0 + heads) * keys.n_keys];
            match heads {
                1 => mix_heads::<E, 1>(w, keys, o),
                2 => mix_heads::<E, 2>(w, keys, o),
                3 => mix_heads::<E, 3>(w, keys, o),
                _ => mix_heads::<E, 4>(w, keys, o),
            }
            g0 += heads;
        }
    }

    /// [`mix512`] for `G` heads: `o` and `weights` are theirs.
    #[target_feature(enable = "avx512f")]
    fn mix_heads<E: KvElem, const G: usize>(weights: &[f32], keys: &Keys<'_, E>, o: &mut [f32]) {
        let (hd, n) = (keys.head_dim, keys.n_keys);
        assert!(weights.len() == G * n && o.len() == G * hd && hd.is_multiple_of(PIECE));
        for piece in (0..hd).step_by(PIECE) {
            let mut acc = [[_mm512_setzero_ps(); PIECE / 16]; G];
            let mut j = 0;
            for (slot, len) in keys.runs() {
                let run = keys.values(slot, len);
                assert_eq!(run.len(), len * hd);
                for i in 0..len {
                    let mut v = [_mm512_setzero_ps(); PIECE / 16];
                    for (c, v) in v.iter_mut().enumerate() {
                        // SAFETY: row i of the run is hd long and piece + PIECE <= hd.
                        *v = unsafe { load16(run.as_ptr().add(i * hd + piece + 16 * c)) };
                    }
                    for (g, acc) in acc.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(weights[g * n + j]);
                        for (acc, &v) in acc.iter_mut().zip(&v) {
                            *acc = _mm512_fmadd_ps(wv, v, *acc);
                        }
                    }
                    j += 1;
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                for (c, &a) in acc.iter().enumerate() {
                    // SAFETY: g * hd + piece + 16c + 16 <= G * hd = o.len(); unaligned store.
                    unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(g * hd + piece + 16 * c), a) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::backend::KvPoolConfig;

    /// Every fast path this CPU runs gives the portable body's bits: heads of 64, 128, 256 and
    /// 40 (no fast path) elements in groups of 1 to 7, full and partial blocks, shuffled block
    /// tables, a sliding window.
    #[test]
    fn fast_path_matches_the_portable_body_bit_for_bit() {
        let paths: Vec<Path> = [Path::Avx2, Path::Avx512]
            .into_iter()
            .filter(|&p| p <= Path::best())
            .collect();
        if paths.is_empty() {
            eprintln!("skipped: this CPU has no AVX2+FMA, so there is no fast path to compare");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let bs = 16;
        for ((nh, nkv, hd, window), dtype) in [
            (9, 3, 64, None),
            (4, 1, 256, None),
            (8, 2, 128, Some(20)),
            (14, 2, 64, None),
            (4, 2, 40, None),
        ]
        .into_iter()
        .flat_map(|case| [(case, KvDtype::F16), (case, KvDtype::F32)])
        {
            let cfg = KvPoolConfig {
                n_layers: 2,
                n_blocks: 12,
                block_size: bs,
                n_kv_heads: nkv,
                head_dim: hd,
                dtype,
            };
            let mut pool = CpuKvPool::new(cfg).unwrap();
            let kvd = nkv * hd;
            let n_slots = cfg.n_blocks * bs;
            let mut random = |rows: usize, cols: usize| {
                let data = (0..rows * cols)
                    .map(|_| rng.random_range(-2.0..2.0))
                    .collect();
                CpuTensor::from_vec(rows, cols, data)
            };
            let kv = random(n_slots, 2 * kvd);
            let all_slots: Vec<u32> = (0..n_slots as u32).collect();
            for layer in 0..2 {
                pool.write(
                    layer,
                    &kv,
                    Cols::new(0, kvd),
                    Cols::new(kvd, kvd),
                    &all_slots,
                );
            }
            let tables: [&[u32]; 2] = [&[7, 2, 9, 0, 11, 4], &[1, 3, 5]];
            let positions = [0u32, 5, 15, 16, 37, 95, 3, 16, 47];
            let token_seq = [0u32, 0, 0, 0, 0, 0, 1, 1, 1];
            let q = random(positions.len(), nh * hd);
            let layout = AttentionLayout {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: hd,
                block_size: bs,
                token_seq: &token_seq,
                positions: &positions,
                block_tables: &tables,
                slots: &[],
                scale: 1.0 / (hd as f32).sqrt(),
                window,
            };
            let q_cols = Cols::new(0, nh * hd);
            let run = |path| {
                let mut out = CpuTensor::zeros(positions.len(), nh * hd);
                match dtype {
                    KvDtype::F16 => {
                        paged_attention_with::<f16>(&q, q_cols, &pool, 1, &layout, &mut out, path)
                    }
                    KvDtype::F32 => {
                        paged_attention_with::<f32>(&q, q_cols, &pool, 1, &layout, &mut out, path)
                    }
                }
                out.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            let portable = run(Path::Portable);
            for &path in &paths {
                assert_eq!(
                    run(path),
                    portable,
                    "{path:?}: {nh} heads, {nkv} kv, {hd} wide, {dtype:?}"
                );
            }
        }
    }
}
