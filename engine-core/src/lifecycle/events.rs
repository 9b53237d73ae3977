//! The events the step loop states, once each: per request ([`Event`], about a
//! [`RequestRef`]) and per step ([`StepBegin`], [`StepEnd`]).

use std::time::Duration;

use opentelemetry::Context;
use proto::telemetry::Stamp;

use super::{Finish, Phase, Progress, RequestJourney, Timings, WaitReason, WaitTimes};
use crate::scheduler::{BatchStats, Placement, PreemptCause, RequestId, ScheduledRequest};

/// The tracing decision for one request, made where it enters the engine.
#[derive(Clone, Debug, Default)]
pub enum TraceContext {
    /// Not traced.
    #[default]
    Off,
    /// Traced: its `llm_core` span is a child of this context (empty: a root).
    On(Context),
}

/// The request an event is about.
#[derive(Clone, Copy, Debug)]
pub struct RequestRef<'a> {
    /// The engine's id.
    pub id: RequestId,
    /// The client's id.
    pub name: &'a str,
    /// Where it stands.
    pub progress: Progress,
}

/// How a request came to be scheduled from the waiting queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// For the first time.
    New,
    /// After a preemption (its tokens are recomputed).
    Resume,
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
}

/// Everything known about a request when it leaves the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    /// How it ended.
    pub finish: Finish,
    /// Token counts.
    pub usage: Usage,
    /// Where the time went.
    pub timings: Timings,
    /// Times it was preempted.
    pub num_preemptions: u32,
    /// Its journey, when its caller asked for it.
    pub journey: Option<Box<RequestJourney>>,
}

/// A lifecycle event of one request.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Entered the waiting queue (every request, first of its events).
    Queued {
        /// Whether, and under which parent, its journey is traced.
        trace: &'a TraceContext,
        /// Its tenant and priority.
        placement: &'a Placement,
        /// When it reached the engine (`submit`).
        arrived: Stamp,
        /// Whether its caller asked for its journey on the last response.
        record_journey: bool,
    },
    /// Scheduled from the waiting queue.
    Scheduled {
        /// First time or resumed.
        admission: Admission,
        /// Prompt tokens found in the prefix cache.
        num_cached_tokens: usize,
        /// What held it back at the last step it was not admitted.
        wait_ended: WaitReason,
        /// This wait, by what it waited for.
        waited: WaitTimes,
    },
    /// Lost its KV blocks; back in the waiting queue.
    Preempted {
        /// Why the scheduler took them.
        cause: PreemptCause,
    },
    /// Its first token was sampled.
    FirstToken {
        /// Since arrival.
        ttft: Duration,
    },
    /// A later token was sampled.
    Token {
        /// Since the previous one.
        since_previous: Duration,
    },
    /// Left the engine (last of its events); the client hears of it after the observers.
    Finished {
        /// How it ended, and its counts and timings.
        finished: &'a Finished,
        /// The engine's counters once its blocks are freed.
        load: &'a EngineStats,
    },
}

/// The engine's live counters (published to handles, set as gauges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// KV blocks in the pool.
    pub kv_blocks_total: usize,
    /// KV blocks held by requests.
    pub kv_blocks_used: usize,
    /// KV blocks holding a cached prompt prefix (held by requests or free to evict).
    pub kv_blocks_cached: usize,
    /// Blocks in the sliding-window layers' pool (0 for a model without such layers).
    pub window_blocks_total: usize,
    /// Sliding-window blocks held by requests.
    pub window_blocks_used: usize,
    /// Requests running.
    pub num_running: usize,
    /// Requests waiting (preempted ones included).
    pub num_waiting: usize,
    /// Preemptions since start.
    pub num_preemptions_total: u64,
    /// Requests finished since start (any reason).
    pub num_requests_finished: u64,
}

/// A step has been scheduled; its forward pass is next.
#[derive(Clone, Copy, Debug)]
pub struct StepBegin<'a> {
    /// The step's number (`scheduler.step`).
    pub step: u64,
    /// What runs, in batch order.
    pub scheduled: &'a [ScheduledRequest],
    /// The batch's shape.
    pub batch: &'a BatchStats,
    /// When the step began (before scheduling).
    pub started: Stamp,
}

/// One running request at the end of a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSnapshot {
    /// The client's id.
    pub request_id: String,
    /// Prefill or decode.
    pub phase: Phase,
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

/// A step is done: its requests' events have all been stated.
pub struct StepEnd<'a> {
    /// The step's number (`scheduler.step`).
    pub step: u64,
    /// Before scheduling.
    pub started: Stamp,
    /// After output processing.
    pub ended: Stamp,
    /// Spent scheduling.
    pub schedule_time: Duration,
    /// Spent in the forward pass and output processing.
    pub model_time: Duration,
    /// The batch's shape, as the scheduler decided it.
    pub batch: &'a BatchStats,
    /// Requests preempted to make room.
    pub num_preempted: usize,
    /// Requests that finished.
    pub num_finished: usize,
    /// The engine's counters after the step.
    pub load: &'a EngineStats,
    /// Builds a snapshot of every running request (not free: call only when needed).
    pub snapshots: &'a dyn Fn() -> Vec<RequestSnapshot>,
}

impl std::fmt::Debug for StepEnd<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepEnd")
            .field("step", &self.step)
            .field("batch", self.batch)
            .field("load", self.load)
            .finish_non_exhaustive()
    }
}
