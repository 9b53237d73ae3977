//! A request as submitted, and its prompt turned into token ids (done in `submit`, on the
//! caller's thread: rendering and tokenizing are cheap, and errors are returned synchronously).

use crate::journey::TraceContext;
use crate::model::chat_template::{ChatMessage, ChatTemplate};
use crate::model::tokenizer::Tokenizer;
use crate::sampling::SamplingParams;
use crate::scheduler::Placement;

use super::EngineError;

/// A generation request.
#[derive(Clone, Debug)]
pub struct EngineRequest {
    /// The caller's id; unique among live requests.
    pub id: String,
    /// The prompt.
    pub prompt: EnginePrompt,
    /// Sampling parameters (validated by `submit`).
    pub params: SamplingParams,
    /// Whether (and under which parent) its journey is traced.
    pub trace: TraceContext,
    /// Send its journey through the engine on its `Finished` event.
    pub return_journey: bool,
    /// When the caller stops waiting: the engine aborts it then (reason `timeout`).
    pub deadline: Option<std::time::Instant>,
    /// Its tenant and priority (for the scheduling policy).
    pub placement: Placement,
}

/// A prompt in one of three forms.
#[derive(Clone, Debug)]
pub enum EnginePrompt {
    /// Raw text, tokenized as is (BOS added when the model wants it; special tokens parsed).
    Text(String),
    /// Token ids.
    TokenIds(Vec<u32>),
    /// Messages rendered through the model's chat template, then tokenized like text.
    Chat {
        /// The conversation.
        messages: Vec<ChatMessage>,
        /// Append the assistant turn's opening.
        add_generation_prompt: bool,
    },
}

impl EnginePrompt {
    /// One user message, with the assistant turn's opening after it.
    pub fn user(text: impl Into<String>) -> Self {
        Self::Chat {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: text.into(),
            }],
            add_generation_prompt: true,
        }
    }
}

/// Token ids of `prompt`, checked against the model: not empty, in the vocabulary, shorter
/// than the context.
pub(crate) fn prompt_ids(
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
    vocab_size: usize,
    context_length: usize,
    prompt: &EnginePrompt,
) -> Result<Vec<u32>, EngineError> {
    let invalid = |m: String| EngineError::InvalidRequest(m);
    let ids = match prompt {
        EnginePrompt::TokenIds(ids) => ids.clone(),
        EnginePrompt::Text(text) => tokenizer
            .encode(text, true)
            .map_err(|e| invalid(e.to_string()))?,
        EnginePrompt::Chat {
            messages,
            add_generation_prompt,
        } => {
            let template =
                template.ok_or_else(|| invalid("the model has no chat template".into()))?;
            let rendered = template
                .render(messages, *add_generation_prompt)
                .map_err(|e| invalid(e.to_string()))?;
            tokenizer
                .encode(&rendered, true)
                .map_err(|e| invalid(e.to_string()))?
        }
    };
    if ids.is_empty() {
        return Err(invalid("the prompt is empty".into()));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
        return Err(invalid(format!(
            "prompt token id {id} is outside the vocabulary of {}",
            vocab_size
        )));
    }
    if ids.len() >= context_length {
        return Err(invalid(format!(
            "prompt of {} tokens does not fit the context of {}",
            ids.len(),
            context_length
        )));
    }
    Ok(ids)
}
