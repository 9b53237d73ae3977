//! `/v1/chat/completions` on the wire: the request as clients send it, the validated
//! [`ChatJob`] that is the only thing the handler forwards ("parse, don't validate"), and the
//! `chat.completion` / `chat.completion.chunk` response objects.

use proto::engine::generate_request::Prompt;
use proto::engine::{ChatMessage, ChatPrompt};
use serde::{Deserialize, Serialize};

use super::common::{Common, CommonFields, Usage, finite_logprob, parse_max_tokens};
use crate::error::{ApiError, ApiResult};

/// Most alternatives per token in chat logprobs (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// A chat completion request as sent by clients; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatCompletionRequest {
    /// The conversation so far.
    pub messages: Option<Vec<WireMessage>>,
    /// Legacy name of `max_completion_tokens`.
    pub max_tokens: Option<i64>,
    /// Most tokens to generate.
    pub max_completion_tokens: Option<i64>,
    /// Return the chosen tokens' logprobs.
    #[serde(default)]
    pub logprobs: bool,
    /// Alternatives per token, 0..=20; needs `logprobs: true`.
    pub top_logprobs: Option<i64>,
    /// Append the assistant turn opener (vLLM extension, default true).
    pub add_generation_prompt: Option<bool>,
    /// Fields shared with `/v1/completions`.
    #[serde(flatten)]
    pub common: CommonFields,
}

/// One chat message on the wire.
#[derive(Debug, Clone, Deserialize)]
pub struct WireMessage {
    /// `system`, `user`, `assistant`, `tool`, ...
    pub role: String,
    /// Text, a list of content parts, or null.
    #[serde(default)]
    pub content: Option<MessageContent>,
}

/// Message content: a string or the array-of-parts form.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts; only `text` parts are supported.
    Parts(Vec<ContentPart>),
}

/// One part of an array-form message.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// Part type; must be `text`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    pub text: Option<String>,
}

/// A validated chat request, ready for the engine.
#[derive(Debug, Clone)]
pub struct ChatJob {
    /// The messages, as the engine's chat prompt.
    pub prompt: Prompt,
    /// Shared, validated fields.
    pub common: Common,
    /// `Some(k)`: return logprobs with `k` alternatives per token.
    pub top_logprobs: Option<u32>,
}

impl ChatCompletionRequest {
    /// Checks every field and builds the engine-ready job (still to be admitted against
    /// the served model).
    pub fn validate(self) -> ApiResult<ChatJob> {
        let messages = match self.messages {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Err(ApiError::invalid(
                    "messages",
                    "messages must be a non-empty list",
                ));
            }
        };
        let messages = messages
            .into_iter()
            .map(message)
            .collect::<ApiResult<Vec<_>>>()?;
        let max_tokens = match self.max_completion_tokens {
            Some(m) => parse_max_tokens("max_completion_tokens", Some(m))?,
            None => parse_max_tokens("max_tokens", self.max_tokens)?,
        };
        if max_tokens == Some(0) {
            return Err(ApiError::invalid(
                "max_tokens",
                "max_tokens must be at least 1",
            ));
        }
        let top_logprobs = match (self.logprobs, self.top_logprobs) {
            (_, Some(k)) if !(0..=MAX_TOP_LOGPROBS).contains(&k) => {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    format!("top_logprobs must be in 0..=20, got {k}"),
                ));
            }
            (false, Some(k)) if k > 0 => {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "top_logprobs requires logprobs to be true",
                ));
            }
            (true, k) => Some(k.unwrap_or(0) as u32),
            (false, _) => None,
        };
        let mut common = self.common.validate(max_tokens)?;
        common.sampling.logprobs = top_logprobs;
        let chat = ChatPrompt {
            messages,
            add_generation_prompt: self.add_generation_prompt.unwrap_or(true),
        };
        Ok(ChatJob {
            prompt: Prompt::Chat(chat),
            common,
            top_logprobs,
        })
    }
}

fn message(m: WireMessage) -> ApiResult<ChatMessage> {
    let content = match m.content {
        None => String::new(),
        Some(MessageContent::Text(text)) => text,
        Some(MessageContent::Parts(parts)) => {
            let texts = parts
                .into_iter()
                .map(|p| match (p.kind.as_str(), p.text) {
                    ("text", Some(text)) => Ok(text),
                    (kind, _) => Err(ApiError::invalid(
                        "messages",
                        format!(
                            "unsupported content part type `{kind}`: only text parts are supported"
                        ),
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()?;
            texts.join("\n")
        }
    };
    Ok(ChatMessage {
        role: m.role,
        content,
    })
}

/// A non-streamed chat answer (`chat.completion`).
#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    /// `chatcmpl-...`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Served model id.
    pub model: String,
    /// One per choice, by index.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: Usage,
}

/// One choice of a [`ChatCompletion`].
#[derive(Debug, Serialize)]
pub struct ChatChoice {
    /// Choice index.
    pub index: usize,
    /// The assistant's reply.
    pub message: AssistantMessage,
    /// Chosen-token logprobs when asked for, else null.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `abort`.
    pub finish_reason: Option<&'static str>,
    /// The stop string that ended generation, or null (vLLM extension).
    pub stop_reason: Option<String>,
}

/// `{"role": "assistant", "content": ...}`.
#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The generated text.
    pub content: String,
}

/// A streamed chat event (`chat.completion.chunk`).
#[derive(Debug, Serialize)]
pub struct ChatChunk {
    /// Same id for every chunk of a response.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// Served model id.
    pub model: String,
    /// Usually one choice; empty in the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Only in the last chunk, when `include_usage` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a [`ChatChunk`].
#[derive(Debug, Serialize)]
pub struct ChunkChoice {
    /// Choice index.
    pub index: usize,
    /// What is new.
    pub delta: Delta,
    /// Logprobs of the tokens in this delta, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// Set on the choice's last chunk.
    pub finish_reason: Option<&'static str>,
    /// The stop string that ended generation (vLLM extension), on the last chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

/// A streamed message delta; absent fields are omitted.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk of a choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// New text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `logprobs` of a chat choice.
#[derive(Debug, Default, Serialize)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
}

/// One generated token with its alternatives.
#[derive(Debug, Serialize)]
pub struct ChatTokenLogprob {
    /// Token text.
    pub token: String,
    /// Its logprob (`-9999.0` for `-inf`).
    pub logprob: f32,
    /// UTF-8 bytes of the token text.
    pub bytes: Vec<u8>,
    /// The best alternatives, best first.
    pub top_logprobs: Vec<ChatTopLogprob>,
}

/// One alternative token.
#[derive(Debug, Serialize)]
pub struct ChatTopLogprob {
    /// Token text.
    pub token: String,
    /// Its logprob.
    pub logprob: f32,
    /// UTF-8 bytes of the token text.
    pub bytes: Vec<u8>,
}

impl ChatLogprobs {
    /// Chat logprobs from the engine's per-token entries.
    pub fn from_engine(entries: &[proto::engine::Logprobs]) -> Self {
        let content = entries
            .iter()
            .map(|e| {
                let token = e.token.clone().unwrap_or_default();
                let top = e.top.iter().map(|t| ChatTopLogprob {
                    token: t.text.clone(),
                    logprob: finite_logprob(t.logprob),
                    bytes: t.text.as_bytes().to_vec(),
                });
                ChatTokenLogprob {
                    bytes: token.text.as_bytes().to_vec(),
                    logprob: finite_logprob(token.logprob),
                    token: token.text,
                    top_logprobs: top.collect(),
                }
            })
            .collect();
        Self { content }
    }
}
