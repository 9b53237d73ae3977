//! The scheduling policy: which requests run how many tokens in the next step. No model here,
//! so it can be tested and benchmarked alone.
//!
//! The design is vLLM v1's (`vllm/v1/core/sched/scheduler.py`): there are no prefill and decode
//! phases, only one rule. Every step, each running request and then each waiting request (first
//! come, first served) is given `min(num_tokens - num_computed_tokens, token budget)` tokens,
//! under `max_num_batched_tokens` and `max_num_seqs`. A long prompt is thus prefilled in chunks,
//! a decode is a chunk of one, and a preempted request simply recomputes from zero.
//!
//! KV blocks come from the [`KvCacheManager`], all-or-nothing per request: the scheduler asks
//! for a request's blocks and learns how many of its tokens are already computed, and the
//! manager alone decides how blocks are shared, cached and given back (below). A running request that
//! cannot get blocks preempts the newest-admitted running request (possibly itself): its blocks
//! are freed and it goes back to the *front* of the waiting queue. A waiting request is admitted
//! only if its blocks fit, and admission stops at the first one that does not, so a step only
//! ever looks at the head of the waiting queue and its cost does not grow with the queue.
//!
//! Who goes first is the [`SchedulingPolicy`]'s (module [`policy`]): `fcfs` as above, `fair`
//! across tenants (the default; with one tenant it is `fcfs`), or `priority`. Under the last
//! two, a waiting request that deserves a running slot more than a running request (its tenant
//! has fewer than its share, or it has a higher priority) takes the slot at the start of a step,
//! before anyone is budgeted; the running request is preempted like any other.
//!
//! A model with sliding-window layers (Gemma 3) keeps their keys and values in a second pool
//! ([`WindowKv`]): every request holds blocks in both, all-or-nothing, and gives back its
//! window blocks that no query will read again (those wholly before the window of the first
//! token it schedules) before asking for new ones, so its window pool share stays about a
//! window plus a chunk whatever the sequence length. Prefix caching is off for such models.
//!
//! With prefix caching (vLLM's automatic prefix caching, on by default there too), a request
//! is admitted with the cached blocks of the longest prefix of full prompt blocks it shares
//! with earlier requests: those tokens count as computed and cost no budget. A prompt block is
//! registered once it is scheduled (its keys and values are written in that step's forward,
//! before any attention of that step reads them). At least the last prompt token is always
//! computed, since its logits give the first sample. The forward is batch and chunk invariant,
//! so a cached block holds exactly what recomputing it would give.

mod output;
pub mod policy;
mod queue;
mod request;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use crate::kv_cache::{KvRelease, WindowKv};
pub use output::{AdmissionStop, BatchStats, ScheduleKind, ScheduledRequest, SchedulerOutput};
pub use policy::{Placement, PreemptCause, Preemption, SchedulingPolicy};
pub use request::{RequestId, RequestState, SchedRequest};

use crate::kv_cache::{BlockHash, KvCacheManager};
use policy::QueueKey;
use queue::WaitQueue;

/// Limits of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most tokens one step runs (prefill chunks plus decode tokens).
    pub max_num_batched_tokens: usize,
    /// Most requests running at once.
    pub max_num_seqs: usize,
    /// The model's context length: no sequence grows past it.
    pub max_model_len: usize,
    /// KV blocks in the pool.
    pub num_kv_blocks: usize,
    /// Token slots per KV block.
    pub block_size: usize,
    /// Reuse the KV blocks of common prompt prefixes (ignored with `window`).
    pub enable_prefix_caching: bool,
    /// The sliding-window pool, for a model with sliding-window layers.
    pub window: Option<WindowKv>,
    /// Who goes first.
    pub policy: SchedulingPolicy,
}

/// A prompt that can never run; the engine finishes such a request as ignored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IgnoredPrompt(pub String);

/// Queues, budgets and KV blocks of every unfinished request.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    kv: KvCacheManager,
    requests: HashMap<RequestId, SchedRequest>,
    /// Waiting and preempted requests, by lane in admission order.
    waiting: WaitQueue,
    /// Running requests, oldest admission first.
    running: Vec<RequestId>,
    next_id: u64,
    /// Arrivals so far (the next one's number).
    arrivals: u64,
    /// Waiting requests that still hold their blocks, oldest suspension first.
    suspended: Vec<RequestId>,
    step: u64,
    num_preemptions: u64,
}

