//! `/v1/completions` (legacy) on the wire: prompts as text or token ids, `echo`, the legacy
//! logprobs format, the validated [`CompletionJob`], and the `text_completion` objects.
//!
//! `echo` with `max_tokens: 0` (how lm-evaluation-harness scores a prompt) works as in vLLM:
//! the engine is asked for one token, which is then dropped, so the answer holds only the
//! prompt and its logprobs (`completion_tokens` is reported as 0).

use std::collections::BTreeMap;

use proto::engine::TokenIds;
use proto::engine::generate_request::Prompt;
use serde::{Deserialize, Serialize};

use super::common::{Common, CommonFields, Usage, finite_logprob, parse_max_tokens};
use crate::error::{ApiError, ApiResult};

/// Default `max_tokens`, as in OpenAI's legacy API.
pub const DEFAULT_MAX_TOKENS: u32 = 16;
/// Most alternatives per token in legacy logprobs (OpenAI's limit).
pub const MAX_LOGPROBS: i64 = 5;

/// A legacy completion request as sent by clients; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// One or several prompts.
    pub prompt: Option<PromptInput>,
    /// Most tokens to generate per choice (default 16).
    pub max_tokens: Option<i64>,
    /// Prepend the prompt to each choice's text.
    #[serde(default)]
    pub echo: bool,
    /// Alternatives per token, 0..=5; returns legacy logprobs.
    pub logprobs: Option<i64>,
    /// Server-side best-of sampling: not supported beyond `best_of == n`.
    pub best_of: Option<i64>,
    /// Text after the completion: not supported.
    pub suffix: Option<String>,
    /// Fields shared with `/v1/chat/completions`.
    #[serde(flatten)]
    pub common: CommonFields,
}

/// The four prompt forms OpenAI accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    /// One text prompt.
    Text(String),
    /// Several text prompts.
    Texts(Vec<String>),
    /// One prompt as token ids.
    Tokens(Vec<u32>),
    /// Several prompts as token ids.
    TokenBatches(Vec<Vec<u32>>),
}

/// Where a choice's echoed prompt text comes from.
#[derive(Debug, Clone)]
pub enum EchoText {
    /// The prompt was text: echo it as sent.
    Verbatim(String),
    /// The prompt was token ids: echo the engine's decoding of them.
    FromTokens,
}

/// A validated completion request, ready for the engine.
#[derive(Debug, Clone)]
pub struct CompletionJob {
    /// The prompts, in order.
    pub prompts: Vec<Prompt>,
    /// Shared, validated fields (`max_tokens` already adjusted for echo-only requests).
    pub common: Common,
    /// `Some(k)`: legacy logprobs with `k` alternatives per token.
    pub logprobs: Option<u32>,
    /// Per prompt: the text to echo, when `echo` is set.
    pub echo: Option<Vec<EchoText>>,
    /// `echo` with `max_tokens: 0`: drop the one token the engine generates.
    pub echo_only: bool,
}

impl CompletionRequest {
    /// Checks every field and builds the engine-ready job (still to be admitted against
    /// the served model).
    pub fn validate(self) -> ApiResult<CompletionJob> {
        if self.suffix.is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid("suffix", "suffix is not supported"));
        }
        if self.best_of.is_some_and(|b| b > self.common.n.unwrap_or(1)) {
            return Err(ApiError::invalid(
                "best_of",
                "best_of greater than n is not supported",
            ));
        }
        let (prompts, echo_texts) = prompts(self.prompt)?;
        let max_tokens =
            parse_max_tokens("max_tokens", self.max_tokens)?.unwrap_or(DEFAULT_MAX_TOKENS);
        let echo_only = self.echo && max_tokens == 0;
        if max_tokens == 0 && !self.echo {
            return Err(ApiError::invalid(
                "max_tokens",
                "max_tokens must be at least 1 (or 0 with echo)",
            ));
        }
        let logprobs = match self.logprobs {
            None => None,
            Some(k) if (0..=MAX_LOGPROBS).contains(&k) => Some(k as u32),
            Some(k) => {
                return Err(ApiError::invalid(
                    "logprobs",
                    format!("logprobs must be in 0..={MAX_LOGPROBS}, got {k}"),
                ));
            }
        };
        let mut common = self.common.validate(Some(max_tokens.max(1)))?;
        common.sampling.logprobs = logprobs;
        // Echoed token-id prompts need the engine's per-token text, which comes with the
        // prompt logprobs.
        let needs_prompt_tokens =
            logprobs.is_some() || echo_texts.iter().any(|e| matches!(e, EchoText::FromTokens));
        if self.echo && needs_prompt_tokens {
            common.sampling.prompt_logprobs = Some(logprobs.unwrap_or(0));
        }
        let echo = self.echo.then_some(echo_texts);
        Ok(CompletionJob {
            prompts,
            common,
            logprobs,
            echo,
            echo_only,
        })
    }
}

