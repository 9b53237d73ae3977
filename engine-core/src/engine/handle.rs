//! The engine's client side: a cheap, cloneable handle that validates and queues requests and
//! reads the step loop's published stats. Nothing here touches the model or the scheduler.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use proto::telemetry::Stamp;

use super::events::RequestEvent;
use super::prompt_cache::PromptCache;
use super::request::ChatSpecials;
use super::request::{EngineRequest, prompt_ids};
use super::{Command, EngineError, Submitted};
use crate::lifecycle::AbortCause;
pub use crate::lifecycle::EngineStats;
use crate::model::chat_template::ChatTemplate;
use crate::model::tokenizer::Tokenizer;
use crate::scheduler::RequestId;
use crate::scheduler::SchedulingPolicy;

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

/// The admission state of every live request, owned here and nowhere else: which client ids
/// are live (and their engine ids), how many are still waiting for their first scheduling
/// (bounded by `max_waiting`), and whether the engine still takes requests. Handles admit;
/// the step loop's [`Published`](super::published::Published) observer moves requests on.
#[derive(Debug, Default)]
pub(super) struct Gate {
    live: HashMap<String, Live>,
    queued: usize,
    /// Waiting requests per tenant (tenants with none are absent).
    queued_by: HashMap<Arc<str>, usize>,
    next_id: u64,
    pub stopped: bool,
}

#[derive(Debug)]
struct Live {
    id: RequestId,
    /// Not yet scheduled once: counts against `max_waiting`.
    queued: bool,
    tenant: Arc<str>,
}

impl Gate {
    /// Admits `name` of `tenant` under a fresh engine id, or says why not: the waiting queue
    /// holds `limits.0` requests at most, `limits.1` of them one tenant's.
    fn admit(
        &mut self,
        name: &str,
        tenant: &Arc<str>,
        (max_waiting, tenant_max): (usize, usize),
    ) -> Result<RequestId, EngineError> {
        if self.stopped {
            return Err(EngineError::Stopped);
        }
        if self.live.contains_key(name) {
            return Err(EngineError::InvalidRequest(format!(
                "request id {name:?} is already in use"
            )));
        }
        let of_tenant = self.queued_by.get(tenant).copied().unwrap_or(0);
        if self.queued >= max_waiting || of_tenant >= tenant_max {
            return Err(EngineError::Overloaded);
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.queued += 1;
        *self.queued_by.entry(Arc::clone(tenant)).or_default() += 1;
        let tenant = Arc::clone(tenant);
        self.live.insert(
            name.to_owned(),
            Live {
                id,
                queued: true,
                tenant,
            },
        );
        Ok(id)
    }

    /// The engine id of live request `name`.
    fn id_of(&self, name: &str) -> Option<RequestId> {
        self.live.get(name).map(|l| l.id)
    }

    /// `name` was scheduled for the first time: it no longer counts as waiting.
    pub fn scheduled(&mut self, name: &str) {
        if let Some(l) = self.live.get_mut(name)
            && std::mem::take(&mut l.queued)
        {
            let tenant = Arc::clone(&l.tenant);
            self.unqueue(&tenant);
        }
    }

    fn unqueue(&mut self, tenant: &str) {
        self.queued -= 1;
        if let Some(n) = self.queued_by.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.queued_by.remove(tenant);
            }
        }
    }

    /// `name` left the engine: its id is free again.
    pub fn left(&mut self, name: &str) {
        if let Some(l) = self.live.remove(name)
            && l.queued
        {
            self.unqueue(&l.tenant);
        }
    }
}

