//! The engine: one thread (`engine-step`) that owns the model, the KV pool, the scheduler and
//! every request, and runs the step loop; clients talk to it only through channels.
//!
//! Shape from TGI's router (one task owns queue and blocks; the client side only ever sees
//! token events) and vLLM v1's `EngineCore` (each step: take new requests, schedule, run one
//! batch for all scheduled tokens, sample, detokenize, check stops, emit, free). A step builds a
//! single [`ForwardBatch`](crate::model::llama::ForwardBatch) mixing prefill chunks and decode
//! tokens; the forward pass is batch invariant, so outputs equal a request's alone
//! ([`crate::generate::generate`], the same engine with one sequence) whatever the batching,
//! chunking or preemption.
//!
//! - [`EngineHandle`]: `submit` (validates and tokenizes; bounded by `max_waiting`), `abort`,
//!   `stats`, `model_facts`, `shutdown`.
//! - [`RequestEvent`]: `Started`, `Tokens`..., then exactly one `Finished`.
//! - A failed event send means the client left: the request is aborted in that step.
//! - The step loop ([`step`]) states lifecycle events to its observers (`observers`): metrics,
//!   journey tracing, and what the handles read (`published`).

mod batch;
mod events;
mod handle;
#[cfg(test)]
#[cfg(feature = "journey")]
mod journey_tests;
mod observers;
mod prompt_cache;
mod published;
mod request;
mod sequence;
mod step;
#[cfg(test)]
mod tests;
mod thread;

use std::sync::{Arc, Mutex};

use kernels::Backend;
use proto::telemetry::Stamp;
use tokio::sync::mpsc::UnboundedSender;

pub use events::{PromptLogprob, RequestEvent, TokenLogprobs};
pub use handle::{EngineHandle, ModelFacts};
pub use request::{ChatSpecials, EnginePrompt, EngineRequest};

use crate::journey::{CoreTracer, JourneyObserver, StepTracer, TraceContext};
pub use crate::lifecycle::{
    EngineStats, Finish, FinishReason, Finished, RequestFailure, StopReason, Timings, Usage,
};
use crate::metrics::EngineMetrics;
use crate::model::Model;
use crate::model::llama::ModelError;
use crate::sampling::SamplingParams;
use crate::scheduler::RequestId;
use handle::{Gate, Shared};
pub(crate) use observers::Observers;
pub(crate) use request::prompt_ids;
pub(crate) use step::{EngineCore, kv_and_scheduler};

/// Engine limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Token slots per KV block.
    pub block_size: usize,
    /// KV blocks in the pool.
    pub kv_blocks: usize,
    /// Most tokens one step runs (prefill chunks plus decode tokens).
    pub max_num_batched_tokens: usize,
    /// Most requests running at once.
    pub max_num_seqs: usize,
    /// Most requests accepted but not yet scheduled; more get [`EngineError::Overloaded`].
    pub max_waiting: usize,
    /// Share the KV blocks of common prompt prefixes between requests.
    pub enable_prefix_caching: bool,
    /// The name clients address the model by; `None` for the file's `general.name`.
    pub served_model_name: Option<String>,
    /// KV blocks of the sliding-window layers' pool, for a model that has some; `None` for
    /// as many as [`kv_blocks`](Self::kv_blocks).
    pub window_kv_blocks: Option<usize>,
    /// Test-only fault hook: the step with this number panics (how the health and exit of a
    /// dead step thread are tested through a real process).
    pub fault_panic_at_step: Option<u64>,
    /// Who goes first: `fcfs`, `fair` across tenants, or by `priority`.
    pub scheduling_policy: crate::scheduler::SchedulingPolicy,
    /// What special-token text typed in chat messages becomes (text by default).
    pub chat_specials: ChatSpecials,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            kv_blocks: 1024,
            max_num_batched_tokens: 512,
            max_num_seqs: 64,
            max_waiting: 4096,
            enable_prefix_caching: true,
            served_model_name: None,
            window_kv_blocks: None,
            fault_panic_at_step: None,
            scheduling_policy: crate::scheduler::SchedulingPolicy::default(),
            chat_specials: ChatSpecials::default(),
        }
    }
}

/// Why a request was refused by [`EngineHandle::submit`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Bad request: empty prompt, bad parameters, token id outside the vocabulary, prompt too
    /// long for the context, duplicate id.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The waiting queue is full.
    #[error("the engine is overloaded: too many requests waiting")]
    Overloaded,
    /// The engine thread is gone.
    #[error("the engine has stopped")]
    Stopped,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A limit that cannot work (zero sizes).
    #[error("invalid engine configuration: {0}")]
    InvalidConfig(String),
    /// The KV pool could not be allocated.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The step thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A validated request on its way to the step loop.
