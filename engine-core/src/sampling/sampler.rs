//! The per-sequence [`Sampler`]: penalties, greedy/stochastic token choice and logprobs.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::logprobs::{
    BLOCK, TokenLogprob, clean, cmp_clean_desc, exp_nonpos, first_index_of, logprob_from,
    lse_from_sum, lse_given_max, row_max, sum_f64, top_n_into,
};
use super::params::SamplingParams;
use super::penalties::{apply_frequency_presence_penalties, apply_repetition_penalty};

/// What one sampling decision produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    /// The chosen token id.
    pub token: u32,
    /// Log-probability of `token` under the raw model distribution (before temperature and
    /// penalties).
    pub logprob: f32,
    /// The top-N raw log-probabilities (N = `SamplingParams::logprobs`), sorted descending,
    /// ties by id ascending; empty when `logprobs` is `None` or `Some(0)`.
    pub top: Vec<TokenLogprob>,
}

/// Per-sequence sampler.
///
/// Owns the sequence's RNG (ChaCha20 seeded from `SamplingParams::seed`, or from a freshly
/// drawn seed when unseeded) and the token history needed by the penalties. Processing order
/// (as in vLLM): repetition penalty, frequency/presence penalties, then either argmax (greedy)
/// or temperature scaling, top-k, top-p, min-p, softmax and one draw from the RNG.
///
/// Determinism: the same parameters, seed and sequence of logits yield the same tokens.
/// Greedy steps consume no randomness; every non-greedy step consumes exactly one `f64` draw.
#[derive(Clone)]
pub struct Sampler {
    temperature: f32,
    top_k: u32,
    top_p: f32,
    min_p: f32,
    presence_penalty: f32,
    frequency_penalty: f32,
    repetition_penalty: f32,
    logprobs: usize,
    greedy: bool,
    seed: u64,
    rng: ChaCha20Rng,
    /// Occurrence counts of generated tokens (frequency/presence penalties).
    generated: HashMap<u32, u32>,
    /// Number of generated tokens recorded.
    generated_len: usize,
    /// Prompt and generated tokens; only maintained when the repetition penalty is active.
    seen: HashSet<u32>,
    /// Raw values of the logits overwritten by penalties in the current step.
    saved: Vec<(u32, f32)>,
}

/// Top-k up to this size uses the insertion buffer of [`top_n_into`] instead of a selection
/// over the whole vocabulary.
const SMALL_TOP_K: usize = 256;

/// Vocabulary-sized scratch buffers, shared by all samplers on a thread (so a batch of
/// sequences does not hold one copy each).
#[derive(Default)]
struct Scratch {
    /// Unnormalized softmax weights of the whole row.
    weights: Vec<f32>,
    /// Sums of `weights` per [`BLOCK`] elements (f64).
    block_sums: Vec<f64>,
    /// `(id, weight)` candidates left after filtering.
    cands: Vec<(u32, f32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampler")
            .field("temperature", &self.temperature)
            .field("top_k", &self.top_k)
            .field("top_p", &self.top_p)
            .field("min_p", &self.min_p)
            .field("presence_penalty", &self.presence_penalty)
            .field("frequency_penalty", &self.frequency_penalty)
            .field("repetition_penalty", &self.repetition_penalty)
            .field("logprobs", &self.logprobs)
            .field("greedy", &self.greedy)
            .field("seed", &self.seed)
            .field("generated_len", &self.generated_len)
            .finish_non_exhaustive()
    }
}

/// Draws a seed for an unseeded request from the process's hash randomness (seeded by the
/// OS), the clock and a counter, so concurrent requests get distinct streams.
fn random_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, AtomicOrdering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.finish()
}

/// Index of the largest logit, lowest id on ties; NaN counts as `-inf`; 0 if all are masked.
/// What greedy sampling picks.
pub fn argmax(logits: &[f32]) -> u32 {
    first_index_of(logits, row_max(logits))
}

