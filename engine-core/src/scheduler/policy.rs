//! Who goes first: the scheduling policies, a request's place in line, and why a running
//! request lost its blocks.
//!
//! Three policies decide the order of admission, the order in which running requests get the
//! step's token budget, and who is preempted (for KV blocks, or to make room for a request that
//! deserves a running slot more):
//!
//! - `fcfs`: arrival order; the newest admitted request is preempted first. Nobody is preempted
//!   for anyone but KV blocks.
//! - `fair`: every tenant (the `x-journey-tenant` metadata the gateway sets from the API key)
//!   gets an equal share of the running slots. The tenant with the fewest running requests is
//!   admitted and budgeted first; a waiting tenant below its share takes a slot from the tenant
//!   with the most (its newest request is preempted and recomputes later), so one tenant's
//!   backlog holds another's request back for about one step, not for one of its requests.
//!   Within a tenant, `priority` then arrival. With one tenant this is exactly `fcfs` (plus
//!   `priority`).
//! - `priority`: lower `priority` first (vLLM's convention), then arrival; a waiting request
//!   preempts a running one of strictly lower priority when no slot is free.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::request::RequestId;

/// How the scheduler orders requests (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchedulingPolicy {
    /// First come, first served.
    Fcfs,
    /// Equal running slots per tenant.
    #[default]
    Fair,
    /// Lower `priority` values first.
    Priority,
}

impl SchedulingPolicy {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fcfs => "fcfs",
            Self::Fair => "fair",
            Self::Priority => "priority",
        }
    }
}

impl fmt::Display for SchedulingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedulingPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fcfs" => Ok(Self::Fcfs),
            "fair" => Ok(Self::Fair),
            "priority" => Ok(Self::Priority),
            _ => Err(format!(
                "unknown scheduling policy {s:?} (fcfs, fair or priority)"
            )),
        }
    }
}

/// Who a request belongs to and how urgent it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Its tenant (empty: the default tenant of callers that name none).
    pub tenant: Arc<str>,
    /// Lower runs first (vLLM's `priority`; 0 by default).
    pub priority: i32,
}

/// Why a running request was preempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreemptCause {
    /// A running request needed KV blocks that were not free.
    KvBlocks,
    /// Its tenant held more than its share of running slots while another tenant waited.
    FairShare,
    /// A request of higher priority waited for a running slot.
    Priority,
}

impl PreemptCause {
    /// The label on spans and in journeys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KvBlocks => "kv_blocks",
            Self::FairShare => "fair_share",
            Self::Priority => "priority",
        }
    }
}

/// One preemption of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preemption {
    /// The request that lost its blocks.
    pub id: RequestId,
    /// Why.
    pub cause: PreemptCause,
}

/// A waiting request's place in its queue: lower first. The arrival number survives a
/// preemption, so a preempted request goes back ahead of everyone who arrived after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct QueueKey {
    /// `priority` under the `fair` and `priority` policies, 0 under `fcfs`.
    pub priority: i32,
    /// Arrival order in this scheduler.
    pub arrival: u64,
    /// Tie-break (arrival numbers are unique; this keeps keys unique by construction).
    pub id: RequestId,
}
