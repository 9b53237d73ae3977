//! [`EngineObserver`]: what watches the lifecycle.

use super::{Event, RequestRef, StepBegin, StepEnd};

/// Something that watches requests go through the engine. The step loop calls it, on its own
/// thread, with each event as it happens; an observer keeps whatever state it needs (the
/// journey observer keeps the spans of traced requests) and cannot reach back into the loop.
///
/// Every method does nothing by default, so an observer implements only what it watches.
pub trait EngineObserver {
    /// A request's lifecycle event.
    fn on_request(&mut self, _req: &RequestRef<'_>, _event: &Event<'_>) {}

    /// A step was scheduled; its requests' events follow.
    fn on_step_begin(&mut self, _step: &StepBegin<'_>) {}

    /// A step is done.
    fn on_step_end(&mut self, _step: &StepEnd<'_>) {}

    /// The engine is stopping; every request has finished (end what is still open).
    fn on_stop(&mut self) {}
}
