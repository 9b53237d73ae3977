//! What the journey events report about a request, and the spec's finish vocabulary; plain
//! data, built whether or not the tracing code is.

use proto::conventions::finish_status;

use crate::scheduler::FinishReason;

/// Where a request stands, as the journey events report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The scheduler step (see the spec's `scheduler.step` rules).
    pub step: u64,
    /// Prompt length.
    pub prompt_tokens: usize,
    /// High-water mark of prompt tokens processed (survives preemption).
    pub prefill_done: usize,
    /// Output tokens so far.
    pub output_tokens: usize,
    /// The request's max_tokens.
    pub max_tokens: usize,
    /// Preemptions so far.
    pub preemptions: u32,
}

/// A lifecycle event of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Scheduled from waiting; `resumed` after a preemption.
    Scheduled {
        /// After a preemption.
        resumed: bool,
    },
    /// First output token.
    FirstToken,
    /// Lost its blocks.
    Preempted,
}

/// The spec's `finish.status` of a finish reason.
pub fn finish_status_of(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => finish_status::STOPPED,
        FinishReason::Length => finish_status::LENGTH,
        FinishReason::Aborted => finish_status::ABORTED,
        FinishReason::Ignored => finish_status::IGNORED,
        FinishReason::Error => finish_status::ERROR,
    }
}
