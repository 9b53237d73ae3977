//! A request as submitted, and its prompt turned into token ids (done in `submit`, on the
//! caller's thread: rendering and tokenizing are cheap, and errors are returned synchronously).

use crate::journey::TraceContext;
use crate::model::chat_template::{ChatMessage, ChatTemplate};
use crate::model::tokenizer::Tokenizer;
use crate::sampling::SamplingParams;
use crate::scheduler::Placement;

use super::EngineError;

/// What special-token text typed inside chat message contents becomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatSpecials {
    /// Text, as the user wrote it: a message cannot open a turn of another role (default).
    #[default]
    Literal,
    /// Control tokens, as llama.cpp and vLLM tokenize the rendered prompt.
    Parse,
}

/// The rendered chat prompt's ids. With [`ChatSpecials::Literal`], the control-token text that
/// messages contain stays text: the template is rendered a second time with such contents
/// replaced by markers, which locates them exactly in the prompt (a template that rewrites
/// them, so that the two renderings disagree, is refused rather than guessed at).
fn chat_ids(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    specials: ChatSpecials,
) -> Result<Vec<u32>, EngineError> {
    let invalid = |m: String| EngineError::InvalidRequest(m);
    let render = |m: &[ChatMessage]| {
        template
            .render(m, add_generation_prompt)
            .map_err(|e| invalid(e.to_string()))
    };
    let rendered = render(messages)?;
    let typed: Vec<(usize, &str)> = match specials {
        ChatSpecials::Parse => Vec::new(),
        ChatSpecials::Literal => messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| Some((i, tokenizer.special_text_in(&m.content)?)))
            .collect(),
    };
    let Some(&(first, token)) = typed.first() else {
        return tokenizer
            .encode(&rendered, true)
            .map_err(|e| invalid(e.to_string()));
    };
    let marker = |i: usize| format!("\u{E000}{i}\u{E001}");
    let marked: Vec<ChatMessage> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| ChatMessage {
            role: m.role.clone(),
            content: if typed.iter().any(|&(t, _)| t == i) {
                marker(i)
            } else {
                m.content.clone()
            },
        })
        .collect();
    let with_markers = render(&marked)?;
    // Put the contents back where the markers are, noting their ranges.
    let (mut text, mut literal) = (String::with_capacity(rendered.len()), Vec::new());
    let mut rest = with_markers.as_str();
    while let Some(open) = rest.find('\u{E000}') {
        let close = rest[open..].find('\u{E001}').map(|c| open + c);
        let index = close.and_then(|c| rest[open + 3..c].parse::<usize>().ok());
        let (Some(close), Some(i)) = (close, index.filter(|&i| i < messages.len())) else {
            break;
        };
        text.push_str(&rest[..open]);
        let start = text.len();
        text.push_str(&messages[i].content);
        literal.push(start..text.len());
        rest = &rest[close + 3..];
    }
    text.push_str(rest);
    if text != rendered {
        return Err(invalid(format!(
            "message {first} contains the special token {token:?}, and the chat template \
             changes message text, so it cannot be kept as text"
        )));
    }
    tokenizer
        .encode_with_literals(&text, true, &literal)
        .map_err(|e| invalid(e.to_string()))
}

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
    (vocab_size, context_length): (usize, usize),
    chat_specials: ChatSpecials,
    prompt: &EnginePrompt,
) -> Result<Vec<u32>, EngineError> {
    let invalid = |m: String| EngineError::InvalidRequest(m);
    // Refuse what can never fit before paying for rendering and tokenizing it.
    let bytes = match prompt {
        EnginePrompt::TokenIds(_) => 0,
        EnginePrompt::Text(text) => text.len(),
        EnginePrompt::Chat { messages, .. } => messages.iter().map(|m| m.content.len()).sum(),
    };
    let at_least = tokenizer.min_tokens_for(bytes);
    if at_least >= context_length {
        return Err(invalid(format!(
            "prompt of {bytes} bytes is at least {at_least} tokens, which does not fit the \
             context of {context_length}"
        )));
    }
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
            chat_ids(
                tokenizer,
                template,
                messages,
                *add_generation_prompt,
                chat_specials,
            )?
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
