//! Token sampling for the engine, following vLLM / llama.cpp semantics.
//!
//! * [`SamplingParams`]: per-request parameters with [`SamplingParams::validate`].
//! * [`Sampler`]: per-sequence state (seeded ChaCha20 RNG, token history for penalties).
//!   Each call to [`Sampler::sample`] applies, in order: repetition penalty (prompt +
//!   generated tokens), frequency/presence penalties (generated tokens), then either argmax
//!   (greedy: temperature 0 or `top_k == 1`, ties to the lowest id, no randomness consumed)
//!   or temperature scaling, top-k, top-p, min-p, softmax and one RNG draw.
//! * Log-probabilities ([`TokenLogprob`], [`top_logprobs`], [`logprob_of`]) are always taken
//!   from the *raw* model distribution — `log_softmax` of the logits before temperature and
//!   penalties — like vLLM's default.
//! * [`StopMatcher`]: incremental stop-string matching over streamed text deltas, holding
//!   back text that may be the start of a stop string.
//!
//! Orderings are total (logit descending, then id ascending) and probability sums are
//! accumulated in `f64`, so a given seed, parameter set and logits sequence always produce
//! the same tokens.

mod logprobs;
mod params;
mod penalties;
mod sampler;
mod stop;

pub use logprobs::{TokenLogprob, log_sum_exp, logprob_of, top_logprobs};
pub use params::{GREEDY_TEMPERATURE_EPS, MAX_LOGPROBS, SamplingError, SamplingParams};
pub use penalties::{
    apply_frequency_presence_penalties, apply_repetition_penalty, repetition_penalized,
};
pub use sampler::{Sampled, Sampler, argmax};
pub use stop::{StopMatcher, StopOutcome};
