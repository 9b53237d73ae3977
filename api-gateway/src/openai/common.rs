//! Wire fields that chat and legacy completions share (sampling knobs, `n`, `stop`,
//! streaming options), their range checks, and the mapping onto the engine's
//! [`SamplingParams`]. Written once so the two endpoints cannot drift apart.

use proto::engine::SamplingParams;
use proto::engine::generate_request::Prompt;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// Largest `n` accepted (OpenAI's limit).
pub const MAX_N: u32 = 128;
/// Largest number of engine calls (prompts × n) one request may fan out into.
pub const MAX_FANOUT: usize = 1024;
/// Largest `max_tokens` accepted when the context length is not known yet.
pub const MAX_TOKENS_LIMIT: u32 = 1 << 20;
/// Most stop strings per request.
pub const MAX_STOP: usize = 16;

/// `stop`: one string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopSpec {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with empty `choices` and the request's usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields both endpoints accept, flattened into each request type.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonFields {
    /// Requested model; must equal the served name when present.
    pub model: Option<String>,
    /// Choices per prompt.
    pub n: Option<i64>,
    /// Sampling temperature in [0, 2]; 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass in (0, 1].
    pub top_p: Option<f32>,
    /// Top-k (extension); 0 or -1 disables.
    pub top_k: Option<i64>,
    /// Min-p (extension) in [0, 1].
    pub min_p: Option<f32>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Stop strings.
    pub stop: Option<StopSpec>,
    /// Stop token ids (extension).
    pub stop_token_ids: Option<Vec<u32>>,
    /// Keep generating past EOS (extension).
    #[serde(default)]
    pub ignore_eos: bool,
    /// In [-2, 2].
    pub presence_penalty: Option<f32>,
    /// In [-2, 2].
    pub frequency_penalty: Option<f32>,
    /// Extension; > 0, 1 disables.
    pub repetition_penalty: Option<f32>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options; only valid with `stream: true`.
    pub stream_options: Option<StreamOptions>,
    /// Scheduling priority (vLLM's extension): lower runs first under the engine's
    /// `priority` policy, and within the tenant under `fair`.
    pub priority: Option<i32>,
}

/// How the answer is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One JSON object.
    Whole,
    /// Server-sent events.
    Stream {
        /// Close with a usage-only chunk.
        include_usage: bool,
    },
}

/// The validated shared part of a request: everything but the prompt and logprob settings.
/// Not yet checked against the served model: see [`Common::admit`].
#[derive(Debug, Clone)]
pub struct Common {
    /// The requested model, if named.
    pub model: Option<String>,
    /// Choices per prompt, in 1..=[`MAX_N`].
    pub n: u32,
    /// Engine sampling parameters (logprob fields and `max_tokens` filled by the endpoint).
    pub sampling: SamplingParams,
    /// Whole or streamed.
    pub delivery: Delivery,
    /// Scheduling priority (0 unless set).
    pub priority: i32,
}

/// What validation needs to know about the served model.
#[derive(Debug, Clone)]
pub struct ModelMeta {
    /// The served model id.
    pub name: String,
    /// The engine's context length in tokens (0 if unknown).
    pub context_length: u32,
    /// The model's architecture (`llama`, `qwen2`, ...; empty if unknown).
    pub architecture: String,
    /// The most text bytes one token stands for (0 if unknown).
    pub max_token_bytes: u32,
}

/// Most logprob entries (a token and each of its alternatives) one non-streamed response may
/// hold, at worst: beyond it the whole answer would be held in memory at once, so such a
/// request must stream (about 100 MB of JSON).
pub const MAX_WHOLE_LOGPROB_ENTRIES: u64 = 1 << 20;

/// Refuses a non-streamed request whose logprobs could exceed [`MAX_WHOLE_LOGPROB_ENTRIES`]:
/// `num_prompts` × `n` choices, each up to `max_tokens` (the context when unset) sampled
/// tokens with `1 + logprobs` entries and, with prompt logprobs (`echo`), up to the context's
/// prompt tokens with `1 + prompt_logprobs` entries.
pub fn check_whole_response(
    num_prompts: usize,
    common: &Common,
    model: &ModelMeta,
) -> ApiResult<()> {
    let context = u64::from(model.context_length);
    if common.delivery != Delivery::Whole || context == 0 {
        return Ok(());
    }
    let s = &common.sampling;
    let choices = num_prompts as u64 * u64::from(common.n);
    let sampled = u64::from(s.max_tokens.unwrap_or(u32::MAX)).min(context);
    let per_choice = s.logprobs.map_or(0, |k| sampled * (1 + u64::from(k)))
        + s.prompt_logprobs
            .map_or(0, |k| context * (1 + u64::from(k)));
    let entries = choices.saturating_mul(per_choice);
    if entries > MAX_WHOLE_LOGPROB_ENTRIES {
        return Err(ApiError::invalid(
            "stream",
            format!(
                "{choices} choices with these logprobs could hold {entries} logprob entries, \
                 more than {MAX_WHOLE_LOGPROB_ENTRIES} in one response: set \"stream\": true, \
                 or lower n, max_tokens or logprobs"
            ),
        ));
    }
    Ok(())
}