impl Sampler {
    /// Creates the sampler for one sequence. `params` should already be validated;
    /// `prompt` is only kept (as a set) when the repetition penalty is active.
    pub fn new(params: &SamplingParams, prompt: &[u32]) -> Self {
        let seed = params.seed.unwrap_or_else(random_seed);
        let seen = if params.repetition_penalty != 1.0 {
            prompt.iter().copied().collect()
        } else {
            HashSet::new()
        };
        Self {
            temperature: params.temperature,
            top_k: params.top_k,
            top_p: params.top_p,
            min_p: params.min_p,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            repetition_penalty: params.repetition_penalty,
            logprobs: params.logprobs.map_or(0, |n| n as usize),
            greedy: params.is_greedy(),
            seed,
            rng: ChaCha20Rng::seed_from_u64(seed),
            generated: HashMap::new(),
            generated_len: 0,
            seen,
            saved: Vec::new(),
        }
    }

    /// The seed actually used (the request's seed, or the drawn one when unseeded).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of tokens recorded as generated so far.
    pub fn generated_len(&self) -> usize {
        self.generated_len
    }

    /// Records `token` as generated without sampling it (e.g. a forced or replayed token),
    /// so that later penalties account for it. Consumes no randomness.
    pub fn record_token(&mut self, token: u32) {
        *self.generated.entry(token).or_insert(0) += 1;
        self.generated_len += 1;
        if self.repetition_penalty != 1.0 {
            self.seen.insert(token);
        }
    }

    fn penalties_active(&self) -> bool {
        (self.repetition_penalty != 1.0 && !self.seen.is_empty())
            || ((self.frequency_penalty != 0.0 || self.presence_penalty != 0.0)
                && !self.generated.is_empty())
    }

    /// Applies the penalties in place, remembering the raw value of every touched logit.
    fn apply_penalties(&mut self, logits: &mut [f32]) {
        self.saved.clear();
        let rep = self.repetition_penalty != 1.0;
        if rep {
            for &t in &self.seen {
                if let Some(&v) = logits.get(t as usize) {
                    self.saved.push((t, v));
                }
            }
            apply_repetition_penalty(logits, self.seen.iter().copied(), self.repetition_penalty);
        }
        if self.frequency_penalty != 0.0 || self.presence_penalty != 0.0 {
            if !rep {
                // With the repetition penalty on, generated tokens were already saved above.
                for &t in self.generated.keys() {
                    if let Some(&v) = logits.get(t as usize) {
                        self.saved.push((t, v));
                    }
                }
            }
            apply_frequency_presence_penalties(
                logits,
                self.generated.iter().map(|(&t, &c)| (t, c)),
                self.frequency_penalty,
                self.presence_penalty,
            );
        }
    }

    /// Samples the next token from the raw logits of one position (`logits.len()` = vocab
    /// size) and records it for the penalties.
    ///
    /// `logits` is used as scratch: penalized values may be written into it. The returned
    /// logprobs are computed from the raw values (see [`TokenLogprob`]).
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn sample(&mut self, logits: &mut [f32]) -> Sampled {
        assert!(!logits.is_empty(), "Sampler::sample: empty logits row");
        // Raw-distribution statistics first, since the penalties overwrite `logits`.
        let max_raw = row_max(logits);
        let mut top = Vec::new();
        top_n_into(logits, self.logprobs, &mut top);
        let penalized = self.penalties_active();
        // At T = 1 without penalties the sampling weights are exactly exp(raw - max), so the
        // raw log-sum-exp comes for free from their sum.
        let reuse_weights = !self.greedy && self.temperature == 1.0 && !penalized;
        let mut lse = if reuse_weights {
            f32::NAN
        } else {
            lse_given_max(logits, max_raw)
        };
        self.saved.clear();
        if penalized {
            self.apply_penalties(logits);
        }
        let token = if self.greedy {
            if penalized {
                argmax(logits)
            } else {
                first_index_of(logits, max_raw)
            }
        } else {
            let max = if penalized { row_max(logits) } else { max_raw };
            let (token, row_sum) = self.sample_stochastic(logits, max);
            if reuse_weights {
                lse = lse_from_sum(max_raw, row_sum);
            }
            token
        };
        // The stochastic path leaves `logits` untouched after the penalties, so the raw value
        // is either the saved pre-penalty value or still in the row.
        let raw = self
            .saved
            .iter()
            .find(|&&(t, _)| t == token)
            .map_or(logits[token as usize], |&(_, v)| v);
        self.record_token(token);
        Sampled {
            token,
            logprob: logprob_from(raw, lse),
            top: top
                .iter()
                .map(|&(id, v)| TokenLogprob {
                    id,
                    logprob: logprob_from(v, lse),
                })
                .collect(),
        }
    }

