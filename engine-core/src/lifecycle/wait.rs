//! What waiting requests wait for, and how long: the scheduler says, at each step, which
//! constraint stopped admission ([`AdmissionStop`]); the [`WaitClock`] turns those decisions
//! into time per reason, so each request's wait splits exactly into its parts at O(1) cost per
//! step and per request, however long the queue.

use std::ops::{AddAssign, Sub};
use std::time::Duration;

use proto::telemetry::Stamp;

pub use crate::scheduler::AdmissionStop;

use super::between;

/// What held a waiting request back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitReason {
    /// The engine had not looked yet (a step was running when it arrived).
    Step,
    /// A scheduling decision left it waiting.
    Admission(AdmissionStop),
}

impl WaitReason {
    /// The stage this reason's waiting time belongs to (`proto::conventions::stage`).
    pub fn stage(self) -> &'static str {
        use proto::conventions::stage;
        match self {
            WaitReason::Step => stage::QUEUE_STEP,
            WaitReason::Admission(AdmissionStop::RunningSlot) => stage::QUEUE_RUNNING_SLOT,
            WaitReason::Admission(AdmissionStop::KvBlocks) => stage::QUEUE_KV_BLOCKS,
            WaitReason::Admission(AdmissionStop::TokenBudget) => stage::QUEUE_TOKEN_BUDGET,
        }
    }
}

/// Time spent waiting, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitTimes {
    /// For the running step to end.
    pub step: Duration,
    /// For a running slot (`max_num_seqs`).
    pub running_slot: Duration,
    /// For KV blocks.
    pub kv_blocks: Duration,
    /// For room in a step's token budget.
    pub token_budget: Duration,
}

impl WaitTimes {
    /// Adds `d` to `reason`'s part.
    pub fn add(&mut self, reason: WaitReason, d: Duration) {
        let part = match reason {
            WaitReason::Step => &mut self.step,
            WaitReason::Admission(AdmissionStop::RunningSlot) => &mut self.running_slot,
            WaitReason::Admission(AdmissionStop::KvBlocks) => &mut self.kv_blocks,
            WaitReason::Admission(AdmissionStop::TokenBudget) => &mut self.token_budget,
        };
        *part += d;
    }

    /// Every part together.
    pub fn total(&self) -> Duration {
        self.step + self.running_slot + self.kv_blocks + self.token_budget
    }

    /// The parts with their names (the metrics' `stage` labels and the viewer's).
    pub fn parts(&self) -> [(&'static str, Duration); 4] {
        [
            ("step", self.step),
            ("running_slot", self.running_slot),
            ("kv_blocks", self.kv_blocks),
            ("token_budget", self.token_budget),
        ]
    }
}

impl AddAssign for WaitTimes {
    fn add_assign(&mut self, o: WaitTimes) {
        self.step += o.step;
        self.running_slot += o.running_slot;
        self.kv_blocks += o.kv_blocks;
        self.token_budget += o.token_budget;
    }
}

impl Sub for WaitTimes {
    type Output = WaitTimes;

    fn sub(self, o: WaitTimes) -> WaitTimes {
        WaitTimes {
            step: self.step.saturating_sub(o.step),
            running_slot: self.running_slot.saturating_sub(o.running_slot),
            kv_blocks: self.kv_blocks.saturating_sub(o.kv_blocks),
            token_budget: self.token_budget.saturating_sub(o.token_budget),
        }
    }
}

/// The engine's cumulative waiting time per reason: between two scheduling decisions, the
/// waiting queue was held back by what the earlier one decided.
#[derive(Clone, Copy, Debug)]
pub struct WaitClock {
    totals: WaitTimes,
    reason: AdmissionStop,
    since: Stamp,
}

impl WaitClock {
    /// A clock started at `now`.
    pub fn new(now: Stamp) -> Self {
        Self {
            totals: WaitTimes::default(),
            reason: AdmissionStop::RunningSlot,
            since: now,
        }
    }

    /// A scheduling decision at `now`: the interval since the previous one goes to what held
    /// the queue then. Returns the totals up to `now`.
    pub fn close(&mut self, now: Stamp) -> WaitTimes {
        self.totals
            .add(WaitReason::Admission(self.reason), between(self.since, now));
        self.since = now;
        self.totals
    }

    /// What holds the queue from the last [`close`](Self::close) on.
    pub fn set_reason(&mut self, reason: AdmissionStop) {
        self.reason = reason;
    }

    /// What held the queue since the last decision.
    pub fn reason(&self) -> AdmissionStop {
        self.reason
    }
}

/// One request's wait in progress.
#[derive(Clone, Copy, Debug)]
pub struct WaitMark {
    /// When it started waiting.
    pub since: Stamp,
    /// The clock's totals at the first decision that saw it (`None` until then), the time it
    /// waited for that decision, and the decision's step.
    pub seen: Option<(WaitTimes, Duration, u64)>,
}

impl WaitMark {
    /// A wait starting at `since`, not yet seen by a decision.
    pub fn new(since: Stamp) -> Self {
        Self { since, seen: None }
    }

    /// A wait starting at decision `step` (a preemption), whose clock totals are `totals`.
    pub fn seen_at(since: Stamp, totals: WaitTimes, step: u64) -> Self {
        Self {
            since,
            seen: Some((totals, Duration::ZERO, step)),
        }
    }

    /// Decision `step` at `now`, with clock totals `totals`, sees it (the first one counts).
    pub fn see(&mut self, now: Stamp, totals: WaitTimes, step: u64) {
        if self.seen.is_none() {
            self.seen = Some((totals, between(self.since, now), step));
        }
    }

    /// The wait's parts when decision `step`, with clock totals `totals`, ends it, and what
    /// held it back last (`held`: the reason the previous decision set).
    pub fn end(
        &self,
        totals: WaitTimes,
        step: u64,
        held: AdmissionStop,
    ) -> (WaitTimes, WaitReason) {
        match self.seen {
            Some((at, waited_for_step, seen)) => {
                let mut w = totals - at;
                w.step += waited_for_step;
                let last = if seen == step {
                    WaitReason::Step
                } else {
                    WaitReason::Admission(held)
                };
                (w, last)
            }
            None => (WaitTimes::default(), WaitReason::Step),
        }
    }
}
