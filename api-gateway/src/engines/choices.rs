//! One OpenAI request's engine calls: the fan-out into several `Generate` calls (one per
//! prompt per choice, prompt-major) and the merge of their streams back, after TGI's router:
//! the HTTP side only ever sees token events.
//!
//! [`Choices`] own the gRPC streams and the engine lease: dropping them (a client that hung
//! up) cancels the calls on the engine that holds them, which turns them into aborts, and
//! gives the engine's share of outstanding calls back. A stream that breaks midway (the
//! engine died) fails with [`ApiError::EngineUnavailable`] and marks that engine down.

use futures::stream::{self, BoxStream, StreamExt};
use proto::engine::generate_request::Prompt;
use proto::engine::{FinishReason, GenerateRequest, GenerateResponse};
use tonic::Streaming;

use super::replica::Lease;
use crate::error::{ApiError, ApiResult};
use crate::journey::RequestJourney;
use crate::openai::common::{Common, MAX_FANOUT};

/// One engine call's stream (the engine accepted the call).
pub struct ChoiceStream {
    pub(super) rest: Streaming<GenerateResponse>,
}

/// The streams of one fan-out, in choice order, and the lease on the engine serving them.
pub struct Choices {
    pub(super) streams: Vec<ChoiceStream>,
    pub(super) lease: Lease,
}

/// The gRPC calls of one OpenAI request: one per prompt per choice, prompt-major, so the
/// OpenAI choice index is `prompt_idx * n + j`.
pub fn fan_out(
    request_id: &str,
    prompts: Vec<Prompt>,
    common: &Common,
    return_prompt_ids: bool,
) -> ApiResult<Vec<GenerateRequest>> {
    let (n, sampling) = (common.n, &common.sampling);
    let total = prompts.len().saturating_mul(n as usize);
    if total > MAX_FANOUT {
        return Err(ApiError::bad_request(format!(
            "{} prompts × n={n} is {total} generations; at most {MAX_FANOUT} per request",
            prompts.len()
        )));
    }
    let mut calls = Vec::with_capacity(total);
    for prompt in prompts {
        for j in 0..n {
            let index = calls.len();
            let mut sampling = sampling.clone();
            // Same seed for every choice would give n identical samples.
            sampling.seed = sampling.seed.map(|s| s.wrapping_add(u64::from(j)));
            calls.push(GenerateRequest {
                request_id: format!("{request_id}-{index}"),
                prompt: Some(prompt.clone()),
                sampling: Some(sampling),
                return_prompt_ids,
                return_journey: false,
                priority: common.priority,
            });
        }
    }
    Ok(calls)
}

impl Choices {
    /// Number of choices.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when there are no choices.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The URL of the engine serving them.
    pub fn engine(&self) -> &str {
        self.lease.replica().url()
    }

    /// Every message of every choice, tagged with the choice index, in arrival order. The
    /// stream owns the gRPC streams and the lease: dropping it cancels the calls.
    pub fn merged(self) -> BoxStream<'static, (usize, ApiResult<GenerateResponse>)> {
        let per_choice = self.streams.into_iter().enumerate().map(|(index, choice)| {
            choice
                .rest
                .map(|m| m.map_err(ApiError::from_stream))
                .map(move |m| (index, m.and_then(engine_failure)))
                .boxed()
        });
        let lease = self.lease;
        stream::select_all(per_choice)
            .inspect(move |(_, m)| {
                if let Err(e @ ApiError::EngineUnavailable(_)) = m {
                    lease.replica().failed(&e.to_string());
                }
            })
            .boxed()
    }

    /// Runs every choice to the end and returns their accumulated outputs, in choice order;
    /// the journey sees every message.
    pub async fn collect(self, journey: &mut RequestJourney) -> ApiResult<Vec<ChoiceOutput>> {
        let mut outputs = vec![ChoiceOutput::default(); self.len()];
        let mut merged = self.merged();
        while let Some((index, message)) = merged.next().await {
            let message = message?;
            journey.observe(&message);
            outputs[index].absorb(message);
        }
        if outputs.iter().any(|o| o.finish_reason.is_none()) {
            return Err(ApiError::EngineUnavailable(
                "an engine stream ended before its request finished".into(),
            ));
        }
        Ok(outputs)
    }
}

/// A message that reports `FINISH_REASON_ERROR` as the error it is.
fn engine_failure(m: GenerateResponse) -> ApiResult<GenerateResponse> {
    match m.finish_reason() {
        FinishReason::Error => Err(ApiError::Internal(format!(
            "the engine failed generating {}",
            m.request_id
        ))),
        _ => Ok(m),
    }
}

/// Everything one choice produced, accumulated from its messages.
#[derive(Debug, Clone, Default)]
pub struct ChoiceOutput {
    /// Generated text.
    pub text: String,
    /// Generated token ids.
    pub token_ids: Vec<u32>,
    /// One entry per generated token, when logprobs were asked for.
    pub logprobs: Vec<proto::engine::Logprobs>,
    /// The prompt's token ids, when asked for.
    pub prompt_token_ids: Vec<u32>,
    /// One entry per prompt token, when prompt logprobs were asked for.
    pub prompt_logprobs: Vec<proto::engine::Logprobs>,
    /// Why generation ended; `None` until the last message.
    pub finish_reason: Option<FinishReason>,
    /// The stop string or token that ended generation, if any.
    pub stop_reason: String,
    /// Token counts from the last message.
    pub usage: proto::engine::Usage,
}

impl ChoiceOutput {
    /// Folds one engine message into the output.
    pub fn absorb(&mut self, m: GenerateResponse) {
        self.text.push_str(&m.text);
        self.token_ids.extend_from_slice(&m.token_ids);
        self.logprobs.extend(m.logprobs);
        self.prompt_token_ids.extend_from_slice(&m.prompt_token_ids);
        self.prompt_logprobs.extend(m.prompt_logprobs);
        if let Some(reason) = m.finish_reason {
            self.finish_reason = Some(FinishReason::try_from(reason).unwrap_or_default());
            self.stop_reason = m.stop_reason;
        }
        if let Some(usage) = m.usage {
            self.usage = usage;
        }
    }
}