    /// Temperature, top-k, top-p, min-p, softmax and one RNG draw. Reads `logits` only;
    /// `max` is `row_max(logits)`. Returns the token and the sum of the unfiltered weights
    /// `exp(logit / T - max / T)` over the row.
    fn sample_stochastic(&mut self, logits: &[f32], max: f32) -> (u32, f64) {
        // Exactly one draw per stochastic step, whatever the filters do.
        let r = self.rng.random::<f64>();
        if max == f32::NEG_INFINITY {
            // Everything masked: nothing meaningful to sample.
            return (0, 0.0);
        }
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let scratch = &mut *guard;
            self.filter_and_draw(logits, max, r, scratch)
        })
    }

    fn filter_and_draw(&self, logits: &[f32], max: f32, r: f64, sc: &mut Scratch) -> (u32, f64) {
        let t = self.temperature;
        let len = logits.len();
        // Unnormalized softmax weights of logits / T (computed exactly like `m`, so the most
        // likely token has weight exactly 1), with per-block f64 sums.
        let inv_t = 1.0 / t;
        let m = (max * inv_t).min(f32::MAX);
        sc.weights.resize(len, 0.0);
        sc.block_sums.clear();
        for (wb, lb) in sc.weights.chunks_mut(BLOCK).zip(logits.chunks(BLOCK)) {
            for (w, &v) in wb.iter_mut().zip(lb) {
                *w = exp_nonpos((clean(v) * inv_t).min(f32::MAX) - m);
            }
            sc.block_sums.push(sum_f64(wb));
        }

        let row_sum: f64 = sc.block_sums.iter().sum();

        let k = self.top_k as usize;
        let top_k_active = k > 0 && k < len;
        if !top_k_active && self.top_p >= 1.0 && self.min_p <= 0.0 {
            return (draw_blocked(&sc.weights, &sc.block_sums, r), row_sum);
        }

        let cands = &mut sc.cands;
        cands.clear();
        // Mass that top-p's threshold refers to: the whole (top-k filtered) distribution.
        let total;
        if top_k_active {
            if k <= SMALL_TOP_K {
                top_n_into(&sc.weights, k, cands);
                cands.retain(|c| c.1 > 0.0);
            } else {
                cands.extend(
                    sc.weights
                        .iter()
                        .enumerate()
                        .filter(|&(_, &w)| w > 0.0)
                        .map(|(i, &w)| (i as u32, w)),
                );
                if cands.len() > k {
                    cands.select_nth_unstable_by(k - 1, cmp_clean_desc);
                    cands.truncate(k);
                }
            }
            total = sum_candidates(cands);
            // Min-p: p_i >= min_p * p_max  <=>  w_i >= min_p (w_max = 1).
            if self.min_p > 0.0 {
                let min_p = self.min_p;
                cands.retain(|c| c.1 >= min_p);
            }
        } else {
            total = row_sum;
            // Collect only tokens that can survive: min-p, and for top-p a safe tail bound:
            // if every weight below `tail` is dropped, their mass is at most n * tail, which
            // is below (1 - top_p) * total, so none of them is inside the nucleus.
            let mut floor = f32::MIN_POSITIVE;
            if self.min_p > 0.0 {
                floor = floor.max(self.min_p);
            }
            if self.top_p < 1.0 {
                let tail = 0.5 * (1.0 - f64::from(self.top_p)) * total / len as f64;
                floor = floor.max(tail as f32);
            }
            cands.extend(
                sc.weights
                    .iter()
                    .enumerate()
                    .filter(|&(_, &w)| w >= floor)
                    .map(|(i, &w)| (i as u32, w)),
            );
        }
        // Top-p: the smallest descending prefix whose mass reaches top_p. Min-p also keeps a
        // descending prefix, so applying it first does not change the result.
        if self.top_p < 1.0 {
            let keep = nucleus_len(cands, f64::from(self.top_p) * total);
            cands.truncate(keep);
        }
        (draw_candidates(cands, r), row_sum)
    }
}

/// Sum of candidate weights in f64 with four fixed accumulators (deterministic order).
fn sum_candidates(cands: &[(u32, f32)]) -> f64 {
    let mut acc = [0f64; 4];
    let chunks = cands.chunks_exact(4);
    let rest = chunks.remainder();
    for ch in chunks {
        for (a, c) in acc.iter_mut().zip(ch) {
            *a += f64::from(c.1);
        }
    }
    for (a, c) in acc.iter_mut().zip(rest) {
        *a += f64::from(c.1);
    }
    acc.iter().sum()
}

