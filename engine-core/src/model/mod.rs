//! The model: file format, architecture, tokenizer and chat template.

pub mod chat_template;
pub mod gguf;
pub mod llama;
pub mod tiny;
pub mod tokenizer;

use std::path::Path;

use kernels::Backend;

use self::chat_template::ChatTemplate;
use self::gguf::GgufFile;
use self::llama::{Llama, ModelError};
use self::tokenizer::Tokenizer;

/// Everything loaded from one GGUF file: weights on a backend, tokenizer, chat template.
pub struct Model<B: Backend> {
    /// The network.
    pub llama: Llama<B>,
    /// The tokenizer built from the file's vocabulary.
    pub tokenizer: Tokenizer,
    /// The file's chat template, if it has one.
    pub chat_template: Option<ChatTemplate>,
}

impl<B: Backend> Model<B> {
    /// Opens `path` and loads everything onto `backend`.
    pub fn load(path: impl AsRef<Path>, backend: B) -> Result<Self, ModelError> {
        let file = GgufFile::open(path)?;
        Self::from_gguf(&file, backend)
    }

    /// Loads from an already parsed file.
    pub fn from_gguf(file: &GgufFile, backend: B) -> Result<Self, ModelError> {
        let llama = Llama::load(file, backend)?;
        let tokenizer =
            Tokenizer::from_gguf(file).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let chat_template =
            ChatTemplate::from_gguf(file).map_err(|e| ModelError::ChatTemplate(e.to_string()))?;
        Ok(Self {
            llama,
            tokenizer,
            chat_template,
        })
    }
}