fn prompts(input: Option<PromptInput>) -> ApiResult<(Vec<Prompt>, Vec<EchoText>)> {
    let texts = |v: Vec<String>| {
        let echo = v.iter().cloned().map(EchoText::Verbatim).collect();
        (v.into_iter().map(Prompt::Text).collect(), echo)
    };
    let tokens = |v: Vec<Vec<u32>>| {
        let echo = vec![EchoText::FromTokens; v.len()];
        (
            v.into_iter()
                .map(|ids| Prompt::TokenIds(TokenIds { ids }))
                .collect(),
            echo,
        )
    };
    let (prompts, echo): (Vec<Prompt>, Vec<EchoText>) = match input {
        None => return Err(ApiError::invalid("prompt", "prompt is required")),
        Some(PromptInput::Text(t)) => texts(vec![t]),
        Some(PromptInput::Texts(v)) => texts(v),
        Some(PromptInput::Tokens(ids)) => tokens(vec![ids]),
        Some(PromptInput::TokenBatches(v)) => tokens(v),
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "prompt must not be an empty list",
        ));
    }
    Ok((prompts, echo))
}

/// A legacy completion answer (`text_completion`), whole or as one streamed chunk.
#[derive(Debug, Serialize)]
pub struct Completion {
    /// `cmpl-...`.
    pub id: String,
    /// Always `text_completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Served model id.
    pub model: String,
    /// Choices (one per chunk when streaming; empty in the usage chunk).
    pub choices: Vec<CompletionChoice>,
    /// Token counts (always when whole; last chunk only when streaming).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a [`Completion`].
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// `prompt_idx * n + j`.
    pub index: usize,
    /// Text (echoed prompt first when asked for).
    pub text: String,
    /// Legacy logprobs when asked for, else null.
    pub logprobs: Option<LegacyLogprobs>,
    /// `stop`, `length` or `abort`; null on intermediate chunks.
    pub finish_reason: Option<&'static str>,
    /// The stop string that ended generation, or null (vLLM extension).
    pub stop_reason: Option<String>,
}

/// OpenAI's legacy logprobs: parallel lists, one entry per token.
#[derive(Debug, Default, Serialize)]
pub struct LegacyLogprobs {
    /// Token texts.
    pub tokens: Vec<String>,
    /// Each token's logprob; null for the first prompt token.
    pub token_logprobs: Vec<Option<f32>>,
    /// Per token, alternatives (token → logprob, the chosen token included); null for the
    /// first prompt token.
    pub top_logprobs: Vec<Option<BTreeMap<String, f32>>>,
    /// Character offset of each token in the choice's text.
    pub text_offset: Vec<usize>,
}

impl LegacyLogprobs {
    /// Appends prompt-token entries; the first prompt token has no logprob.
    pub fn push_prompt(&mut self, entries: &[proto::engine::Logprobs], offset: &mut usize) {
        for (i, e) in entries.iter().enumerate() {
            self.push(e, i == 0, offset);
        }
    }

    /// Appends generated-token entries.
    pub fn push_generated(&mut self, entries: &[proto::engine::Logprobs], offset: &mut usize) {
        for e in entries {
            self.push(e, false, offset);
        }
    }

    fn push(&mut self, e: &proto::engine::Logprobs, unscored: bool, offset: &mut usize) {
        let token = e.token.clone().unwrap_or_default();
        let scored = !unscored && !token.logprob.is_nan();
        let top = scored.then(|| {
            let mut top: BTreeMap<String, f32> = e
                .top
                .iter()
                .map(|t| (t.text.clone(), finite_logprob(t.logprob)))
                .collect();
            top.entry(token.text.clone())
                .or_insert(finite_logprob(token.logprob));
            top
        });
        self.text_offset.push(*offset);
        *offset += token.text.chars().count();
        self.token_logprobs
            .push(scored.then(|| finite_logprob(token.logprob)));
        self.top_logprobs.push(top);
        self.tokens.push(token.text);
    }
}

/// The echoed prompt text of one choice.
pub fn echo_text(source: &EchoText, prompt_logprobs: &[proto::engine::Logprobs]) -> String {
    match source {
        EchoText::Verbatim(text) => text.clone(),
        EchoText::FromTokens => prompt_logprobs
            .iter()
            .filter_map(|e| e.token.as_ref())
            .map(|t| t.text.as_str())
            .collect(),
    }
}
