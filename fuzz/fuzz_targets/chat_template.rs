//! Any conversation through the tiny model's chat template: messages are the input split at
//! NUL bytes, each `role\ncontent`; it renders or fails with an error, and what renders
//! tokenizes.
#![no_main]

use std::sync::OnceLock;

use engine_core::model::chat_template::{ChatMessage, ChatTemplate};
use engine_core::model::gguf::GgufFile;
use engine_core::model::tiny::{TinySpec, tiny_model_bytes};
use engine_core::model::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fn model() -> &'static (ChatTemplate, Tokenizer) {
    static M: OnceLock<(ChatTemplate, Tokenizer)> = OnceLock::new();
    M.get_or_init(|| {
        let file = GgufFile::from_bytes(tiny_model_bytes(&TinySpec::default())).unwrap();
        (
            ChatTemplate::from_gguf(&file).unwrap().unwrap(),
            Tokenizer::from_gguf(&file).unwrap(),
        )
    })
}

fuzz_target!(|text: &str| {
    let (template, tokenizer) = model();
    let mut parts = text.split('\0');
    let add_generation_prompt = parts.next().is_some_and(|p| p.is_empty());
    let messages: Vec<ChatMessage> = parts
        .map(|m| {
            let (role, content) = m.split_once('\n').unwrap_or((m, ""));
            ChatMessage::new(role, content)
        })
        .collect();
    if let Ok(rendered) = template.render(&messages, add_generation_prompt) {
        tokenizer.encode(&rendered, true).unwrap();
    }
});
