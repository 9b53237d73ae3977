//! Where a request's time went, and where it stands (the progress journey events report).

use std::time::Duration;

use proto::conventions::phase;

use super::WaitTimes;
use proto::telemetry::Stamp;

/// Engine-side instants of a request (`None`: it never happened) and durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timings {
    /// `submit` was called.
    pub arrived: Stamp,
    /// The step thread put it in the waiting queue.
    pub queued: Option<Stamp>,
    /// First scheduled.
    pub scheduled: Option<Stamp>,
    /// First token sampled.
    pub first_token: Option<Stamp>,
    /// Latest token sampled.
    pub last_token: Option<Stamp>,
    /// Finished.
    pub finished: Option<Stamp>,
    /// Time of the steps in which it computed prompt (or recomputed) tokens.
    pub prefill_time: Duration,
    /// Time of the steps in which it decoded one token.
    pub decode_time: Duration,
    /// Rendering and tokenizing its prompt (in `submit`, before `queued`).
    pub tokenize: Duration,
    /// Turning its tokens into text.
    pub detokenize: Duration,
    /// Its first wait (queued to first scheduled) by what it waited for.
    pub queue_wait: WaitTimes,
    /// Its waits after preemptions, by what they waited for.
    pub requeue_wait: WaitTimes,
}

/// When a sampled token came, relative to the request's earlier ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTiming {
    /// Its first token, this long after arrival.
    First(Duration),
    /// A later token, this long after the previous one.
    Next(Duration),
}

impl Timings {
    /// A request that arrived at `arrived`.
    pub fn new(arrived: Stamp) -> Self {
        Self {
            arrived,
            queued: None,
            scheduled: None,
            first_token: None,
            last_token: None,
            finished: None,
            prefill_time: Duration::ZERO,
            decode_time: Duration::ZERO,
            tokenize: Duration::ZERO,
            detokenize: Duration::ZERO,
            queue_wait: WaitTimes::default(),
            requeue_wait: WaitTimes::default(),
        }
    }

    /// From tokenized to in the step thread's queue.
    pub fn handoff(&self) -> Option<Duration> {
        Some(between(self.arrived, self.queued?).saturating_sub(self.tokenize))
    }

    /// Records a token sampled at `now`.
    pub fn token_sampled(&mut self, now: Stamp) -> TokenTiming {
        let timing = match self.last_token {
            None => {
                self.first_token = Some(now);
                TokenTiming::First(between(self.arrived, now))
            }
            Some(prev) => TokenTiming::Next(between(prev, now)),
        };
        self.last_token = Some(now);
        timing
    }

    /// Arrival to finish.
    pub fn e2e(&self) -> Option<Duration> {
        Some(between(self.arrived, self.finished?))
    }

    /// Queued to first scheduled.
    pub fn queue_time(&self) -> Option<Duration> {
        Some(between(self.queued?, self.scheduled?))
    }
}

/// Monotonic time from `a` to `b` (zero if `b` is earlier).
pub fn between(a: Stamp, b: Stamp) -> Duration {
    Duration::from_nanos(b.mono_ns.saturating_sub(a.mono_ns))
}

/// Seconds since the Unix epoch of `s`, the wire's form of an instant.
pub fn epoch_secs(s: Stamp) -> f64 {
    s.wall
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What a request is doing, as journey events and step snapshots report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// In the waiting queue.
    Waiting,
    /// Computing prompt tokens (or recomputing after a preemption) before its first token.
    Prefill,
    /// Generating.
    Decode,
}

impl Phase {
    /// The spec's name of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => phase::WAITING,
            Self::Prefill => phase::PREFILL,
            Self::Decode => phase::DECODE,
        }
    }
}

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

impl Progress {
    /// Prefill until the first output token, decode after.
    pub fn running_phase(&self) -> Phase {
        if self.output_tokens == 0 {
            Phase::Prefill
        } else {
            Phase::Decode
        }
    }
}
