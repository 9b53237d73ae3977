//! Recently tokenized prompts. The gateway sends one `Generate` call per choice, each with the
//! same prompt: with this cache a request with `n` choices renders and tokenizes its prompt
//! once, not `n` times. Keyed by SHA-256 of the prompt as submitted (text, or chat messages and
//! the generation-prompt flag), so a hit is the same prompt, never a lookalike.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::request::EnginePrompt;

/// A prompt's identity.
pub(super) type PromptKey = [u8; 32];

/// The last few prompts' token ids.
#[derive(Debug)]
pub(super) struct PromptCache {
    entries: Mutex<VecDeque<(PromptKey, Arc<[u32]>)>>,
    capacity: usize,
    hits: AtomicU64,
}

impl PromptCache {
    /// Keeps the last `capacity` prompts.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            hits: AtomicU64::new(0),
        }
    }

    /// The key of `prompt`; `None` for token ids, which need no tokenizing.
    pub fn key(prompt: &EnginePrompt) -> Option<PromptKey> {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        match prompt {
            EnginePrompt::TokenIds(_) => return None,
            EnginePrompt::Text(text) => {
                field(b"text");
                field(text.as_bytes());
            }
            EnginePrompt::Chat {
                messages,
                add_generation_prompt,
            } => {
                field(b"chat");
                field(&[u8::from(*add_generation_prompt)]);
                for m in messages {
                    field(m.role.as_bytes());
                    field(m.content.as_bytes());
                }
            }
        }
        Some(h.finalize().into())
    }

    /// The ids of the prompt with `key`, if it was tokenized lately.
    pub fn get(&self, key: &PromptKey) -> Option<Arc<[u32]>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let ids = entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, ids)| Arc::clone(ids))?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(ids)
    }

    /// Remembers `ids` for `key`, forgetting the oldest entry when full.
    pub fn put(&self, key: PromptKey, ids: &[u32]) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.iter().any(|(k, _)| *k == key) {
            return;
        }
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back((key, ids.into()));
    }

    /// Lookups that found their prompt.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
