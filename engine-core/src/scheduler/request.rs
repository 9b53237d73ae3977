//! One request as the scheduler sees it: identity, token counters, state and KV blocks.
//!
//! Modelled on vLLM v1's `Request`: the scheduler never looks at token ids, only at how many
//! tokens are known (`num_tokens`: prompt plus generated) and how many of them already have
//! their keys and values in the cache (`num_computed_tokens`).

use std::sync::Arc;

use super::policy::{Placement, QueueKey};
use crate::kv_cache::RequestKv;

/// The scheduler's id of a request; ids grow with arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Queued, never run yet.
    Waiting,
    /// Admitted: holds KV blocks and is scheduled every step until it finishes.
    Running,
    /// Was running, lost its blocks to a newer request's need; queued to recompute.
    Preempted,
    /// Was running, lost its running slot to the policy (fairness, priority) but keeps its
    /// blocks until someone needs them: it resumes where it stopped, or recomputes if they
    /// were taken meanwhile (then it is `Preempted`).
    Suspended,
    /// Done; holds nothing.
    Finished,
}

/// Scheduling state of one request.
#[derive(Debug)]
pub struct SchedRequest {
    /// Its id.
    pub id: RequestId,
    /// Its state.
    pub state: RequestState,
    /// Prompt length in tokens.
    pub num_prompt_tokens: usize,
    /// Tokens known: prompt plus generated.
    pub num_tokens: usize,
    /// Tokens whose keys and values are in the cache (or scheduled to be, this step).
    pub num_computed_tokens: usize,
    /// Times this request was preempted.
    pub num_preemptions: u32,
    /// Its share of the KV cache (the cache manager's business).
    pub kv: RequestKv,
    /// Its tenant and priority.
    pub placement: Placement,
    /// Its place in its lane while it waits.
    pub(super) key: QueueKey,
    /// Its lane of the waiting queue (its tenant under `fair`, else the one lane).
    pub(super) lane: Arc<str>,
    /// The last step that scheduled it (such a request is not preempted in that step: its
    /// prompt blocks may already be registered for the prefix cache).
    pub(super) scheduled_in: Option<u64>,
}

impl SchedRequest {
    /// A new waiting request with a prompt of `num_prompt_tokens`, in `lane` at `key`.
    pub(super) fn new(
        num_prompt_tokens: usize,
        kv: RequestKv,
        placement: Placement,
        lane: Arc<str>,
        key: QueueKey,
    ) -> Self {
        Self {
            id: key.id,
            state: RequestState::Waiting,
            num_prompt_tokens,
            num_tokens: num_prompt_tokens,
            num_computed_tokens: 0,
            num_preemptions: 0,
            kv,
            placement,
            key,
            lane,
            scheduled_in: None,
        }
    }

    /// Tokens still to compute before the next token can be sampled.
    pub fn num_uncomputed(&self) -> usize {
        self.num_tokens - self.num_computed_tokens
    }
}