/// State shared by the handles and the step loop.
pub(super) struct Shared {
    pub facts: ModelFacts,
    pub tokenizer: Arc<Tokenizer>,
    pub chat_template: Option<ChatTemplate>,
    /// What special-token text in chat messages becomes.
    pub chat_specials: ChatSpecials,
    pub max_waiting: usize,
    /// Who goes first (a `priority` under `fcfs` is refused, as vLLM does).
    pub scheduling_policy: crate::scheduler::SchedulingPolicy,
    /// Most waiting requests of one tenant (under `fair`, a quarter of the queue stays free
    /// for the others).
    pub tenant_max_waiting: usize,
    /// Tokens the whole KV pool holds: a longer prompt can never run.
    pub kv_capacity: usize,
    /// Recently tokenized prompts (a request's choices share one).
    pub prompts: PromptCache,
    pub gate: Mutex<Gate>,
    pub stats: Mutex<EngineStats>,
    pub thread: Mutex<Option<JoinHandle<()>>>,
    /// True once the step thread has stopped (shutdown or failure).
    pub stopped: tokio::sync::watch::Sender<bool>,
    /// The step thread stopped because a step failed (panicked).
    pub failed: std::sync::atomic::AtomicBool,
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
        self.submit_as(req).map(|(_, rx)| rx)
    }

    /// [`submit`](Self::submit), also returning the engine's id of the request (for
    /// [`client_gone`](Self::client_gone)).
    pub fn submit_as(
        &self,
        req: EngineRequest,
    ) -> Result<(RequestId, UnboundedReceiver<RequestEvent>), EngineError> {
        let arrived = Stamp::now();
        req.params
            .validate()
            .map_err(|e| EngineError::InvalidRequest(e.to_string()))?;
        let s = &self.shared;
        if req.placement.priority != 0 && s.scheduling_policy == SchedulingPolicy::Fcfs {
            return Err(EngineError::InvalidRequest(format!(
                "priority {} needs --scheduling-policy priority or fair; this engine runs fcfs",
                req.placement.priority
            )));
        }
        let tokenizing = std::time::Instant::now();
        let key = PromptCache::key(&req.prompt);
        let prompt = match key.as_ref().and_then(|k| s.prompts.get(k)) {
            Some(ids) => ids.to_vec(),
            None => {
                let ids = prompt_ids(
                    &s.tokenizer,
                    s.chat_template.as_ref(),
                    (s.facts.vocab_size, s.facts.context_length),
                    s.chat_specials,
                    &req.prompt,
                )?;
                if let Some(k) = key {
                    s.prompts.put(k, &ids);
                }
                ids
            }
        };
        let tokenize = tokenizing.elapsed();
        // The sampled token needs a slot too: `n + 1` must fit the pool, else it never runs.
        if prompt.len() + 1 > s.kv_capacity {
            return Err(EngineError::InvalidRequest(format!(
                "prompt of {} tokens (+1 to generate) exceeds the KV cache of {} tokens",
                prompt.len(),
                s.kv_capacity
            )));
        }
        let mut gate = s.gate();
        let id = gate.admit(
            &req.id,
            &req.placement.tenant,
            (s.max_waiting, s.tenant_max_waiting),
        )?;
        let (events, rx) = unbounded_channel();
        let sub = Submitted {
            id,
            name: req.id,
            prompt,
            params: req.params,
            events,
            arrived,
            tokenize,
            trace: req.trace,
            record_journey: req.return_journey,
            deadline: req.deadline,
            placement: req.placement,
        };
        if let Err(failed) = self.commands.send(Command::Submit(Box::new(sub))) {
            if let Command::Submit(sub) = failed.0 {
                gate.left(&sub.name);
            }
            return Err(EngineError::Stopped);
        }
        Ok((id, rx))
    }

    /// Aborts a live request (waiting or running); it gets `Finished { reason: Aborted }`.
    /// False when no live request has this id.
    pub fn abort(&self, request_id: &str) -> bool {
        let gate = self.shared.gate();
        gate.id_of(request_id).is_some_and(|id| {
            self.commands
                .send(Command::Abort(id, AbortCause::Requested))
                .is_ok()
        })
    }

    /// The client of request `id` went away: it is aborted now, waiting or running, rather
    /// than when the engine next tries to send to it (a waiting request would otherwise still
    /// cost a prefill). Nothing happens if it already finished.
    pub fn client_gone(&self, id: RequestId) {
        let _ = self
            .commands
            .send(Command::Abort(id, AbortCause::ClientGone));
    }

    /// Resolves once the step thread has stopped, for whatever reason.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.stopped.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Whether the step thread stopped because a step failed: the engine serves nothing more.
    pub fn failed(&self) -> bool {
        self.shared
            .failed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Submissions whose prompt was tokenized already (another choice of the same request).
    pub fn prompt_cache_hits(&self) -> u64 {
        self.shared.prompts.hits()
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
