//! The Llama family (llama, qwen2, qwen3, gemma3): configuration from GGUF metadata, weights
//! on a [`Backend`], and one forward pass, switched by [`ArchOptions`], over a batch that mixes
//! prefill chunks and decode tokens of several sequences.
//!
//! [`Backend`]: kernels::Backend

mod config;
mod forward;
mod kv;
mod weights;

pub use config::{Arch, ArchOptions, LlamaConfig, RopeScaling};
pub use forward::ForwardBatch;
pub use kv::{KvCache, KvGroup};
pub use weights::Llama;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The GGUF file is unreadable or lacks something.
    #[error(transparent)]
    Gguf(#[from] super::gguf::GgufError),
    /// The architecture is not one Journey runs.
    #[error("unsupported model architecture {0:?} (supported: {supported})", supported = Arch::supported())]
    UnsupportedArchitecture(String),
    /// Metadata values that cannot describe a working model.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// A tensor's shape is not what the configuration implies.
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Tensor.
        name: String,
        /// Its dims, innermost first.
        found: Vec<u64>,
        /// Expected dims.
        expected: Vec<u64>,
    },
    /// The device refused.
    #[error(transparent)]
    Backend(#[from] kernels::BackendError),
    /// The vocabulary in the file cannot be turned into a tokenizer.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template does not compile.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// A batch that does not fit the model.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
}