impl Scheduler {
    /// An empty scheduler over a pool of `cfg.num_kv_blocks` blocks (and `cfg.window`'s).
    ///
    /// # Panics
    /// If the sliding-window pool has fewer than 2 blocks.
    pub fn new(mut cfg: SchedulerConfig) -> Self {
        let kv = KvCacheManager::new(
            cfg.num_kv_blocks,
            cfg.block_size,
            cfg.window,
            cfg.enable_prefix_caching,
        );
        cfg.enable_prefix_caching = kv.prefix_caching();
        Self {
            kv,
            cfg,
            requests: HashMap::new(),
            waiting: WaitQueue::default(),
            running: Vec::new(),
            next_id: 0,
            arrivals: 0,
            suspended: Vec::new(),
            step: 0,
            num_preemptions: 0,
        }
    }

    /// The limits.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Queues a request with a prompt of `num_prompt_tokens` tokens, or refuses a prompt that
    /// could never run (empty, as long as the context, or larger than the whole KV cache).
    pub fn add_request(&mut self, num_prompt_tokens: usize) -> Result<RequestId, IgnoredPrompt> {
        self.add_request_with_prefix(num_prompt_tokens, Vec::new())
    }

    /// [`add_request`](Self::add_request) with the chain hashes of the prompt's full blocks
    /// ([`crate::kv_cache::prefix_hashes`]), for prefix caching.
    pub fn add_request_with_prefix(
        &mut self,
        num_prompt_tokens: usize,
        prompt_hashes: Vec<BlockHash>,
    ) -> Result<RequestId, IgnoredPrompt> {
        let id = RequestId(self.next_id);
        self.add(id, num_prompt_tokens, prompt_hashes, Placement::default())?;
        Ok(id)
    }

    /// Queues request `id` (an id not used before in this scheduler: the engine numbers
    /// requests where they are submitted) of `placement`'s tenant and priority like
    /// [`add_request_with_prefix`](Self::add_request_with_prefix).
    pub fn add(
        &mut self,
        id: RequestId,
        num_prompt_tokens: usize,
        prompt_hashes: Vec<BlockHash>,
        placement: Placement,
    ) -> Result<(), IgnoredPrompt> {
        let n = num_prompt_tokens;
        let capacity = self.cfg.num_kv_blocks * self.cfg.block_size;
        if n == 0 {
            return Err(IgnoredPrompt("the prompt is empty".into()));
        }
        if n >= self.cfg.max_model_len {
            return Err(IgnoredPrompt(format!(
                "prompt of {n} tokens leaves no room in the context of {}",
                self.cfg.max_model_len
            )));
        }
        if n + 1 > capacity {
            return Err(IgnoredPrompt(format!(
                "prompt of {n} tokens (+1 to generate) exceeds the KV cache of {capacity} tokens"
            )));
        }
        self.next_id = self.next_id.max(id.0 + 1);
        let (lane, priority) = match self.cfg.policy {
            SchedulingPolicy::Fcfs => (Arc::<str>::from(""), 0),
            SchedulingPolicy::Priority => (Arc::<str>::from(""), placement.priority),
            SchedulingPolicy::Fair => (Arc::clone(&placement.tenant), placement.priority),
        };
        let key = QueueKey {
            priority,
            arrival: self.arrivals,
            id,
        };
        self.arrivals += 1;
        self.waiting.push(&lane, key);
        let kv = self.kv.new_request(prompt_hashes);
        let req = SchedRequest::new(n, kv, placement, lane, key);
        self.requests.insert(id, req);
        Ok(())
    }

    /// Records a token sampled for `id`: it becomes known and will be computed next step.
    /// Returns false for an unknown request.
    pub fn append_token(&mut self, id: RequestId) -> bool {
        match self.requests.get_mut(&id) {
            Some(req) => {
                req.num_tokens += 1;
                true
            }
            None => false,
        }
    }

    /// Finishes `id` wherever it is and frees its blocks; returns its last state (with
    /// `state` set to `Finished`), or `None` for an unknown request.
    pub fn finish(&mut self, id: RequestId, kv: KvRelease) -> Option<SchedRequest> {
        let mut req = self.requests.remove(&id)?;
        match req.state {
            RequestState::Running => {
                self.running.retain(|&r| r != id);
                self.waiting.stopped(&req.lane);
            }
            RequestState::Waiting | RequestState::Preempted => {
                self.waiting.remove(&req.lane, &req.key);
            }
            RequestState::Suspended => {
                self.waiting.remove(&req.lane, &req.key);
                self.suspended.retain(|&r| r != id);
            }
            RequestState::Finished => {}
        }
        self.kv.free_finished(&mut req.kv, kv);
        req.state = RequestState::Finished;
        Some(req)
    }

