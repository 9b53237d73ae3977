//! What a request sees of the engine: a stream of [`RequestEvent`]s, never batches.

use crate::lifecycle::Finished;
use crate::sampling::TokenLogprob;

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
    /// The request is done (how, token counts, timings); nothing follows.
    Finished(Box<Finished>),
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