/// Refuses a prompt that cannot fit the context before it is copied once per choice and sent
/// to the engine: text of B bytes is at least B / `max_token_bytes` tokens.
pub fn check_prompt_sizes(prompts: &[Prompt], model: &ModelMeta) -> ApiResult<()> {
    let context = model.context_length as usize;
    if context == 0 || model.max_token_bytes == 0 {
        return Ok(());
    }
    for prompt in prompts {
        let (bytes, at_least) = match prompt {
            Prompt::TokenIds(ids) => (None, ids.ids.len()),
            Prompt::Text(text) => (Some(text.len()), 0),
            Prompt::Chat(chat) => (Some(chat.messages.iter().map(|m| m.content.len()).sum()), 0),
        };
        let at_least = bytes.map_or(at_least, |b: usize| {
            b.div_ceil(model.max_token_bytes as usize)
        });
        if at_least >= context {
            let what = bytes.map_or(format!("{at_least} tokens"), |b| {
                format!("{b} bytes (at least {at_least} tokens)")
            });
            return Err(ApiError::invalid(
                "prompt",
                format!("a prompt of {what} does not fit the model's context of {context} tokens"),
            ));
        }
    }
    Ok(())
}

impl CommonFields {
    /// Checks every range. The model name and the context length are checked later, by
    /// [`Common::admit`], once the served model is known: bad input is a 400 even while the
    /// engine is down.
    pub fn validate(self, max_tokens: Option<u32>) -> ApiResult<Common> {
        let n = match self.n {
            None => 1,
            Some(n) if (1..=i64::from(MAX_N)).contains(&n) => n as u32,
            Some(n) => {
                return Err(ApiError::invalid(
                    "n",
                    format!("n must be in 1..={MAX_N}, got {n}"),
                ));
            }
        };
        let sampling = SamplingParams {
            temperature: in_range("temperature", self.temperature, 0.0..=2.0)?,
            top_p: check("top_p", self.top_p, |p| p > 0.0 && p <= 1.0, "in (0, 1]")?,
            top_k: top_k(self.top_k)?,
            min_p: in_range("min_p", self.min_p, 0.0..=1.0)?,
            seed: self.seed.map(|s| s as u64),
            presence_penalty: in_range("presence_penalty", self.presence_penalty, -2.0..=2.0)?,
            frequency_penalty: in_range("frequency_penalty", self.frequency_penalty, -2.0..=2.0)?,
            repetition_penalty: check(
                "repetition_penalty",
                self.repetition_penalty,
                |p| p > 0.0,
                "> 0",
            )?,
            max_tokens,
            stop: stop_list(self.stop)?,
            stop_token_ids: self.stop_token_ids.unwrap_or_default(),
            ignore_eos: self.ignore_eos,
            logprobs: None,
            prompt_logprobs: None,
        };
        let delivery = match (self.stream, self.stream_options) {
            (true, options) => Delivery::Stream {
                include_usage: options.unwrap_or_default().include_usage,
            },
            (false, None) => Delivery::Whole,
            (false, Some(_)) => {
                return Err(ApiError::invalid(
                    "stream_options",
                    "stream_options can only be set when stream is true",
                ));
            }
        };
        let model = self.model.filter(|m| !m.is_empty());
        Ok(Common {
            model,
            n,
            sampling,
            delivery,
            priority: self.priority.unwrap_or(0),
        })
    }
}

impl Common {
    /// Checks the request against the served model: the name (absent means the served one)
    /// and `max_tokens` against the context length.
    pub fn admit(&self, model: &ModelMeta) -> ApiResult<()> {
        if let Some(requested) = &self.model
            && *requested != model.name
        {
            return Err(ApiError::ModelNotFound(requested.clone()));
        }
        match self.sampling.max_tokens {
            Some(m) if model.context_length > 0 && m > model.context_length => {
                let context = model.context_length;
                let message = format!(
                    "max_tokens ({m}) is larger than the model's context length ({context} tokens)"
                );
                Err(ApiError::invalid("max_tokens", message))
            }
            _ => Ok(()),
        }
    }
}

/// `max_tokens` (or `max_completion_tokens`) from the wire: negative and absurd values are
/// refused before they reach the engine.
pub fn parse_max_tokens(param: &'static str, value: Option<i64>) -> ApiResult<Option<u32>> {
    match value {
        None => Ok(None),
        Some(v) if (0..=i64::from(MAX_TOKENS_LIMIT)).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(ApiError::invalid(
            param,
            format!("{param} must be in 0..={MAX_TOKENS_LIMIT}, got {v}"),
        )),
    }
}

