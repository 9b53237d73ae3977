//! The engine's client side: a cheap, cloneable handle that validates and queues requests and
//! reads the step loop's published stats. Nothing here touches the model or the scheduler.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::events::{RequestEvent, epoch_now};
use super::request::{EngineRequest, prompt_ids};
use super::{Command, EngineError, Submitted};
use crate::model::chat_template::ChatTemplate;
use crate::model::tokenizer::Tokenizer;

/// Facts about the loaded model and the engine's geometry, fixed at spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFacts {
    /// The served model name ([`EngineConfig::served_model_name`], else `general.name`).
    ///
    /// [`EngineConfig::served_model_name`]: super::EngineConfig::served_model_name
    pub name: String,
    /// Architecture (`llama`, `qwen2`, `qwen3`, `gemma3`).
    pub architecture: String,
    /// Context length in tokens.
    pub context_length: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Whether the file has a chat template.
    pub has_chat_template: bool,
    /// End-of-generation token ids.
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// Whether text prompts get a BOS token.
    pub add_bos: bool,
    /// Token slots per KV block.
    pub block_size: usize,
    /// Compute device (`cpu`, `cuda`).
    pub device: String,
}

/// Live engine counters, published by the step loop (once per step, and before every
/// `Finished` event, so a client that saw its last `Finished` sees the pool already freed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// KV blocks in the pool.
    pub kv_blocks_total: usize,
    /// KV blocks held by requests.
    pub kv_blocks_used: usize,
    /// KV blocks holding a cached prompt prefix (held by requests or free to evict).
    pub kv_blocks_cached: usize,
    /// Requests running.
    pub num_running: usize,
    /// Requests waiting (preempted ones included).
    pub num_waiting: usize,
    /// Preemptions since start.
    pub num_preemptions_total: u64,
    /// Requests finished since start (any reason).
    pub num_requests_finished: u64,
}

/// Which external ids are live; `stopped` once the loop no longer takes requests.
#[derive(Debug, Default)]
pub(super) struct Gate {
    pub live: HashSet<String>,
    pub stopped: bool,
}

/// State shared by the handles and the step loop.
pub(super) struct Shared {
    pub facts: ModelFacts,
    pub tokenizer: Arc<Tokenizer>,
    pub chat_template: Option<ChatTemplate>,
    pub max_waiting: usize,
    pub gate: Mutex<Gate>,
    /// Requests accepted and not yet scheduled for the first time.
    pub queued: AtomicUsize,
    pub stats: Mutex<EngineStats>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    /// Locks the gate; a panic elsewhere while holding it does not poison the engine.
    pub fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the published stats.
    pub fn publish(&self, stats: EngineStats) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }
}

/// A handle to a running engine; clone it freely (`Send + Sync`).
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) commands: Sender<Command>,
}

impl EngineHandle {
    /// Validates and queues `req`; its events arrive on the returned receiver. Dropping the
    /// receiver aborts the request.
    pub fn submit(
        &self,
        req: EngineRequest,
    ) -> Result<UnboundedReceiver<RequestEvent>, EngineError> {
        let arrived = epoch_now();
        req.params
            .validate()
            .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let s = &self.shared;
        let prompt = prompt_ids(
            &s.tokenizer,
            s.chat_template.as_ref(),
            &s.facts,
            &req.prompt,
        )?;
        let mut gate = s.gate();
        if gate.stopped {
            return Err(EngineError::Stopped);
        }
        if gate.live.contains(&req.id) {
            return Err(EngineError::InvalidRequest(format!(
                "request id {:?} is already in use",
                req.id
            )));
        }
        let max = s.max_waiting;
        s.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| EngineError::Overloaded)?;
        let (events, rx) = unbounded_channel();
        let sub = Submitted {
            id: req.id.clone(),
            prompt,
            params: req.params,
            events,
            arrived,
            trace: req.trace,
        };
        if self.commands.send(Command::Submit(Box::new(sub))).is_err() {
            s.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Stopped);
        }
        gate.live.insert(req.id);
        Ok(rx)
    }

    /// Aborts a live request (waiting or running); it gets `Finished { reason: Aborted }`.
    /// False when no live request has this id.
    pub fn abort(&self, request_id: &str) -> bool {
        let gate = self.shared.gate();
        gate.live.contains(request_id)
            && self
                .commands
                .send(Command::Abort(request_id.to_owned()))
                .is_ok()
    }

    /// The latest published counters.
    pub fn stats(&self) -> EngineStats {
        *self
            .shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Facts about the model, fixed at spawn.
    pub fn model_facts(&self) -> &ModelFacts {
        &self.shared.facts
    }

    /// The model's tokenizer (for rendering token texts outside the engine).
    pub fn tokenizer(&self) -> Arc<Tokenizer> {
        Arc::clone(&self.shared.tokenizer)
    }

    /// Stops the engine: live requests finish as `Aborted`, later submits get
    /// [`EngineError::Stopped`]. Waits for the step thread to exit; idempotent.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}
