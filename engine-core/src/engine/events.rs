//! What a request sees of the engine: a stream of [`RequestEvent`]s, never batches.

use crate::sampling::TokenLogprob;
pub use crate::scheduler::FinishReason;

/// One message on a request's event stream. Every request that was accepted gets exactly one
/// [`RequestEvent::Finished`], last, whatever the path (stop, length, abort, client gone,
/// ignored, error).
#[derive(Clone, Debug, PartialEq)]
pub enum RequestEvent {
    /// Sent once, when the prompt has been prefilled, just before the first token.
    Started {
        /// The prompt as token ids.
        prompt_token_ids: Vec<u32>,
        /// Per prompt token, when asked for: `None` for the first, then the token's logprob and
        /// the top-N of the distribution that predicted it.
        prompt_logprobs: Option<Vec<Option<PromptLogprob>>>,
    },
    /// New tokens and the text they completed.
    Tokens {
        /// New token ids (an end-of-generation token included).
        token_ids: Vec<u32>,
        /// New text: stop strings and special tokens excluded; may be empty while text is held
        /// back (an incomplete character, a possible stop-string prefix).
        text: String,
        /// Per new token, when asked for.
        logprobs: Option<Vec<TokenLogprobs>>,
    },
    /// The request is done; nothing follows.
    Finished {
        /// Why.
        reason: FinishReason,
        /// The stop string, or the stop token id in decimal, that ended the request; for
        /// `Ignored` and `Error`, the reason in words.
        stop_reason: Option<String>,
        /// Token counts.
        usage: Usage,
        /// Where the time went.
        timings: Timings,
    },
}

/// Log-probabilities at one prompt position.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptLogprob {
    /// Log-probability of the prompt token at this position.
    pub logprob: f32,
    /// The top-N of the distribution predicting this position.
    pub top: Vec<TokenLogprob>,
}

/// Log-probabilities of one generated token (raw model distribution).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprobs {
    /// The sampled token.
    pub token: u32,
    /// Its log-probability.
    pub logprob: f32,
    /// The top-N candidates, descending.
    pub top: Vec<TokenLogprob>,
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
}

/// Engine-side timestamps (seconds since the Unix epoch, wall clock; 0 when it never
/// happened) and durations (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// `submit` was called.
    pub arrived: f64,
    /// The step thread put it in the waiting queue.
    pub queued: f64,
    /// First scheduled.
    pub scheduled: f64,
    /// First token sampled.
    pub first_token: f64,
    /// Finished.
    pub finished: f64,
    /// Time of the steps in which it computed prompt (or recomputed) tokens.
    pub prefill_time: f64,
    /// Time of the steps in which it decoded one token.
    pub decode_time: f64,
    /// Times it was preempted.
    pub num_preemptions: u32,
}

/// Now, as seconds since the Unix epoch.
pub(super) fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