pub(crate) struct Submitted {
    /// The engine's id (unique for the engine's life).
    pub id: RequestId,
    /// The client's id.
    pub name: String,
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub events: UnboundedSender<RequestEvent>,
    pub arrived: Stamp,
    /// Rendering and tokenizing its prompt.
    pub tokenize: std::time::Duration,
    pub trace: TraceContext,
    /// Its caller asked for its journey.
    pub record_journey: bool,
    /// When it is aborted for taking too long.
    pub deadline: Option<std::time::Instant>,
    /// Its tenant and priority.
    pub placement: crate::scheduler::Placement,
}

/// Messages from handles to the step thread.
pub(crate) enum Command {
    Submit(Box<Submitted>),
    Abort(RequestId, crate::lifecycle::AbortCause),
    Shutdown,
}

/// What the step loop reports to: journey spans, step spans, metrics. The default traces
/// nothing and keeps metrics nobody reads.
#[derive(Default)]
pub struct EngineTelemetry {
    /// `llm_core` spans of traced requests.
    pub core: Option<CoreTracer>,
    /// Step spans of sampled steps.
    pub steps: Option<StepTracer>,
    /// The Prometheus metrics.
    pub metrics: Arc<EngineMetrics>,
}

/// Allocates the KV pool and starts the `engine-step` thread running `model`, untraced.
pub fn spawn_engine<B: Backend + 'static>(
    model: Model<B>,
    cfg: EngineConfig,
) -> Result<EngineHandle, SpawnError> {
    spawn_engine_with(model, cfg, EngineTelemetry::default())
}

/// Allocates the KV pool and starts the `engine-step` thread running `model`, reporting to
/// `telemetry`.
pub fn spawn_engine_with<B: Backend + 'static>(
    model: Model<B>,
    cfg: EngineConfig,
    telemetry: EngineTelemetry,
) -> Result<EngineHandle, SpawnError> {
    let parts = kv_and_scheduler(&model.llama, &cfg)?;
    let Model {
        llama,
        tokenizer,
        chat_template,
    } = model;
    let c = llama.config();
    let facts = ModelFacts {
        name: cfg
            .served_model_name
            .clone()
            .unwrap_or_else(|| c.name.clone()),
        architecture: c.arch.name().to_owned(),
        context_length: c.context_length,
        vocab_size: c.vocab_size,
        has_chat_template: chat_template.is_some(),
        eos_token_ids: tokenizer.eog_ids().to_vec(),
        bos_token_id: tokenizer.bos_id(),
        add_bos: tokenizer.add_bos(),
        block_size: cfg.block_size,
        device: llama.backend().device_name().to_owned(),
    };
    let shared = Arc::new(Shared {
        facts,
        tokenizer: Arc::new(tokenizer),
        chat_template,
        chat_specials: cfg.chat_specials,
        max_waiting: cfg.max_waiting,
        scheduling_policy: cfg.scheduling_policy,
        tenant_max_waiting: match cfg.scheduling_policy {
            crate::scheduler::SchedulingPolicy::Fair => {
                (cfg.max_waiting - cfg.max_waiting / 4).max(1)
            }
            _ => cfg.max_waiting,
        },
        kv_capacity: cfg.kv_blocks * cfg.block_size,
        prompts: prompt_cache::PromptCache::new(16),
        gate: Mutex::new(Gate::default()),
        stats: Mutex::new(EngineStats {
            kv_blocks_total: cfg.kv_blocks,
            ..EngineStats::default()
        }),
        thread: Mutex::new(None),
        stopped: tokio::sync::watch::channel(false).0,
        failed: std::sync::atomic::AtomicBool::new(false),
    });
    let observers = Observers {
        metrics: telemetry.metrics,
        journey: JourneyObserver::new(telemetry.core, telemetry.steps),
        journal: crate::journal::JournalObserver::new(),
        published: Some(published::Published {
            shared: Arc::clone(&shared),
        }),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("engine-step".into())
        .spawn(move || {
            let tokenizer = Arc::clone(&thread_shared.tokenizer);
            let core = EngineCore::new(&llama, &tokenizer, parts, observers)
                .with_fault_at(cfg.fault_panic_at_step);
            thread::run(core, &thread_shared, &rx);
        })?;
    *shared
        .thread
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(thread);
    Ok(EngineHandle {
        shared,
        commands: tx,
    })
}
