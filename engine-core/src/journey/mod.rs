//! Journey tracing inside the engine (`JOURNEY-SPEC.md` §1–§4): the `llm_core` span of each
//! traced request with its `journey.*` events ([`CoreSpan`]), and the step spans of sampled
//! scheduler steps ([`StepTracer`]), both kept by [`JourneyObserver`], an observer of the
//! request lifecycle ([`crate::lifecycle`]).
//!
//! With tracing off there is no tracer, no span and no per-request tracing state: each
//! lifecycle event costs the observer one emptiness check. Built without the `journey` feature,
//! the tracer types are uninhabited and the observer does nothing at all, so the compiler
//! removes the tracing code altogether (the baseline of the tracing-overhead bench).

mod config;
#[cfg(test)]
#[cfg(feature = "journey")]
pub(crate) mod tests;

#[cfg(feature = "journey")]
mod core_span;
#[cfg(feature = "journey")]
mod observer;
#[cfg(feature = "journey")]
mod step;
#[cfg(feature = "journey")]
mod tracer;

#[cfg(not(feature = "journey"))]
mod compiled_out;

pub use crate::lifecycle::{Progress, TraceContext};
pub use config::{StepSampling, StepTracingConfig};

#[cfg(not(feature = "journey"))]
pub use compiled_out::{CoreTracer, JourneyObserver, StepTracer};
#[cfg(feature = "journey")]
pub use core_span::{CoreSpan, Transition};
#[cfg(feature = "journey")]
pub use observer::JourneyObserver;
#[cfg(feature = "journey")]
pub use step::{MAX_STEP_LINKS, StepTracer};
#[cfg(feature = "journey")]
pub use tracer::CoreTracer;