/// Inverse-CDF draw over a whole weight row, `r` in `[0, 1)`: finds the block by its sum,
/// then walks inside it.
fn draw_blocked(weights: &[f32], block_sums: &[f64], r: f64) -> u32 {
    let total: f64 = block_sums.iter().sum();
    let u = r * total;
    let mut cum = 0f64;
    for (b, &bs) in block_sums.iter().enumerate() {
        if u < cum + bs {
            let start = b * BLOCK;
            let block = &weights[start..(start + BLOCK).min(weights.len())];
            let mut c = cum;
            for (j, &w) in block.iter().enumerate() {
                c += f64::from(w);
                if u < c {
                    return (start + j) as u32;
                }
            }
            // Rounding: the block has mass, so it has a non-zero weight.
            let j = block.iter().rposition(|&w| w > 0.0).unwrap_or(0);
            return (start + j) as u32;
        }
        cum += bs;
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0) as u32
}

/// Inverse-CDF draw over `(id, weight)` candidates in their current order, `r` in `[0, 1)`.
fn draw_candidates(cands: &[(u32, f32)], r: f64) -> u32 {
    let u = r * sum_candidates(cands);
    let mut cum = 0f64;
    for c in cands {
        cum += f64::from(c.1);
        if u < cum {
            return c.0;
        }
    }
    // Rounding fallback: the last candidate with non-zero weight (the max has weight 1).
    cands
        .iter()
        .rev()
        .find(|c| c.1 > 0.0)
        .or(cands.first())
        .map_or(0, |c| c.0)
}