    /// A request's scheduling state.
    pub fn request(&self, id: RequestId) -> Option<&SchedRequest> {
        self.requests.get(&id)
    }

    /// A request's block ids, as the backend reads them.
    pub fn block_table(&self, id: RequestId) -> Option<&[u32]> {
        self.requests.get(&id).map(|r| r.kv.block_table())
    }

    /// A request's block ids in the sliding-window pool, as the backend reads them.
    pub fn window_block_table(&self, id: RequestId) -> Option<&[u32]> {
        self.requests.get(&id).map(|r| r.kv.window_block_table())
    }

    /// Blocks in the sliding-window pool and how many requests hold (0s without one).
    pub fn window_kv_blocks(&self) -> (usize, usize) {
        self.kv.window_blocks()
    }

    /// Running requests, oldest admission first.
    pub fn running(&self) -> &[RequestId] {
        &self.running
    }

    /// Requests running.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Requests waiting (preempted ones included).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Waiting requests in the order admission would take them if each one admitted ran.
    pub fn waiting_order(&self) -> Vec<RequestId> {
        self.waiting.admission_order().map(|(_, k)| k.id).collect()
    }

    /// True when any request is unfinished.
    pub fn has_unfinished(&self) -> bool {
        !self.requests.is_empty()
    }

    /// Preemptions since the start.
    pub fn num_preemptions(&self) -> u64 {
        self.num_preemptions
    }

    /// KV blocks in the pool.
    pub fn kv_blocks_total(&self) -> usize {
        self.kv.num_total()
    }

    /// KV blocks held by requests.
    pub fn kv_blocks_used(&self) -> usize {
        self.kv.num_used()
    }

    /// KV blocks holding a cached prefix (held by requests or not).
    pub fn kv_blocks_cached(&self) -> usize {
        self.kv.num_cached()
    }

