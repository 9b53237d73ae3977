//! Log-probabilities of a logits row (log_softmax), top-N extraction and shared ordering
//! helpers.
//!
//! All log-probabilities reported by this module are taken under the model's *raw*
//! distribution: `log_softmax` of the logits exactly as the model produced them, before
//! temperature, penalties or any filtering. This matches vLLM's default (`raw_logprobs`) and
//! makes the numbers comparable across requests with different sampling settings.
//!
//! NaN logits are treated as `-inf` (probability 0) and `+inf` as `f32::MAX`.

use std::cmp::Ordering;

use serde::Serialize;

/// One candidate token with its log-probability under the raw model distribution
/// (`log_softmax` of the unmodified logits, before temperature and penalties).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TokenLogprob {
    /// Token id.
    pub id: u32,
    /// Natural-log probability of the token.
    pub logprob: f32,
}

/// Maps a logit to a value that is safe to order and exponentiate: NaN becomes `-inf`,
/// `+inf` becomes `f32::MAX`, and `-0.0` becomes `0.0` (so that ties are decided by id).
#[inline]
pub(crate) fn clean(v: f32) -> f32 {
    if v.is_nan() {
        f32::NEG_INFINITY
    } else if v == f32::INFINITY {
        f32::MAX
    } else {
        v + 0.0
    }
}

/// Total order on `(id, value)` pairs: larger value first, equal values by smaller id.
#[cfg(test)]
pub(crate) fn cmp_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    clean(b.1)
        .total_cmp(&clean(a.1))
        .then_with(|| a.0.cmp(&b.0))
}

/// `value - lse`, defined as `-inf` when the whole row is masked (`lse == -inf`).
#[inline]
pub(crate) fn logprob_from(value: f32, lse: f32) -> f32 {
    if lse == f32::NEG_INFINITY {
        f32::NEG_INFINITY
    } else {
        clean(value) - lse
    }
}

/// Total order on `(id, value)` pairs whose values are already [`clean`]ed (no NaN, no
/// `-0.0`): larger value first, equal values by smaller id.
#[inline]
pub(crate) fn cmp_clean_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

/// Fast `exp(x)` for `x <= 0` (the only use here: `logit - max`), written with plain
/// arithmetic so loops over it auto-vectorize. Cody–Waite range reduction and the Cephes
/// `expf` polynomial; relative error about 2e-7. Returns exactly `1.0` at `0.0` and exactly
/// `0.0` below `-87` (including `-inf`). Inputs above `0` are clamped to `0`.
#[inline(always)]
pub(crate) fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 0.0);
    let shifted = xc * LOG2E + ROUND;
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32; // k in [-126, 0]
    let k = shifted - ROUND;
    let r = xc - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * (r * r) + r + 1.0;
    let scale = f32::from_bits(((k_bits + 127) as u32) << 23);
    // `!(x >= -87)` also catches NaN.
    if x >= -87.0 { er * scale } else { 0.0 }
}

/// Block length for the vectorizable exp-then-sum loops.
pub(crate) const BLOCK: usize = 256;

/// Sum of a slice in f64 with eight fixed accumulators (deterministic order, vectorizes).
pub(crate) fn sum_f64(xs: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, &x) in acc.iter_mut().zip(ch) {
            *a += f64::from(x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(rest) {
        *a += f64::from(x);
    }
    acc.iter().sum()
}

/// `sum(exp(clean(v) - max))` over a row: exponentials are computed a block at a time into
/// a stack buffer (which vectorizes), then summed in f64.
fn sum_exp_row(logits: &[f32], max: f32) -> f64 {
    let mut buf = [0f32; BLOCK];
    let mut total = 0f64;
    for block in logits.chunks(BLOCK) {
        let b = &mut buf[..block.len()];
        for (e, &v) in b.iter_mut().zip(block) {
            *e = exp_nonpos(clean(v) - max);
        }
        total += sum_f64(b);
    }
    total
}

/// Writes the `n` largest `(id, clean(value))` pairs of `values` into `out`, sorted by value
/// descending, ties by id ascending. Keeps a small sorted buffer and skips whole chunks whose
/// maximum cannot enter it, so the common case is one vectorizable max per chunk.
pub(crate) fn top_n_into(values: &[f32], n: usize, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let n = n.min(values.len());
    if n == 0 {
        return;
    }
    out.reserve(n + 1);
    const CHUNK: usize = 16;
    let mut threshold = f32::NEG_INFINITY;
    for (ci, chunk) in values.chunks(CHUNK).enumerate() {
        if out.len() == n {
            let chunk_max = chunk
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| m.max(clean(v)));
            if chunk_max <= threshold {
                continue;
            }
        }
        for (j, &raw) in chunk.iter().enumerate() {
            let v = clean(raw);
            if out.len() < n || v > threshold {
                // Ids arrive in increasing order, so an equal value ranks after existing ones.
                let pos = out.partition_point(|e| e.1 >= v);
                out.insert(pos, ((ci * CHUNK + j) as u32, v));
                out.truncate(n);
                threshold = out[out.len() - 1].1;
            }
        }
    }
}

