//! Journey tracing inside the engine (`JOURNEY-SPEC.md` §1–§4): the `llm_core` span of each
//! traced request with its `journey.*` events ([`CoreSpan`]), and the step spans of sampled
//! scheduler steps ([`StepTracer`]).
//!
//! Everything here is optional state owned by the step thread: with tracing off there is no
//! tracer, no span object and no per-request tracing state, and the step loop's only cost is
//! one `Option` check per lifecycle point. Built without the `journey` feature, the tracer
//! and span types are uninhabited, so those `Option`s are always `None` and the compiler
//! removes the tracing code altogether (the baseline of the tracing-overhead bench).

mod progress;
mod step_record;
#[cfg(test)]
#[cfg(feature = "journey")]
mod tests;

#[cfg(feature = "journey")]
mod core_span;
#[cfg(feature = "journey")]
mod step;
#[cfg(feature = "journey")]
mod tracer;

#[cfg(not(feature = "journey"))]
mod compiled_out;

use opentelemetry::Context;

pub use progress::{Progress, Transition, finish_status_of};
pub use step_record::{StepRecord, StepSampling, StepSnapshot, StepTracingConfig};

#[cfg(not(feature = "journey"))]
pub use compiled_out::{CoreSpan, CoreTracer, StepTracer};
#[cfg(feature = "journey")]
pub use core_span::CoreSpan;
#[cfg(feature = "journey")]
pub use step::{MAX_STEP_LINKS, StepTracer};
#[cfg(feature = "journey")]
pub use tracer::CoreTracer;

/// The tracing decision for one request, made where it enters the engine.
#[derive(Clone, Debug, Default)]
pub enum TraceContext {
    /// Not traced.
    #[default]
    Off,
    /// Traced: its `llm_core` span is a child of this context (empty: a root).
    On(Context),
}