    /// The number the next [`schedule`](Self::schedule) call will carry.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Decides the next step; the scheduled tokens count as computed from now on.
    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut out = SchedulerOutput {
            step: self.step,
            ..SchedulerOutput::default()
        };
        self.rebalance(&mut out);
        let displaced = out.preempted.len();
        let mut budget = self.cfg.max_num_batched_tokens;
        self.schedule_running(&mut budget, &mut out);
        // As in vLLM: a step that had to preempt for KV blocks admits nobody.
        let stop = if out.preempted.len() == displaced {
            self.schedule_waiting(&mut budget, &mut out, None)
        } else {
            AdmissionStop::KvBlocks
        };
        self.step += 1;
        out.admission_stop = (!self.waiting.is_empty()).then_some(stop);
        out.stats.num_running = self.running.len();
        out.stats.num_waiting = self.waiting.len();
        out.stats.kv_blocks_total = self.kv.num_total();
        out.stats.kv_blocks_free = self.kv.num_free();
        out
    }

    /// Under `fair` and `priority`, with every running slot taken: preempts the running
    /// requests that waiting ones deserve to replace (see the module doc of [`policy`]).
    fn rebalance(&mut self, out: &mut SchedulerOutput) {
        if self.waiting.is_empty() || self.running.len() < self.cfg.max_num_seqs {
            return;
        }
        let victims: Vec<RequestId> = match self.cfg.policy {
            SchedulingPolicy::Fcfs => return,
            SchedulingPolicy::Priority => {
                // Running requests, the worst (highest value, then newest) last.
                let mut pool: Vec<(i32, usize, RequestId)> = self
                    .running
                    .iter()
                    .enumerate()
                    .map(|(pos, id)| (self.requests[id].key.priority, pos, *id))
                    .collect();
                pool.sort_unstable();
                let mut victims = Vec::new();
                for (_, key) in self.waiting.admission_order() {
                    match pool.last() {
                        Some(&(worst, _, id)) if key.priority < worst => {
                            victims.push(id);
                            pool.pop();
                        }
                        _ => break,
                    }
                }
                victims
            }
            SchedulingPolicy::Fair => {
                // Each lane's running requests, newest last.
                let mut by_lane: HashMap<&str, Vec<RequestId>> = HashMap::new();
                for id in &self.running {
                    by_lane
                        .entry(&self.requests[id].lane)
                        .or_default()
                        .push(*id);
                }
                let mut order = self.waiting.admission_order();
                let mut victims = Vec::new();
                while let Some((lane, _)) = order.next() {
                    let after = order.running(lane);
                    let fullest =
                        order.fullest(|l| by_lane.get(l).is_some_and(|ids| !ids.is_empty()));
                    let Some((from, _)) = fullest.filter(|&(_, held)| after < held) else {
                        break;
                    };
                    if let Some(id) = by_lane.get_mut(from).and_then(Vec::pop) {
                        victims.push(id);
                    }
                    order.release(from);
                }
                victims
            }
        };
        let cause = match self.cfg.policy {
            SchedulingPolicy::Priority => PreemptCause::Priority,
            _ => PreemptCause::FairShare,
        };
        for id in victims {
            self.preempt(id, cause, out);
        }
    }

    /// The order running requests get the step's budget in: admission order, except that
    /// `priority` puts lower values first and `fair` the tenants with fewer running requests.
    fn budget_order(&self) -> Vec<RequestId> {
        let mut order: Vec<(i64, usize, RequestId)> = self
            .running
            .iter()
            .enumerate()
            .map(|(pos, &id)| (self.rank(id), pos, id))
            .collect();
        order.sort_unstable();
        order.into_iter().map(|(_, _, id)| id).collect()
    }

    /// A running request's rank under the policy: lower gets budget first and is preempted
    /// last (admission order breaks ties).
    fn rank(&self, id: RequestId) -> i64 {
        let req = &self.requests[&id];
        match self.cfg.policy {
            SchedulingPolicy::Fcfs => 0,
            SchedulingPolicy::Priority => i64::from(req.key.priority),
            SchedulingPolicy::Fair => self.waiting.running(&req.lane) as i64,
        }
    }

    fn schedule_running(&mut self, budget: &mut usize, out: &mut SchedulerOutput) {
        for id in self.budget_order() {
            if *budget == 0 {
                break;
            }
            if self.cfg.policy == SchedulingPolicy::Fair {
                // A waiting tenant with fewer running requests goes before this one: one
                // tenant's long prefills cannot hold another's short prompt back.
                let lane = &self.requests[&id].lane;
                let bound = self.waiting.running(lane);
                self.schedule_waiting(budget, out, Some(bound));
            }
            let Some(req) = self.requests.get(&id) else {
                continue;
            };
            let n = req.num_uncomputed().min(*budget);
            if req.state != RequestState::Running || n == 0 {
                continue; // preempted earlier in this loop, or nothing to compute
            }
            if !self.allocate_or_preempt(id, n, out) {
                continue; // it preempted itself
            }
            self.commit(id, n, ScheduleKind::Continue, out);
            *budget -= n;
        }
    }

    /// Grows `id`'s blocks to cover `n` more tokens, preempting the worst-ranked running
    /// requests not yet scheduled in this step until they fit. False when it had to preempt
    /// itself (it ranked worst).
    fn allocate_or_preempt(&mut self, id: RequestId, n: usize, out: &mut SchedulerOutput) -> bool {
        loop {
            let Some(req) = self.requests.get_mut(&id) else {
                return false;
            };
            if self.kv.allocate(&mut req.kv, req.num_computed_tokens, n) {
                return true;
            }
            // Blocks that nobody runs on go first.
            if self.evict_suspended() {
                continue;
            }
            let step = self.step;
            let victim = self
                .running
                .iter()
                .enumerate()
                .filter(|&(_, &r)| r == id || self.requests[&r].scheduled_in != Some(step))
                .max_by_key(|&(pos, &r)| (self.rank(r), pos))
                .map(|(_, &r)| r);
            let Some(victim) = victim else {
                return false;
            };
            self.preempt(victim, PreemptCause::KvBlocks, out);
            if victim == id {
                return false;
            }
        }
    }

    /// Takes `id` out of the running set: for KV blocks it gives them back and will
    /// recompute; for the policy it keeps them while nobody needs them (suspended).
    fn preempt(&mut self, id: RequestId, cause: PreemptCause, out: &mut SchedulerOutput) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        if cause == PreemptCause::KvBlocks {
            self.kv.free(&mut req.kv);
            req.num_computed_tokens = 0;
            req.state = RequestState::Preempted;
        } else {
            req.state = RequestState::Suspended;
            self.suspended.push(id);
        }
        req.num_preemptions += 1;
        self.num_preemptions += 1;
        self.running.retain(|&r| r != id);
        self.waiting.stopped(&req.lane);
        self.waiting.push(&req.lane, req.key);
        out.preempted.push(Preemption { id, cause });
    }

    /// Frees the blocks of the most recently suspended request (it will recompute); false
    /// when no request is suspended.
    fn evict_suspended(&mut self) -> bool {
        let Some(id) = self.suspended.pop() else {
            return false;
        };
        if let Some(req) = self.requests.get_mut(&id) {
            self.kv.free(&mut req.kv);
            req.num_computed_tokens = 0;
            req.state = RequestState::Preempted;
        }
        true
    }

    /// Admits the policy's next waiting request while everything fits (and, with `bound`,
    /// while its tenant has fewer running requests than that); returns what stopped it
    /// (meaningful only when someone is still waiting and `bound` did not stop it).
    fn schedule_waiting(
        &mut self,
        budget: &mut usize,
        out: &mut SchedulerOutput,
        bound: Option<usize>,
    ) -> AdmissionStop {
        loop {
            if *budget == 0 {
                return AdmissionStop::TokenBudget;
            }
            if self.running.len() >= self.cfg.max_num_seqs {
                return AdmissionStop::RunningSlot;
            }
            let Some((lane, key)) = self.waiting.next() else {
                return AdmissionStop::TokenBudget;
            };
            if bound.is_some_and(|b| self.waiting.running(lane) >= b) {
                return AdmissionStop::TokenBudget;
            }
            let id = key.id;
            let Some(req) = self.requests.get_mut(&id) else {
                return AdmissionStop::TokenBudget;
            };
            if req.kv.blocks().is_empty() {
                req.num_computed_tokens = self.kv.computed_prefix(&mut req.kv, req.num_tokens);
            }
            let n = req.num_uncomputed().min(*budget);
            if !self.kv.allocate(&mut req.kv, req.num_computed_tokens, n) {
                let suspended = req.state == RequestState::Suspended;
                if !suspended && self.evict_suspended() {
                    continue;
                }
                let Some(req) = self.requests.get_mut(&id) else {
                    return AdmissionStop::KvBlocks;
                };
                // Give the (cached or kept) blocks back until its turn comes again.
                self.kv.free(&mut req.kv);
                req.num_computed_tokens = 0;
                if req.state == RequestState::Suspended {
                    req.state = RequestState::Preempted;
                    self.suspended.retain(|&r| r != id);
                }
                return AdmissionStop::KvBlocks; // nobody overtakes the one whose turn it is
            }
            let kind = match req.state {
                RequestState::Preempted => ScheduleKind::Resumed,
                RequestState::Suspended => {
                    self.suspended.retain(|&r| r != id);
                    ScheduleKind::Resumed
                }
                _ => ScheduleKind::New,
            };
            req.state = RequestState::Running;
            self.waiting.remove(&req.lane, &key);
            self.waiting.started(&req.lane);
            self.running.push(id);
            self.commit(id, n, kind, out);
            *budget -= n;
        }
    }

    /// Counts `n` tokens of `id` as computed and records them in the output.
    fn commit(&mut self, id: RequestId, n: usize, kind: ScheduleKind, out: &mut SchedulerOutput) {
        let Some(req) = self.requests.get_mut(&id) else {
            return;
        };
        let start = req.num_computed_tokens;
        req.num_computed_tokens += n;
        req.scheduled_in = Some(self.step);
        self.kv.cache_prompt_blocks(
            &mut req.kv,
            req.num_computed_tokens.min(req.num_prompt_tokens),
        );
        let samples = req.num_computed_tokens == req.num_tokens;
        // A decode computes the one newest token of a request past its prompt that was not
        // just re-admitted (a resumed request recomputes, which is prefill work).
        let decode =
            n == 1 && samples && start >= req.num_prompt_tokens && kind == ScheduleKind::Continue;
        let stats = &mut out.stats;
        if decode {
            stats.num_decode_reqs += 1;
            stats.decode_tokens += n;
        } else {
            stats.num_prefill_reqs += 1;
            stats.prefill_tokens += n;
        }
        out.scheduled.push(ScheduledRequest {
            id,
            start,
            num_tokens: n,
            samples,
            kind,
        });
    }
}
