//! What one scheduler step did, as the step tracer records it; plain data, built whether or
//! not the tracing code is.

use opentelemetry::trace::SpanContext;
use proto::telemetry::Stamp;

/// Step-tracing settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StepTracingConfig {
    /// Fraction of steps traced.
    pub sample_rate: f64,
    /// Fraction of traced steps that also get per-request snapshots.
    pub rich_subsample_rate: f64,
    /// Steps per window.
    pub closure_interval: u64,
    /// The KV pool's device, for `kv.device`.
    pub kv_device: String,
}

/// One running request at the end of a rich-sampled step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSnapshot {
    /// The engine's request id.
    pub request_id: String,
    /// `WAITING`, `PREFILL` or `DECODE`.
    pub phase: &'static str,
    /// Prompt length.
    pub num_prompt_tokens: usize,
    /// Tokens with keys and values in the cache.
    pub num_computed_tokens: usize,
    /// Output tokens so far.
    pub num_output_tokens: usize,
    /// Preemptions so far.
    pub num_preemptions: u32,
    /// Tokens scheduled for it in this step.
    pub scheduled_tokens: usize,
    /// KV blocks it holds.
    pub blocks_allocated: usize,
    /// Of those, blocks found in the prefix cache when it was admitted.
    pub blocks_cached: usize,
    /// Prompt tokens found in the prefix cache when it was admitted.
    pub num_cached_tokens: usize,
}

/// What one step did.
#[derive(Clone, Debug, Default)]
pub struct StepRecord {
    /// The step counter (`scheduler.step`).
    pub id: u64,
    /// Start of the step (before scheduling).
    pub start: Option<Stamp>,
    /// End of the step (after output processing).
    pub end: Option<Stamp>,
    /// Scheduling time, µs.
    pub schedule_us: u64,
    /// Forward and output processing time, µs.
    pub model_us: u64,
    /// Running requests after scheduling.
    pub running_depth: usize,
    /// Waiting requests after scheduling.
    pub waiting_depth: usize,
    /// Requests computing prompt tokens.
    pub num_prefill_reqs: usize,
    /// Requests decoding.
    pub num_decode_reqs: usize,
    /// Prompt tokens run.
    pub prefill_tokens: usize,
    /// Decode tokens run.
    pub decode_tokens: usize,
    /// Requests finished in the step.
    pub num_finished: usize,
    /// Requests preempted in the step.
    pub num_preempted: usize,
    /// Blocks in the pool.
    pub kv_blocks_total: usize,
    /// Free blocks after the step.
    pub kv_blocks_free: usize,
    /// `llm_core` spans of the traced requests in the batch.
    pub links: Vec<SpanContext>,
    /// Per running request, on rich-sampled steps.
    pub snapshots: Vec<StepSnapshot>,
}

/// Whether a step is traced, and how richly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepSampling {
    /// Not traced.
    Off,
    /// Batch summary only.
    Summary,
    /// Summary plus a snapshot per running request.
    Rich,
}
