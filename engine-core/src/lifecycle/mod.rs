//! The request lifecycle's vocabulary, shared by the step loop that states what happened and
//! the observers that watch it: how a request ends ([`Finish`]), where its time went
//! ([`Timings`]), where it stands ([`Progress`], [`Phase`]), the events ([`Event`],
//! [`StepBegin`], [`StepEnd`]) and the [`EngineObserver`] trait.
//!
//! ```text
//!  submit ─► Queued ─► Scheduled{New} ─► FirstToken ─► Token… ─► Finished
//!                 ▲            │
//!                 └ Preempted ◄┘ (then Scheduled{Resume})
//! ```
//!
//! Observers: Prometheus metrics ([`crate::metrics`]), journey spans ([`crate::journey`]) and
//! the stats and admission state the engine's handles read (`engine::published`). The step
//! loop holds them in one struct of fixed fields rather than a `Vec<Box<dyn EngineObserver>>`:
//! the set is known at compile time, each call is static and inlined (with tracing off the
//! journey observer's calls reduce to an emptiness check), and each observer is still a type
//! of its own, testable alone through this trait. This module imports nothing from the
//! engine; `metrics` and `journey` import it, never `engine`.

mod events;
mod finish;
mod journey;
mod observer;
mod timings;
mod wait;

pub use events::{
    Admission, EngineStats, Event, Finished, RequestRef, RequestSnapshot, StepBegin, StepEnd,
    TraceContext, Usage,
};
pub use finish::{AbortCause, Finish, FinishReason, RequestFailure, StopReason};
pub use journey::{BatchContext, ChunkRun, JourneyMark, MarkKind, RequestJourney};
pub use observer::EngineObserver;
pub use timings::{Phase, Progress, Timings, TokenTiming, between, epoch_secs};
pub use wait::{AdmissionStop, WaitClock, WaitMark, WaitReason, WaitTimes};