/// Largest [`clean`]ed value of a row (`-inf` for an empty or fully masked row).
pub(crate) fn row_max(logits: &[f32]) -> f32 {
    // Sixteen independent lanes of `if v > m`, which vectorize to `max` instructions (one fold
    // is a serial chain) and skip NaN as `clean` does; the lanes' maximum is the same value in
    // any order, and cleaning it after maps +inf to f32::MAX as cleaning each value would.
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = logits.chunks_exact(16);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes
        .into_iter()
        .chain(tail.iter().copied())
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    clean(max)
}

/// Index of the first entry equal to `max` (the argmax with ties to the lowest id, given
/// `max == row_max(logits)`); 0 if none.
pub(crate) fn first_index_of(logits: &[f32], max: f32) -> u32 {
    if max.is_finite() && max != f32::MAX {
        // Cleaning changes only NaN and +inf, neither of which equals such a max: compare raw
        // values, a block at a time without an early exit (which vectorizes), then find the
        // entry inside the first block that has it.
        for (b, block) in logits.chunks(BLOCK).enumerate() {
            if block.iter().fold(false, |hit, &v| hit | (v == max)) {
                let at = block.iter().position(|&v| v == max).unwrap_or(0);
                return (b * BLOCK + at) as u32;
            }
        }
        return 0;
    }
    logits.iter().position(|&v| clean(v) == max).unwrap_or(0) as u32
}

/// Log-sum-exp from the row maximum and `sum(exp(v - max))`.
pub(crate) fn lse_from_sum(max: f32, sum: f64) -> f32 {
    if max == f32::NEG_INFINITY {
        f32::NEG_INFINITY
    } else {
        max + sum.ln() as f32
    }
}

/// Log-sum-exp of a row given its maximum ([`row_max`]).
pub(crate) fn lse_given_max(logits: &[f32], max: f32) -> f32 {
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    lse_from_sum(max, sum_exp_row(logits, max))
}

/// `log(sum(exp(logits)))` of a row, accumulated in f64; `-inf` for an empty or fully masked
/// row.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    lse_given_max(logits, row_max(logits))
}

/// The `n` most likely tokens of a logits row with their `log_softmax` values, sorted by
/// log-probability descending (ties by id ascending). Returns `min(n, logits.len())` entries.
///
/// Used for `prompt_logprobs` (the row at position `i - 1` predicts prompt token `i`) and for
/// echo scoring.
pub fn top_logprobs(logits: &[f32], n: usize) -> Vec<TokenLogprob> {
    let lse = log_sum_exp(logits);
    let mut top = Vec::new();
    top_n_into(logits, n, &mut top);
    top.iter()
        .map(|&(id, v)| TokenLogprob {
            id,
            logprob: logprob_from(v, lse),
        })
        .collect()
}