fn check(
    param: &'static str,
    value: Option<f32>,
    ok: impl Fn(f32) -> bool,
    expected: &str,
) -> ApiResult<Option<f32>> {
    match value {
        Some(v) if !ok(v) || v.is_nan() => Err(ApiError::invalid(
            param,
            format!("{param} must be {expected}, got {v}"),
        )),
        v => Ok(v),
    }
}

fn in_range(
    param: &'static str,
    value: Option<f32>,
    range: std::ops::RangeInclusive<f32>,
) -> ApiResult<Option<f32>> {
    let expected = format!("in [{}, {}]", range.start(), range.end());
    check(param, value, |v| range.contains(&v), &expected)
}

fn top_k(value: Option<i64>) -> ApiResult<Option<u32>> {
    match value {
        None | Some(-1) | Some(0) => Ok(None),
        Some(k) if k > 0 && k <= i64::from(u32::MAX) => Ok(Some(k as u32)),
        Some(k) => Err(ApiError::invalid(
            "top_k",
            format!("top_k must be -1 (disabled) or at least 1, got {k}"),
        )),
    }
}

fn stop_list(stop: Option<StopSpec>) -> ApiResult<Vec<String>> {
    let list = match stop {
        None => Vec::new(),
        Some(StopSpec::One(s)) => vec![s],
        Some(StopSpec::Many(v)) => v,
    };
    let list: Vec<String> = list.into_iter().filter(|s| !s.is_empty()).collect();
    if list.len() > MAX_STOP {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOP} stop strings are allowed"),
        ));
    }
    Ok(list)
}

/// `usage` in responses and in the last streamed chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt (counted once per prompt, not per choice).
    pub prompt_tokens: u32,
    /// Generated tokens over all choices.
    pub completion_tokens: u32,
    /// Sum of the two.
    pub total_tokens: u32,
}

/// The OpenAI name of an engine finish reason (`stop`, `length`, `abort`), as vLLM reports it.
pub fn finish_reason_name(reason: proto::engine::FinishReason) -> &'static str {
    use proto::engine::FinishReason as F;
    match reason {
        F::Stop | F::Unspecified => "stop",
        F::Length | F::Ignored => "length",
        F::Aborted => "abort",
        F::Error => "error",
    }
}

/// vLLM's stand-in for `-inf`, which JSON cannot carry.
pub fn finite_logprob(logprob: f32) -> f32 {
    if logprob.is_finite() {
        logprob
    } else {
        -9999.0
    }
}

/// A fresh response id: `prefix` followed by 32 random hex digits, like vLLM's.
pub fn response_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sums engine usage over the choices of a fan-out: prompt tokens once per prompt (choice
/// `j == 0`), completion tokens over every choice.
#[derive(Debug, Clone, Copy)]
pub struct UsageTally {
    n: usize,
    usage: Usage,
}

impl UsageTally {
    /// A tally for a fan-out with `n` choices per prompt.
    pub fn new(n: u32) -> Self {
        Self {
            n: (n as usize).max(1),
            usage: Usage::default(),
        }
    }

    /// Adds the usage reported for choice `index`; `count_completion: false` leaves out
    /// tokens the caller drops (echo-only requests).
    pub fn add(&mut self, index: usize, usage: &proto::engine::Usage, count_completion: bool) {
        if index.is_multiple_of(self.n) {
            self.usage.prompt_tokens += usage.prompt_tokens;
        }
        if count_completion {
            self.usage.completion_tokens += usage.completion_tokens;
        }
        self.usage.total_tokens = self.usage.prompt_tokens + self.usage.completion_tokens;
    }

    /// The sums so far.
    pub fn total(&self) -> Usage {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_each_prompt_once() {
        let mut tally = UsageTally::new(2);
        let usage = proto::engine::Usage {
            prompt_tokens: 5,
            completion_tokens: 3,
        };
        for index in 0..4 {
            tally.add(index, &usage, true);
        }
        assert_eq!(
            tally.total(),
            Usage {
                prompt_tokens: 10,
                completion_tokens: 12,
                total_tokens: 22
            }
        );
    }

    #[test]
    fn top_k_disabled_forms() {
        assert_eq!(top_k(Some(-1)).unwrap(), None);
        assert_eq!(top_k(Some(0)).unwrap(), None);
        assert_eq!(top_k(Some(7)).unwrap(), Some(7));
        assert!(top_k(Some(-2)).is_err());
    }

    #[test]
    fn ids_look_like_vllms() {
        let id = response_id("cmpl-");
        assert_eq!(id.len(), "cmpl-".len() + 32);
        assert_ne!(id, response_id("cmpl-"));
    }
}