/// Top-p cut by weighted quickselect, expected O(n) with no full sort.
///
/// In the order "weight descending, id ascending", token j is kept iff the mass strictly
/// before it is below `target`. Rearranges `cands` so the kept tokens come first and returns
/// how many there are (always at least 1 when `target > 0`).
fn nucleus_len(cands: &mut [(u32, f32)], target: f64) -> usize {
    /// Below this size the remaining range is simply sorted and walked.
    const SMALL: usize = 32;
    let mut lo = 0;
    let mut hi = cands.len();
    // Mass of cands[..lo]: all kept, all ranked before everything in cands[lo..].
    let mut before = 0f64;
    loop {
        let len = hi - lo;
        if len <= SMALL {
            let range = &mut cands[lo..hi];
            range.sort_unstable_by(cmp_clean_desc);
            for (j, c) in range.iter().enumerate() {
                if before >= target {
                    return lo + j;
                }
                before += f64::from(c.1);
            }
            return hi;
        }
        let mid = len / 2;
        let range = &mut cands[lo..hi];
        range.select_nth_unstable_by(mid, cmp_clean_desc);
        let left = sum_candidates(&range[..mid]);
        if before + left >= target {
            // The pivot (at lo + mid) is already out; the cut is in the left part or at it.
            hi = lo + mid;
        } else {
            // Left part and pivot are kept.
            before += left + f64::from(range[mid].1);
            lo += mid + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::logprobs::cmp_desc;
    use super::*;

    fn params() -> SamplingParams {
        SamplingParams {
            seed: Some(1234),
            ..Default::default()
        }
    }

    fn greedy_params() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            ..params()
        }
    }

    fn pseudo_logits(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f32>() * 10.0 - 5.0).collect()
    }

    fn draw_many(p: &SamplingParams, logits: &[f32], n: usize) -> Vec<u32> {
        let mut s = Sampler::new(p, &[]);
        (0..n)
            .map(|_| s.sample(&mut logits.to_vec()).token)
            .collect()
    }

    #[test]
    fn greedy_is_argmax_with_lowest_id_ties() {
        let mut s = Sampler::new(&greedy_params(), &[]);
        let out = s.sample(&mut [0.5, 2.0, -1.0, 2.0, 1.9]);
        assert_eq!(out.token, 1);
        assert!(out.top.is_empty());
        let logits = pseudo_logits(49152, 5);
        let want = logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 { (i, v) } else { b }
            })
            .0 as u32;
        let out = s.sample(&mut logits.clone());
        assert_eq!(out.token, want);
        assert!((out.logprob - super::super::logprob_of(&logits, want)).abs() < 1e-6);
    }

    #[test]
    fn greedy_consumes_no_randomness() {
        let mut s = Sampler::new(&greedy_params(), &[]);
        let before = s.rng.clone();
        for _ in 0..10 {
            s.sample(&mut pseudo_logits(100, 1));
        }
        assert_eq!(s.rng, before);
    }

    #[test]
    fn same_seed_same_tokens_different_seed_differs() {
        let logits = pseudo_logits(2000, 9);
        let p = SamplingParams {
            temperature: 2.0,
            ..params()
        };
        let a = draw_many(&p, &logits, 200);
        let b = draw_many(&p, &logits, 200);
        assert_eq!(a, b);
        let c = draw_many(
            &SamplingParams {
                seed: Some(99),
                ..p.clone()
            },
            &logits,
            200,
        );
        assert_ne!(a, c);
        // Filters keep determinism too.
        let p2 = SamplingParams {
            top_k: 50,
            top_p: 0.9,
            min_p: 0.01,
            ..p.clone()
        };
        assert_eq!(draw_many(&p2, &logits, 100), draw_many(&p2, &logits, 100));
        let p3 = SamplingParams { top_p: 0.5, ..p };
        assert_eq!(draw_many(&p3, &logits, 100), draw_many(&p3, &logits, 100));
    }

    #[test]
    fn unseeded_samplers_get_distinct_seeds() {
        let p = SamplingParams::default();
        let a = Sampler::new(&p, &[]);
        let b = Sampler::new(&p, &[]);
        assert_ne!(a.seed(), b.seed());
    }

    #[test]
    fn top_k_one_equals_greedy() {
        let p = SamplingParams {
            top_k: 1,
            temperature: 1.5,
            ..params()
        };
        for seed in 0..20 {
            let logits = pseudo_logits(5000, seed);
            let mut s = Sampler::new(&p, &[]);
            let mut g = Sampler::new(&greedy_params(), &[]);
            assert_eq!(s.sample(&mut logits.clone()), g.sample(&mut logits.clone()));
        }
    }

    #[test]
    fn tiny_top_p_equals_greedy() {
        let p = SamplingParams {
            top_p: 1e-6,
            ..params()
        };
        for seed in 0..8 {
            let logits = pseudo_logits(49152, seed);
            let want = argmax(&logits);
            let mut s = Sampler::new(&p, &[]);
            for _ in 0..3 {
                assert_eq!(s.sample(&mut logits.clone()).token, want);
            }
        }
    }

    #[test]
    fn top_p_keeps_smallest_prefix_reaching_mass() {
        // Probabilities 0.5, 0.25, 0.125, 0.125.
        let ln = |x: f32| x.ln();
        let logits = [ln(0.125), ln(0.5), ln(0.125), ln(0.25)];
        let p = SamplingParams {
            top_p: 0.7,
            ..params()
        };
        let draws = draw_many(&p, &logits, 4000);
        assert!(draws.iter().all(|&t| t == 1 || t == 3));
        let ones = draws.iter().filter(|&&t| t == 1).count() as f64 / draws.len() as f64;
        assert!((ones - 2.0 / 3.0).abs() < 0.03, "{ones}");
        // top_p below the first token's probability: only it remains.
        let p = SamplingParams {
            top_p: 0.45,
            ..params()
        };
        assert!(draw_many(&p, &logits, 500).iter().all(|&t| t == 1));
    }

    #[test]
    fn top_k_restricts_support() {
        let logits = pseudo_logits(5000, 21);
        let mut sorted: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, v))
            .collect();
        sorted.sort_by(cmp_desc);
        let allowed: HashSet<u32> = sorted[..5].iter().map(|c| c.0).collect();
        let p = SamplingParams {
            top_k: 5,
            temperature: 2.0,
            ..params()
        };
        let draws = draw_many(&p, &logits, 300);
        assert!(draws.iter().all(|t| allowed.contains(t)));
        let distinct: HashSet<u32> = draws.into_iter().collect();
        assert!(distinct.len() > 1);
    }

    #[test]
    fn min_p_filters_unlikely_tokens() {
        // Probabilities proportional to 1, 0.5, 0.2, 0.05.
        let logits = [0.0f32, 0.5f32.ln(), 0.2f32.ln(), 0.05f32.ln()];
        let p = SamplingParams {
            min_p: 0.3,
            ..params()
        };
        let draws = draw_many(&p, &logits, 3000);
        assert!(draws.iter().all(|&t| t == 0 || t == 1));
        let zeros = draws.iter().filter(|&&t| t == 0).count() as f64 / 3000.0;
        assert!((zeros - 2.0 / 3.0).abs() < 0.03, "{zeros}");
        // Without min_p all four appear.
        let all: HashSet<u32> = draw_many(&params(), &logits, 3000).into_iter().collect();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn temperature_one_matches_softmax() {
        let logits = [0.0f32, 3f32.ln()];
        let draws = draw_many(&params(), &logits, 20000);
        let freq = draws.iter().filter(|&&t| t == 1).count() as f64 / 20000.0;
        assert!((freq - 0.75).abs() < 0.02, "{freq}");
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        // At T = 0.5 the odds 3:1 become 9:1; at T = 2 they become sqrt(3):1.
        let logits = [0.0f32, 3f32.ln()];
        let p = SamplingParams {
            temperature: 0.5,
            ..params()
        };
        let freq = draw_many(&p, &logits, 20000)
            .iter()
            .filter(|&&t| t == 1)
            .count() as f64
            / 20000.0;
        assert!((freq - 0.9).abs() < 0.02, "{freq}");
        let p = SamplingParams {
            temperature: 2.0,
            ..params()
        };
        let want = 3f64.sqrt() / (1.0 + 3f64.sqrt());
        let freq = draw_many(&p, &logits, 20000)
            .iter()
            .filter(|&&t| t == 1)
            .count() as f64
            / 20000.0;
        assert!((freq - want).abs() < 0.02, "{freq} vs {want}");
    }

    #[test]
    fn masked_tokens_never_sampled() {
        let logits = [f32::NEG_INFINITY, 0.0, f32::NAN, 0.0];
        let draws = draw_many(&params(), &logits, 1000);
        assert!(draws.iter().all(|&t| t == 1 || t == 3));
    }

    #[test]
    fn repetition_penalty_hand_computed() {
        // Prompt contains token 0; raw logits 2.0 vs 1.5 -> penalized 1.0 vs 1.5.
        let p = SamplingParams {
            repetition_penalty: 2.0,
            ..greedy_params()
        };
        let mut s = Sampler::new(&p, &[0]);
        let mut logits = [2.0f32, 1.5, -3.0];
        let out = s.sample(&mut logits);
        assert_eq!(out.token, 1);
        assert_eq!(logits[0], 1.0);
        // Logprob is of the raw distribution.
        assert!((out.logprob - super::super::logprob_of(&[2.0, 1.5, -3.0], 1)).abs() < 1e-6);
        // Now tokens 0 and 1 are penalized: 1.5 -> 0.75 each, token 2 untouched.
        let mut logits = [1.5f32, 1.5, 0.8];
        assert_eq!(s.sample(&mut logits).token, 2);
        assert_eq!(logits, [0.75, 0.75, 0.8]);
        // Negative logits are multiplied: token 2 (generated) -1.0 -> -2.0 < token 3 -1.5.
        let mut logits = [-9.0f32, -9.0, -1.0, -1.5];
        assert_eq!(s.sample(&mut logits).token, 3);
        assert_eq!(logits, [-18.0, -18.0, -2.0, -1.5]);
    }

    #[test]
    fn frequency_penalty_hand_computed() {
        let p = SamplingParams {
            frequency_penalty: 0.5,
            ..greedy_params()
        };
        // Prompt tokens are not penalized by frequency/presence.
        let mut s = Sampler::new(&p, &[0, 0, 0]);
        assert_eq!(s.sample(&mut [3.0, 2.2, 0.0]).token, 0);
        let mut logits = [3.0f32, 2.2, 0.0];
        assert_eq!(s.sample(&mut logits).token, 0); // 2.5 vs 2.2
        assert_eq!(logits, [2.5, 2.2, 0.0]);
        let mut logits = [3.0f32, 2.2, 0.0];
        assert_eq!(s.sample(&mut logits).token, 1); // 2.0 vs 2.2
        assert_eq!(logits, [2.0, 2.2, 0.0]);
        let mut logits = [3.0f32, 2.2, 0.0];
        assert_eq!(s.sample(&mut logits).token, 0); // 2.0 vs 1.7
        assert_eq!(logits, [2.0, 1.7, 0.0]);
        let mut logits = [3.0f32, 2.2, 0.0];
        assert_eq!(s.sample(&mut logits).token, 1); // 1.5 vs 1.7
        assert_eq!(logits, [1.5, 1.7, 0.0]);
    }

    #[test]
    fn presence_penalty_hand_computed() {
        let p = SamplingParams {
            presence_penalty: 1.0,
            ..greedy_params()
        };
        let mut s = Sampler::new(&p, &[1]);
        assert_eq!(s.sample(&mut [3.0, 2.5, 0.0]).token, 0);
        let mut logits = [3.0f32, 2.5, 0.0];
        assert_eq!(s.sample(&mut logits).token, 1); // 2.0 vs 2.5
        assert_eq!(logits, [2.0, 2.5, 0.0]);
        // Presence is applied once regardless of count.
        let mut logits = [3.0f32, 2.5, 0.0];
        s.sample(&mut logits);
        assert_eq!(logits, [2.0, 1.5, 0.0]);
        s.record_token(0);
        let mut logits = [3.0f32, 2.5, 0.0];
        s.sample(&mut logits);
        assert_eq!(logits, [2.0, 1.5, 0.0]);
    }

    #[test]
    fn penalties_compose_repetition_then_frequency() {
        let p = SamplingParams {
            repetition_penalty: 2.0,
            frequency_penalty: 1.0,
            presence_penalty: 0.5,
            ..greedy_params()
        };
        let mut s = Sampler::new(&p, &[2]);
        s.record_token(0);
        s.record_token(0);
        let mut logits = [4.0f32, 1.0, 3.0, -1.0];
        let out = s.sample(&mut logits);
        // token 0: 4/2 - 2*1 - 0.5 = -0.5; token 2: 3/2 = 1.5 (prompt: no freq/presence).
        assert_eq!(logits, [-0.5, 1.0, 1.5, -1.0]);
        assert_eq!(out.token, 2);
        assert!((out.logprob - super::super::logprob_of(&[4.0, 1.0, 3.0, -1.0], 2)).abs() < 1e-6);
    }

    #[test]
    fn penalties_apply_in_stochastic_path() {
        // Token 0 generated once: 1.0 - 2.0 * 1 - 2.0 = -3.0, so p(0) drops from 0.73 to
        // e^-3 / (e^-3 + 1) = 0.047.
        let mut zeros = 0;
        for seed in 0..4000 {
            let p = SamplingParams {
                frequency_penalty: 2.0,
                presence_penalty: 2.0,
                seed: Some(seed),
                ..Default::default()
            };
            let mut s = Sampler::new(&p, &[]);
            s.record_token(0);
            let mut logits = [1.0f32, 0.0];
            if s.sample(&mut logits).token == 0 {
                zeros += 1;
            }
            assert_eq!(logits, [-3.0, 0.0]);
        }
        let freq = zeros as f64 / 4000.0;
        let want = (-3f64).exp() / ((-3f64).exp() + 1.0);
        assert!((freq - want).abs() < 0.015, "{freq} vs {want}");
    }

    /// The candidate set the last filtered draw on this thread kept, sorted by id.
    fn last_kept() -> Vec<u32> {
        SCRATCH.with(|c| {
            let mut ids: Vec<u32> = c.borrow().cands.iter().map(|c| c.0).collect();
            ids.sort_unstable();
            ids
        })
    }

    /// Straightforward f64 reference of vLLM's filters: full sort, top-k, top-p, min-p.
    fn reference_kept(p: &SamplingParams, logits: &[f32]) -> Vec<u32> {
        let t = f64::from(p.temperature);
        let mut c: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, f64::from(v) / t))
            .collect();
        c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if p.top_k > 0 {
            c.truncate(p.top_k as usize);
        }
        let m = c[0].1;
        let w: Vec<f64> = c.iter().map(|x| (x.1 - m).exp()).collect();
        let z: f64 = w.iter().sum();
        let mut keep = c.len();
        let mut cum = 0.0;
        for (j, wj) in w.iter().enumerate() {
            if cum >= f64::from(p.top_p) * z {
                keep = j;
                break;
            }
            cum += wj;
        }
        let mut ids: Vec<u32> = (0..keep)
            .filter(|&j| w[j] >= f64::from(p.min_p))
            .map(|j| c[j].0)
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn filters_match_reference() {
        let d = params;
        let cases = [
            SamplingParams { top_k: 50, ..d() },
            SamplingParams {
                top_k: 1000,
                temperature: 0.8,
                ..d()
            },
            SamplingParams { top_p: 0.9, ..d() },
            SamplingParams {
                top_p: 0.5,
                temperature: 0.5,
                ..d()
            },
            SamplingParams {
                top_p: 0.99,
                temperature: 2.0,
                ..d()
            },
            SamplingParams { min_p: 0.1, ..d() },
            SamplingParams {
                top_k: 300,
                top_p: 0.8,
                min_p: 0.05,
                temperature: 0.7,
                ..d()
            },
            SamplingParams {
                top_p: 0.95,
                min_p: 0.02,
                temperature: 1.3,
                ..d()
            },
        ];
        for (ci, p) in cases.iter().enumerate() {
            for seed in 0..4u64 {
                // Mix of flat and peaked rows.
                let scale = [1.0f32, 3.0, 0.2, 6.0][seed as usize];
                let logits: Vec<f32> = pseudo_logits(5000, 100 + seed)
                    .into_iter()
                    .map(|v| v * scale)
                    .collect();
                let mut s = Sampler::new(p, &[]);
                let token = s.sample(&mut logits.clone()).token;
                let kept = last_kept();
                assert_eq!(kept, reference_kept(p, &logits), "case {ci} seed {seed}");
                assert!(kept.binary_search(&token).is_ok());
            }
        }
    }

    #[test]
    fn nucleus_len_matches_sorted_walk() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for trial in 0..200 {
            let n = 1 + (trial * 37) % 3000;
            // Quantized weights create many ties.
            let w: Vec<(u32, f32)> = (0..n)
                .map(|i| {
                    let x: f32 = rng.random();
                    (
                        i as u32,
                        (x * 16.0).floor() / 16.0 + f32::from(u8::from(i == 0)),
                    )
                })
                .collect();
            let total: f64 = w.iter().map(|c| f64::from(c.1)).sum();
            let target = f64::from(rng.random::<f32>()) * total + 1e-9;
            let mut sorted = w.clone();
            sorted.sort_by(cmp_clean_desc);
            let mut want = sorted.len();
            let mut cum = 0.0;
            for (j, c) in sorted.iter().enumerate() {
                if cum >= target {
                    want = j;
                    break;
                }
                cum += f64::from(c.1);
            }
            let mut got = w.clone();
            let keep = nucleus_len(&mut got, target);
            let mut got_ids: Vec<u32> = got[..keep].iter().map(|c| c.0).collect();
            got_ids.sort_unstable();
            let mut want_ids: Vec<u32> = sorted[..want].iter().map(|c| c.0).collect();
            want_ids.sort_unstable();
            assert_eq!(got_ids, want_ids, "trial {trial}");
        }
    }

    #[test]
    fn logprobs_are_raw_and_top_sorted() {
        let raw = pseudo_logits(1000, 77);
        // Penalized and unpenalized, T = 1 (weights reused for the log-sum-exp) or not,
        // greedy or not.
        for (temperature, repetition_penalty, top_p) in [
            (0.3, 1.5, 1.0),
            (1.0, 1.0, 1.0),
            (1.0, 1.0, 0.9),
            (1.0, 1.2, 1.0),
            (0.0, 1.0, 1.0),
            (0.0, 1.3, 1.0),
        ] {
            let p = SamplingParams {
                logprobs: Some(3),
                temperature,
                repetition_penalty,
                top_p,
                ..params()
            };
            let mut s = Sampler::new(&p, &[1, 2, 3]);
            for _ in 0..20 {
                let out = s.sample(&mut raw.clone());
                assert_eq!(out.top.len(), 3);
                assert_eq!(out.top, super::super::top_logprobs(&raw, 3));
                let want = super::super::logprob_of(&raw, out.token);
                assert!(
                    (out.logprob - want).abs() < 1e-6,
                    "{} vs {want}",
                    out.logprob
                );
            }
        }
        let p = SamplingParams {
            logprobs: Some(0),
            ..params()
        };
        let mut s = Sampler::new(&p, &[]);
        assert!(s.sample(&mut raw.clone()).top.is_empty());
    }
}
