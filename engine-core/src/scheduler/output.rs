//! What one scheduling step decided: which requests run how many tokens, who was preempted,
//! and the batch's shape for tracing and metrics.

use super::policy::Preemption;
use super::request::RequestId;

/// How a scheduled request came to be in this step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// Was already running.
    Continue,
    /// Admitted from the waiting queue for the first time.
    New,
    /// Re-admitted after a preemption (its tokens are recomputed).
    Resumed,
}

/// One request's share of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledRequest {
    /// The request.
    pub id: RequestId,
    /// Position of its first scheduled token (tokens already in the cache).
    pub start: usize,
    /// Tokens scheduled: positions `start..start + num_tokens`.
    pub num_tokens: usize,
    /// Whether this chunk reaches the end of its known tokens, so a new token is sampled.
    pub samples: bool,
    /// Whether it was running, newly admitted, or resumed.
    pub kind: ScheduleKind,
}

/// Why a step stopped admitting waiting requests (what everyone still waiting waits for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionStop {
    /// Every running slot (`max_num_seqs`) is taken.
    RunningSlot,
    /// The head of the queue's KV blocks do not fit, or the step had to preempt.
    KvBlocks,
    /// The step's token budget is spent.
    TokenBudget,
}

/// The batch's shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Requests computing prompt (or recomputing after preemption) tokens.
    pub num_prefill_reqs: usize,
    /// Requests computing their one newest token.
    pub num_decode_reqs: usize,
    /// Tokens of prefill requests.
    pub prefill_tokens: usize,
    /// Tokens of decode requests.
    pub decode_tokens: usize,
    /// Requests running after this step's decisions.
    pub num_running: usize,
    /// Requests waiting (including preempted ones) after this step's decisions.
    pub num_waiting: usize,
    /// KV blocks in the pool.
    pub kv_blocks_total: usize,
    /// KV blocks free after this step's allocations.
    pub kv_blocks_free: usize,
}

/// The decisions of one [`Scheduler::schedule`](super::Scheduler::schedule) call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerOutput {
    /// The step number (0 for the first call, +1 per call).
    pub step: u64,
    /// Requests to run, in batch order.
    pub scheduled: Vec<ScheduledRequest>,
    /// Requests preempted by this step, and why (their blocks are already freed).
    pub preempted: Vec<Preemption>,
    /// The batch's shape.
    pub stats: BatchStats,
    /// Why requests still wait after this step (`None`: nobody does).
    pub admission_stop: Option<AdmissionStop>,
}

impl SchedulerOutput {
    /// Total tokens scheduled.
    pub fn num_tokens(&self) -> usize {
        self.scheduled.iter().map(|s| s.num_tokens).sum()
    }

    /// True when nothing runs this step.
    pub fn is_empty(&self) -> bool {
        self.scheduled.is_empty()
    }
}
