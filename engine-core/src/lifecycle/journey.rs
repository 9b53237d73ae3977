//! One request's journey through the engine as data (the `return_journey` answer): its
//! lifecycle events with steps and offsets, each prefill chunk with the batch it ran in, and
//! each token's time. Plain data; the journal observer ([`crate::journal`]) fills it.

use std::time::Duration;

use super::WaitReason;
use crate::scheduler::PreemptCause;

/// The shape of one scheduler step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchContext {
    /// The step.
    pub step: u64,
    /// Requests in it.
    pub num_requests: usize,
    /// Prompt (or recomputed) tokens in it.
    pub prefill_tokens: usize,
    /// Decode tokens in it.
    pub decode_tokens: usize,
    /// How long the whole step took.
    pub duration: Duration,
    /// Requests running after its decisions.
    pub num_running: usize,
    /// Requests waiting after its decisions.
    pub num_waiting: usize,
}

/// Which lifecycle event a [`JourneyMark`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// Entered the waiting queue.
    Queued,
    /// Scheduled from the queue.
    Scheduled {
        /// After a preemption.
        resumed: bool,
        /// What held it back last.
        wait_ended: WaitReason,
    },
    /// Lost its blocks.
    Preempted(PreemptCause),
    /// First token.
    FirstToken,
    /// Left the engine.
    Finished,
}

/// One lifecycle event of the journey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JourneyMark {
    /// Which.
    pub kind: MarkKind,
    /// The scheduler step.
    pub step: u64,
    /// Since the request reached the engine.
    pub offset: Duration,
    /// The step's batch (preemptions).
    pub batch: Option<BatchContext>,
}

/// A chunk of prompt (or recomputed) tokens and the step it ran in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRun {
    /// Since arrival, when its step began.
    pub offset: Duration,
    /// First position.
    pub start: usize,
    /// Tokens.
    pub num_tokens: usize,
    /// The step.
    pub batch: BatchContext,
}

/// One request's journey through the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestJourney {
    /// Lifecycle events, in order.
    pub events: Vec<JourneyMark>,
    /// Prefill chunks, in order.
    pub prefill_chunks: Vec<ChunkRun>,
    /// When each output token was sampled, since arrival.
    pub token_offsets: Vec<Duration>,
}