/// `log_softmax(logits)[token]`; `-inf` if `token` is out of range or the row is fully
/// masked.
pub fn logprob_of(logits: &[f32], token: u32) -> f32 {
    match logits.get(token as usize) {
        Some(&v) => logprob_from(v, log_sum_exp(logits)),
        None => f32::NEG_INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_log_softmax(logits: &[f32]) -> Vec<f64> {
        let m = logits
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let z: f64 = logits.iter().map(|&v| (v as f64 - m).exp()).sum();
        logits.iter().map(|&v| v as f64 - m - z.ln()).collect()
    }

    fn pseudo_logits(n: usize, seed: u32) -> Vec<f32> {
        // Small deterministic LCG so the test needs no RNG crate.
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 8) as f32 / (1u32 << 24) as f32) * 20.0 - 10.0
            })
            .collect()
    }

    #[test]
    fn exp_nonpos_accuracy() {
        let mut worst = 0f64;
        let mut x = 0f32;
        while x > -87.0 {
            let want = (x as f64).exp();
            let got = exp_nonpos(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x -= 0.001_37;
        }
        assert!(worst < 5e-7, "{worst}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        assert_eq!(exp_nonpos(-0.0), 1.0);
        assert_eq!(exp_nonpos(-88.0), 0.0);
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos(f32::NAN), 0.0);
        assert!(exp_nonpos(-1e-9) <= 1.0);
    }

    #[test]
    fn logprob_of_matches_log_softmax() {
        let logits = pseudo_logits(1000, 3);
        let want = reference_log_softmax(&logits);
        for t in [0u32, 1, 17, 500, 999] {
            let got = logprob_of(&logits, t) as f64;
            assert!(
                (got - want[t as usize]).abs() < 1e-4,
                "{t}: {got} vs {}",
                want[t as usize]
            );
        }
        assert_eq!(logprob_of(&logits, 1000), f32::NEG_INFINITY);
        // Large offsets must not overflow.
        let shifted: Vec<f32> = [1000.0f32, 1001.0, 999.0].to_vec();
        let want = reference_log_softmax(&shifted);
        assert!((logprob_of(&shifted, 1) as f64 - want[1]).abs() < 1e-4);
    }

    #[test]
    fn top_logprobs_sorted_and_mass_at_most_one() {
        let logits = pseudo_logits(49152, 11);
        let top = top_logprobs(&logits, 20);
        assert_eq!(top.len(), 20);
        for w in top.windows(2) {
            assert!(
                w[0].logprob > w[1].logprob || (w[0].logprob == w[1].logprob && w[0].id < w[1].id)
            );
        }
        let mass: f64 = top.iter().map(|t| (t.logprob as f64).exp()).sum();
        assert!(mass <= 1.0 + 1e-5, "{mass}");
        // Matches a full sort.
        let mut all: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, v))
            .collect();
        all.sort_by(cmp_desc);
        let ids: Vec<u32> = top.iter().map(|t| t.id).collect();
        let want: Vec<u32> = all[..20].iter().map(|e| e.0).collect();
        assert_eq!(ids, want);
        for t in &top {
            assert!((t.logprob - logprob_of(&logits, t.id)).abs() < 1e-6);
        }
        // Whole small vocabulary sums to 1.
        let small = [0.5f32, -1.0, 2.0, 0.0];
        let all = top_logprobs(&small, 10);
        assert_eq!(all.len(), 4);
        let mass: f64 = all.iter().map(|t| (t.logprob as f64).exp()).sum();
        assert!((mass - 1.0).abs() < 1e-6);
    }

    /// The lane-parallel maximum equals a plain fold of cleaned values, with NaN, infinities
    /// and signed zeros in the lanes and in the tail.
    #[test]
    fn row_max_is_the_fold_of_cleaned_values() {
        let fold = |v: &[f32]| v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(clean(x)));
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            -1.5,
            7.25,
        ];
        for len in [0, 1, 15, 16, 17, 40, 300, 600] {
            for (i, &a) in specials.iter().enumerate() {
                for &b in &specials {
                    let mut v: Vec<f32> = (0..len).map(|k| (k as f32 * 0.37).sin()).collect();
                    if len > 0 {
                        v[i % len] = a;
                        v[len - 1] = b;
                    }
                    let (got, want) = (row_max(&v), fold(&v));
                    assert!(got == want || (got.is_nan() && want.is_nan()), "{v:?}");
                    let first = v.iter().position(|&x| clean(x) == want).unwrap_or(0);
                    assert_eq!(first_index_of(&v, got) as usize, first, "{v:?}");
                }
            }
        }
        assert_eq!(row_max(&[f32::NAN; 20]), f32::NEG_INFINITY);
        assert_eq!(row_max(&[1.0, f32::INFINITY]), f32::MAX);
    }

    #[test]
    fn ties_by_lowest_id_and_masked_entries() {
        let logits = [1.0f32, 3.0, f32::NAN, 3.0, f32::NEG_INFINITY, 3.0];
        let top = top_logprobs(&logits, 3);
        assert_eq!(top.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 3, 5]);
        assert_eq!(first_index_of(&logits, row_max(&logits)), 1);
        assert_eq!(logprob_of(&logits, 2), f32::NEG_INFINITY);
        assert_eq!(logprob_of(&logits, 4), f32::NEG_INFINITY);
        let masked = [f32::NEG_INFINITY; 3];
        assert_eq!(log_sum_exp(&masked), f32::NEG_INFINITY);
        assert_eq!(logprob_of(&masked, 0), f32::NEG_INFINITY);
        assert!(top_logprobs(&[], 5).is_empty());
        assert!(top_logprobs(&logits, 0).is_empty());
    }
}
